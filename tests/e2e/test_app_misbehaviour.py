"""Apps that break the ASGI message protocol and carry on (issue 15), over a real socket.

Every row is an app that does one thing ASGI forbids (often catching the error send()
raised and going on as if nothing happened) and the outcome a client must see: an
answer (500 when nothing was sent) or a response cut off (the connection closed on
HTTP/1.1; a reset stream on HTTP/2), never a request left hanging; one error-log line
naming the app, the message and what ASGI expected (ASGI HTTP and WebSocket specs 2.4:
"the server must raise an exception" for a message out of turn); and no busy loop.

The tables run once per protocol pier serves: PROTOCOLS maps a protocol to a client
that sends one request and reports what came back (HTTP/1.1, and cleartext HTTP/2 with
the h2 library), WS_PROTOCOLS one that opens a WebSocket (HTTP/1.1 Upgrade, RFC 8441
extended CONNECT over HTTP/2).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import h2.events
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

import pier
from pier.errors import LifespanFailed
from pier.types import Message, Receive, Scope, Send
from tests.e2e._support import DEADLINE, Conn, ConnectionClosedEarly, capture_logs, wait_until
from tests.e2e.test_http2 import RawClient
from tests.e2e.test_http2 import _ws_frame as ws_frame
from tests.helpers import RunningServer, running_server

App = Callable[[Scope, Receive, Send], Awaitable[None]]
APP_NAME = "tests.e2e.test_app_misbehaviour:dispatch"

START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def start(*headers: tuple[Any, Any]) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": list(headers)}


def body(data: Any = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def carries_on(*messages: Message) -> App:
    """Sends each message, catching whatever send() raises, then returns normally."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            try:
                await send(message)
            except Exception:
                continue

    return app


def lets_it_propagate(*messages: Message) -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    return app


async def raises_mid_body(scope: Scope, receive: Receive, send: Send) -> None:
    await send(START)
    await send(body(b"part", more=True))
    raise RuntimeError("boom")


@dataclass(frozen=True)
class Row:
    app: App
    status: int  # the status line the client reads
    cut: bool  # the response is cut off (connection closed before it completed)
    log: tuple[str, ...]  # what the one error line says (besides the app's name)


HTTP: dict[str, Row] = {
    "str-header-name": Row(carries_on(start(("foo", b"bar")), body(b"x")), 500, False,
                           ("'foo'", "ASGI requires bytes", "caught")),
    "str-header-value": Row(carries_on(start((b"foo", "bar")), body(b"x")), 500, False,
                            ("b'foo'", "str value", "ASGI requires bytes")),
    "bool-header-value": Row(carries_on(start((b"foo", True)), body(b"x")), 500, False,
                             ("bool value", "ASGI requires bytes")),
    "propagated-header": Row(lets_it_propagate(start(("foo", b"bar")), body(b"x")), 500,
                             False, ("'foo'", "ASGI requires bytes")),
    "no-status": Row(carries_on({"type": "http.response.start"}, body(b"x")), 500, False,
                     ("needs a 'status'",)),
    "second-start": Row(carries_on(START, START, body(b"x")), 500, False,
                        ("'http.response.start'", "expects", "'http.response.body'")),
    "body-after-last": Row(carries_on(START, body(b"ok"), body(b"more")), 200, False,
                           ("'http.response.body'", "already complete")),
    "unknown-type": Row(carries_on(START, {"type": "http.response.bogus"}), 500, False,
                        ("'http.response.bogus'", "expects")),
    "not-a-dict": Row(carries_on("http.response.start"), 500, False,  # type: ignore[arg-type]
                      ("message dict with a 'type' key",)),
    "str-body": Row(carries_on(START, body("text")), 500, False, ("must be bytes, got str",)),
    "over-length-whole": Row(carries_on(start((b"content-length", b"2")), body(b"hello")),
                             500, False, ("sent 5 body bytes but declared Content-Length: 2",)),
    # Two lengths would frame the response two ways for a proxy in front (RFC 9110 8.6).
    "two-lengths": Row(carries_on(start((b"content-length", b"5"), (b"content-length", b"6")),
                                  body(b"hello!")),
                       500, False, ("two different Content-Length values (5 and 6)",)),
    # One message whatever the HTTP version (proto/headers.py body_length_error).
    "over-length-streamed": Row(carries_on(start((b"content-length", b"3")),
                                           body(b"he", True), body(b"llo")), 200, True,
                                ("sent 5 body bytes but declared Content-Length: 3",)),
    "under-length-streamed": Row(carries_on(start((b"content-length", b"5")),
                                            body(b"he", True), body(b"")), 200, True,
                                 ("ended after 2 body bytes but declared Content-Length: 5",)),
    "no-response": Row(carries_on(), 500, False, ("returned without sending a response",)),
    "start-only": Row(carries_on(START), 500, False, ("returned without sending a response",)),
    "unfinished-body": Row(carries_on(START, body(b"x", True)), 200, True,
                           ("returned before finishing",)),
    "raises-mid-body": Row(raises_mid_body, 200, True, ("Exception in ASGI application",)),
}


# --- WebSocket apps ---------------------------------------------------------------------

# How many times each looping app called receive() (the busy-loop check).
RECEIVES: dict[str, int] = {}
RECEIVES_LOCK = threading.Lock()


async def returns_without_answer(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def sends_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    with contextlib.suppress(Exception):
        await send({"type": "websocket.send", "text": "too early"})
    await receive()  # waits on: the failed handshake must not leave the client hanging


async def bad_accept_headers(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    with contextlib.suppress(Exception):
        await send({"type": "websocket.accept", "headers": [("x-str", b"1")]})
    await receive()


async def sends_after_close(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 1000})
    with contextlib.suppress(Exception):
        await send({"type": "websocket.send", "text": "after close"})


async def bad_send_after_accept(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    with contextlib.suppress(Exception):
        await send({"type": "websocket.send", "text": b"bytes as text"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


async def loops_on_receive(scope: Scope, receive: Receive, send: Send) -> None:
    """Never looks at the message type: before issue 15 this spun at 100% CPU."""
    await receive()
    await send({"type": "websocket.accept"})
    key = scope["path"]
    while True:
        await receive()
        with RECEIVES_LOCK:
            RECEIVES[key] = RECEIVES.get(key, 0) + 1


@dataclass(frozen=True)
class WSRow:
    app: App
    # The HTTP status refusing the handshake, or the close code the client receives.
    status: int | None
    close_code: int | None
    log: tuple[str, ...]


WEBSOCKET: dict[str, WSRow] = {
    "returns-without-answer": WSRow(returns_without_answer, 500, None,
                                    ("returned without answering the WebSocket handshake",)),
    "sends-before-accept": WSRow(sends_before_accept, 500, None,
                                 ("'websocket.send'", "handshake is not answered", "caught")),
    "bad-accept-headers": WSRow(bad_accept_headers, 500, None,
                                ("websocket.accept", "ASGI requires bytes")),
    "sends-after-close": WSRow(sends_after_close, None, 1000,
                               ("'websocket.send'", "already closed")),
    "bad-send-after-accept": WSRow(bad_send_after_accept, None, 1011,
                                   ("'text' must be a str",)),
    "loops-on-receive": WSRow(loops_on_receive, None, 1000,
                              ("receive() was called again", "websocket.disconnect")),
}


async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        await send({"type": "lifespan.shutdown.complete"})
        return
    name = scope["path"].strip("/").split("/")[0]
    table: dict[str, Any] = HTTP if scope["type"] == "http" else WEBSOCKET
    await table[name].app(scope, receive, send)


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(dispatch) as running:
        yield running


# --- clients, one per protocol -----------------------------------------------------------


@dataclass
class Seen:
    status: int
    cut: bool


def h1_request(server: RunningServer, path: str) -> Seen:
    with Conn.open(server) as conn:
        conn.send(f"GET {path} HTTP/1.1\r\nHost: pier.test\r\n\r\n".encode())
        head = conn.read_head()
        try:
            response = conn.read_body(head)
        except ConnectionClosedEarly:
            return Seen(head.status, cut=True)
        if not response.keeps_alive:
            conn.wait_closed()  # the server closes after its own answer: no hang
        return Seen(response.status, cut=False)


def h2_request(server: RunningServer, path: str) -> Seen:
    """Cleartext HTTP/2 with prior knowledge; a cut response is a reset stream."""
    client = RawClient(server.port)
    try:
        client.get(1, path)
        events = client.read_until(
            lambda e: isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
        )
        status = next(int(dict(e.headers)[b":status"]) for e in events
                      if isinstance(e, h2.events.ResponseReceived))
        ended = any(isinstance(e, h2.events.StreamEnded) for e in events)
        return Seen(status, cut=not ended)
    finally:
        client.close()


PROTOCOLS: dict[str, Callable[[RunningServer, str], Seen]] = {
    "http/1.1": h1_request,
    "h2c": h2_request,
}


@dataclass
class WSSeen:
    refused: int | None  # the HTTP status refusing the handshake
    close_code: int | None  # else the code of the server's close frame


def ws_h1(server: RunningServer, path: str, close_first: bool) -> WSSeen:
    url = f"ws://{server.host}:{server.port}{path}"
    try:
        ws = connect(url, open_timeout=DEADLINE, close_timeout=DEADLINE)
    except InvalidStatus as refused:
        return WSSeen(refused.response.status_code, None)
    with ws:
        if close_first:
            ws.close(1000)
        try:
            ws.recv(timeout=DEADLINE)
        except ConnectionClosed as closed:
            return WSSeen(None, closed.rcvd.code if closed.rcvd is not None else None)
    raise AssertionError("the server sent a message instead of closing")


def ws_h2(server: RunningServer, path: str, close_first: bool) -> WSSeen:
    """RFC 8441: an extended CONNECT stream carries the WebSocket."""
    client = RawClient(server.port)
    try:
        client.read_until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        client.conn.send_headers(1, [
            (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
            (":path", path), (":authority", "pier.test"), ("sec-websocket-version", "13"),
        ])
        client.flush()
        events = client.read_until(lambda e: isinstance(
            e, h2.events.ResponseReceived | h2.events.StreamReset | h2.events.StreamEnded))
        status = next(int(dict(e.headers)[b":status"]) for e in events
                      if isinstance(e, h2.events.ResponseReceived))
        if status != 200:
            return WSSeen(status, None)
        if close_first:
            client.conn.send_data(1, ws_frame(b"\x03\xe8", opcode=0x8), end_stream=True)
            client.flush()


        def close_code() -> int | None:
            data = b"".join(e.data for e in client.of(h2.events.DataReceived))
            # The server's frames are unmasked and short here: opcode, length, payload.
            while len(data) >= 4:
                opcode, length = data[0] & 0x0F, data[1] & 0x7F
                if opcode == 0x8:
                    return int.from_bytes(data[2:4], "big")
                data = data[2 + length :]
            return None

        client.read_until(lambda e: close_code() is not None or isinstance(
            e, h2.events.StreamEnded | h2.events.StreamReset))
        code = close_code()
        assert code is not None, "the stream ended without a close frame"
        return WSSeen(None, code)
    finally:
        client.close()


WS_PROTOCOLS: dict[str, Callable[[RunningServer, str, bool], WSSeen]] = {
    "http/1.1": ws_h1,
    "h2c": ws_h2,  # RFC 8441
}


def one_error(logs: Any, path: str, needles: tuple[str, ...]) -> str:
    line = logs.wait_for(path, APP_NAME, *needles)
    mine = [text for text in logs.errors() if path in text]
    assert mine == [line], f"expected one error line for {path}, got {mine}"
    return str(line)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", HTTP)
def test_http_app_breaking_the_protocol(server: RunningServer, protocol: str, case: str) -> None:
    row = HTTP[case]
    # One path per case and protocol: an error line one protocol logs late must not
    # be counted against the next protocol's run of the same case.
    path = f"/{case}/{protocol.replace('/', '')}"
    with capture_logs() as logs:
        seen = PROTOCOLS[protocol](server, path)
        assert seen == Seen(row.status, row.cut)
        one_error(logs, path, row.log)


def test_http_send_after_the_client_left_raises_at_once(server: RunningServer) -> None:
    """The spec's answer: send() raises an OSError; nothing waits, nothing is logged."""
    raised: list[BaseException] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        try:
            await send(START)
            await send(body(b"late"))
        except Exception as exc:
            raised.append(exc)
        done.set()

    with running_server(app, lifespan="off") as other, capture_logs() as logs:
        sock = other.connect()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: pier.test\r\n\r\n")
        sock.close()
        assert done.wait(DEADLINE)
        assert len(raised) == 1 and isinstance(raised[0], OSError)
        assert not logs.errors()


@pytest.mark.parametrize("protocol", WS_PROTOCOLS)
@pytest.mark.parametrize("case", WEBSOCKET)
def test_websocket_app_breaking_the_protocol(
    server: RunningServer, protocol: str, case: str
) -> None:
    row = WEBSOCKET[case]
    # One path per case and protocol: an error line one protocol logs late must not
    # be counted against the next protocol's run of the same case.
    path = f"/{case}/{protocol.replace('/', '')}"
    loops = case == "loops-on-receive"
    with capture_logs() as logs:
        seen = WS_PROTOCOLS[protocol](server, path, loops)
        assert seen == WSSeen(row.status, row.close_code)
        one_error(logs, path, row.log)
    if loops:
        # One websocket.disconnect was counted, then receive() raised: no spin.
        wait_until(lambda: path in RECEIVES)
        assert RECEIVES.pop(path) == 1


# --- lifespan ------------------------------------------------------------------------------


def test_lifespan_message_out_of_turn_fails_startup_instead_of_hanging() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        with contextlib.suppress(Exception):
            await send({"type": "lifespan.shutdown.complete"})
        await asyncio.Event().wait()  # carries on, waiting for nothing

    server = pier.Server(pier.Config(app, port=0, lifespan="auto", log_level="warning"))
    with pytest.raises(LifespanFailed, match=r"'lifespan.shutdown.complete'.*lifespan.startup"):
        asyncio.run(asyncio.wait_for(server.serve(), DEADLINE))


def test_lifespan_auto_treats_a_non_lifespan_message_as_no_support() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            with contextlib.suppress(Exception):
                await send(START)  # an app that answers every scope as HTTP
            await asyncio.Event().wait()
            return
        await send(START)
        await send(body(b"served"))

    # Start-up neither hangs on the app (which caught the error and waits forever) nor
    # fails: as with an app that raises, this app has no lifespan support.
    with running_server(app, lifespan="auto") as running, Conn.open(running) as conn:
        assert conn.request().body == b"served"


def test_lifespan_message_sent_while_serving_is_one_error_line() -> None:
    sent_again = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            await send({"type": "lifespan.startup.complete"})
            try:
                await send({"type": "lifespan.startup.complete"})
            except RuntimeError:
                sent_again.set()
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send(START)
        await send(body(b"ok"))

    with capture_logs() as logs, running_server(app):
        assert sent_again.wait(DEADLINE)
        line = logs.wait_for("lifespan", "'lifespan.startup.complete'", "expects")
        wait_until(lambda: bool(logs.errors()))
        assert logs.errors() == [line]
