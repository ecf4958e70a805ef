"""Upload sink: read the whole request body and answer its length.

The app only counts (it does not join the chunks), so what is measured is how the
server delivers a large body, not how the app buffers it.
"""

from __future__ import annotations

from typing import Any

from bench.apps._lifespan import lifespan
from bench.apps._types import Receive, Send


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    received = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        received += len(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = str(received).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/plain"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
