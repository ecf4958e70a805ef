"""Flow control both ways, shared by every asyncio protocol pier runs (HTTP/1.1, WebSocket).

Rules:
1. Writing: the transport calls pause_writing()/resume_writing() around its buffer's
   marks; the ASGI side awaits drain() after a send while writing is paused, so a slow
   reader holds the app back instead of growing the buffer. connection_lost() must call
   release_writers(), so nothing waits for a transport that is gone.
2. Reading: the protocol pauses the socket when the app has not taken what was read
   (a body or message queue past its mark) and resumes when it has.
Subclasses set write_paused, _read_paused and _drain_waiter in __init__ and name them
in their own __slots__ (so that a subclass may have another slotted base: H1Connection
is its own ResponseFramer), and provide closed, loop and transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING


class FlowControl:
    if not TYPE_CHECKING:
        # Empty: the three fields are each subclass's slots (above). Hidden from mypy,
        # which would otherwise hold every assignment below to this empty tuple.
        __slots__ = ()

    write_paused: bool
    _read_paused: bool
    _drain_waiter: asyncio.Future[None] | None
    closed: bool
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def write_pieces(self, pieces: Iterable[bytes]) -> None:
        """transport.writelines(pieces), and the pause it owes the protocol.

        asyncio's own socket transport (Python 3.12.0-3.12.8, 3.13.0-3.13.1: CPython
        gh-127655) buffers what writelines() cannot send at once without checking its
        high-water mark, so pause_writing() never came and an app streaming to a client
        that does not read filled the server's memory. The check is the transport's
        own; uvloop's transports and fixed Pythons pause by themselves, and have it as a
        no-op or not at all.
        """
        transport = self.transport
        transport.writelines(pieces)
        check = getattr(transport, "_maybe_pause_protocol", None)
        if check is not None:
            check()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.release_writers()

    def release_writers(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport takes more data (or the connection is gone)."""
        if not self.write_paused or self.closed:
            return
        waiter = self._drain_waiter
        if waiter is None:
            waiter = self._drain_waiter = self.loop.create_future()
        await waiter
