"""WebSocket end to end: a real pier, the `websockets` client library and raw sockets.

Pins the ASGI WebSocket spec 2.4 (the scope's keys, websocket.connect / accept /
receive / send / close / disconnect in order, subprotocol choice, accept headers, the
websocket.http.response denial extension, close before accept -> 403, send() after the
peer left raises OSError), RFC 6455 section 4 (handshake: 101 + Sec-WebSocket-Accept,
400/426 for invalid requests, 426 with Sec-WebSocket-Version for other versions),
5.5.2-5.5.3 (pongs echo pings), 5.1/5.2/5.5 and 7.4 (invalid frames close with 1002,
1007 or 1009), 7.1 (closing handshake both ways, the server closes TCP first), and
RFC 7692 (permessage-deflate negotiated). Also pier's own promises: keepalive pings
with a timeout, --ws-max-size, bounded queues both ways, --timeout-ws-handshake,
graceful shutdown with 1001, --ws none, access log lines, proxy headers and root_path.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import select
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    InvalidStatus,
)
from websockets.sync.client import ClientConnection, connect

from pier.io.connection import WRITE_HIGH_WATER
from pier.io.websocket import WSProtocol
from pier.types import Receive, Scope, Send
from tests.e2e._support import Gate, capture_logs, serve_lifespan, wait_until
from tests.helpers import RunningServer, running_server

DEADLINE = 5.0


class Outcomes:
    """What the app saw, handed from the server thread to the test (thread-safe)."""

    def __init__(self) -> None:
        self._values: dict[str, Any] = {}
        self._cond = threading.Condition()

    def put(self, key: str, value: Any) -> None:
        with self._cond:
            self._values[key] = value
            self._cond.notify_all()

    def get(self, key: str, timeout: float = DEADLINE) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._values, timeout):
                raise AssertionError(f"the app never reported {key!r}")
            return self._values[key]


OUT = Outcomes()


def _key(scope: Scope) -> str:
    return scope["query_string"].decode() or "default"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await serve_lifespan(receive, send)
        return
    path = scope["path"].removeprefix(scope["root_path"])
    if scope["type"] == "http":
        OUT.put("http:" + _key(scope), scope)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    handler = ROUTES[path]
    await handler(scope, receive, send)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            OUT.put("echo:" + _key(scope), message)
            return
        await send({"type": "websocket.send", "text": message.get("text"),
                    "bytes": message.get("bytes")})


async def scope_dump(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    OUT.put("scope:" + _key(scope), scope)
    await send({"type": "websocket.send", "text": "ok"})
    await receive()


async def subprotocol(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    offered = scope["subprotocols"]
    await send({"type": "websocket.accept", "subprotocol": offered[-1] if offered else None,
                "headers": [(b"x-pier", b"yes"), (b"set-cookie", b"a=1")]})
    await send({"type": "websocket.send", "text": json.dumps(offered)})
    await receive()


async def deny(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 401,
                "headers": [(b"www-authenticate", b"Bearer"), (b"content-type", b"text/plain")]})
    await send({"type": "websocket.http.response.body", "body": b"token ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"expired"})


async def bad_denial(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.http.response.start", "status": 400,
                "headers": [(b"bad name", b"x")]})
    await send({"type": "websocket.http.response.body", "body": b"never sent"})


async def forbid(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def server_close(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})
    await send({"type": "websocket.close", "code": 4001, "reason": "done here"})
    OUT.put("server-close:" + _key(scope), await receive())


async def boom_before(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("before accept")


async def boom_after(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("after accept")


async def flood(scope: Scope, receive: Receive, send: Send) -> None:
    """Send `count` messages of `size` bytes as fast as send() lets it; report progress."""
    params = dict(p.split("=") for p in scope["query_string"].decode().split("&"))
    count, size, key = int(params["count"]), int(params["size"]), params["key"]
    await receive()
    await send({"type": "websocket.accept"})
    progress = OUT_PROGRESS.setdefault(key, [0])
    try:
        for _ in range(count):
            await send({"type": "websocket.send", "bytes": b"x" * size})
            progress[0] += 1
    except OSError as exc:
        OUT.put("flood:" + key, f"OSError: {exc}")
        return
    OUT.put("flood:" + key, "done")
    await receive()


async def hoard(scope: Scope, receive: Receive, send: Send) -> None:
    """Accept, then read nothing until the test opens the gate; count what arrives."""
    await receive()
    await send({"type": "websocket.accept"})
    await HOARD_GATE.wait()
    count = 0
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            OUT.put("hoard", count)
            return
        count += 1


async def never_answers(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    OUT.put("never:" + _key(scope), await receive())


OUT_PROGRESS: dict[str, list[int]] = {}
HOARD_GATE = Gate()

ROUTES = {
    "/echo": echo,
    "/scope": scope_dump,
    "/sub": subprotocol,
    "/deny": deny,
    "/bad-denial": bad_denial,
    "/forbid": forbid,
    "/server-close": server_close,
    "/boom-before": boom_before,
    "/boom-after": boom_after,
    "/flood": flood,
    "/hoard": hoard,
    "/never": never_answers,
}


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(app) as running:
        yield running


def ws_url(server: RunningServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


@contextmanager
def client(server: RunningServer, path: str, **kwargs: Any) -> Iterator[ClientConnection]:
    with connect(ws_url(server, path), open_timeout=DEADLINE, close_timeout=DEADLINE,
                 **kwargs) as ws:
        yield ws


# --- raw sockets ------------------------------------------------------------------------


_OPEN_SOCKETS: list[socket.socket] = []


@pytest.fixture(autouse=True)
def _close_raw_sockets() -> Iterator[None]:
    yield
    while _OPEN_SOCKETS:
        _OPEN_SOCKETS.pop().close()


class RawWS:
    """A hand-rolled client: exact bytes out, every frame in, nothing hidden."""

    def __init__(self, server: RunningServer, path: str = "/echo",
                 headers: list[tuple[str, str]] | None = None, method: str = "GET",
                 after_head: bytes = b"") -> None:
        self.sock = server.connect(DEADLINE)
        _OPEN_SOCKETS.append(self.sock)
        self.buffer = bytearray()
        self.key = base64.b64encode(os.urandom(16)).decode()
        fields = {"Host": "pier.test", "Upgrade": "websocket", "Connection": "Upgrade",
                  "Sec-WebSocket-Key": self.key, "Sec-WebSocket-Version": "13"}
        for name, value in headers or []:
            fields[name] = value
        head = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in fields.items() if value
        )
        self.sock.sendall(head.encode() + b"\r\n" + after_head)

    def _fill(self) -> bool:
        try:
            data = self.sock.recv(262144)
        except ConnectionResetError:
            data = b""
        self.buffer += data
        return bool(data)

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise EOFError(f"connection closed with {bytes(self.buffer)!r} unread")
        line, _, rest = bytes(self.buffer).partition(b"\r\n")
        self.buffer = bytearray(rest)
        return line

    def _exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._fill():
                raise EOFError(f"connection closed with {bytes(self.buffer)!r} unread")
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def response_head(self) -> tuple[int, dict[str, str]]:
        status = int(self._line().split()[1])
        fields = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        return status, fields

    def rest_until_eof(self) -> bytes:
        while self._fill():
            pass
        return bytes(self.buffer)

    def opened(self) -> RawWS:
        status, _ = self.response_head()
        assert status == 101
        return self

    def send_frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True,
                   rsv: int = 0, mask: bool = True) -> None:
        self.sock.sendall(frame_bytes(opcode, payload, fin=fin, rsv=rsv, mask=mask))

    def recv_frame(self) -> tuple[int, bytes]:
        first, second = self._exact(2)
        assert not second & 0x80, "server frames are never masked"
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", self._exact(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", self._exact(8))[0]
        return first & 0x0F, self._exact(size)

    def recv_close(self) -> tuple[int, str]:
        """Skip pings and data until the close frame; return its code and reason."""
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 8:
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def at_eof(self) -> bool:
        """The server ended the stream (EOF or reset) with nothing more unread."""
        return not self._fill() and not self.buffer

    def close(self) -> None:
        self.sock.close()


def frame_bytes(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
                mask: bool = True) -> bytes:
    """A client frame (RFC 6455 section 5.2), masked unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask else 0
    size = len(payload)
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if mask:
        key = os.urandom(4)
        payload = key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


# --- the happy path ---------------------------------------------------------------------


def test_echo_text_and_binary(server: RunningServer) -> None:
    with client(server, "/echo?happy") as ws:
        ws.send("héllo ✓")
        assert ws.recv() == "héllo ✓"
        ws.send(b"\x00\xff" * 40000)
        assert ws.recv() == b"\x00\xff" * 40000
        ws.send(["frag", "mented"])  # a fragmented message arrives whole
        assert ws.recv() == "fragmented"
    assert OUT.get("echo:happy") == {"type": "websocket.disconnect", "code": 1000,
                                     "reason": ""}


def test_handshake_response_fields(server: RunningServer) -> None:
    with client(server, "/echo") as ws:
        headers = ws.response.headers
        assert ws.response.status_code == 101
        assert headers["upgrade"].lower() == "websocket"
        assert headers["connection"].lower() == "upgrade"
        assert headers["server"] == "pier"
        assert "date" in headers
        assert "content-length" not in headers


def test_scope(server: RunningServer) -> None:
    with client(server, "/scope?a=%C3%A9&b", additional_headers={"X-Custom": "1"},
                subprotocols=["one", "two"]) as ws:
        assert ws.recv() == "ok"
    scope = OUT.get("scope:a=%C3%A9&b")
    assert scope["type"] == "websocket"
    assert scope["asgi"]["version"] == "3.0"
    assert tuple(int(p) for p in scope["asgi"]["spec_version"].split(".")) >= (2, 3)
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == b"/scope"
    assert scope["query_string"] == b"a=%C3%A9&b"
    assert scope["root_path"] == ""
    assert (b"x-custom", b"1") in scope["headers"]
    assert (b"upgrade", b"websocket") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["state"] == {}
    assert "websocket.http.response" in scope["extensions"]
    assert "method" not in scope


def test_subprotocol_choice_and_accept_headers(server: RunningServer) -> None:
    with client(server, "/sub", subprotocols=["graphql-ws", "graphql-transport-ws"]) as ws:
        assert ws.subprotocol == "graphql-transport-ws"
        assert ws.response.headers["x-pier"] == "yes"
        assert ws.response.headers["set-cookie"] == "a=1"
        assert json.loads(ws.recv()) == ["graphql-ws", "graphql-transport-ws"]


def test_no_subprotocol_offered_none_chosen(server: RunningServer) -> None:
    with client(server, "/sub") as ws:
        assert ws.subprotocol is None
        assert "sec-websocket-protocol" not in ws.response.headers


def test_permessage_deflate_is_negotiated_and_used(server: RunningServer) -> None:
    with client(server, "/echo") as ws:  # the websockets client offers deflate
        assert ws.response.headers["sec-websocket-extensions"].startswith("permessage-deflate")
        text = json.dumps([{"id": i, "name": "pier"} for i in range(500)])
        ws.send(text)
        assert ws.recv() == text


def test_permessage_deflate_can_be_switched_off() -> None:
    with running_server(app, ws_per_message_deflate=False) as srv, client(srv, "/echo") as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv() == "plain"


# --- denial -------------------------------------------------------------------------------


def test_denial_response_with_status_headers_and_streamed_body(server: RunningServer) -> None:
    with pytest.raises(InvalidStatus) as info, client(server, "/deny"):
        pass
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"token expired"


def test_close_before_accept_is_403(server: RunningServer) -> None:
    raw = RawWS(server, "/forbid")
    status, fields = raw.response_head()
    assert status == 403
    assert fields["connection"] == "close"
    assert raw.at_eof()


# --- closing -------------------------------------------------------------------------------


def test_server_initiated_close_with_code_and_reason(server: RunningServer) -> None:
    with client(server, "/server-close?s") as ws:
        assert ws.recv() == "bye"
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert (ws.close_code, ws.close_reason) == (4001, "done here")
    # The app hears the closing handshake finish with the code the client echoed.
    assert OUT.get("server-close:s")["code"] == 4001


def test_client_initiated_close_reaches_the_app(server: RunningServer) -> None:
    with client(server, "/echo?client-close") as ws:
        ws.close(code=4321, reason="client done")
    assert OUT.get("echo:client-close") == {
        "type": "websocket.disconnect", "code": 4321, "reason": "client done",
    }


def test_server_closes_tcp_after_the_closing_handshake(server: RunningServer) -> None:
    raw = RawWS(server, "/echo?raw-close").opened()
    raw.send_frame(8, close_payload(1000, b"bye"))
    assert raw.recv_frame() == (8, close_payload(1000, b"bye"))  # echoed
    assert raw.at_eof()  # and the server ended the TCP stream first (RFC 6455 7.1.1)
    assert OUT.get("echo:raw-close")["code"] == 1000


def test_abrupt_client_reset_while_the_app_is_sending(server: RunningServer) -> None:
    raw = RawWS(server, "/flood?count=100000&size=65536&key=reset").opened()
    raw.recv_frame()  # the app is sending
    raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()  # RST
    assert OUT.get("flood:reset").startswith("OSError: the WebSocket is clos")
    with client(server, "/echo") as ws:  # the server keeps serving
        ws.send("still here")
        assert ws.recv() == "still here"


def test_frames_sent_with_the_handshake_are_kept_for_after_accept(
    server: RunningServer,
) -> None:
    # In the same segment as the head (H1 hands these bytes over), and just after it.
    raw = RawWS(server, "/echo?eager", after_head=frame_bytes(1, b"with the head"))
    raw.send_frame(1, b"after the head")
    raw.opened()
    assert raw.recv_frame() == (1, b"with the head")
    assert raw.recv_frame() == (1, b"after the head")
    raw.send_frame(8, close_payload(1000))
    assert raw.recv_frame()[0] == 8
    assert OUT.get("echo:eager")["code"] == 1000


def test_client_pings_get_pongs(server: RunningServer) -> None:
    raw = RawWS(server, "/echo").opened()
    raw.send_frame(9, b"are you there")
    assert raw.recv_frame() == (10, b"are you there")
    raw.send_frame(1, b"text after ping")
    assert raw.recv_frame() == (1, b"text after ping")
    raw.close()


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status", "words", "method"),
    [
        ([("Sec-WebSocket-Version", "8")], 426, b"speaks version 13", "GET"),
        ([("Sec-WebSocket-Key", "")], 400, b"Sec-WebSocket-Key", "GET"),
        ([("Sec-WebSocket-Key", "dG9vIHNob3J0")], 400, b"not 16 random bytes", "GET"),
        ([], 400, b"must be a GET request, not POST", "POST"),
        ([("Sec-WebSocket-Protocol", "a b")], 400, b"is not a token", "GET"),
    ],
)
def test_invalid_handshakes_get_an_http_answer_and_the_app_is_not_called(
    server: RunningServer, headers: list[tuple[str, str]], status: int, words: bytes,
    method: str,
) -> None:
    raw = RawWS(server, "/echo", headers, method=method)
    got, fields = raw.response_head()
    assert got == status
    if status == 426:
        assert fields["sec-websocket-version"] == "13"
    assert fields["connection"] == "close"
    body = raw.rest_until_eof()
    assert words in body
    # The server keeps serving others.
    with client(server, "/echo") as ws:
        ws.send("ok")
        assert ws.recv() == "ok"


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(1, b"unmasked", False, 0)], 1002),
        ([(1, b"rsv", True, 2)], 1002),
        ([(9, b"x" * 126, True, 0)], 1002),
        ([(1, b"\xff\xfe", True, 0)], 1007),
        ([(8, close_payload(1005), True, 0)], 1002),
        ([(8, close_payload(1000, b"\xff"), True, 0)], 1007),
        ([(1, b"frag", True, 0), (9, b"ping", True, -1)], 1002),
    ],
    ids=["unmasked", "reserved-bit", "long-ping", "bad-utf8", "bad-close-code",
         "bad-close-reason", "fragmented-ping"],
)
def test_invalid_frames_close_with_the_rfc_code_and_the_app_hears_it(
    server: RunningServer, frames: list[tuple[int, bytes, bool, int]], code: int,
    request: pytest.FixtureRequest,
) -> None:
    key = request.node.callspec.id
    raw = RawWS(server, f"/echo?{key}").opened()
    for opcode, payload, mask, rsv in frames:
        # rsv -1 marks a frame sent without FIN (here: a fragmented control frame).
        raw.send_frame(opcode, payload, mask=mask, rsv=max(rsv, 0), fin=rsv != -1)
    assert raw.recv_close()[0] == code
    assert raw.at_eof()
    assert OUT.get(f"echo:{key}")["code"] == code
    with client(server, "/echo") as ws:  # the server keeps serving others
        ws.send("next")
        assert ws.recv() == "next"


def test_message_over_ws_max_size_closes_with_1009() -> None:
    with running_server(app, ws_max_size=1024) as srv, client(srv, "/echo?big") as ws:
        ws.send("x" * 1024)
        assert ws.recv() == "x" * 1024
        ws.send("x" * 1025)
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
        assert OUT.get("echo:big")["code"] == 1009


def test_upgrade_without_connection_upgrade_is_plain_http(server: RunningServer) -> None:
    # RFC 9110 section 7.8: Upgrade is a hop-by-hop field, only an upgrade when
    # Connection lists it; otherwise the request is an ordinary one for the app.
    raw = RawWS(server, "/plain?no-connection-token", [("Connection", "keep-alive")])
    status, _ = raw.response_head()
    assert status == 200
    assert OUT.get("http:no-connection-token")["type"] == "http"


def test_ws_none_answers_upgrades_as_plain_http() -> None:
    with running_server(app, ws="none") as srv:
        raw = RawWS(srv, "/plain?none")
        status, _ = raw.response_head()
        assert status == 200
        scope = OUT.get("http:none")
        assert scope["type"] == "http"
        assert (b"upgrade", b"websocket") in scope["headers"]


# --- app failures -------------------------------------------------------------------------


def test_exception_before_accept_is_a_500(server: RunningServer) -> None:
    with capture_logs() as logs:
        raw = RawWS(server, "/boom-before")
        status, _ = raw.response_head()
        assert status == 500
        logs.wait_for("Exception in ASGI application for WebSocket /boom-before")


def test_denial_with_an_invalid_header_is_a_500_naming_the_header(
    server: RunningServer,
) -> None:
    with capture_logs() as logs:
        raw = RawWS(server, "/bad-denial")
        status, _ = raw.response_head()
        assert status == 500
        logs.wait_for("ASGI protocol error in WebSocket /bad-denial",
                      "b'bad name' is not a valid HTTP token")


def test_exception_after_accept_closes_with_1011(server: RunningServer) -> None:
    with capture_logs() as logs, client(server, "/boom-after") as ws:
        ws.send("trigger")
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv()
        assert info.value.rcvd is not None and info.value.rcvd.code == 1011
        logs.wait_for("Exception in ASGI application for WebSocket /boom-after")


# --- keepalive ------------------------------------------------------------------------------


def test_silent_peer_is_closed_with_1011_after_the_ping_timeout() -> None:
    with running_server(app, ws_ping_interval=0.05, ws_ping_timeout=0.1) as srv:
        silent = RawWS(srv, "/echo?silent").opened()
        assert silent.recv_frame()[0] == 9  # a ping it will not answer
        assert silent.recv_close() == (1011, "keepalive ping timeout")
        assert OUT.get("echo:silent") == {"type": "websocket.disconnect", "code": 1011,
                                          "reason": "keepalive ping timeout"}
        silent.close()


def test_peer_that_answers_pings_stays_connected() -> None:
    # Ten pings 0.05 s apart outlast the 0.3 s timeout: only answered pings keep it open.
    with running_server(app, ws_ping_interval=0.05, ws_ping_timeout=0.3) as srv:
        lively = RawWS(srv, "/echo?lively").opened()
        for _ in range(10):
            opcode, payload = lively.recv_frame()
            assert opcode == 9 and len(payload) == 4
            lively.send_frame(10, payload)
        lively.send_frame(1, b"still alive")
        while (frame := lively.recv_frame())[0] == 9:
            lively.send_frame(10, frame[1])
        assert frame == (1, b"still alive")
        lively.close()


# --- limits and flow control ---------------------------------------------------------------


@contextmanager
def _opened_at_exit(gate: Gate) -> Iterator[None]:
    """Open `gate` however the block ends, so a failed test cannot park an app forever."""
    try:
        yield
    finally:
        gate.open()


def _ws_connection(srv: RunningServer) -> WSProtocol:
    ctx = srv.server.ctx
    assert ctx is not None
    found: list[WSProtocol] = []
    wait_until(lambda: found.extend(c for c in list(ctx.connections)
                                    if isinstance(c, WSProtocol)) or found,
               message="a WebSocket connection on the server")
    return found[0]


def test_a_websocket_writes_with_pier_s_write_mark(server: RunningServer) -> None:
    # The HTTP/1.1 connection sets pier's write mark only once a response streams
    # (issue 13); a WebSocket it hands over to has it from the start.
    with client(server, "/echo") as ws:
        ws.send("mark")
        assert ws.recv() == "mark"
        limits = _ws_connection(server).transport.get_write_buffer_limits()
        assert limits[1] == WRITE_HIGH_WATER


def test_slow_reader_makes_send_wait_instead_of_buffering() -> None:
    count, size = 400, 65536  # 25 MiB the client does not read for a while
    with running_server(app) as srv:
        raw = RawWS(srv, f"/flood?count={count}&size={size}&key=slow")
        raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        raw.opened()
        conn = _ws_connection(srv)
        wait_until(lambda: conn.write_paused, message="the write buffer filling up")
        progress = OUT_PROGRESS["slow"]
        sent_when_paused = progress[0]
        # The app is parked in send(): what the server holds stays near the buffer mark.
        assert conn.transport.get_write_buffer_size() < 1024 * 1024
        assert sent_when_paused < count
        received = 0
        while received < count:
            opcode, payload = raw.recv_frame()
            assert (opcode, len(payload)) == (2, size)
            received += 1
        assert OUT.get("flood:slow") == "done"
        raw.close()


def test_app_that_does_not_receive_pauses_reading_at_ws_max_queue() -> None:
    with running_server(app, ws_max_queue=4) as srv, _opened_at_exit(HOARD_GATE):
        raw = RawWS(srv, "/hoard").opened()
        conn = _ws_connection(srv)
        sock = raw.sock
        frame = b"\x82\xfe" + struct.pack("!H", 1024) + b"\x00\x00\x00\x00" + b"m" * 1024
        burst = frame * 64
        total = 0
        sock.setblocking(False)
        # Send until the kernel buffers stay full while the app's queue is at its mark:
        # then the server has stopped reading (rather than being momentarily behind).
        while total < 64 * 1024 * 1024:
            try:
                total += sock.send(burst)
            except BlockingIOError:
                _, writable, _ = select.select([], [sock], [], 0.5)
                if not writable and conn.session is not None and conn.session.queued >= 4:
                    break
        assert total < 64 * 1024 * 1024, "the server kept reading; the app took nothing"
        # What waits for the app: the 4 messages of the mark, plus at most the rest of
        # the one socket read (256 KiB) that crossed it.
        assert conn.session is not None and conn.session.queued >= 4
        assert conn.session.queued_bytes <= 4 * 1024 + 256 * 1024
        sock.setblocking(True)
        sock.settimeout(DEADLINE)
        HOARD_GATE.open()
        # Finish the frame a short send may have cut, then close.
        cut = total % len(frame)
        if cut:
            sock.sendall(frame[cut:])
        frames = -(-total // len(frame))
        raw.send_frame(8, close_payload(1000))
        assert OUT.get("hoard", timeout=10) == frames
        raw.close()


def test_app_that_never_answers_the_handshake_gets_500_after_the_timeout() -> None:
    with capture_logs() as logs, running_server(app, timeout_ws_handshake=0.2) as srv:
        raw = RawWS(srv, "/never?slow-app")
        status, _ = raw.response_head()
        assert status == 500
        assert OUT.get("never:slow-app")["code"] == 1006
        logs.wait_for("did not answer the WebSocket handshake", "--timeout-ws-handshake",
                      level=30)


def test_peer_that_never_answers_a_close_frame_is_cut_off() -> None:
    with running_server(app, timeout_ws_handshake=0.2) as srv:
        raw = RawWS(srv, "/server-close?mute").opened()
        assert raw.recv_frame() == (1, b"bye")
        assert raw.recv_frame() == (8, close_payload(4001, b"done here"))
        assert raw.at_eof()  # aborted after 0.2 s without our answer
        assert OUT.get("server-close:mute")["code"] == 1006


# --- server-wide ------------------------------------------------------------------------------


def test_graceful_shutdown_closes_with_1001_and_the_app_hears_disconnect() -> None:
    with running_server(app) as srv, client(srv, "/echo?shutdown") as ws:
        ws.send("hi")
        assert ws.recv() == "hi"
        srv.server.should_exit = True
        with pytest.raises(ConnectionClosedOK):
            ws.recv(timeout=DEADLINE)
        assert ws.close_code == 1001
        assert OUT.get("echo:shutdown")["code"] == 1001
        srv.thread.join(DEADLINE)
        assert not srv.thread.is_alive()


def test_access_log_records_the_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pier.access")
    with capture_logs() as logs, running_server(app) as srv:
        with client(srv, "/echo?logged"):
            pass
        RawWS(srv, "/forbid").response_head()
        line = logs.wait_for('"GET /echo?logged HTTP/1.1" 101', level=20)
        assert line.startswith("127.0.0.1:")
        logs.wait_for('"GET /forbid HTTP/1.1" 403', level=20)


def test_proxy_headers_and_root_path_apply_to_websockets() -> None:
    with running_server(app, root_path="/api", forwarded_allow_ips="127.0.0.1") as srv:
        with client(srv, "/scope?proxied", additional_headers={
            "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9",
        }) as ws:
            assert ws.recv() == "ok"
        scope = OUT.get("scope:proxied")
        assert scope["scheme"] == "wss"
        assert scope["client"] == ("203.0.113.9", 0)
        assert scope["root_path"] == "/api"
        assert scope["path"] == "/api/scope"
        assert scope["raw_path"] == b"/api/scope"


def test_websocket_with_asyncio_client_on_many_connections() -> None:
    from websockets.asyncio.client import connect as aconnect

    async def one(url: str, n: int) -> str:
        async with aconnect(url) as ws:
            await ws.send(f"client {n}")
            return str(await ws.recv())

    with running_server(app) as srv:
        async def main() -> list[str]:
            return await asyncio.gather(*(one(ws_url(srv, "/echo"), n) for n in range(20)))

        assert asyncio.run(main()) == [f"client {n}" for n in range(20)]
