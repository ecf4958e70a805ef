"""pier's own per-message cost of WebSocket echo, with no sockets and no load tool.

    python -m bench.micro_ws [--messages N] [--loop uvloop|asyncio]

A real WSProtocol (io/websocket.py) with its WebSocketSession and the bench's echo app
(bench/apps/websocket_echo.py) on a real event loop, fed 32-byte masked text frames one
at a time through a transport stand-in that only keeps what it is asked to write; each
echo is checked. `bench/instructions ws` counts it under callgrind (N and 3N messages):
the glue's share of the whole-server `ws` count of bench.server_instructions, without
uvloop's socket side. Not a test, and not a comparison with other servers.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bench.apps.websocket_echo import app
from bench.loadgen import ws_client_frame, ws_server_frame
from pier.asgi.scope import ConnectionInfo
from pier.io.context import ServerContext
from pier.io.server import loop_factory
from pier.io.websocket import WSProtocol, WSSettings
from pier.proto.events import Request
from pier.proto.limits import Limits
from pier.proto.ws import ServerHandshake

MESSAGE = b"m" * 32
FRAME = ws_client_frame(MESSAGE)
ECHO = ws_server_frame(MESSAGE)
UPGRADE = Request(
    "GET", b"/", b"",
    [(b"host", b"127.0.0.1"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
     (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="), (b"sec-websocket-version", b"13")],
    "1.1", True, False, b"websocket", None, False, False,
)


class EchoTransport:
    """Keeps the last write and wakes whoever waits for it."""

    def __init__(self) -> None:
        self.last = b""
        self.written: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.last = data
        if self.written is not None:
            self.written.set_result(None)
            self.written = None

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


class Answer:
    """The handshake's answers (io/websocket.py HandshakeAnswer), writing nothing."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.accepted: asyncio.Future[None] = loop.create_future()

    def accept(self, handshake: ServerHandshake, fields: list[tuple[bytes, bytes]]) -> int:
        self.accepted.set_result(None)
        return 101

    def deny_head(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        pass

    def deny_body(self, body: bytes, more_body: bool) -> None:
        pass

    def refuse(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> int:
        return 0


async def echo_round(messages: int) -> None:
    loop = asyncio.get_running_loop()
    ctx = ServerContext(app=app, loop=loop, limits=Limits())
    info = ConnectionInfo(("127.0.0.1", 40000), ("127.0.0.1", 8000), "http", "", b"")
    answer = Answer(loop)
    connection = WSProtocol(ctx, WSSettings(), request=UPGRADE, info=info, answer=answer)
    transport = EchoTransport()
    connection.take_over(transport, b"")  # type: ignore[arg-type]
    await answer.accepted
    for _ in range(messages):
        transport.written = loop.create_future()
        connection.data_received(FRAME)
        await transport.written
        if transport.last != ECHO:
            raise SystemExit(f"unexpected echo {transport.last!r}")
    connection.connection_lost(None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--loop", default="uvloop")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(echo_round(args.messages))


if __name__ == "__main__":
    main()
