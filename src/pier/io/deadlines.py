"""Connection timeouts: one periodic sweep per server instead of a timer per connection.

Rules:
1. A connection that waits on its client (idle between keep-alive requests, a request
   head half arrived) sets `deadline` to the loop time by which the client must have
   done its part; while the app has the floor it sets `NEVER`. That is an attribute
   store: nothing is armed or cancelled per connection or per request. (A uvloop timer
   armed and cancelled costs ~11k instructions, about a tenth of a keep-alive request;
   a connection per request paid it every time.)
2. `DeadlineSweep` wakes every `resolution` seconds and calls `deadline_passed()` on
   each connection whose deadline is behind, so a timeout fires at most `resolution`
   late: a quarter of the shortest timeout, and never more than 0.25 s.
3. Every object in ServerContext.connections has `deadline` and `deadline_passed()`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from typing import Protocol

NEVER = math.inf
MAX_RESOLUTION = 0.25
MIN_RESOLUTION = 0.01


class Timed(Protocol):
    deadline: float

    def deadline_passed(self) -> None: ...


def resolution_for(*timeouts: float) -> float:
    """How often to sweep so that no timeout fires more than a quarter of itself late."""
    # A zero timeout (--timeout-keep-alive 0) means "at the next sweep", not "spin".
    return max(MIN_RESOLUTION, min([MAX_RESOLUTION, *(t / 4 for t in timeouts if t > 0)]))


class DeadlineSweep:
    __slots__ = ("_connections", "_handle", "_loop", "resolution")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, connections: Iterable[Timed], resolution: float
    ) -> None:
        self._loop = loop
        self._connections = connections
        self.resolution = resolution
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self._handle is None:
            self._handle = self._loop.call_later(self.resolution, self._sweep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _sweep(self) -> None:
        # Re-armed first, so one connection failing to close cannot stop the sweep.
        self._handle = self._loop.call_later(self.resolution, self._sweep)
        now = self._loop.time()
        # Listed first: closing a connection may change the set being walked.
        for connection in [c for c in self._connections if c.deadline <= now]:
            connection.deadline_passed()
