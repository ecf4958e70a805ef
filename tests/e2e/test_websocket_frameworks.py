"""Starlette and FastAPI WebSocket routes on a real pier, driven by the websockets client.

Pins what these frameworks rely on from the ASGI WebSocket spec 2.4: websocket.connect
before accept (Starlette's accept() receives it), accept with subprotocol and headers,
text/bytes/JSON messages, close codes and reasons both ways, websocket.disconnect turning
into WebSocketDisconnect, close before accept as HTTP 403 (no route, WebSocketException
before accept), and the websocket.http.response extension behind Starlette's
send_denial_response().
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Query, WebSocketException, status
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.e2e.test_websocket import Outcomes
from tests.helpers import RunningServer, running_server

DEADLINE = 5.0
OUT = Outcomes()


# --- Starlette -----------------------------------------------------------------------------


async def starlette_chat(websocket: WebSocket) -> None:
    offered = websocket.scope["subprotocols"]
    await websocket.accept(subprotocol="chat.v2" if "chat.v2" in offered else None,
                           headers=[(b"x-room", b"lobby")])
    try:
        while True:
            data = await websocket.receive_json()
            if data.get("bytes"):
                await websocket.send_bytes(bytes.fromhex(data["bytes"]))
            else:
                await websocket.send_json({"echo": data, "path": websocket.url.path,
                                           "room": websocket.query_params.get("room")})
    except WebSocketDisconnect as exc:
        OUT.put("starlette-disconnect", (exc.code, exc.reason))


async def starlette_kick(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("you are kicked")
    await websocket.close(code=4003, reason="kicked")


async def starlette_deny(websocket: WebSocket) -> None:
    await websocket.send_denial_response(PlainTextResponse("members only", status_code=401))


async def starlette_crash(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.receive_text()
    raise ValueError("handler bug")


starlette_app = Starlette(routes=[
    WebSocketRoute("/chat", starlette_chat),
    WebSocketRoute("/kick", starlette_kick),
    WebSocketRoute("/deny", starlette_deny),
    WebSocketRoute("/crash", starlette_crash),
])


# --- FastAPI -------------------------------------------------------------------------------

fastapi_app = FastAPI()


async def token(websocket: FastAPIWebSocket, token: str | None = Query(default=None)) -> str:
    if token != "secret":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    return token


@fastapi_app.websocket("/items/{item_id}")
async def items(websocket: FastAPIWebSocket, item_id: int,
                token: str = Depends(token)) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"item {item_id}: {text}")
    OUT.put("fastapi-done", item_id)


@fastapi_app.websocket("/policy")
async def policy(websocket: FastAPIWebSocket) -> None:
    await websocket.accept()
    message = await websocket.receive_text()
    if message == "forbidden":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="not allowed")


@fastapi_app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@pytest.fixture(scope="module")
def starlette_server() -> Iterator[RunningServer]:
    with running_server(starlette_app) as server:
        yield server


@pytest.fixture(scope="module")
def fastapi_server() -> Iterator[RunningServer]:
    with running_server(fastapi_app) as server:
        yield server


def url(server: RunningServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


def ws(server: RunningServer, path: str, **kwargs: Any) -> Any:
    return connect(url(server, path), open_timeout=DEADLINE, close_timeout=DEADLINE, **kwargs)


def test_starlette_route_json_bytes_subprotocol_and_headers(
    starlette_server: RunningServer,
) -> None:
    with ws(starlette_server, "/chat?room=42", subprotocols=["chat.v1", "chat.v2"]) as client:
        assert client.subprotocol == "chat.v2"
        assert client.response.headers["x-room"] == "lobby"
        client.send('{"hello": "wörld"}')
        assert client.recv() == (
            '{"echo":{"hello":"wörld"},"path":"/chat","room":"42"}'
        )
        client.send('{"bytes": "00ff10"}')
        assert client.recv() == b"\x00\xff\x10"
        client.close(code=4100, reason="leaving")
    assert OUT.get("starlette-disconnect") == (4100, "leaving")


def test_starlette_server_close_code_and_reason(starlette_server: RunningServer) -> None:
    with ws(starlette_server, "/kick") as client:
        assert client.recv() == "you are kicked"
        with pytest.raises(ConnectionClosed):
            client.recv()
    assert (client.close_code, client.close_reason) == (4003, "kicked")


def test_starlette_unknown_websocket_route_is_403(starlette_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info, ws(starlette_server, "/nowhere"):
        pass
    assert info.value.response.status_code == 403


def test_starlette_denial_response(starlette_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info, ws(starlette_server, "/deny"):
        pass
    response = info.value.response
    assert response.status_code == 401
    assert response.body == b"members only"
    assert response.headers["content-type"].startswith("text/plain")


def test_starlette_handler_exception_closes_with_1011(starlette_server: RunningServer) -> None:
    with ws(starlette_server, "/crash") as client:
        client.send("go")
        with pytest.raises(ConnectionClosed):
            client.recv()
    assert client.close_code == 1011


def test_fastapi_path_query_and_dependency(fastapi_server: RunningServer) -> None:
    with ws(fastapi_server, "/items/7?token=secret") as client:
        client.send("hello")
        assert client.recv() == "item 7: hello"
    assert OUT.get("fastapi-done") == 7


def test_fastapi_dependency_refusal_before_accept_is_403(fastapi_server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info, ws(fastapi_server, "/items/7?token=wrong"):
        pass
    assert info.value.response.status_code == 403


def test_fastapi_websocket_exception_after_accept_closes_with_its_code(
    fastapi_server: RunningServer,
) -> None:
    with ws(fastapi_server, "/policy") as client:
        client.send("forbidden")
        with pytest.raises(ConnectionClosed):
            client.recv()
    assert (client.close_code, client.close_reason) == (1008, "not allowed")


def test_fastapi_http_routes_still_work_beside_websockets(
    fastapi_server: RunningServer,
) -> None:
    import httpx

    response = httpx.get(f"http://{fastapi_server.host}:{fastapi_server.port}/health")
    assert response.json() == {"status": "ok"}
