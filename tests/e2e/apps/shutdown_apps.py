"""Slow and never-ending requests, for graceful-shutdown tests.

GET /slow?seconds=S answers after S seconds (the time the "work" takes) with a body of
100 000 bytes; GET /forever never answers; anything else answers at once. Markers on
stdout tell the test when a request is inside the app and when lifespan shutdown ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

SLOW_BODY = b"s" * 100_000


async def _send(send: Any, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _clean_up)
        return
    path = scope["path"]
    if path == "/slow":
        query = dict(pair.split("=") for pair in scope["query_string"].decode().split("&"))
        print("MARK slow started", flush=True)
        await asyncio.sleep(float(query["seconds"]))
        await _send(send, SLOW_BODY)
        print("MARK slow answered", flush=True)
    elif path == "/forever":
        print("MARK forever started", flush=True)
        await asyncio.Event().wait()
    else:
        await _send(send, b"quick")


async def hangs_on_shutdown(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app whose lifespan clean-up never ends (a stuck flush, a lost lock)."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, _hung_clean_up)
    else:
        await _send(send, b"quick")


async def _lifespan(receive: Any, send: Any, clean_up: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await clean_up()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _clean_up() -> None:
    print("MARK lifespan shutdown", flush=True)


async def _hung_clean_up() -> None:
    print("MARK lifespan shutdown hangs", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        print("MARK lifespan cancelled", flush=True)
        raise
