"""Streams 100 MB in 64 KiB pieces, however slowly the client reads
(test_flow_control_versions.py)."""

from __future__ import annotations

from typing import Any

TOTAL = 100 * 1024 * 1024
PIECE_SIZE = 65536


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", str(TOTAL).encode())],
    })
    for _ in range(TOTAL // PIECE_SIZE):
        # A new object each time, as an app's data is: one object sent 1,600 times
        # would cost the server no memory however much it buffered.
        piece = b"d" * PIECE_SIZE
        await send({"type": "http.response.body", "body": piece, "more_body": True})
    await send({"type": "http.response.body", "body": b""})
