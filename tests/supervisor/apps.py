"""ASGI apps the process-level tests serve (imported by worker processes by name).

    app              answers every request with the worker's pid; GET /block blocks
                     the event loop (a hung worker), GET /slow?s=N answers after N s
                     and logs "slow request started" when it begins
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
