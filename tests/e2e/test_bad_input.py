"""Malformed, oversized, ambiguous and slow requests: answered with the right status,
the connection closed, nothing smuggled, nothing unescaped in the logs, and the next
client served as usual.

Pins: RFC 9112 section 3 (request line; 400 for an invalid one), 3.2 (Host: exactly one
in HTTP/1.1), 2.2 (bare CR is invalid; pier also rejects bare LF, as the issue asks),
5.1 (no whitespace between field name and colon: 400), 5.2 (obs-fold: reject or unfold),
6.1 and 6.3 (Transfer-Encoding with Content-Length: 400 and close; chunked must be the
final coding of a request; Transfer-Encoding in HTTP/1.0 is faulty framing), 7.1 (chunk
size is hex digits), 9.6 (close after a framing error); RFC 9110 section 5.5 (field
values exclude CTLs such as NUL and DEL), 8.6 (Content-Length is 1*DIGIT, duplicates and
lists rejected as the issue asks), 15.5.14 (413), 15.5.15 (414), RFC 6585 section 5 (431),
RFC 9110 15.5.9 (408 or a plain close for a request head that never completes).
Slowloris: a head trickled slower than --timeout-request-header is cut off.
Logs: control characters from requests never reach a log line raw (uvicorn CVE-2020-7694).
"""

from __future__ import annotations

import contextlib
import select
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e._support import (
    Conn,
    Recorder,
    assert_serves,
    build_request,
    chunked,
    connect_to,
    parse_all,
    status_of,
)
from tests.helpers import PierProcess, RunningServer, running_server

APPS = Path(__file__).parent / "apps"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: pier.test\r\n\r\n"

LIMITS = {
    "limit_request_line": 2000,
    "limit_request_head_size": 8192,
    "limit_request_fields": 20,
    "limit_request_field_size": 1000,
    "limit_request_body": 1000,
}


@pytest.fixture(scope="module")
def default_server() -> Iterator[tuple[RunningServer, Recorder]]:
    recorder = Recorder()
    with running_server(recorder.app) as server:
        yield server, recorder


@pytest.fixture(scope="module")
def limited_server() -> Iterator[tuple[RunningServer, Recorder]]:
    recorder = Recorder()
    with running_server(recorder.app, **LIMITS) as server:
        yield server, recorder


def _exchange(server: RunningServer, raw: bytes) -> bytes:
    """Send `raw`; return everything the server sent until it closed (which it must)."""
    with Conn.open(server) as conn:
        # The server may stop reading and close before everything was sent.
        with contextlib.suppress(OSError):
            conn.send(raw)
        return conn.wait_closed()


def _rejected(server: RunningServer, raw: bytes, *statuses: int) -> bytes:
    data = _exchange(server, raw)
    assert data, "the server closed without an answer"
    assert status_of(data) in statuses, data[:300]
    assert data.count(b"HTTP/1.1 ") == 1, f"more than one response: {data[:500]!r}"
    assert_serves(server)
    return data


def _head(*lines: bytes) -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- malformed request lines -------------------------------------------------------------

MALFORMED_LINES = {
    "garbage": b"GARBAGE\r\n\r\n",
    "no-version": b"GET /\r\nHost: pier.test\r\n\r\n",
    "extra-token": b"GET / HTTP/1.1 extra\r\nHost: pier.test\r\n\r\n",
    "bad-version": b"GET / HTTP/1.x\r\nHost: pier.test\r\n\r\n",
    "nul-in-target": b"GET /a\x00b HTTP/1.1\r\nHost: pier.test\r\n\r\n",
    "control-in-method": b"G\x01T / HTTP/1.1\r\nHost: pier.test\r\n\r\n",
    "tls-client-hello": bytes.fromhex("160301020001000001fc0303") + b"\x00" * 40,
    "binary-noise": bytes(range(256)),
}


@pytest.mark.parametrize("raw", MALFORMED_LINES.values(), ids=MALFORMED_LINES.keys())
def test_malformed_request_line_is_400_and_closed(
        default_server: tuple[RunningServer, Recorder], raw: bytes) -> None:
    _rejected(default_server[0], raw, 400)


def test_unsupported_major_version_is_refused(
        default_server: tuple[RunningServer, Recorder]) -> None:
    _rejected(default_server[0], b"GET / HTTP/9.9\r\nHost: pier.test\r\n\r\n", 400, 505)


def test_http_1_1_without_host_is_400(default_server: tuple[RunningServer, Recorder]) -> None:
    _rejected(default_server[0], b"GET /no-host HTTP/1.1\r\n\r\n", 400)


def test_two_host_headers_are_400(default_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = default_server
    _rejected(server, _head(b"GET /two-hosts HTTP/1.1", b"Host: a.test", b"Host: b.test"), 400)
    assert "/two-hosts" not in recorder.paths


# --- malformed header sections -----------------------------------------------------------

BAD_HEADERS = {
    "bare-lf-after-header": b"GET /h HTTP/1.1\r\nHost: pier.test\nX-A: b\r\n\r\n",
    "bare-lf-everywhere": b"GET /h HTTP/1.1\nHost: pier.test\nX-A: b\n\n",
    "bare-cr-in-value": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A: a\rb"),
    "nul-in-value": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A: a\x00b"),
    "soh-in-value": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A: a\x01b"),
    "esc-in-value": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A: \x1b[31mred"),
    "del-in-value": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A: a\x7fb"),
    "control-in-name": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X\x01A: b"),
    "space-in-name": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X A: b"),
    "space-before-colon": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"X-A : b"),
    "no-colon": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b"NoColonHere"),
    "empty-name": _head(b"GET /h HTTP/1.1", b"Host: pier.test", b": value"),
}


@pytest.mark.parametrize("raw", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_malformed_header_is_400_and_closed(
        default_server: tuple[RunningServer, Recorder], raw: bytes) -> None:
    server, recorder = default_server
    before = len(recorder.scopes)
    _rejected(server, raw, 400)
    assert len(recorder.scopes) == before + 1  # only assert_serves' own request


def test_obsolete_line_folding_is_rejected_or_unfolded(
        default_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = default_server
    raw = _head(b"GET /folded HTTP/1.1", b"Host: pier.test", b"X-Folded: first", b"  second")
    with Conn.open(server) as conn:
        conn.send(raw)
        response = conn.read_response()
    assert response.status in (200, 400)
    if response.status == 200:
        scope = recorder.scopes[recorder.paths.index("/folded")]
        for name, value in scope["headers"]:
            assert b"\r" not in value and b"\n" not in value, (name, value)
            assert not name.startswith(b" ")


# --- limits ------------------------------------------------------------------------------


def test_request_target_over_the_line_limit_is_414(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = limited_server
    _rejected(server, build_request("GET", "/long-" + "a" * 3000), 414, 431)
    assert not any(path.startswith("/long-") for path in recorder.paths)


def test_request_head_over_the_size_limit_is_431(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    headers = [(f"X-Big-{index}", "b" * 940) for index in range(10)]
    _rejected(limited_server[0], build_request("GET", "/", headers=headers), 431)


def test_too_many_header_fields_is_431(limited_server: tuple[RunningServer, Recorder]) -> None:
    headers = [(f"X-Many-{index}", "v") for index in range(25)]
    _rejected(limited_server[0], build_request("GET", "/", headers=headers), 431)


def test_one_header_field_over_the_size_limit_is_431(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    headers = [("X-Huge", "h" * 1500)]
    _rejected(limited_server[0], build_request("GET", "/", headers=headers), 431)


def test_headers_within_limits_are_served(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    headers = [(f"X-Ok-{index}", "o" * 500) for index in range(10)]
    with Conn.open(limited_server[0]) as conn:
        assert conn.request("GET", "/", headers=headers).status == 200


def test_default_limits_refuse_a_huge_head(default_server: tuple[RunningServer, Recorder]) -> None:
    headers = [("X-Huge", "h" * 100_000)]
    _rejected(default_server[0], build_request("GET", "/", headers=headers), 431)


def test_declared_body_over_the_limit_is_413(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = limited_server
    raw = build_request("POST", "/too-big", body=b"x" * 1001)
    _rejected(server, raw, 413)
    assert b"x" * 1001 not in recorder.bodies


def test_body_at_the_limit_is_accepted(limited_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = limited_server
    with Conn.open(server) as conn:
        assert conn.request("POST", "/fits", body=b"y" * 1000).status == 200
    assert recorder.bodies[recorder.paths.index("/fits")] == b"y" * 1000


def test_chunked_body_over_the_limit_is_413(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = limited_server
    raw = (
        b"POST /chunked-too-big HTTP/1.1\r\nHost: pier.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked(*[b"z" * 300] * 5)
    )
    _rejected(server, raw, 413)
    assert b"z" * 1500 not in recorder.bodies


def test_expect_100_continue_over_the_limit_gets_413_without_100(
        limited_server: tuple[RunningServer, Recorder]) -> None:
    raw = build_request("POST", "/", headers=[("Expect", "100-continue"),
                                               ("Content-Length", "5000")])
    with Conn.open(limited_server[0]) as conn:
        conn.send(raw)
        first = conn.read_response(interim=True)
    assert first.status == 413


# --- ambiguous framing: request smuggling ------------------------------------------------

SMUGGLING = {
    "cl-and-te": _head(b"POST / HTTP/1.1", b"Host: pier.test", b"Content-Length: 5",
                       b"Transfer-Encoding: chunked") + b"0\r\n\r\n" + SMUGGLED,
    "te-and-cl": _head(b"POST / HTTP/1.1", b"Host: pier.test", b"Transfer-Encoding: chunked",
                       b"Content-Length: 48") + b"0\r\n\r\n" + SMUGGLED,
    "te-not-final-chunked": _head(b"POST / HTTP/1.1", b"Host: pier.test",
                                  b"Transfer-Encoding: chunked, identity") + b"0\r\n\r\n"
                            + SMUGGLED,
    "te-space-before-colon": _head(b"POST / HTTP/1.1", b"Host: pier.test",
                                   b"Transfer-Encoding : chunked", b"Content-Length: 5")
                             + b"0\r\n\r\n" + SMUGGLED,
    "cl-duplicate-different": _head(b"POST / HTTP/1.1", b"Host: pier.test",
                                    b"Content-Length: 0", b"Content-Length: 44") + SMUGGLED,
    "cl-duplicate-same": _head(b"POST / HTTP/1.1", b"Host: pier.test",
                               b"Content-Length: 3", b"Content-Length: 3") + b"abc" + SMUGGLED,
    "cl-list": _head(b"POST / HTTP/1.1", b"Host: pier.test", b"Content-Length: 3, 3")
               + b"abc" + SMUGGLED,
}


@pytest.mark.parametrize("raw", SMUGGLING.values(), ids=SMUGGLING.keys())
def test_ambiguous_framing_is_400_and_the_smuggled_request_is_never_served(
        default_server: tuple[RunningServer, Recorder], raw: bytes) -> None:
    server, recorder = default_server
    data = _rejected(server, raw, 400)
    assert b"/smuggled" not in data
    assert "/smuggled" not in recorder.paths


def test_unknown_transfer_coding_is_refused(
        default_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = default_server
    raw = _head(b"POST / HTTP/1.1", b"Host: pier.test", b"Transfer-Encoding: xchunked") + SMUGGLED
    _rejected(server, raw, 400, 501)
    assert "/smuggled" not in recorder.paths


def test_transfer_encoding_in_http_1_0_is_faulty_framing(
        default_server: tuple[RunningServer, Recorder]) -> None:
    server, recorder = default_server
    raw = (b"POST /te10 HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"
           b"Connection: keep-alive\r\n\r\n0\r\n\r\n" + SMUGGLED)
    data = _exchange(server, raw)
    assert status_of(data) in (200, 400)
    assert len(parse_all(data)) == 1
    assert "/smuggled" not in recorder.paths
    assert_serves(server)


INVALID_LENGTHS = ["abc", "-1", "+5", "5 5", "0x10", "1.5", "99999999999999999999999", ""]


@pytest.mark.parametrize("value", INVALID_LENGTHS)
def test_invalid_content_length_is_400(
        default_server: tuple[RunningServer, Recorder], value: str) -> None:
    server, recorder = default_server
    raw = _head(b"POST / HTTP/1.1", b"Host: pier.test",
                b"Content-Length: " + value.encode()) + b"abcde" + SMUGGLED
    _rejected(server, raw, 400)
    assert "/smuggled" not in recorder.paths


BAD_CHUNKS = {
    "not-hex": b"zz\r\nhello\r\n0\r\n\r\n",
    "negative": b"-5\r\nhello\r\n0\r\n\r\n",
    "overflow": b"fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
    "prefix-0x": b"0x5\r\nhello\r\n0\r\n\r\n",
    "data-longer-than-size": b"3\r\nhello\r\n0\r\n\r\n",
    "missing-crlf-after-data": b"5\r\nhelloXX0\r\n\r\n",
}


@pytest.mark.parametrize("body", BAD_CHUNKS.values(), ids=BAD_CHUNKS.keys())
def test_bad_chunk_framing_is_400(
        default_server: tuple[RunningServer, Recorder], body: bytes) -> None:
    server, recorder = default_server
    raw = _head(b"POST /chunks HTTP/1.1", b"Host: pier.test",
                b"Transfer-Encoding: chunked") + body + SMUGGLED
    _rejected(server, raw, 400)
    assert "/smuggled" not in recorder.paths


# --- slowloris ---------------------------------------------------------------------------


def _trickle_until_closed(conn: Conn, limit: float) -> float:
    """Send one header line every 50 ms (never finishing the head); seconds until closed."""
    started = time.monotonic()
    conn.send(b"GET /slow HTTP/1.1\r\nHost: pier.test\r\n")
    index = 0
    while time.monotonic() - started < limit:
        readable, _, _ = select.select([conn.sock], [], [], 0.05)
        if readable:
            data = conn.wait_closed()
            assert not data or status_of(data) == 408, data[:200]
            return time.monotonic() - started
        try:
            conn.send(b"X-Trickle-%d: x\r\n" % index)
        except OSError:
            return time.monotonic() - started
        index += 1
    raise AssertionError(f"the trickled request head was still accepted after {limit} s")


def test_slowloris_head_is_cut_off_after_the_header_timeout() -> None:
    recorder = Recorder()
    with running_server(recorder.app, timeout_request_header=0.3,
                        timeout_keep_alive=10) as server:
        with Conn.open(server) as conn:
            elapsed = _trickle_until_closed(conn, limit=5)
        assert 0.25 <= elapsed < 2.5, f"cut off after {elapsed:.2f} s, the timeout is 0.3 s"
        assert "/slow" not in recorder.paths
        assert_serves(server)


def test_by_default_a_trickled_head_is_cut_off_after_ten_seconds() -> None:
    # Issue 10: the default was 20 s. The deadline sweep may add up to 0.25 s.
    recorder = Recorder()
    with running_server(recorder.app) as server:
        with Conn.open(server) as conn:
            elapsed = _trickle_until_closed(conn, limit=15)
        assert 9.9 <= elapsed < 11, f"cut off after {elapsed:.2f} s"
        assert "/slow" not in recorder.paths


def test_a_connection_that_never_sends_is_closed_after_the_header_timeout() -> None:
    with running_server(Recorder().app, timeout_request_header=0.3,
                        timeout_keep_alive=10) as server, Conn.open(server) as conn:
        started = time.monotonic()
        data = conn.wait_closed(timeout=5)
        elapsed = time.monotonic() - started
    assert not data or status_of(data) == 408
    assert elapsed < 2.5


def test_a_head_sent_in_pieces_within_the_timeout_is_served() -> None:
    recorder = Recorder()
    raw = build_request("GET", "/pieces", headers=[("X-A", "1"), ("X-B", "2")])
    with running_server(recorder.app, timeout_request_header=2) as server, \
            Conn.open(server) as conn:
        for index in range(0, len(raw), 10):
            conn.send(raw[index:index + 10])
        assert conn.read_response().status == 200
    assert recorder.paths == ["/pieces"]


def test_the_header_timeout_applies_to_each_request_on_a_keep_alive_connection() -> None:
    with running_server(Recorder().app, timeout_request_header=0.3,
                        timeout_keep_alive=10) as server, Conn.open(server) as conn:
        assert conn.request("GET", "/first").status == 200
        elapsed = _trickle_until_closed(conn, limit=5)
    assert elapsed < 2.5


# --- logs --------------------------------------------------------------------------------



def test_control_characters_from_requests_are_escaped_in_log_lines() -> None:
    proc = PierProcess("basic:app", "--app-dir", str(APPS), "--port", "0",
                       "--log-level", "info", "--access-log")
    try:
        proc.wait_listening()
        with Conn(connect_to(proc)) as conn:
            response = conn.request("GET", "/%1b[31mred%0d%0aINJECTED-LINE%07")
            assert response.status == 200
        # A raw escape byte in the request line itself (rejected or served, never echoed).
        with Conn(connect_to(proc)) as conn:
            conn.send(b"GET /\x1b[31mraw\rX HTTP/1.1\r\nHost: pier.test\r\n\r\n")
            conn.wait_closed()
        proc.signal(signal.SIGTERM)
        code, output = proc.wait()
    finally:
        proc.stop()
    assert code == 0, output
    assert "\x1b[31m" not in output, "a raw escape sequence from a client reached the log"
    assert "\x07" not in output
    logged = [line for line in output.splitlines() if "red" in line]
    assert logged, f"the request was not logged:\n{output}"
    assert any("INJECTED-LINE" in line for line in logged), "CR/LF split the log line"
    # The access line still says who asked what and how it went.
    access = next(line for line in logged if "INJECTED-LINE" in line)
    for part in ("127.0.0.1", "GET", "200"):
        assert part in access, access
    assert not any(line.startswith("INJECTED-LINE") for line in output.splitlines())

