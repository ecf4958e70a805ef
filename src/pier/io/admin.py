"""The admin listener (--metrics-bind): /metrics, /livez and /readyz, never the app's.

Rules:
1. A separate socket and a deliberately small HTTP/1.1 server: one GET (or HEAD) per
   connection, answered with Connection: close. Its clients are Prometheus and the
   kubelet; neither needs keep-alive, and nothing an app does (a blocked handler, a
   full --limit-concurrency) can stand between a probe and its answer.
2. It runs where the server's state is known: in the supervisor with workers, in the
   server process without. The owner passes three callables; this module knows no
   server internals. /livez and /readyz answer 200 "ok" or 503 with the reason.
3. Bounded: a request head over 8 KiB or not complete within 5 seconds closes the
   connection (the admin port may be reachable by more than Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from pier.addresses import parse_bind
from pier.errors import PierError
from pier.io.sockets import describe, open_address

__all__ = ["AdminServer", "Check"]

logger = logging.getLogger("pier.error")

HEAD_LIMIT = 8192
HEAD_TIMEOUT = 5.0
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format's media type (format version 0.0.4)."""

Check = Callable[[], tuple[bool, str]]
"""(healthy, why) for /livez and /readyz."""


class AdminServer:
    def __init__(
        self,
        address: str,
        *,
        metrics: Callable[[], Awaitable[bytes]],
        live: Check,
        ready: Check,
        backlog: int = 64,
    ) -> None:
        self.address = address
        self.metrics = metrics
        self.live = live
        self.ready = ready
        self.backlog = backlog
        self.server: asyncio.Server | None = None
        self.url = ""

    async def start(self) -> None:
        try:
            import prometheus_client  # noqa: F401 - pier.metrics.render writes with it
        except ModuleNotFoundError:
            raise PierError(
                "--metrics-bind needs the prometheus_client library: pip install"
                " 'pier[metrics]' (or prometheus_client)"
            ) from None
        sock = open_address(parse_bind(self.address), backlog=self.backlog)
        self.url = describe(sock)
        self.server = await asyncio.start_server(self._handle, sock=sock, limit=HEAD_LIMIT)
        logger.info("Admin listener on %s: /metrics, /livez, /readyz", self.url)

    async def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            status, body, content_type = await self._answer(head)
            method = head.split(b" ", 1)[0]
            writer.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                b"cache-control: no-store\r\nconnection: close\r\n\r\n"
                % (status, _REASONS[status], content_type, len(body))
            )
            if method != b"HEAD":
                writer.write(body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, bytes, bytes]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return 400, b"bad request\n", b"text/plain"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return 405, b"only GET and HEAD\n", b"text/plain"
        if target == b"/metrics":
            return 200, await self.metrics(), CONTENT_TYPE
        if target in (b"/livez", b"/readyz"):
            healthy, why = (self.live if target == b"/livez" else self.ready)()
            return (200 if healthy else 503), (why + "\n").encode(), b"text/plain"
        return 404, b"not found: /metrics, /livez, /readyz\n", b"text/plain"


_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    503: b"Service Unavailable",
}
