"""Every bench app behind one route table, for the mixed-load soak (bench/growth.py).

/upload reads a request body whole, /stream sends 1 MiB in 64 KiB messages, a
WebSocket on any path echoes, anything else gets hello: the same apps the single
scenarios measure, so the soak exercises the same server paths at once.
"""

from __future__ import annotations

from typing import Any

from bench.apps import hello, stream, upload, websocket_echo
from bench.apps._lifespan import lifespan
from bench.apps._types import Receive, Send


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        await lifespan(scope, receive, send)
    elif kind == "websocket":
        await websocket_echo.app(scope, receive, send)
    elif scope["path"] == "/upload":
        await upload.app(scope, receive, send)
    elif scope["path"] == "/stream":
        await stream.app(scope, receive, send)
    else:
        await hello.app(scope, receive, send)
