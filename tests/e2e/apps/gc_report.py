"""Answers with the cyclic collector's state in the serving process (test_collector.py)."""

from __future__ import annotations

import gc
import json
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps(
        {"threshold": gc.get_threshold()[0], "frozen": gc.get_freeze_count()}
    ).encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json")],
    })
    await send({"type": "http.response.body", "body": body})
