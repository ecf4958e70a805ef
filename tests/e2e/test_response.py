"""What the app sends becomes a correctly framed HTTP/1.1 response, or a clear error.

Pins: ASGI HTTP spec, "Response Start - send event" and "Response Body - send event"
(message order, field types, more_body streaming), "Extensions": "HTTP Trailers"
(http.response.trailers after response.start with trailers=True) and "Path Send"
(http.response.pathsend); RFC 9112 section 6.3 (message length: Content-Length or
chunked, close-delimited for HTTP/1.0), section 7.1 (chunked coding, trailer section);
RFC 9110 section 9.3.2 (HEAD: same header fields as GET, no content), section 15.3.5
(204) and 15.4.5 (304): no content; RFC 9110 section 8.6 (a body longer or shorter than
its Content-Length is an incomplete or invalid message, never a corrupt stream);
RFC 9110 section 15.6.1 (500 when the app fails before answering); RFC 9110 section 5.5
(field values never carry CR or LF, so an app cannot inject header lines).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from pier.io.connection import WRITE_HIGH_WATER
from pier.types import Receive, Scope, Send
from tests.e2e._support import (
    LOOPS,
    Conn,
    ConnectionClosedEarly,
    Gate,
    assert_serves,
    broken_app,
    build_request,
    capture_logs,
    http_app,
    read_body,
    respond,
    status_of,
)
from tests.helpers import running_server


def _head_and_rest(data: bytes) -> tuple[bytes, bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    return head, rest


def test_status_headers_and_body() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 201, "headers": [
            (b"content-type", b"application/json"), (b"x-multi", b"1"), (b"x-multi", b"2"),
            (b"content-length", b"11"),
        ]})
        await send({"type": "http.response.body", "body": b'{"id": 42}\n'})

    with running_server(app) as server, Conn.open(server) as conn:
        response = conn.request("POST", "/items", body=b"{}")
    assert response.status == 201
    assert response.header("content-type") == "application/json"
    assert response.header_list("x-multi") == ["1", "2"]
    assert response.body == b'{"id": 42}\n'


def test_single_body_without_length_is_framed_and_keeps_the_connection() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"no length given"})

    with running_server(app) as server, Conn.open(server) as conn:
        first = conn.request("GET", "/")
        second = conn.request("GET", "/")
    assert first.body == second.body == b"no length given"


@pytest.mark.parametrize("loop", LOOPS)
def test_streaming_without_length_is_chunked_and_incremental(loop: str) -> None:
    gate = Gate()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first,", "more_body": True})
        await gate.wait()
        await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        try:
            conn.send(build_request("GET", "/stream"))
            head = conn.read_head()
            assert head.header("transfer-encoding") == "chunked"
            assert head.header("content-length") is None
            # The first piece arrives while the app is still producing the rest.
            assert conn.read_chunk() == b"first,"
        finally:
            gate.open()
        rest = b""
        while chunk := conn.read_chunk():
            rest += chunk
        assert rest == b"second"
        assert conn.read_line("the end of the chunked body") == b""
        # The connection is reusable after the zero-length chunk.
        assert conn.request("GET", "/stream").body == b"first,second"


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("path", ["/stream", "/large"])
def test_a_streamed_or_large_response_gets_pier_s_write_mark_a_small_one_needs_none(
    loop: str, path: str,
) -> None:
    # A streaming app waits in send() only once the transport holds WRITE_HIGH_WATER
    # bytes. Setting that mark costs every connection (~700 instructions, issue 13), so
    # it is set at the first response that can fill the buffer: a connection that only
    # sends small, complete responses keeps the transport's default.
    large = b"L" * (64 * 1024)

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/stream":
            await send({"type": "http.response.body", "body": b"piece", "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body",
                        "body": large if scope["path"] == "/large" else b"piece"})

    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        ctx = server.server.ctx
        assert ctx is not None

        def high_mark() -> int:
            (connection,) = list(ctx.connections)
            return int(connection.transport.get_write_buffer_limits()[1])

        assert conn.request("GET", "/small").body == b"piece"
        assert high_mark() != WRITE_HIGH_WATER
        assert conn.request("GET", path).body == (large if path == "/large" else b"piece")
        assert high_mark() == WRITE_HIGH_WATER


@pytest.mark.parametrize("loop", LOOPS)
def test_large_streamed_pieces_arrive_whole_and_in_order(loop: str) -> None:
    # Pieces past the connection's UNJOINED_WRITE mark are written as separate
    # buffers (writelines) instead of one framed copy; the client sees the same chunks.
    pieces = [bytes([65 + i]) * (64 * 1024 + i) for i in range(4)]

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": pieces[0]})

    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        conn.send(build_request("GET", "/"))
        assert conn.read_head().header("transfer-encoding") == "chunked"
        received = []
        while chunk := conn.read_chunk():
            received.append(chunk)
        assert received == [*pieces, pieces[0]]
        assert conn.read_line("the end of the chunked body") == b""
        assert conn.request("GET", "/").body == b"".join([*pieces, pieces[0]])


def _write_syscalls(thread: threading.Thread) -> int:
    """write/writev syscalls a thread has made (its task's syscw; send/sendmsg, which
    the standard loop uses, are not counted there: uvloop writes with writev)."""
    io = Path(f"/proc/self/task/{thread.native_id}/io").read_text()
    return int(io.split("syscw:")[1].split()[0])


@pytest.mark.parametrize(("size", "count"), [(1024, 16), (32 * 1024, 4)])
def test_pieces_streamed_in_one_go_are_written_in_one_go(size: int, count: int) -> None:
    # An app that streams without yielding between sends (the transport takes it all)
    # has its pieces written together at the end of the loop's turn: one writev, not
    # one per send() (issue 13: the server's kernel time; a 64 KiB piece with its chunk
    # framing was a syscall and two TCP segments of its own).
    pieces = [bytes([65 + i]) * size for i in range(count)]

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in pieces:
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    pytest.importorskip("uvloop", reason="counts uvloop's writev calls")
    with running_server(app, loop="uvloop") as server, Conn.open(server) as conn:
        assert conn.request("GET", "/").body == b"".join(pieces)
        before = _write_syscalls(server.thread)
        response = conn.request("GET", "/")
        writes = _write_syscalls(server.thread) - before
    assert response.body == b"".join(pieces)
    assert writes == 1, f"{count} pieces took {writes} write syscalls"


def test_http_1_0_streaming_response_is_close_delimited() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(b"GET / HTTP/1.0\r\n\r\n")
        data = conn.wait_closed()
    head, body = _head_and_rest(data)
    assert b"chunked" not in head.lower(), "HTTP/1.0 clients do not understand chunked"
    assert body == b"one two three"


def test_body_longer_than_content_length_is_an_app_error_not_a_corrupt_stream() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"0123456789"})

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken"))
            data = conn.wait_closed()
        head, rest = _head_and_rest(data)
        status = status_of(head)
        assert status in (200, 500)
        if status == 200:
            assert len(rest) <= 5, f"bytes beyond the declared length were sent: {rest!r}"
        logs.wait_for("content-length")
        assert_serves(server)


def test_streamed_body_overrunning_content_length_stops_at_the_declared_length() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"defg", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken") + build_request("GET", "/next"))
            data = conn.wait_closed()
        head, rest = _head_and_rest(data)
        assert status_of(head) == 200
        assert rest.startswith(b"abc")
        assert len(rest) <= 5, f"bytes beyond the declared length were sent: {rest!r}"
        logs.wait_for("content-length")


def test_body_shorter_than_content_length_closes_the_connection() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"abcd"})

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken"))
            # The client must learn the response is incomplete: the server closes.
            data = conn.wait_closed()
        head, rest = _head_and_rest(data)
        if status_of(head) == 200:
            assert rest == b"abcd"
        logs.wait_for("content-length")
        assert_serves(server)


def _get_and_head_app() -> Any:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"text/plain"), (b"content-length", b"13"), (b"etag", b'"v1"'),
        ]})
        await send({"type": "http.response.body", "body": b"hello, world!"})

    return app


def test_head_has_the_get_headers_and_no_body() -> None:
    with running_server(_get_and_head_app()) as server, Conn.open(server) as conn:
        get = conn.request("GET", "/")
        head = conn.request("HEAD", "/")
        # If the HEAD response leaked body bytes, this response would not parse.
        after = conn.request("GET", "/")
    assert head.status == 200
    assert head.body == b""
    assert after.body == get.body == b"hello, world!"

    def comparable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [(n, v) for n, v in headers if n != "date"]

    assert comparable(head.headers) == comparable(get.headers)


def test_head_of_a_streamed_response_sends_no_body_bytes() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part one", "more_body": True})
        await send({"type": "http.response.body", "body": b"part two"})

    with running_server(app) as server, Conn.open(server) as conn:
        head = conn.request("HEAD", "/")
        after = conn.request("GET", "/")
    assert head.status == 200
    assert after.body == b"part onepart two"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses_send_no_body(status: int) -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"etag", b'"v1"')]})
        await send({"type": "http.response.body", "body": b""})

    with running_server(app) as server, Conn.open(server) as conn:
        first = conn.request("GET", "/")
        # A stray chunk terminator or body would corrupt the next response.
        second = conn.request("GET", "/")
    for response in (first, second):
        assert response.status == status
        assert response.header("transfer-encoding") is None
    if status == 204:
        assert first.header("content-length") is None, "204 must not carry Content-Length"


def test_body_before_start_is_a_500_naming_both_messages() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.body", "body": b"too early"})

    with running_server(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        response = conn.request("GET", "/broken")
        assert response.status == 500
        assert b"too early" not in response.body
        logs.wait_for("http.response.start", "http.response.body")
        assert_serves(server)


def test_start_twice_is_an_error_naming_both_messages() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 404, "headers": []})

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken"))
            try:
                response = conn.read_response()
                # Nothing was on the wire yet: a clean 500.
                assert response.status == 500
            except ConnectionClosedEarly as closed:
                # The first head was already sent: the only honest signal is a close
                # before the body is complete.
                assert status_of(closed.received) == 200
        logs.wait_for("http.response.start", "http.response.body")
        assert_serves(server)


def test_send_after_the_response_completed_raises_and_is_logged() -> None:
    raised: list[BaseException] = []

    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"complete")
        try:
            await send({"type": "http.response.body", "body": b"extra"})
        except Exception as exc:
            raised.append(exc)
            raise

    with running_server(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        response = conn.request("GET", "/broken")
        assert response.status == 200
        assert response.body == b"complete"
        logs.wait_for("http.response.body")
        assert raised, "send() after the response completed must raise"
        # No stray bytes follow the complete response.
        assert conn.buffer == b""
        assert_serves(server)


def test_status_of_the_wrong_type_is_a_500_naming_the_field() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": "200", "headers": []})
        await send({"type": "http.response.body", "body": b"x"})

    with running_server(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        assert conn.request("GET", "/broken").status == 500
        logs.wait_for("status")


def test_body_of_the_wrong_type_is_an_error_naming_the_field() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": "text, not bytes"})

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken"))
            try:
                assert conn.read_response().status == 500
            except ConnectionClosedEarly as closed:
                assert status_of(closed.received) == 200
                assert b"text, not bytes" not in closed.received
        logs.wait_for("body")
        assert_serves(server)


def test_header_injection_through_a_response_header_is_refused() -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-redirect", b"/ok\r\nSet-Cookie: stolen=1")]})
        await send({"type": "http.response.body", "body": b"x"})

    with running_server(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        response = conn.request("GET", "/broken")
        assert response.status == 500
        assert response.header("set-cookie") is None
        logs.wait_for("header")


def test_app_exception_is_a_500_and_the_server_keeps_serving() -> None:
    calls: list[str] = []

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["path"])
        if scope["path"] == "/boom":
            raise RuntimeError("kaboom from the app")
        await respond(send, 200, b"fine")

    with running_server(app) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            response = conn.request("GET", "/boom")
            assert response.status == 500
            assert b"kaboom" not in response.body, "exception details must not leak to clients"
        logs.wait_for("kaboom from the app")
        assert assert_serves(server, "/after").body == b"fine"
    assert calls == ["/boom", "/after"]


@pytest.mark.parametrize("loop", LOOPS)
def test_app_exception_after_the_response_started_closes_the_connection(loop: str) -> None:
    @broken_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("failed half way")

    with running_server(app, loop=loop) as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/broken"))
            with pytest.raises(ConnectionClosedEarly) as closed:
                conn.read_response()
        # A chunk terminator would make the truncated body look complete.
        assert not closed.value.received.endswith(b"0\r\n\r\n")
        logs.wait_for("failed half way")
        assert_serves(server)


def test_sync_app_returning_none_is_a_500_with_a_clear_log() -> None:
    def app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with running_server(app, lifespan="off") as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            assert conn.request("GET", "/").status == 500
        logs.wait_for(("awaitable", "coroutine", "await"))
        with Conn.open(server) as conn:
            assert conn.request("GET", "/").status == 500


def test_app_returning_without_a_response_is_a_500() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)

    with running_server(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 500
        logs.wait_for(("http.response.start", "response"))


def _trailer_app() -> Any:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        use_trailers = "http.response.trailers" in scope.get("extensions", {}) and any(
            name == b"te" and b"trailers" in value for name, value in scope["headers"]
        )
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"trailer", b"x-checksum")] if use_trailers else [],
                    "trailers": use_trailers})
        await send({"type": "http.response.body", "body": b"payload", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        if use_trailers:
            await send({"type": "http.response.trailers",
                        "headers": [(b"x-checksum", b"abc123")], "more_trailers": False})

    return app


def test_trailers_reach_a_client_that_accepts_them() -> None:
    with running_server(_trailer_app()) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/", headers=[("TE", "trailers")])
        assert response.chunked
        assert response.body == b"payload"
        assert response.trailers == [("x-checksum", "abc123")]
        assert conn.request("GET", "/").body == b"payload"


def test_no_trailers_for_a_client_that_did_not_ask() -> None:
    with running_server(_trailer_app()) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.body == b"payload"
    assert response.trailers == []


def _pathsend_app(path: Path, *, with_length: bool) -> Any:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/octet-stream")]
        if with_length:
            headers.append((b"content-length", str(path.stat().st_size).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(path)})

    return app


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("with_length", [True, False])
def test_pathsend_serves_the_file(tmp_path: Path, with_length: bool, loop: str) -> None:
    path = tmp_path / "payload.bin"
    content = os.urandom(300_000)
    path.write_bytes(content)
    with running_server(_pathsend_app(path, with_length=with_length), loop=loop) as server, \
            Conn.open(server) as conn:
        first = conn.request("GET", "/file")
        second = conn.request("GET", "/file")
    assert first.status == 200
    assert first.body == content
    assert second.body == content


def test_many_small_streamed_pieces_arrive_in_order() -> None:
    done = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(500):
            await send({"type": "http.response.body", "body": b"%d," % index,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})
        done.set()

    with running_server(app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.body == b"".join(b"%d," % i for i in range(500)) + b"end"
    assert done.is_set()
