"""Connection management of HTTP/1.1: persistence, pipelining, 100-continue, HTTP/1.0, and
the headers the server adds.

Pins: RFC 9112 section 9.3 (persistent connections: HTTP/1.1 keeps alive by default,
HTTP/1.0 only with "Connection: keep-alive"), 9.3.2 (pipelining: responses in request
order), 9.6 ("Connection: close" ends the connection after that response; nothing after
it is served); RFC 9110 section 10.1.1 (Expect: 100-continue: an interim 100 only when
the body is wanted, never to HTTP/1.0); RFC 9110 section 6.6.1 (Date, IMF-fixdate per
5.6.7) and 10.2.4 (Server); RFC 9110 section 15.6.4 (503 when over capacity). The idle
keep-alive timeout, the --header option and --limit-concurrency are pier options that
follow uvicorn's names and meaning.
"""

from __future__ import annotations

import email.utils
import gc
import logging
import re
import select
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from pier.types import Receive, Scope, Send
from tests.e2e._support import (
    LOOPS,
    Conn,
    Gate,
    Recorder,
    build_request,
    capture_logs,
    http_app,
    parse_all,
    read_body,
    respond,
    wait_until,
)
from tests.helpers import running_server


@http_app
async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers "METHOD PATH:BODY" with a Content-Length."""
    body, _ = await read_body(receive)
    await respond(send, 200, f"{scope['method']} {scope['path']}:".encode() + body)


def test_keep_alive_serves_two_requests_on_one_connection() -> None:
    recorder = Recorder()
    with running_server(recorder.app) as server, Conn.open(server) as conn:
        first = conn.request("GET", "/one")
        second = conn.request("POST", "/two", body=b"data")
    assert first.status == second.status == 200
    assert first.keeps_alive
    assert recorder.paths == ["/one", "/two"]
    assert recorder.scopes[0]["client"] == recorder.scopes[1]["client"], "not the same connection"
    assert recorder.bodies == [b"", b"data"]


@pytest.mark.parametrize("loop", LOOPS)
def test_idle_keep_alive_connection_is_closed_after_the_timeout(loop: str) -> None:
    with running_server(echo_app, timeout_keep_alive=0.3, loop=loop) as server, \
            Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=5) == b""
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 3, f"closed after {elapsed:.2f} s, keep-alive timeout is 0.3 s"


def test_zero_keep_alive_timeout_closes_an_idle_connection_at_once() -> None:
    with running_server(echo_app, timeout_keep_alive=0) as server, Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 200
        started = time.monotonic()
        assert conn.wait_closed(timeout=5) == b""
        elapsed = time.monotonic() - started
        assert elapsed < 1, f"closed after {elapsed:.2f} s, keep-alive timeout is 0"
        with Conn.open(server) as again:
            assert again.request("GET", "/next").status == 200


def test_every_idle_connection_times_out_while_a_busy_one_is_kept() -> None:
    gate = Gate()
    waiting = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            waiting.set()
            await gate.wait()
        await respond(send, 200, b"done")

    with running_server(app, timeout_keep_alive=0.3) as server:
        idle = [Conn.open(server) for _ in range(20)]
        try:
            for conn in idle:
                assert conn.request("GET", "/").status == 200
            with Conn.open(server) as busy:
                busy.send(build_request("GET", "/slow"))
                try:
                    assert waiting.wait(5)
                    started = time.monotonic()
                    for conn in idle:
                        assert conn.wait_closed(timeout=5) == b""
                    assert time.monotonic() - started < 3
                    assert busy.nothing_arrives_within(0.2), "the busy connection was cut"
                finally:
                    gate.open()
                assert busy.read_response().body == b"done"
        finally:
            for conn in idle:
                conn.sock.close()


def test_keep_alive_timeout_does_not_cut_a_slow_request() -> None:
    gate = Gate()
    waiting = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        waiting.set()
        await gate.wait()
        await respond(send, 200, b"slow but complete")

    with running_server(app, timeout_keep_alive=0.2) as server, Conn.open(server) as conn:
        try:
            conn.send(build_request("GET", "/"))
            assert waiting.wait(5)
            # Longer than the keep-alive timeout: the connection is busy, not idle.
            assert conn.nothing_arrives_within(0.5)
        finally:
            gate.open()
        assert conn.read_response().body == b"slow but complete"


@pytest.mark.parametrize("loop", LOOPS)
def test_pipelined_requests_are_answered_in_order(loop: str) -> None:
    gate = Gate()
    first_in_app = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        body, _ = await read_body(receive)
        if scope["path"] == "/slow":
            first_in_app.set()
            await gate.wait()
        await respond(send, 200, f"{scope['method']} {scope['path']}:".encode() + body)

    burst = (
        build_request("GET", "/slow")
        + build_request("POST", "/echo", body=b"pipelined body")
        + b"POST /chunked HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"3\r\nabc\r\n0\r\n\r\n"
        + build_request("GET", "/third")
    )
    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        try:
            conn.send(burst)
            assert first_in_app.wait(5)
            # Later requests must not overtake the first one's response.
            assert conn.nothing_arrives_within(0.2)
        finally:
            gate.open()
        bodies = [conn.read_response().body for _ in range(4)]
    assert bodies == [
        b"GET /slow:", b"POST /echo:pipelined body", b"POST /chunked:abc", b"GET /third:",
    ]


def test_a_burst_of_fifty_pipelined_requests() -> None:
    burst = b"".join(build_request("GET", f"/{index}") for index in range(50))
    with running_server(echo_app) as server, Conn.open(server) as conn:
        conn.send(burst)
        bodies = [conn.read_response().body for _ in range(50)]
        assert conn.nothing_arrives_within(0.05)
    assert bodies == [f"GET /{index}:".encode() for index in range(50)]


@pytest.mark.parametrize("loop", LOOPS)
def test_expect_100_continue_is_sent_when_the_app_reads_the_body(loop: str) -> None:
    gate = Gate()
    in_app = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        in_app.set()
        await gate.wait()
        body, _ = await read_body(receive)
        await respond(send, 200, b"got " + body)

    head = build_request("POST", "/", headers=[("Expect", "100-continue"),
                                                ("Content-Length", "5")])
    with running_server(app, loop=loop) as server, Conn.open(server) as conn:
        try:
            conn.send(head)
            assert in_app.wait(5)
            # The app has not asked for the body yet: no invitation to send it.
            assert conn.nothing_arrives_within(0.3)
        finally:
            gate.open()
        interim = conn.read_head()
        assert interim.status == 100
        conn.send(b"hello")
        response = conn.read_response()
        assert response.body == b"got hello"
        # The connection continues normally.
        assert conn.request("GET", "/").status == 200


def test_expect_100_continue_is_not_sent_when_the_app_answers_without_reading() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 413, b"too big, not reading it")

    head = build_request("POST", "/", headers=[("Expect", "100-continue"),
                                                ("Content-Length", "1000000")])
    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(head)
        response = conn.read_response(interim=True)
    assert response.status == 413, "a 100 was sent although the app never read the body"
    assert response.body == b"too big, not reading it"


def test_expect_100_continue_is_ignored_for_http_1_0() -> None:
    in_app = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        in_app.set()
        body, _ = await read_body(receive)
        await respond(send, 200, b"got " + body)

    head = b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(head)
        assert in_app.wait(5)
        assert conn.nothing_arrives_within(0.2)
        conn.send(b"hi")
        data = conn.wait_closed()
    responses = parse_all(data)
    assert [r.status for r in responses] == [200]
    assert responses[0].body == b"got hi"


def test_http_1_0_connection_closes_after_the_response() -> None:
    with running_server(echo_app) as server, Conn.open(server) as conn:
        conn.send(b"GET /old HTTP/1.0\r\n\r\n")
        data = conn.wait_closed()
    (response,) = parse_all(data)
    assert response.status == 200
    assert response.body == b"GET /old:"


def test_http_1_0_keep_alive_is_honoured_when_requested() -> None:
    request = b"GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with running_server(echo_app) as server, Conn.open(server) as conn:
        conn.send(request)
        first = conn.read_response()
        assert "keep-alive" in (first.header("connection") or "").lower()
        conn.send(request)
        second = conn.read_response()
    assert first.body == second.body == b"GET /ka:"


def test_connection_close_ends_the_connection_and_nothing_after_it_is_served() -> None:
    recorder = Recorder()
    burst = (
        build_request("GET", "/last", headers=[("Connection", "close")])
        + build_request("GET", "/never")
    )
    with running_server(recorder.app) as server, Conn.open(server) as conn:
        conn.send(burst)
        data = conn.wait_closed()
    responses = parse_all(data)
    assert [r.status for r in responses] == [200]
    assert "close" in (responses[0].header("connection") or "").lower()
    assert recorder.paths == ["/last"]


def test_app_connection_close_header_closes_after_the_response() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"bye", headers=[(b"content-length", b"3"),
                                                  (b"connection", b"close")])

    with running_server(app) as server, Conn.open(server) as conn:
        conn.send(build_request("GET", "/") + build_request("GET", "/again"))
        data = conn.wait_closed()
    assert [r.body for r in parse_all(data)] == [b"bye"]


IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" \d{4} \d\d:\d\d:\d\d GMT"
)


def test_date_and_server_headers_by_default() -> None:
    with running_server(echo_app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    (date,) = response.header_list("date")
    assert IMF_FIXDATE.fullmatch(date), date
    sent = email.utils.parsedate_to_datetime(date)
    assert abs((sent - datetime.now(UTC)).total_seconds()) < 5
    (server_header,) = response.header_list("server")
    assert "pier" in server_header.lower()


def test_date_and_server_headers_can_be_switched_off() -> None:
    with running_server(echo_app, date_header=False, server_header=False) as server, \
            Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.header("date") is None
    assert response.header("server") is None


def test_app_provided_server_and_date_headers_are_not_duplicated() -> None:
    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, b"x", headers=[
            (b"content-length", b"1"), (b"server", b"my-app/2.0"),
            (b"date", b"Tue, 15 Nov 1994 08:12:31 GMT"),
        ])

    with running_server(app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.header_list("server") == ["my-app/2.0"]
    assert response.header_list("date") == ["Tue, 15 Nov 1994 08:12:31 GMT"]


@pytest.mark.parametrize("headers", [
    ["X-Frame-Options: DENY", "X-Extra:one"],
    [("X-Frame-Options", "DENY"), ("X-Extra", "one")],
])
def test_extra_headers_option_adds_headers_to_every_response(headers: list[Any]) -> None:
    with running_server(echo_app, headers=headers) as server, Conn.open(server) as conn:
        first = conn.request("GET", "/")
        second = conn.request("GET", "/other")
    for response in (first, second):
        assert response.header_list("x-frame-options") == ["DENY"]
        assert response.header_list("x-extra") == ["one"]


@pytest.mark.parametrize("loop", LOOPS)
def test_limit_concurrency_answers_503_beyond_the_limit(loop: str) -> None:
    gate = Gate()
    in_app = [0]

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        in_app[0] += 1
        await gate.wait()
        await respond(send, 200, b"served")

    with running_server(app, limit_concurrency=2, loop=loop) as server, \
            capture_logs() as logs:
        first, second, third = Conn.open(server), Conn.open(server), Conn.open(server)
        try:
            first.send(build_request("GET", "/1"))
            wait_until(lambda: in_app[0] == 1, message="the first request to reach the app")
            second.send(build_request("GET", "/2"))
            # Depending on whether the limit counts connections or requests, the second
            # one is admitted or refused; either way the third is over the limit.
            deadline = time.monotonic() + 5
            while in_app[0] < 2 and not select.select([second.sock], [], [], 0.01)[0]:
                assert time.monotonic() < deadline, "second request neither admitted nor refused"
            third.send(build_request("GET", "/3"))
            refused = third.read_response()
            assert refused.status == 503
        finally:
            gate.open()
            statuses = [first.read_response().status]
            statuses.append(second.read_response().status)
            for conn in (first, second, third):
                conn.sock.close()
        assert statuses[0] == 200
        assert statuses[1] in (200, 503)
        # The operator is told why, and which option to change.
        logs.wait_for("503", "--limit-concurrency 2", level=logging.WARNING)

        # Capacity comes back once the busy connections are gone.
        def served() -> bool:
            with Conn.open(server) as conn:
                return conn.request("GET", "/later").status == 200

        wait_until(served, message="a request to be served again after the limit cleared")


def test_connections_are_released_however_clients_leave() -> None:
    streaming = threading.Event()

    @http_app
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/endless":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            streaming.set()
            piece = b"e" * 65536
            try:
                for _ in range(2000):
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
            except OSError:
                return  # ASGI 2.4: send() on a closed connection may raise
            return
        await read_body(receive)
        await respond(send, 200, b"ok")

    with running_server(app) as server:
        with Conn.open(server) as conn:  # a normal keep-alive exchange
            assert conn.request("GET", "/").status == 200
        with Conn.open(server) as conn:  # gone in the middle of a request head
            conn.send(b"GET / HTTP/1.1\r\nHost: pier.te")
        with Conn.open(server) as conn:  # gone in the middle of a request body
            conn.send(build_request("POST", "/", headers=[("Content-Length", "1000")]) + b"x")
        with Conn.open(server) as conn:  # gone in the middle of a streamed response
            conn.send(build_request("GET", "/endless"))
            assert streaming.wait(5)
            conn.read_head()
        with Conn.open(server) as conn:  # refused as malformed
            conn.send(b"NOT HTTP AT ALL\r\n\r\n")
            conn.wait_closed()
        with Conn.open(server):  # connected and left without a byte
            pass
        wait_until(lambda: server.server.statistics()["connections"] == 0,
                   message="every connection to be released")
        with Conn.open(server) as conn:
            assert conn.request("GET", "/").status == 200


@pytest.mark.parametrize("loop", LOOPS)
def test_a_closed_connection_is_freed_at_once_not_by_the_cycle_collector(loop: str) -> None:
    # Left in a reference cycle, each closed connection would wait for the cyclic
    # garbage collector: memory that grows between collections, and collector work
    # paid per connection when clients connect for every request.
    with running_server(echo_app, loop=loop) as server:
        statistics = server.server.statistics
        gc.collect()
        gc.disable()
        try:
            for headers in ([], [("Connection", "close")]):  # closed by the client, by pier
                with Conn.open(server) as conn:
                    assert conn.request("GET", "/", headers=headers).status == 200
                    if headers:
                        conn.wait_closed()
                wait_until(lambda: statistics()["connections"] == 0,
                           message="the connection to be released")
            with Conn.open(server) as conn:  # a chunked body: read by llhttp, not the C path
                conn.send(b"POST / HTTP/1.1\r\nHost: pier.te\r\nTransfer-Encoding: chunked"
                          b"\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
                assert conn.read_body(conn.read_head()).body == b"POST /:abc"
            wait_until(lambda: statistics()["connections"] == 0,
                       message="the connection to be released")
            gc.set_debug(gc.DEBUG_SAVEALL)
            gc.collect()
            left = [type(thing).__name__ for thing in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert "H1Connection" not in left, "closed connections were held by a reference cycle"
    assert "H1Parser" not in left, "closed connections' parsers were held by a reference cycle"
