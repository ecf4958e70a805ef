"""Lifespan handling shared by the raw ASGI apps.

Rules: answer startup and shutdown and nothing else; servers that skip lifespan never
call this.
"""

from __future__ import annotations

from typing import Any

from bench.apps._types import Receive, Send


async def lifespan(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown so every server sees a lifespan-aware app."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
