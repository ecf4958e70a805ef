"""Real Starlette and FastAPI apps served by pier, driven by httpx.

Pins what a framework user relies on, end to end: ASGI HTTP spec (scope, streamed
request bodies, streamed responses) as Starlette and FastAPI consume it; ASGI lifespan
spec "state" (a lifespan that yields a mapping makes it available as request.state);
RFC 9110 section 15.5.5 (404 for an unknown route) and FastAPI's 422 for a bad
parameter; multipart/form-data uploads (RFC 7578) parsed by python-multipart; background
tasks run after the response has been delivered.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from tests.e2e._support import Gate
from tests.helpers import RunningServer, running_server

UPLOAD = os.urandom(2 * 1024 * 1024)


class Probe:
    """What the apps tell the test: background task progress."""

    def __init__(self) -> None:
        self.gate = Gate()
        self.background_done = threading.Event()
        self.background_args: list[str] = []


def starlette_app(probe: Probe) -> Any:
    from starlette.applications import Starlette
    from starlette.background import BackgroundTask
    from starlette.requests import Request
    from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello from lifespan"}

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("home")

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["item_id"],
                             "q": request.query_params.get("q")})

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"received": await request.json()})

    async def upload(request: Request) -> JSONResponse:
        async with request.form() as form:
            file = form["file"]
            assert not isinstance(file, str)
            content = await file.read()
            return JSONResponse({"filename": file.filename, "size": len(content),
                                 "sha256": hashlib.sha256(content).hexdigest(),
                                 "note": form["note"]})

    async def stream(request: Request) -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for index in range(5):
                await asyncio.sleep(0)
                yield f"piece {index}\n".encode()

        return StreamingResponse(pieces(), media_type="text/plain")

    async def later(value: str) -> None:
        await probe.gate.wait()
        probe.background_args.append(value)
        probe.background_done.set()

    async def background(request: Request) -> JSONResponse:
        return JSONResponse({"queued": True}, background=BackgroundTask(later, "starlette"))

    async def state(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.state.greeting)

    return Starlette(lifespan=lifespan, routes=[
        Route("/", home),
        Route("/items/{item_id:int}", item),
        Route("/echo", echo, methods=["POST"]),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/background", background, methods=["POST"]),
        Route("/state", state),
    ])


def fastapi_app(probe: Probe) -> Any:
    from tests.e2e.apps.fastapi_app import create

    async def later(value: str) -> None:
        await probe.gate.wait()
        probe.background_args.append(value)
        probe.background_done.set()

    return create(later)


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[tuple[RunningServer, Probe]]:
    probe = Probe()
    with running_server(starlette_app(probe), lifespan="on") as server:
        yield server, probe


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[tuple[RunningServer, Probe]]:
    probe = Probe()
    with running_server(fastapi_app(probe), lifespan="on") as server:
        yield server, probe


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


# --- Starlette ---------------------------------------------------------------------------


def test_starlette_routing_and_404(starlette_server: tuple[RunningServer, Probe]) -> None:
    with _client(starlette_server[0]) as client:
        assert client.get("/").text == "home"
        response = client.get("/items/42", params={"q": "caf\u00e9"})
        assert response.json() == {"id": 42, "q": "caf\u00e9"}
        assert client.get("/items/not-a-number").status_code == 404
        assert client.get("/nowhere").status_code == 404


def test_starlette_json_round_trip(starlette_server: tuple[RunningServer, Probe]) -> None:
    payload = {"list": [1, 2, 3], "nested": {"unicode": "\u00fc\u00f1\u00ee"}}
    with _client(starlette_server[0]) as client:
        assert client.post("/echo", json=payload).json() == {"received": payload}


def test_starlette_form_upload(starlette_server: tuple[RunningServer, Probe]) -> None:
    with _client(starlette_server[0]) as client:
        response = client.post("/upload", files={"file": ("data.bin", UPLOAD)},
                               data={"note": "quarterly"})
    assert response.json() == {"filename": "data.bin", "size": len(UPLOAD),
                               "sha256": hashlib.sha256(UPLOAD).hexdigest(),
                               "note": "quarterly"}


def test_starlette_streaming_response(starlette_server: tuple[RunningServer, Probe]) -> None:
    with _client(starlette_server[0]) as client, client.stream("GET", "/stream") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        text = "".join(response.iter_text())
    assert text == "".join(f"piece {i}\n" for i in range(5))


def test_starlette_background_task_runs_after_the_response(
        starlette_server: tuple[RunningServer, Probe]) -> None:
    server, probe = starlette_server
    with _client(server) as client:
        try:
            # The task is still waiting on the gate: the response must not wait for it.
            assert client.post("/background").json() == {"queued": True}
            assert not probe.background_done.is_set()
        finally:
            probe.gate.open()
        assert probe.background_done.wait(5)
        assert probe.background_args == ["starlette"]
        assert client.get("/").text == "home"


def test_starlette_lifespan_state_on_request(
        starlette_server: tuple[RunningServer, Probe]) -> None:
    with _client(starlette_server[0]) as client:
        assert client.get("/state").text == "hello from lifespan"


# --- FastAPI -----------------------------------------------------------------------------


def test_fastapi_path_and_query_validation(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client:
        assert client.get("/users/7", params={"verbose": "true"}).json() == {
            "user_id": 7, "verbose": True,
        }
        invalid = client.get("/users/seven")
        assert invalid.status_code == 422
        assert invalid.json()["detail"][0]["loc"] == ["path", "user_id"]


def test_fastapi_json_body_model(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client:
        created = client.post("/items", json={"name": "lamp", "price": 10})
        assert created.json() == {"name": "lamp", "price_with_tax": 12.0}
        assert client.post("/items", json={"name": "lamp"}).status_code == 422
        assert client.post("/items", content=b"{not json",
                           headers={"content-type": "application/json"}).status_code == 422


def test_fastapi_upload_file(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client:
        response = client.post("/upload", files={"file": ("report.csv", UPLOAD, "text/csv")},
                               data={"note": "q3"})
    assert response.json() == {"filename": "report.csv", "size": len(UPLOAD),
                               "sha256": hashlib.sha256(UPLOAD).hexdigest(), "note": "q3"}


def test_fastapi_streaming_response(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client, client.stream("GET", "/stream") as response:
        lines = list(response.iter_lines())
    assert lines == [f"piece {i}" for i in range(5)]


def test_fastapi_background_task_runs_after_the_response(
        fastapi_server: tuple[RunningServer, Probe]) -> None:
    server, probe = fastapi_server
    with _client(server) as client:
        try:
            assert client.post("/background").json() == {"queued": True}
            assert not probe.background_done.is_set()
        finally:
            probe.gate.open()
        assert probe.background_done.wait(5)
        assert probe.background_args == ["fastapi"]


def test_fastapi_lifespan_state_on_request(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client:
        assert client.get("/state").json() == "hello from fastapi lifespan"


def test_fastapi_openapi_and_docs(fastapi_server: tuple[RunningServer, Probe]) -> None:
    with _client(fastapi_server[0]) as client:
        schema = client.get("/openapi.json").json()
        assert "/users/{user_id}" in schema["paths"]
        assert client.get("/docs").status_code == 200
