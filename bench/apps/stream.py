"""Streamed download: 1 MiB sent as 16 body messages of 64 KiB, no Content-Length.

Without a length the server must frame the body itself (chunked in HTTP/1.1), which is
the path a StreamingResponse takes.
"""

from __future__ import annotations

from typing import Any

from bench.apps._lifespan import lifespan
from bench.apps._types import Receive, Send

CHUNK_SIZE = 64 * 1024
CHUNKS = 16
TOTAL = CHUNK_SIZE * CHUNKS
CHUNK = b"x" * CHUNK_SIZE


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    for index in range(CHUNKS):
        await send({"type": "http.response.body", "body": CHUNK, "more_body": index < CHUNKS - 1})
