"""The scenarios: which app, which load, and the sanity check run before any load.

Rules: a scenario is data (app, path, load kind, connections) plus a check that proves
the server answers it correctly; no timing happens here. A server that fails a check
is reported with the reason and never measured, so a broken response can never look
like a fast one. A server that answers a WebSocket upgrade without upgrading is
"unsupported", not "failed".
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bench.apps._document import DOCUMENT
from bench.apps.fastapi_body import SAMPLE_BODY
from bench.apps.hello import BODY as HELLO_BODY
from bench.apps.stream import TOTAL as STREAM_TOTAL
from bench.loadgen import (
    HOST,
    ProtocolFailure,
    WebSocketRefused,
    http_request,
    response_length,
    ws_check_handshake,
    ws_client_frame,
    ws_handshake_request,
    ws_server_frame,
)

UPLOAD_SIZE = 1024 * 1024
Kind = Literal["wrk", "websocket", "idle", "latency"]


class CheckFailed(Exception):
    """The server's answer is wrong for this scenario; it is not measured."""


class Unsupported(Exception):
    """The server lacks what the scenario needs (e.g. WebSocket); it is skipped."""


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    measures: str
    app: str
    kind: Kind
    check: Callable[[int], None]
    path: str = "/"
    lua: str | None = None
    wrk_headers: tuple[str, ...] = ()
    connections: int = 64
    unit: str = "req/s"
    access_log: bool = False
    # "wsgi": the app is a PEP 3333 app, served through each server's WSGI support.
    interface: str = "asgi"


def _exchange(
    port: int, request: bytes, *, deadline: float = 20.0
) -> tuple[bytes, bytes, socket.socket]:
    """Send `request` on a new connection; return (head, body, socket) of the answer.

    Retries refused or reset connections until `deadline`: some servers (gunicorn,
    granian) listen from their master process before the worker can answer.
    """
    give_up = time.monotonic() + deadline
    while True:
        try:
            sock = socket.create_connection((HOST, port), timeout=10)
            sock.sendall(request)
            head, body = read_response(sock)
            return head, body, sock
        except (ConnectionRefusedError, ConnectionResetError, BrokenPipeError):
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)  # backoff between attempts, not synchronisation


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(head, body) of one response read from `sock`: Content-Length or chunked framing."""
    buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed before the response head")
        buffer += data
    end = buffer.index(b"\r\n\r\n")
    head = bytes(buffer[:end])
    rest = buffer[end + 4 :]
    if b"\r\ntransfer-encoding: chunked" in head.lower():
        return head, _dechunk(sock, rest)
    parsed = response_length(buffer)
    while parsed is None:
        data = sock.recv(65536)
        if not data:
            raise CheckFailed("closed before the response body ended")
        buffer += data
        parsed = response_length(buffer)
    return head, bytes(buffer[end + 4 : parsed[1]])


def _dechunk(sock: socket.socket, buffer: bytearray) -> bytes:
    body = bytearray()
    while True:
        while b"\r\n" not in buffer:
            buffer += _recv(sock)
        line_end = buffer.index(b"\r\n")
        size = int(bytes(buffer[:line_end]).split(b";")[0], 16)
        del buffer[: line_end + 2]
        while len(buffer) < size + 2:
            buffer += _recv(sock)
        body += buffer[:size]
        del buffer[: size + 2]
        if size == 0:
            return bytes(body)


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise CheckFailed("closed in the middle of a chunked body")
    return data


def _status(head: bytes) -> int:
    return int(head[9:12])


def _expect(port: int, request: bytes, *, status: int, body: bytes | None = None) -> bytes:
    head, received, sock = _exchange(port, request)
    sock.close()
    if _status(head) != status:
        status_line = head.split(b"\r\n")[0]
        raise CheckFailed(f"expected status {status}, got {status_line!r}")
    if body is not None and received != body:
        raise CheckFailed(f"expected body {body[:60]!r}, got {received[:60]!r}")
    return received


def check_hello(port: int) -> None:
    _expect(port, http_request("GET", "/", port), status=200, body=HELLO_BODY)


def check_new_connection(port: int) -> None:
    request = http_request("GET", "/", port, headers={"Connection": "close"})
    head, body, sock = _exchange(port, request)
    try:
        if _status(head) != 200 or body != HELLO_BODY:
            raise CheckFailed(f"wrong answer to a Connection: close request: {head[:40]!r}")
        sock.settimeout(5)
        if sock.recv(1) != b"":
            raise CheckFailed("server did not close the connection after Connection: close")
    finally:
        sock.close()


def check_json(port: int) -> None:
    received = _expect(port, http_request("GET", "/json", port), status=200)
    if json.loads(received) != DOCUMENT:
        raise CheckFailed(f"unexpected JSON {received[:80]!r}")


def check_fastapi(port: int) -> None:
    request = http_request(
        "POST", "/items", port, headers={"Content-Type": "application/json"}, body=SAMPLE_BODY
    )
    received = _expect(port, request, status=200)
    answer = json.loads(received)
    if answer.get("name") != "widget" or answer.get("tag_count") != 2:
        raise CheckFailed(f"unexpected FastAPI answer {received[:80]!r}")


def check_upload(port: int) -> None:
    request = http_request("POST", "/", port, body=b"a" * UPLOAD_SIZE)
    _expect(port, request, status=200, body=str(UPLOAD_SIZE).encode())


def check_stream(port: int) -> None:
    received = _expect(port, http_request("GET", "/", port), status=200)
    if len(received) != STREAM_TOTAL:
        raise CheckFailed(f"streamed body of {len(received)} bytes, expected {STREAM_TOTAL}")


def check_websocket(port: int) -> None:
    key = base64.b64encode(os.urandom(16))
    give_up = time.monotonic() + 20
    while True:
        try:
            sock = socket.create_connection((HOST, port), timeout=10)
            break
        except ConnectionRefusedError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.05)  # backoff between attempts, not synchronisation
    try:
        sock.sendall(ws_handshake_request("/", port, key))
        buffer = bytearray()
        while b"\r\n\r\n" not in buffer:
            data = sock.recv(65536)
            if not data:
                raise Unsupported("closed the connection on a WebSocket upgrade request")
            buffer += data
        end = buffer.index(b"\r\n\r\n")
        try:
            ws_check_handshake(bytes(buffer[:end]), key)
        except WebSocketRefused as exc:
            raise Unsupported(f"answered the WebSocket upgrade with {exc}") from exc
        except ProtocolFailure as exc:
            raise CheckFailed(str(exc)) from exc
        del buffer[: end + 4]
        sock.sendall(ws_client_frame(b"ping-pong"))
        expected = ws_server_frame(b"ping-pong")
        while len(buffer) < len(expected):
            data = sock.recv(65536)
            if not data:
                raise CheckFailed("closed the WebSocket instead of echoing")
            buffer += data
        if bytes(buffer[: len(expected)]) != expected:
            raise CheckFailed(f"echo frame {bytes(buffer[:20])!r}, expected {expected!r}")
        sock.sendall(ws_client_frame(b"\x03\xe8", opcode=0x8))
    finally:
        sock.close()


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="hello",
        title="Plain-text hello, keep-alive",
        measures="the server's own per-request cost: a 13-byte response from a raw ASGI app, "
        "64 keep-alive connections",
        app="bench.apps.hello:app",
        kind="wrk",
        check=check_hello,
    ),
    Scenario(
        key="hello_access_log",
        title="Plain-text hello with the access log on",
        measures="hello as above with every server writing its default access-log line "
        "per request to stdout (a file), at log level info where the server needs it",
        app="bench.apps.hello:app",
        kind="wrk",
        check=check_hello,
        access_log=True,
    ),
    Scenario(
        key="starlette_json",
        title="Starlette JSON route",
        measures="a Starlette route returning a small JSONResponse (routing, framework "
        "request/response objects)",
        app="bench.apps.starlette_json:app",
        kind="wrk",
        path="/json",
        check=check_json,
    ),
    Scenario(
        key="fastapi_body",
        title="FastAPI route with a pydantic body",
        measures="POST of a 120-byte JSON body validated into a pydantic model, answered "
        "with a model (body delivery plus FastAPI)",
        app="bench.apps.fastapi_body:app",
        kind="wrk",
        path="/items",
        lua="fastapi_post.lua",
        check=check_fastapi,
    ),
    Scenario(
        key="upload",
        title="1 MiB upload",
        measures="POST of a 1 MiB body read to the end by a raw ASGI app (body delivery "
        "and flow control)",
        app="bench.apps.upload:app",
        kind="wrk",
        lua="upload.lua",
        check=check_upload,
    ),
    Scenario(
        key="stream",
        title="1 MiB response streamed in 64 KiB chunks",
        measures="16 body messages of 64 KiB without Content-Length (chunked framing, "
        "write back-pressure)",
        app="bench.apps.stream:app",
        kind="wrk",
        check=check_stream,
    ),
    Scenario(
        key="wsgi_hello",
        title="WSGI plain-text hello, keep-alive",
        measures="hello as a WSGI app (PEP 3333): the server's WSGI path, threads and "
        "bridge included; 10 app threads where the server takes a count",
        app="bench.apps.wsgi_hello:app",
        kind="wrk",
        check=check_hello,
        interface="wsgi",
    ),
    Scenario(
        key="flask_json",
        title="Flask JSON route (WSGI)",
        measures="a Flask route returning the starlette_json document (Werkzeug request "
        "and response objects over WSGI)",
        app="bench.apps.flask_json:app",
        kind="wrk",
        path="/json",
        check=check_json,
        interface="wsgi",
    ),
    Scenario(
        key="new_connection",
        title="New connection per request",
        measures="hello with `Connection: close`: accept, one request, close, 64 clients",
        app="bench.apps.hello:app",
        kind="wrk",
        wrk_headers=("Connection: close",),
        check=check_new_connection,
    ),
    Scenario(
        key="websocket_echo",
        title="WebSocket echo of small messages",
        measures="32-byte text messages echoed by a raw ASGI app, 64 connections, one "
        "message in flight per connection (bench/loadgen.py ws)",
        app="bench.apps.websocket_echo:app",
        kind="websocket",
        unit="msg/s",
        check=check_websocket,
    ),
    Scenario(
        key="idle_10k",
        title="Memory holding 10,000 idle keep-alive connections",
        measures="server RSS (whole process tree) after 10,000 connections each made one "
        "request and went idle (bench/loadgen.py idle); keep-alive timeout raised to "
        "120 s where the server has one",
        app="bench.apps.hello:app",
        kind="idle",
        unit="MiB",
        check=check_hello,
    ),
    Scenario(
        key="latency",
        title="Latency at a fixed moderate rate",
        measures="hello at a fixed 2,000 req/s over 16 keep-alive connections, open loop "
        "(bench/loadgen.py latency); latency counted from when each request was due",
        app="bench.apps.hello:app",
        kind="latency",
        connections=16,
        unit="us",
        check=check_hello,
    ),
)


def by_key() -> dict[str, Scenario]:
    return {scenario.key: scenario for scenario in SCENARIOS}
