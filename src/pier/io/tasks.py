"""Starting the Task that runs an app for one request or session.

Rules: one place decides how app Tasks start, so HTTP and WebSocket glue start them
the same way; on Python >= 3.12 they start eagerly.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from collections.abc import Callable
from typing import Any


def task_starter(
    loop: asyncio.AbstractEventLoop, *, fresh_context: bool = False
) -> Callable[[Any], asyncio.Task[None]]:
    """How to start the app's Task for a request on this loop.

    `fresh_context` (--reset-contextvars): each Task runs in an empty
    contextvars.Context instead of a copy of the server's.
    """
    if fresh_context:
        start = task_starter(loop)

        def start_fresh(coro: Any) -> asyncio.Task[None]:
            return contextvars.Context().run(start, coro)

        return start_fresh
    if sys.version_info >= (3, 12):
        # Eager start runs the app up to its first real suspension right here, as a
        # proper Task (current_task(), timeouts and cancel scopes all work), saving a
        # trip through the event loop per request.
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    # The Task made directly, as on 3.12 (so a loop's task factory is not consulted on
    # either): uvloop's create_task() makes the same Task through a keyword call of its
    # own, ~700 instructions more per request (callgrind, issue 13).
    return functools.partial(asyncio.Task, loop=loop)


def start_task(
    loop: asyncio.AbstractEventLoop, coro: Any, *, fresh_context: bool = False
) -> asyncio.Task[None]:
    """One-off form of task_starter (per-session glue such as io/websocket.py)."""
    return task_starter(loop, fresh_context=fresh_context)(coro)
