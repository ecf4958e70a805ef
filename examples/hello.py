"""pier's bundled example: a plain ASGI3 app with lifespan, no framework needed.

    pier --app-dir examples hello:app

Routes: GET / (greeting), GET /stream (a streamed, chunked response),
POST /echo (sends the request body back), GET /state (lifespan state).
"""

from __future__ import annotations

import time
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "http":
        await http(scope, receive, send)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            scope["state"]["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path, method = scope["path"], scope["method"]
    if path == "/echo" and method == "POST":
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
        await reply(send, 200, body, b"application/octet-stream")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        for number in range(1, 6):
            await send({"type": "http.response.body", "body": b"line %d\n" % number,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/state":
        started = scope["state"].get("started_at", 0.0)
        await reply(send, 200, b"up for %.1f s\n" % (time.time() - started))
    elif path == "/":
        await reply(send, 200, b"Hello from pier!\n")
    else:
        await reply(send, 404, b"Not found\n")


async def reply(send: Any, status: int, body: bytes,
                content_type: bytes = b"text/plain; charset=utf-8") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})
