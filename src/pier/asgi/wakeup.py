"""Where an app's receive() parks until the protocol glue feeds it something.

Rules: one waiter at a time (an ASGI app awaits one receive() at once); the glue calls
_wake() after it feeds data, a disconnect or a state change, and a wake with nobody
waiting costs one attribute read. Subclasses set `_waiter = None` in __init__.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    __slots__ = ("_waiter",)

    _waiter: asyncio.Future[None] | None

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
