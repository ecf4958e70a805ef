"""Request bodies reach the app streamed, and both directions are flow-controlled.

Pins: ASGI HTTP spec, "Request - receive event" (http.request with body and more_body;
a body is delivered in as many messages as it arrives in) and "Disconnect - receive
event" (http.disconnect once the response is sent or the client has gone); RFC 9112
section 6 (message body: Content-Length, section 7 chunked transfer coding including
chunk extensions and trailer fields, which a server may discard); RFC 9112 section 9.3
(an unread body is still framing: its bytes are never parsed as a new request). Flow
control is what the issue asks of a streaming server: reading pauses while the app has
not asked for more, and writing waits while the client does not read.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import socket
import threading
import time

import pytest

from pier.types import Message, Receive, Scope, Send
from tests.e2e._support import (
    LOOPS,
    Conn,
    ConnectionClosedEarly,
    Gate,
    build_request,
    chunked,
    http_app,
    read_body,
    respond,
    wait_until,
)
from tests.helpers import running_server

MB = 1024 * 1024


class BodyProbe:
    """Echoes sha256 and length of the body, and keeps the messages it came in."""

    def __init__(self) -> None:
        self.messages: list[list[Message]] = []
        self.app = http_app(self._handle)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        body, messages = await read_body(receive)
        self.messages.append(messages)
        answer = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        await respond(send, 200, answer)


def _digest(body: bytes) -> bytes:
    return f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()


def test_content_length_body_arrives_whole() -> None:
    probe = BodyProbe()
    body = b"hello, body"
    with running_server(probe.app) as server, Conn.open(server) as conn:
        response = conn.request("POST", "/", body=body)
    assert response.body == _digest(body)
    messages = probe.messages[0]
    assert all(m["type"] == "http.request" for m in messages)
    assert messages[-1].get("more_body", False) is False
    assert all(isinstance(m.get("body", b""), bytes) for m in messages)


def test_request_without_body_gets_one_empty_message() -> None:
    probe = BodyProbe()
    with running_server(probe.app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.body == _digest(b"")
    (message,) = probe.messages[0]
    assert message["type"] == "http.request"
    assert message.get("body", b"") == b""
    assert message.get("more_body", False) is False


def test_chunked_body_is_decoded_with_extensions_and_trailers() -> None:
    probe = BodyProbe()
    raw = (
        b"POST /up HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b"1\r\n,\r\n"
        b"6\r\n world\r\n"
        b"0\r\nX-Checksum: abc\r\n\r\n"
    )
    with running_server(probe.app) as server, Conn.open(server) as conn:
        conn.send(raw)
        first = conn.read_response()
        # The connection is still usable: the chunked framing was consumed exactly.
        second = conn.request("POST", "/again", body=b"second")
    assert first.body == _digest(b"hello, world")
    assert second.body == _digest(b"second")


@pytest.mark.parametrize("loop", LOOPS)
def test_chunked_body_sent_in_tiny_pieces(loop: str) -> None:
    probe = BodyProbe()
    body = os.urandom(3000)
    raw = (
        b"POST / HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(*(body[i:i + 700] for i in range(0, len(body), 700)))
    )
    with running_server(probe.app, loop=loop) as server, Conn.open(server) as conn:
        # Small separate sends split the framing at arbitrary points.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for index in range(0, len(raw), 97):
            conn.send(raw[index:index + 97])
        response = conn.read_response()
    assert response.body == _digest(body)


@pytest.mark.parametrize("loop", LOOPS)
def test_large_upload_arrives_in_several_messages(loop: str) -> None:
    probe = BodyProbe()
    body = os.urandom(4 * MB)
    with running_server(probe.app, loop=loop) as server, Conn.open(server) as conn:
        response = conn.request("POST", "/upload", body=body)
    assert response.body == _digest(body)
    messages = probe.messages[0]
    assert len(messages) > 1, "a 4 MB body must be streamed, not delivered as one message"
    assert all(m.get("more_body") is True for m in messages[:-1])
    assert messages[-1].get("more_body", False) is False


def test_large_chunked_upload_arrives_in_several_messages() -> None:
    probe = BodyProbe()
    body = os.urandom(4 * MB)
    raw = (
        b"POST / HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(*(body[i:i + 65536] for i in range(0, len(body), 65536)))
    )
    with running_server(probe.app) as server, Conn.open(server) as conn:
        conn.send(raw)
        response = conn.read_response()
    assert response.body == _digest(body)
    assert len(probe.messages[0]) > 1


def test_body_reaches_the_app_before_the_client_finished_sending() -> None:
    first_part = threading.Event()
    received: list[bytes] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if body:
                first_part.set()
            if not message.get("more_body", False):
                break
        received.append(body)
        await respond(send, 200, b"done")

    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(build_request("POST", "/", headers=[("Content-Length", "10")]) + b"01234")
        # Only half the body was sent: the app must already have it.
        assert first_part.wait(5), "the first half of the body never reached the app"
        conn.send(b"56789")
        response = conn.read_response()
    assert response.status == 200
    assert received == [b"0123456789"]


@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_is_received_after_the_response_was_sent(loop: str) -> None:
    after: list[Message] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await respond(send, 200, b"ok")
        # The connection stays open (keep-alive), yet this request is over.
        after.append(await asyncio.wait_for(receive(), 5))

    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 200
        wait_until(lambda: after, message="the app's receive() after the response to return")
    assert after[0]["type"] == "http.disconnect"


@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_is_received_when_the_client_leaves(loop: str) -> None:
    waiting = threading.Event()
    after: list[Message] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        waiting.set()
        after.append(await receive())

    with running_server(app, loop=loop) as server:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/long-poll"))
            assert waiting.wait(5)
        # The client closed its socket without waiting for an answer.
        wait_until(lambda: after, message="http.disconnect after the client left")
        assert after[0]["type"] == "http.disconnect"


@pytest.mark.parametrize("loop", LOOPS)
def test_disconnect_is_received_when_the_client_leaves_mid_body(loop: str) -> None:
    got_part = threading.Event()
    messages: list[Message] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return
            if message.get("body"):
                got_part.set()

    with running_server(app, loop=loop) as server:
        with Conn.open(server) as conn:
            conn.send(build_request("POST", "/", headers=[("Content-Length", "1000")]) + b"x" * 10)
            assert got_part.wait(5)
        wait_until(lambda: messages and messages[-1]["type"] == "http.disconnect",
                   message="http.disconnect after the client left mid-body")
    assert sum(len(m.get("body", b"")) for m in messages) == 10


def test_unread_body_is_never_parsed_as_a_request() -> None:
    seen: list[str] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["path"])
        # Deliberately answers without reading the body.
        await respond(send, 200, b"answered")

    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: pier.test\r\n\r\n"
    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(build_request("POST", "/first", body=smuggled))
        first = conn.read_response()
        assert first.status == 200
        # Either the server closes this connection, or it skips the body and the next
        # request on it is the real one.
        try:
            conn.send(build_request("GET", "/second"))
            second = conn.read_response()
        except (ConnectionClosedEarly, OSError):
            second = None
        assert second is None or second.status == 200
    assert "/smuggled" not in seen, f"the body was served as a request: {seen}"


@pytest.mark.parametrize("loop", LOOPS)
def test_server_does_not_buffer_an_upload_the_app_does_not_read(loop: str) -> None:
    total = 50 * MB
    reached = threading.Event()
    gate = Gate()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.set()
        await gate.wait()
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await respond(send, 200, str(size).encode())

    chunk = memoryview(b"u" * 65536)
    with running_server(app, loop=loop) as server, Conn.open(server, timeout=20) as conn:
        try:
            conn.send(build_request("POST", "/", headers=[("Content-Length", str(total))]))
            assert reached.wait(5)
            sent = 0
            conn.sock.setblocking(False)
            while sent < total:
                try:
                    sent += conn.sock.send(chunk[: min(len(chunk), total - sent)])
                except BlockingIOError:
                    _, writable, _ = select.select([], [conn.sock], [], 0.5)
                    if not writable:
                        break  # nobody has read for half a second: the server paused
            # Kernel socket buffers on both ends hold a few MB at most; everything
            # beyond that would have to sit in the server's memory.
            assert sent < 20 * MB, f"the server accepted {sent // MB} MB nobody asked for"
        finally:
            gate.open()
        conn.sock.settimeout(20)
        while sent < total:
            size = min(len(chunk), total - sent)
            conn.sock.sendall(chunk[:size])
            sent += size
        response = conn.read_response()
    assert response.body == str(total).encode(), "the paused upload must resume intact"


@pytest.mark.parametrize("loop", LOOPS)
def test_streaming_response_waits_for_a_client_that_does_not_read(loop: str) -> None:
    total = 100 * MB
    piece = b"d" * 65536
    produced = [0]
    finished = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(total).encode())]})
        for _ in range(total // len(piece)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
            produced[0] += len(piece)
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    with running_server(app, loop=loop) as server, Conn.open(server, timeout=30) as conn:
        # A small client receive buffer keeps what the kernel absorbs small.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        conn.send(build_request("GET", "/big"))
        wait_until(lambda: produced[0] > 0, message="the app to start streaming")
        # Wait until the app's progress stalls (or it finishes, which is the failure).
        deadline = time.monotonic() + 10
        last, still_since = -1, time.monotonic()
        while not finished.is_set():
            now = time.monotonic()
            if produced[0] != last:
                last, still_since = produced[0], now
            elif now - still_since > 0.3:
                break
            assert now < deadline, "the app kept producing for 10 s"
            time.sleep(0.01)
        assert not finished.is_set(), "send() never waited: 100 MB went into server memory"
        assert produced[0] < 30 * MB, f"{produced[0] // MB} MB were accepted from the app"
        response = conn.read_response()
    assert len(response.body) == total
    assert finished.wait(5)
