"""ASGI apps the process-level tests serve (imported by worker processes by name).

    app              answers every request with the worker's pid; GET /block blocks
                     the event loop (a hung worker), GET /slow?s=N answers after N s
                     and logs "slow request started" when it begins, GET /grow?mb=N
                     keeps N MiB more resident (a leak), GET /events streams one
                     event and ends when the client disconnects (SSE)
    gated_startup    app, whose lifespan start-up waits for the test's go-ahead
    failing_startup  answers lifespan startup with lifespan.startup.failed
    marker_app       fails to import while the file named in $APPS_FAIL_IF_EXISTS exists
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

from pier.types import Receive, Scope, Send


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, body: bytes, status: int = 200) -> None:
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
    })
    await send({"type": "http.response.body", "body": body})


_hoard: list[bytes] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"][len(scope["root_path"]) :]  # the path below --root-path
    if path == "/block":
        # The fault under test: a handler that never yields to its event loop.
        threading.Event().wait()
    if path == "/slow":
        seconds = float(scope["query_string"].decode().partition("=")[2] or "1")
        print("slow request started", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        await _respond(send, b"slow done")
        return
    if path == "/events":
        # Server-sent events until the client goes: the shape of a stream that only
        # ends on http.disconnect.
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"data: hello\n\n",
                    "more_body": True})
        message = await receive()  # the (empty) request body
        while message["type"] == "http.request":
            message = await receive()
        print(f"events saw {message['type']}", file=sys.stderr, flush=True)
        return
    if path == "/grow":
        # Holds N MiB (written, so resident) until the process ends: a leak.
        mib = int(scope["query_string"].decode().partition("=")[2] or "1")
        _hoard.append(b"\x01" * (mib * 1024 * 1024))
        await _respond(send, b"grown")
        return
    if path == "/scope":
        shown: dict[str, Any] = {
            key: scope[key]
            for key in ("scheme", "client", "root_path", "path", "http_version")
        }
        await _respond(send, repr(shown).encode())
        return
    await _respond(send, str(os.getpid()).encode())


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _respond(send, b"never")


async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
    """An app without lifespan support, as many hand-written apps are."""
    if scope["type"] != "http":
        raise ValueError("this app only does http")
    await _respond(send, str(os.getpid()).encode())


if os.environ.get("APPS_FAIL_IF_EXISTS") and os.path.exists(os.environ["APPS_FAIL_IF_EXISTS"]):
    raise RuntimeError("marker file present: this deploy is broken")

marker_app = app


async def gated_startup(scope: Scope, receive: Receive, send: Send) -> None:
    """`app`, whose lifespan start-up completes only when the test says so: it connects
    to the Unix socket $APPS_START_GATE and waits for one byte from it."""
    if scope["type"] != "lifespan":
        await app(scope, receive, send)
        return
    await receive()
    reader, writer = await asyncio.open_unix_connection(os.environ["APPS_START_GATE"])
    await reader.read(1)
    writer.close()
    await send({"type": "lifespan.startup.complete"})
    await _lifespan(receive, send)
