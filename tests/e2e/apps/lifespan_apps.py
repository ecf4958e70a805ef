"""Apps with particular lifespan behaviour, for start-up and shutdown tests."""

from __future__ import annotations

from typing import Any

STARTUP_FAILURE = "database unreachable at db:5432; set DATABASE_URL to a running server"


async def _answer(scope: dict[str, Any], send: Any) -> None:
    body = repr(sorted(scope.get("state", {}))).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reports lifespan.startup.failed with a message the user must see."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": STARTUP_FAILURE})
        return
    await _answer(scope, send)


async def raising_on_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app without lifespan support, as many are: it raises on any other scope type."""
    if scope["type"] != "http":
        raise ValueError(f"unsupported scope type {scope['type']!r} (this app only does http)")
    await _answer(scope, send)


async def raising_in_startup(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Supports lifespan, but its startup code crashes."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("cache warm-up crashed: redis refused the connection")
    await _answer(scope, send)


async def printing(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Prints STARTUP/SHUTDOWN markers so a test can see the lifespan order."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["ready"] = True
                print("MARK lifespan startup", flush=True)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                print("MARK lifespan shutdown", flush=True)
                await send({"type": "lifespan.shutdown.complete"})
                return
    await _answer(scope, send)
