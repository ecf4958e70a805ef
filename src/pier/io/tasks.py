"""Starting the Task that runs an app for one request or session.

Rules: one place decides how app Tasks start, so HTTP and WebSocket glue start them
the same way (ServerContext.start_task). A task factory on the loop when serving starts
makes them, as `loop.create_task` would; without one, pier makes the Task itself, and
on Python >= 3.12 starts it eagerly.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
from collections.abc import Callable
from typing import Any

# What an app Task is called on Python 3.11 when pier makes it (see task_starter); 3.12
# keeps "Task-<n>", and a task factory on the loop names its own.
TASK_NAME = "pier app task"


def task_starter(
    loop: asyncio.AbstractEventLoop, *, fresh_context: bool = False
) -> Callable[[Any], asyncio.Task[None]]:
    """How to start the app's Task for a request on this loop, as it is now.

    `fresh_context` (--reset-contextvars): each Task runs in an empty
    contextvars.Context instead of a copy of the server's.
    """
    if fresh_context:
        start = task_starter(loop)

        def start_fresh(coro: Any) -> asyncio.Task[None]:
            return contextvars.Context().run(start, coro)

        return start_fresh
    if loop.get_task_factory() is not None:
        # Set by the app or its libraries, e.g. an error tracker's asyncio integration
        # set up in lifespan startup: every app Task must be the factory's.
        return loop.create_task
    if sys.version_info >= (3, 12):
        # Eager start runs the app up to its first real suspension right here, as a
        # proper Task (current_task(), timeouts and cancel scopes all work), saving a
        # trip through the event loop per request.
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    # The Task made directly, as on 3.12: uvloop's create_task() makes the same Task
    # through a keyword call of its own, ~700 instructions more per request (callgrind,
    # issue 13). Named: without a name, 3.11 formats "Task-<n>" for every Task
    # (PyUnicode_FromFormat, ~1.4k instructions a request; 3.12 formats it only when
    # asked).
    return functools.partial(asyncio.Task, loop=loop, name=TASK_NAME)

