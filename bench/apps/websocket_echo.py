"""WebSocket echo: every text or binary message is sent straight back.

Plain HTTP requests get a short 426 so a sanity check can tell "no WebSocket support"
(the server answers the upgrade request as plain HTTP) from "echo broken".
"""

from __future__ import annotations

from typing import Any

from bench.apps._lifespan import lifespan
from bench.apps._types import Receive, Send


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] == "http":
        body = b"WebSocket only\n"
        await send(
            {
                "type": "http.response.start",
                "status": 426,
                "headers": [
                    (b"content-length", str(len(body)).encode()),
                    (b"upgrade", b"websocket"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
