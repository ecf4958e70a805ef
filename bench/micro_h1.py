"""pier's own per-request CPU cost on the HTTP/1.1 path, with no sockets and no load tool.

    python bench/micro_h1.py [--requests N] [--rounds R] [--loop uvloop|asyncio]

A real H1Connection on a real event loop is fed keep-alive requests through a
transport stand-in that only counts what it is asked to write; the app is the hello
app. It reports the minimum over rounds of process CPU time per request: the number
that tells whether a change to the hot path made pier cheaper, unaffected by what
else the machine is doing. It is no substitute for bench/run (syscalls, the kernel and
the client are absent here) and it is not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from pier.io.connection import H1Connection
from pier.io.context import ServerContext
from pier.io.server import loop_factory
from pier.proto.limits import Limits

REQUEST = (
    b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
)
CLOSE_REQUEST = REQUEST[:-2] + b"Connection: close\r\n\r\n"
BODY = b"Hello, world!"


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


class CountingTransport:
    def __init__(self) -> None:
        self.writes = 0
        self.closed = False
        self.written: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        self.writes += 1
        if self.written is not None:
            self.written.set_result(None)
            self.written = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def hello_context(loop: asyncio.AbstractEventLoop) -> ServerContext:
    ctx = ServerContext(app=hello, loop=loop, limits=Limits())
    ctx.default_headers = b"date: Fri, 20 Nov 2026 00:00:00 GMT\r\nserver: pier\r\n"
    return ctx


async def run_round(requests: int) -> float:
    loop = asyncio.get_running_loop()
    ctx = hello_context(loop)
    connection = H1Connection(ctx)
    transport = CountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    started = time.process_time()
    for expected in range(1, requests + 1):
        connection.data_received(REQUEST)
        if transport.writes < expected:
            transport.written = loop.create_future()
            await transport.written
    return (time.process_time() - started) / requests


async def metrics_round(requests: int) -> float:
    """run_round with --metrics-bind's counting on (issue 12: pier.metrics, io/metered.py)."""
    from pier.io.metered import MeteredH1Connection
    from pier.metrics import Recorder

    loop = asyncio.get_running_loop()
    ctx = hello_context(loop)
    ctx.metrics = ctx.access_log = Recorder()
    connection = MeteredH1Connection(ctx)
    transport = CountingTransport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    started = time.process_time()
    for expected in range(1, requests + 1):
        connection.data_received(REQUEST)
        if transport.writes < expected:
            transport.written = loop.create_future()
            await transport.written
    return (time.process_time() - started) / requests


async def new_connection_round(requests: int) -> float:
    """A connection per request: protocol set-up, one Connection: close request, teardown."""
    loop = asyncio.get_running_loop()
    ctx = hello_context(loop)
    started = time.process_time()
    for _ in range(requests):
        connection = H1Connection(ctx)
        transport = CountingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        connection.data_received(CLOSE_REQUEST)
        if not transport.writes:
            transport.written = loop.create_future()
            await transport.written
        connection.connection_lost(None)
    return (time.process_time() - started) / requests


async def bare_round(requests: int) -> float:
    """The floor: a Task per request running the same app with trivial receive/send."""
    loop = asyncio.get_running_loop()
    scope: dict[str, Any] = {"type": "http"}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    started = time.process_time()
    for _ in range(requests):
        await loop.create_task(hello(scope, receive, send))
    return (time.process_time() - started) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument(
        "--only",
        choices=("pier", "metrics", "newconn", "bare"),
        help="run one side once (for instruction counts under valgrind: see bench/instructions)",
    )
    args = parser.parse_args()
    if args.only:
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            rounds = {
                "pier": run_round,
                "metrics": metrics_round,
                "newconn": new_connection_round,
                "bare": bare_round,
            }
            runner.run(rounds[args.only](args.requests))
        return
    best = floor = float("inf")
    for _ in range(args.rounds):
        with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
            best = min(best, runner.run(run_round(args.requests)))
            floor = min(floor, runner.run(bare_round(args.requests)))
    print(
        f"pier {best * 1e6:.2f} us, bare ASGI call {floor * 1e6:.2f} us CPU per request:"
        f" pier costs {best / floor:.2f}x the bare call"
        f" (min of {args.rounds} rounds, {args.loop})"
    )


if __name__ == "__main__":
    main()
