"""The native request-head fast path (proto/h1.py rule 6) against llhttp alone.

`parse_head` may only accept a head that llhttp reads into the very same request, and
an H1Parser that uses it must tell its handler exactly what one without it tells, for
any input: the fast path is a strict subset, never a second opinion. Pinned here by
hand-picked cases (pipelining across both paths, a body cut at every byte, a read that
is all body reaching the app as itself, Connection: close) and by a differential
property over generated heads. The heads real clients send (curl, httpx, wrk, a
Chromium navigation, bench/'s requests) must take the fast path, or its gain is gone.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pier.proto import h1
from pier.proto.events import BadRequest, Body, EndOfMessage, EventRecorder, Request
from pier.proto.h1 import H1Parser
from pier.proto.limits import Limits
from tests.helpers import NOT_BUILT, native_parse_head
from tests.proto.h1_invariants import (
    LIMITS,
    check_native_agrees,
    merged,
    native_limits,
    recorded,
)

NATIVE = native_parse_head()
pytestmark = pytest.mark.skipif(NATIVE is None, reason=NOT_BUILT)
REPO = Path(__file__).resolve().parents[2]


def parser(native: bool, limits: Limits = LIMITS) -> tuple[H1Parser, EventRecorder]:
    recorder = EventRecorder()
    saved = h1.parse_head
    h1.parse_head = NATIVE if native else None
    try:
        return H1Parser(limits, recorder), recorder
    finally:
        h1.parse_head = saved


def events(pieces: list[bytes], native: bool, limits: Limits = LIMITS) -> list[object]:
    return recorded(pieces, NATIVE if native else None, limits)[0]


def accepts(data: bytes, limits: Limits = LIMITS) -> bool:
    assert NATIVE is not None
    return NATIVE(data, 0, *native_limits(limits)) is not None


def get(path: bytes, *fields: bytes) -> bytes:
    return b"GET %b HTTP/1.1\r\nHost: h\r\n%b\r\n" % (path, b"".join(f + b"\r\n" for f in fields))


def post(path: bytes, body: bytes, *fields: bytes) -> bytes:
    return get(path, b"Content-Length: %d" % len(body), *fields).replace(b"GET", b"POST", 1) + body


CHUNKED = (b"POST /chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"3\r\nabc\r\n0\r\n\r\n")


def same_as_llhttp(data: bytes) -> list[object]:
    """The fast path's events for `data`, checked against llhttp's, whole and cut."""
    expected = events([data], native=False)
    assert events([data], native=True) == expected
    for split in range(len(data) + 1):
        pieces = [data[:split], data[split:]]
        assert merged(events(pieces, native=True)) == merged(expected), split
    return expected


# --- hand-picked ---------------------------------------------------------------------


def test_pipelined_requests_in_one_read_take_the_fast_path_in_order() -> None:
    data = get(b"/a") + post(b"/b", b"hello") + get(b"/c?q=1", b"Accept: */*")
    assert accepts(data)
    p, recorder = parser(native=True)
    p.receive_data(data)
    paths = [(e.raw_path, e.query_string) for e in recorder.events if isinstance(e, Request)]
    assert paths == [(b"/a", b""), (b"/b", b""), (b"/c", b"q=1")]
    assert recorder.events == events([data], native=False)
    # llhttp was never needed on this connection (it is made when first needed).
    assert p._parser is None


def test_a_fast_head_then_an_llhttp_head_then_fast_again_in_one_read() -> None:
    data = post(b"/one", b"xy") + CHUNKED + get(b"/three") + get(b"/four")
    expected = same_as_llhttp(data)
    assert [e.raw_path for e in expected if isinstance(e, Request)] == [
        b"/one", b"/chunked", b"/three", b"/four"]
    # After llhttp finished its message, the next read is the fast path's again.
    p, recorder = parser(native=True)
    p.receive_data(CHUNKED)
    p.receive_data(post(b"/next", b"abc"))
    assert recorder.events[-3:] == [
        Request("POST", b"/next", b"", [(b"host", b"h"), (b"content-length", b"3")], "1.1",
                True, False, None, 3, True, False),
        Body(b"abc"),
        EndOfMessage(),
    ]


def test_a_body_cut_at_every_byte_arrives_whole_and_in_order() -> None:
    body = b"0123456789" * 3
    data = post(b"/up", body) + get(b"/after")
    for split in range(len(data) + 1):
        got = merged(events([data[:split], data[split:]], native=True))
        assert got == merged(events([data], native=False)), split
        assert got[1] == Body(body)
    one_byte_reads = [data[i : i + 1] for i in range(len(data))]
    assert merged(events(one_byte_reads, native=True)) == merged(events([data], native=False))


def test_a_read_that_is_all_body_reaches_the_app_as_itself() -> None:
    p, recorder = parser(native=True, limits=Limits())
    p.receive_data(post(b"/up", b"").replace(b"Content-Length: 0", b"Content-Length: 200000"))
    first = bytes(100000)
    second = b"\x01" * 100000
    p.receive_data(first)
    p.receive_data(second)
    bodies = [e for e in recorder.events if isinstance(e, Body)]
    assert bodies[0].data is first and bodies[1].data is second
    assert isinstance(recorder.events[-1], EndOfMessage)


def test_a_bodys_end_and_the_next_head_in_one_read() -> None:
    data = post(b"/up", b"abcdef") + get(b"/next")
    head_end = data.index(b"abc")
    p, recorder = parser(native=True)
    p.receive_data(data[: head_end + 2])
    p.receive_data(data[head_end + 2 :])  # "cdef" and the next request
    assert merged(recorder.events) == merged(events([data], native=False))
    assert recorder.events[-2].raw_path == b"/next"  # type: ignore[union-attr]
    assert recorder.events[2] == Body(b"cdef")


@pytest.mark.parametrize("close", [
    b"Connection: close",
    b"Connection: keep-alive, Close",
])
def test_nothing_is_read_after_a_request_that_closes(close: bytes) -> None:
    for data in (get(b"/last", close) + get(b"/never"),
                 post(b"/last", b"body", close) + get(b"/never")):
        expected = same_as_llhttp(data)
        assert [e.raw_path for e in expected if isinstance(e, Request)] == [b"/last"]
        p, _ = parser(native=True)
        p.receive_data(data)
        assert p.dead


def test_http_1_0_keeps_the_connection_only_when_asked() -> None:
    one_oh = b"GET /old HTTP/1.0\r\n\r\n"
    kept = b"GET /kept HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    assert accepts(one_oh) and accepts(kept)
    same_as_llhttp(one_oh + get(b"/never"))
    assert len(same_as_llhttp(kept + get(b"/next"))) == 4
    # llhttp keeps an HTTP/1.0 connection that names keep-alive, even beside close.
    for both in (b"Connection: keep-alive, close", b"Connection: close\r\nConnection: keep-alive"):
        same_as_llhttp(b"GET /both HTTP/1.0\r\n%b\r\n\r\n" % both + get(b"/next"))


@pytest.mark.parametrize("fields", [
    (b"Expect: 100-continue", b"Expect: something-else"),
    (b"Expect: something-else", b"Expect: 100-continue"),
    (b"TE: trailers", b"TE: gzip"),
    (b"TE: gzip", b"TE: trailers"),
    (b"Connection: keep-alive", b"Connection: close"),
    (b"X-Empty:", b"X-Blank: \t ", b"X-Inner: a \t b"),
])
def test_repeated_and_empty_fields_read_as_llhttp_reads_them(fields: tuple[bytes, ...]) -> None:
    same_as_llhttp(post(b"/f", b"body", *fields) + get(b"/next"))


def test_what_the_fast_path_declines_llhttp_answers_as_before() -> None:
    refused = get(b"/a", b"Content-Length: 1", b"Content-Length: 1")
    for data in (
        refused,  # duplicate Content-Length: 400
        get(b"/a", b"Host: other"),  # two Hosts: 400
        get(b"/a", b"Upgrade: websocket", b"Connection: Upgrade"),
        get(b"/a", b"X: caf\xc3\xa9"),  # obs-text: served by llhttp
        b"GET /a HTTP/1.1\nHost: h\n\n",  # bare LF: 400
        b"\r\n" + get(b"/leading-crlf"),
        b"GET http://h/abs HTTP/1.1\r\nHost: h\r\n\r\n",
    ):
        assert not accepts(data), data
        same_as_llhttp(get(b"/first") + data)


def test_a_head_over_the_limits_is_refused_as_before() -> None:
    limits = Limits(head_size=300, fields=4, field_size=100, request_line=40, body=10)
    for data in (
        get(b"/" + b"a" * 50),  # 414
        get(b"/", b"X: " + b"v" * 120),  # 431
        get(b"/", *(b"X%d: v" % i for i in range(5))),  # 431
        post(b"/", b"x" * 11),  # 413
    ):
        assert not accepts(data, limits), data
        whole = events([get(b"/ok") + data], native=True, limits=limits)
        assert whole == events([get(b"/ok") + data], native=False, limits=limits)
        assert isinstance(whole[-1], BadRequest), whole


def test_a_closed_parser_holds_no_llhttp_and_reads_nothing() -> None:
    p, recorder = parser(native=True)
    p.receive_data(CHUNKED[:40])  # declined: llhttp reads the partial head
    assert p.reading_head
    p.close()
    p.close()
    p.receive_data(CHUNKED[40:] + get(b"/never"))
    assert recorder.events == [] and p.dead


# --- differential property -----------------------------------------------------------

ODD = st.sampled_from([b"\x00", b"\x7f", b"\x80", b"\xff", b"\r", b"\n", b"\t", b" ", b"#",
                       b",", b'"', b"\x0b"])


def once_in(draws: int) -> st.SearchStrategy[bool]:
    """True about once in `draws`: mid-list, since hypothesis draws a list's ends more often."""
    return st.sampled_from([False] * (draws // 2) + [True] + [False] * (draws - 1 - draws // 2))


def rarely(common: st.SearchStrategy[bytes], rare: st.SearchStrategy[bytes],
           one_in: int = 8) -> st.SearchStrategy[bytes]:
    """`common`, and about once in `one_in` draws `rare`: most heads stay plausible, so
    that the fast path takes a fair share of them (~30%) and the property bites."""
    return once_in(one_in).flatmap(lambda pick: rare if pick else common)


def odd(text: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """Mostly `text`, sometimes with one odd byte put in."""
    return rarely(text, st.tuples(text, ODD, st.integers(0, 64)).map(
        lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]))


def recase(word: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: bytes(c ^ 0x20 if f and chr(c).isalpha() else c
                            for c, f in zip(word, flips, strict=True)))


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_!#$%&'*+.^`|~",
                min_size=1, max_size=12).map(str.encode)
TEXT = st.text("".join(map(chr, range(0x20, 0x7F))) + "\t", max_size=40).map(str.encode)
# (name, values the fast path may take, values it must decline or llhttp refuses)
NAMED = st.sampled_from([
    (b"host", [b"h", b"example.test:8000", b"h:", b"H.Test", b"x_y~z"],
     [b"", b"a b", b"[::1]:80", b"h%2e"]),
    (b"connection", [b"close", b"keep-alive", b"te, close", b"closed", b"xclose", b",close,",
                     b"keep-alive,,"], [b"upgrade", b"Keep-Alive, close"]),
    (b"content-length", [b"0", b"5", b"05", b"99999"],
     [b"+5", b"5 5", b"5,5", b"", b"1" * 16, b"0x5"]),
    (b"te", [b"trailers", b"gzip, trailers", b"TRAILERS", b"deflate"], []),
    (b"expect", [b"100-continue", b"100-Continue", b"101-continue", b""], []),
    (b"content-type", [b"text/plain"], []),
    (b"authorization", [b"Basic eA=="], []),
    (b"keep-alive", [b"timeout=5"], []),
])
DECLINED = st.sampled_from([b"Transfer-Encoding: chunked", b"Upgrade: websocket",
                            b"Proxy-Connection: close"])


@st.composite
def fields(draw: st.DrawFn) -> bytes:
    if draw(once_in(20)):
        return draw(DECLINED)
    if draw(st.booleans()):
        name, good, bad = draw(NAMED)
        name = draw(recase(name))
        value = draw(rarely(st.sampled_from(good), st.sampled_from([*good, *bad]), 3))
        value = draw(rarely(st.just(value), odd(TEXT), 10))
    else:
        name = draw(odd(TOKEN))
        value = draw(rarely(odd(TEXT), st.just(b"v" * 1100), 30))
        if draw(once_in(30)):
            return b" " + value  # obs-fold
    colon = draw(rarely(st.sampled_from([b": ", b":", b":\t", b":  "]), st.just(b" :"), 20))
    trail = draw(st.sampled_from([b"", b"", b" ", b"\t"]))
    return name + colon + value + trail


METHODS = rarely(
    st.sampled_from([b"GET", b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"PATCH",
                     b"OPTIONS", b"TRACE"]),
    st.sampled_from([b"CONNECT", b"get", b"PROPFIND", b""]), 10)
TARGETS = rarely(
    st.text("abcdefghijklmnopqrstuvwxyz0123456789/-._~%!$&'()*+,;=:@?", max_size=30).map(
        lambda t: b"/" + t.encode()),
    st.one_of(odd(st.just(b"/p/q?x=1&y=2")),
              st.sampled_from([b"*", b"http://h/x", b"h:443", b"", b"/" + b"a" * 1030])), 6)
VERSIONS = rarely(st.sampled_from([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"]),
                  st.sampled_from([b"HTTP/1.2", b"HTTP/2.0", b"http/1.1", b"HTTP/1.1 "]), 10)


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    sp = draw(rarely(st.just(b" "), st.sampled_from([b"  ", b"\t"]), 15))
    lines = [draw(METHODS) + sp + draw(TARGETS) + b" " + draw(VERSIONS)]
    if not draw(once_in(10)):
        lines.append(b"Host: " + draw(st.sampled_from([b"h", b"example.test:8000"])))
    lines += draw(st.lists(fields(), max_size=6))
    lines = [lines[0], *draw(st.permutations(lines[1:]))]
    eol = draw(rarely(st.just(b"\r\n"), st.sampled_from([b"\n", b"\r"]), 20))
    body = draw(st.binary(max_size=24))
    return eol.join(lines) + eol + eol + body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(heads(), min_size=1, max_size=3).map(b"".join), st.lists(st.integers(0, 600),
       max_size=4))
def test_the_fast_path_says_exactly_what_llhttp_says(data: bytes, points: list[int]) -> None:
    assert NATIVE is not None
    check_native_agrees(NATIVE, data, points)


# --- real clients' heads -------------------------------------------------------------


@contextmanager
def one_head() -> Iterator[tuple[str, Callable[[], bytes]]]:
    """A listener that reads the first request head a client sends, answers, closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/page?x=1"

    def read() -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:  # a browser's preconnect may send nothing
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(20)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\n"
                                 b"content-length: 2\r\nconnection: close\r\n\r\nok")
        return data[: data.index(b"\r\n\r\n") + 4]

    with listener:
        yield url, read


def client_head(run: Callable[[str], object]) -> bytes:
    with one_head() as (url, read):
        thread = threading.Thread(target=run, args=(url,), daemon=True)
        thread.start()
        head = read()
        thread.join(30)
    return head


def _curl(url: str) -> None:
    subprocess.run(["curl", "-s", "-o", "/dev/null", url], timeout=30, check=False)


def _wrk(script: str | None) -> Callable[[str], None]:
    def run(url: str) -> None:
        extra = ["-s", str(REPO / "bench" / "lua" / script)] if script else []
        subprocess.run(["wrk", "-t1", "-c1", "-d1s", *extra, url], timeout=30, check=False,
                       capture_output=True)
    return run


def _chromium(url: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser is not None
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
                   timeout=60, check=False, capture_output=True)


CLIENTS: dict[str, tuple[Callable[[str], object], str | None]] = {
    "curl": (_curl, "curl"),
    "httpx": (lambda url: httpx.get(url, timeout=20), None),
    "httpx-post": (lambda url: httpx.post(url, json={"a": 1}, timeout=20), None),
    "wrk": (_wrk(None), "wrk"),
    "wrk-fastapi-post": (_wrk("fastapi_post.lua"), "wrk"),
    "chromium": (_chromium, "chromium"),
}


@pytest.mark.parametrize("name", CLIENTS)
def test_real_clients_heads_take_the_fast_path(name: str) -> None:
    run, program = CLIENTS[name]
    if program is not None and shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (scripts/test installs it)")
    head = client_head(run)
    assert accepts(head, Limits()), head


def test_the_bench_requests_take_the_fast_path() -> None:
    from bench.micro_h1 import CLOSE_REQUEST, REQUEST
    from bench.server_instructions import MODES

    requests = [REQUEST, CLOSE_REQUEST, *(mode.request for mode in MODES)]
    for request in requests:
        assert accepts(request, Limits()), request[:200]
