"""The holes a hostile client found (issue 10), each sent over a real socket.

Pins: RFC 9110 section 7.8 (a server may ignore Upgrade, and must in HTTP/1.0: an
upgrade pier does not perform is an ordinary request, body included, and no request is
ever read from bytes that were a body), 9.3.6 (CONNECT has no content; pier tunnels
nothing), 6.5.1-6.5.2 (trailer fields: never merged into the header section, framing
and routing fields refused), RFC 9112 section 6.1 (Transfer-Encoding in HTTP/1.0 is
faulty framing), 3.2.2 (absolute-form: the target's authority replaces Host), 3.2.4 (the
asterisk target is for OPTIONS only), section 3 with RFC 3986 section 2.1 (bytes outside
printable ASCII in a target are refused, saying why), RFC 9110 section 5.3 (duplicates of
singleton fields a proxy and an app could read differently are refused), RFC 6455 section
4.1 (a WebSocket handshake is an HTTP/1.1 GET without content; nothing pipelined behind
it is read as HTTP). Time limits on the app's side: --timeout-send (a client that takes
none of the response is cut off; the ASGI HTTP spec's send() raises OSError and receive()
returns http.disconnect), --timeout-response-start (504, the app task cancelled), and the
requests a graceful shutdown cut are named. docs/security.md says what pier refuses and why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from pier.types import Receive, Scope, Send
from tests.e2e._support import (
    Conn,
    Recorder,
    assert_serves,
    build_request,
    capture_logs,
    chunked,
    http_app,
    parse_all,
    read_body,
    respond,
    status_of,
    wait_until,
)
from tests.helpers import RunningServer, recv_until_closed, running_server

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: pier.test\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: pier.test\r\n\r\n"
WS_HEADERS = (
    b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
)


class Site(Recorder):
    """Recorder for HTTP; WebSocket handshakes are accepted (or denied at /deny)."""

    def __init__(self) -> None:
        super().__init__()
        self.websockets: list[str] = []
        http = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await http(scope, receive, send)
                return
            self.websockets.append(scope["path"])
            await receive()
            if scope["path"] == "/deny":
                await send({"type": "websocket.close"})
                return
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass

        self.app = app

    def clear(self) -> None:
        """Forget what earlier tests sent, so one test's leak cannot fail the next."""
        self.scopes.clear()
        self.bodies.clear()
        self.websockets.clear()


@pytest.fixture(scope="module")
def site_server() -> Iterator[tuple[RunningServer, Site]]:
    recorder = Site()
    with running_server(recorder.app) as server:
        yield server, recorder


@pytest.fixture
def site(site_server: tuple[RunningServer, Site]) -> tuple[RunningServer, Site]:
    site_server[1].clear()
    return site_server


@pytest.fixture(scope="module")
def site_without_ws() -> Iterator[tuple[RunningServer, Site]]:
    recorder = Site()
    with running_server(recorder.app, ws="none") as server:
        yield server, recorder


def _exchange(server: RunningServer, raw: bytes, timeout: float = 5.0) -> bytes:
    """Send `raw`, half-close, and return all the server sent until it closed."""
    with Conn.open(server) as conn:
        with contextlib.suppress(OSError):
            conn.send(raw)
            conn.sock.shutdown(socket.SHUT_WR)
        return conn.wait_closed(timeout)


def _refused(server: RunningServer, raw: bytes, status: int) -> bytes:
    data = _exchange(server, raw)
    assert data, "closed without an answer"
    assert status_of(data) == status, data[:300]
    assert data.count(b"HTTP/1.1 ") == 1, f"more than one response: {data[:500]!r}"
    assert_serves(server)
    return data


# --- 1. smuggling through an upgrade pier does not perform ------------------------------


def _upgrade_post(version: bytes, token: bytes, body: bytes, *, is_chunked: bool) -> bytes:
    framing = (b"Transfer-Encoding: chunked\r\n" if is_chunked
               else b"Content-Length: %d\r\n" % len(body))
    host = b"Host: pier.test\r\n" if version == b"HTTP/1.1" else b""
    return (b"POST /a " + version + b"\r\n" + host + b"Connection: Upgrade\r\nUpgrade: "
            + token + b"\r\n" + framing + b"\r\n" + (chunked(body) if is_chunked else body))


UNPERFORMED = {
    "h2c-content-length": (b"HTTP/1.1", b"h2c", False),
    "h2c-chunked": (b"HTTP/1.1", b"h2c", True),
    "unknown-token": (b"HTTP/1.1", b"foo/2", False),
}


@pytest.mark.parametrize(("version", "token", "is_chunked"), UNPERFORMED.values(),
                         ids=UNPERFORMED.keys())
def test_an_upgrade_not_performed_is_an_ordinary_request_with_its_body(
        site: tuple[RunningServer, Site], version: bytes, token: bytes,
        is_chunked: bool) -> None:
    server, recorder = site
    with Conn.open(server) as conn:
        # The body looks like a request; a legitimate request follows it.
        conn.send(_upgrade_post(version, token, SMUGGLED, is_chunked=is_chunked) + NEXT)
        first = conn.read_response()
        second = conn.read_response()
    assert (first.status, second.status) == (200, 200)
    assert "/smuggled" not in recorder.paths
    index = recorder.paths.index("/a")
    assert recorder.bodies[index] == SMUGGLED  # the app got the body, whole
    assert recorder.paths[index + 1] == "/next"


def test_any_upgrade_with_ws_none_is_an_ordinary_request_with_its_body(
        site_without_ws: tuple[RunningServer, Site]) -> None:
    server, recorder = site_without_ws
    head = b"GET /a HTTP/1.1\r\nHost: pier.test\r\n" + WS_HEADERS
    with Conn.open(server) as conn:
        conn.send(head + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED + NEXT)
        assert conn.read_response().status == 200
        assert conn.read_response().status == 200
    assert "/smuggled" not in recorder.paths
    assert recorder.bodies[recorder.paths.index("/a")] == SMUGGLED


def test_an_upgrade_on_http_1_0_is_ignored_and_its_body_read(
        site: tuple[RunningServer, Site]) -> None:
    # RFC 9110 section 7.8: "A server MUST ignore an Upgrade header field that is
    # received in an HTTP/1.0 request." Not kept alive: nothing after it is read.
    server, recorder = site
    raw = _upgrade_post(b"HTTP/1.0", b"websocket", SMUGGLED, is_chunked=False) + SMUGGLED
    responses = parse_all(_exchange(server, raw))
    assert [r.status for r in responses] == [200]
    assert "/smuggled" not in recorder.paths
    assert recorder.bodies[recorder.paths.index("/a")] == SMUGGLED


def test_connect_with_content_is_refused(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    raw = (b"CONNECT pier.test:443 HTTP/1.1\r\nHost: pier.test:443\r\n"
           b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    _refused(server, raw, 400)
    assert "/smuggled" not in recorder.paths


def test_nothing_after_a_connect_head_is_read_as_http(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    raw = b"CONNECT pier.test:443 HTTP/1.1\r\nHost: pier.test:443\r\n\r\n" + SMUGGLED
    responses = parse_all(_exchange(server, raw))
    assert len(responses) == 1 and not responses[0].keeps_alive
    assert "/smuggled" not in recorder.paths


# --- WebSocket handshake siblings -------------------------------------------------------


@pytest.mark.parametrize("method", [b"GET", b"POST"])
def test_a_websocket_handshake_with_a_body_is_refused(
        site: tuple[RunningServer, Site], method: bytes) -> None:
    server, recorder = site
    raw = (method + b" /ws-body HTTP/1.1\r\nHost: pier.test\r\n" + WS_HEADERS
           + b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED)
    _refused(server, raw, 400)
    assert "/ws-body" not in recorder.websockets
    assert "/smuggled" not in recorder.paths


def test_a_websocket_handshake_on_http_1_0_is_plain_http(
        site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    raw = b"GET /ws-old HTTP/1.0\r\n" + WS_HEADERS + b"\r\n"
    responses = parse_all(_exchange(server, raw))
    assert [r.status for r in responses] == [200]
    assert "/ws-old" in recorder.paths and "/ws-old" not in recorder.websockets


@pytest.mark.parametrize("path", ["/accept", "/deny"])
def test_a_request_pipelined_behind_a_handshake_is_never_served(
        site: tuple[RunningServer, Site], path: str) -> None:
    server, recorder = site
    raw = b"GET " + path.encode() + b" HTTP/1.1\r\nHost: pier.test\r\n" + WS_HEADERS + b"\r\n"
    data = _exchange(server, raw + SMUGGLED)
    assert status_of(data) == (101 if path == "/accept" else 403)
    assert data.count(b"HTTP/1.1 ") == 1
    assert "/smuggled" not in recorder.paths


# --- 2. trailers: bounded, never in the scope, framing fields refused --------------------

CHUNKED_HEAD = b"POST /t HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_trailer_fields_never_reach_the_scope(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    with Conn.open(server) as conn:
        conn.send(CHUNKED_HEAD.replace(b"/t", b"/trailed")
                  + chunked(b"hello", trailers=b"X-Checksum: abc\r\nX-Other: 1\r\n"))
        assert conn.read_response().status == 200
        # Kept alive: the trailer section was consumed exactly.
        assert conn.request("GET", "/after-trailers").status == 200
    scope = recorder.scopes[recorder.paths.index("/trailed")]
    names = [name for name, _ in scope["headers"]]
    assert names == [b"host", b"transfer-encoding"]


@pytest.mark.parametrize("field", [b"Host: evil.example.com", b"Content-Length: 5",
                                   b"Transfer-Encoding: chunked", b"Connection: close",
                                   b"Upgrade: h2c"])
def test_framing_and_routing_fields_in_trailers_are_refused(
        site: tuple[RunningServer, Site], field: bytes) -> None:
    server, recorder = site
    before = len(recorder.scopes)
    raw = CHUNKED_HEAD + chunked(b"hello", trailers=field + b"\r\n") + SMUGGLED
    _refused(server, raw, 400)
    assert "/smuggled" not in recorder.paths
    for scope in recorder.scopes[before:]:
        assert [n for n, _ in scope["headers"]].count(b"host") == 1


@pytest.fixture(scope="module")
def limited() -> Iterator[RunningServer]:
    with running_server(Recorder().app, limit_request_fields=20,
                        limit_request_head_size=4096) as server:
        yield server


def test_trailer_fields_count_against_the_field_limit(limited: RunningServer) -> None:
    trailers = b"".join(b"X-T%d: v\r\n" % index for index in range(20))
    _refused(limited, CHUNKED_HEAD + chunked(b"hello", trailers=trailers), 431)


def test_trailer_bytes_count_against_the_head_size_limit(limited: RunningServer) -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (index, b"v" * 500) for index in range(9))
    _refused(limited, CHUNKED_HEAD + chunked(b"hello", trailers=trailers), 431)


def test_an_endless_trailer_value_is_cut_off_before_it_ends(limited: RunningServer) -> None:
    # One trailer value that never ends: llhttp buffers it (and once joined it over and
    # over, quadratic in its length); the read-byte backstop stops it.
    with Conn.open(limited) as conn:
        conn.send(CHUNKED_HEAD + b"5\r\nhello\r\n0\r\nX-Endless: ")
        sent = 0
        started = time.monotonic()
        with contextlib.suppress(OSError):
            while sent < 16 * 1024 * 1024 and conn.nothing_arrives_within(0):
                conn.send(b"v" * 65536)
                sent += 65536
        data = conn.wait_closed()
    assert status_of(data) == 431, data[:200]
    assert sent < 8 * 1024 * 1024, f"{sent} trailer bytes were taken in"
    assert time.monotonic() - started < 5
    assert_serves(limited)


# --- 3. Transfer-Encoding in HTTP/1.0 ----------------------------------------------------


def test_transfer_encoding_in_http_1_0_is_refused(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    raw = (b"POST /te10 HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n"
           b"\r\n" + chunked(b"hello") + SMUGGLED)
    _refused(server, raw, 400)
    assert "/te10" not in recorder.paths and "/smuggled" not in recorder.paths


# --- 4. the asterisk target; absolute-form ----------------------------------------------


def test_asterisk_target_is_refused_for_anything_but_options(
        site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    _refused(server, b"GET * HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400)
    with Conn.open(server) as conn:
        assert conn.request("OPTIONS", "*").status == 200
    assert recorder.scopes[-1]["method"] == "OPTIONS"
    assert recorder.scopes[-1]["path"] == "*"


def test_absolute_form_target_authority_replaces_host(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    with Conn.open(server) as conn:
        conn.send(b"GET http://other.test:8080/abs?q=1 HTTP/1.1\r\nHost: pier.test\r\n\r\n")
        assert conn.read_response().status == 200
    scope = recorder.scopes[recorder.paths.index("/abs")]
    assert scope["query_string"] == b"q=1"
    assert [v for n, v in scope["headers"] if n == b"host"] == [b"other.test:8080"]


# --- 5. duplicate singleton fields -------------------------------------------------------


@pytest.mark.parametrize("name", ["Content-Type", "Authorization", "Host"])
def test_a_duplicate_singleton_field_is_refused(
        site: tuple[RunningServer, Site], name: str) -> None:
    server, recorder = site
    raw = build_request("POST", "/dup", headers=[
        ("Host", "pier.test"), (name, "a/b"), (name, "c/d")], body=b"{}")
    data = _refused(server, raw, 400)
    assert name.lower().encode() in data.lower()
    assert "/dup" not in recorder.paths


def test_duplicates_of_list_fields_are_passed_on(site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    with Conn.open(server) as conn:
        response = conn.request("GET", "/accept-twice",
                                headers=[("Accept", "text/html"), ("Accept", "*/*")])
    assert response.status == 200
    scope = recorder.scopes[recorder.paths.index("/accept-twice")]
    assert [v for n, v in scope["headers"] if n == b"accept"] == [b"text/html", b"*/*"]


# --- 6. bytes outside ASCII in the target -----------------------------------------------


def test_a_raw_non_ascii_byte_in_the_target_is_refused_saying_why(
        site: tuple[RunningServer, Site]) -> None:
    server, _ = site
    data = _refused(server, b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400)
    assert b"percent-encoded" in data


def test_an_undecodable_escape_is_u_fffd_in_path_and_kept_in_raw_path(
        site: tuple[RunningServer, Site]) -> None:
    server, recorder = site
    with Conn.open(server) as conn:
        assert conn.request("GET", "/bytes/%FF").status == 200
    scope = recorder.scopes[-1]
    assert scope["path"] == "/bytes/\ufffd"
    assert scope["raw_path"] == b"/bytes/%FF"


def test_keep_alive_requests_are_unaffected(site: tuple[RunningServer, Site]) -> None:
    server, _ = site
    with Conn.open(server) as conn:
        for index in range(3):
            assert conn.request("POST", f"/k{index}", body=b"x" * index).status == 200


# --- 9. slow readers: --timeout-send ------------------------------------------------------


def test_a_client_that_reads_nothing_is_cut_off_after_the_send_timeout() -> None:
    # Issue 10: ten clients reading at 1 byte/s were held forever, each pinning the
    # app's chunk. The app's pending send() raises (ASGI: OSError) and receive() says
    # http.disconnect; the log says why.
    seen: dict[str, object] = {}
    done = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send({"type": "http.response.body", "body": b"x" * (1 << 20),
                            "more_body": True})
        except OSError as exc:
            seen["send"] = exc
            seen["receive"] = await receive()
            done.set()

    with capture_logs() as logs, \
            running_server(http_app(handler), timeout_send=0.5) as server:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((server.host, server.port))
        with client:
            client.sendall(build_request("GET", "/slow-reader"))
            started = time.monotonic()
            assert done.wait(10), "the app's send() never gave up on a client that reads nothing"
            elapsed = time.monotonic() - started
            assert isinstance(seen["send"], OSError)
            assert seen["receive"] == {"type": "http.disconnect"}
            logs.wait_for("--timeout-send", "/slow-reader", level=logging.WARNING)
            # Gone on the server's side while the client still reads nothing: what was
            # buffered for it is dropped, not kept until it reads.
            wait_until(lambda: not server.server.ctx.connections, message="connection gone")
            recv_until_closed(client)  # closed: reading ends (reset or EOF), it does not hang
        assert 0.4 < elapsed < 5, elapsed


def test_a_client_that_reads_slowly_but_steadily_is_served() -> None:
    body = b"y" * (2 << 20)

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, body)

    with running_server(http_app(handler), timeout_send=2) as server, \
            Conn.open(server) as conn:
        assert conn.request("GET", "/big").body == body


# --- 10. an app that never answers --------------------------------------------------------


def test_an_app_that_never_starts_its_response_gets_504_and_is_cancelled() -> None:
    cancelled = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with capture_logs() as logs, \
            running_server(http_app(handler), timeout_response_start=0.3) as server, \
            Conn.open(server) as conn:
        started = time.monotonic()
        response = conn.request("GET", "/stuck")
        assert response.status == 504
        assert time.monotonic() - started < 3
        assert cancelled.wait(5), "the app's task was not cancelled"
        logs.wait_for("--timeout-response-start", "/stuck", level=logging.WARNING)


def test_requests_cut_by_the_graceful_shutdown_timeout_are_named_in_the_log() -> None:
    started = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await asyncio.Event().wait()

    with capture_logs() as logs:
        with running_server(http_app(handler), timeout_graceful_shutdown=0.3) as server:
            conn = Conn.open(server)
            conn.send(build_request("GET", "/never-answers"))
            assert started.wait(5)
        conn.sock.close()
        line = logs.wait_for("graceful shutdown", "/never-answers", level=logging.WARNING)
    assert "GET /never-answers from 127.0.0.1:" in line
