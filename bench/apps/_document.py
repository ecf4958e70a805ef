"""The small JSON document the framework JSON routes answer (Starlette and Flask alike)."""

from __future__ import annotations

from typing import Any

DOCUMENT: dict[str, Any] = {
    "message": "Hello, world!",
    "id": 12345,
    "tags": ["asgi", "benchmark", "json"],
    "ok": True,
}
