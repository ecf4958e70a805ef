"""Plain-text hello: the smallest complete response, so the server's own cost dominates.

Used by the hello, new-connection, fixed-rate latency and idle-connection scenarios.
"""

from __future__ import annotations

from typing import Any

from bench.apps._lifespan import lifespan
from bench.apps._types import Receive, Send

BODY = b"Hello, world!"
HEADERS = [
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"content-length", str(len(BODY)).encode()),
]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
