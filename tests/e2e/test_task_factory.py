"""A task factory the app sets on the loop makes its request Tasks (io/tasks.py).

What a user would notice: an error tracker's or tracer's asyncio integration that sets
the loop's task factory during lifespan startup (as Sentry's AsyncioIntegration does)
sees every request and WebSocket session, over HTTP/1.1 and HTTP/2, on uvloop and on
asyncio's own loop, as under uvicorn. Without a factory, pier makes the Tasks itself.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Coroutine
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from pier.types import Receive, Scope, Send
from tests.helpers import running_server


class FactoryApp:
    """Sets a task factory in lifespan startup (when `install`) and answers each
    request or WebSocket message with whether the Task running it is the factory's."""

    def __init__(self, *, install: bool) -> None:
        self.install = install
        self.made: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()

    def factory(
        self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any], **kwargs: Any
    ) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        self.made.add(task)
        return task

    def answer(self) -> str:
        return "factory" if asyncio.current_task() in self.made else "plain"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.install:
                        asyncio.get_running_loop().set_task_factory(self.factory)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "http":
            body = self.answer().encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        else:
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await receive()
            await send({"type": "websocket.send", "text": self.answer()})
            await send({"type": "websocket.close", "code": 1000})


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_factory_set_in_lifespan_startup_makes_every_app_task(loop: str) -> None:
    app = FactoryApp(install=True)
    with running_server(app, loop=loop) as server:
        assert httpx.get(server.url, timeout=5).text == "factory"
        with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=5) as client:
            response = client.get("/")
            assert response.http_version == "HTTP/2"
            assert response.text == "factory"
        with connect(server.url.replace("http", "ws"), open_timeout=5) as ws:
            ws.send("which task?")
            assert ws.recv(timeout=5) == "factory"


def test_a_factory_and_reset_contextvars_go_together() -> None:
    app = FactoryApp(install=True)
    with running_server(app, reset_contextvars=True) as server:
        assert httpx.get(server.url, timeout=5).text == "factory"


def test_without_a_factory_pier_makes_the_tasks() -> None:
    app = FactoryApp(install=False)
    with running_server(app) as server:
        assert httpx.get(server.url, timeout=5).text == "plain"
