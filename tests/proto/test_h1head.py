"""The C request-head fast path (`pier.proto._h1head.parse_head`) against llhttp.

parse_head accepts a strict subset of HTTP/1.1 and says None to everything else, which
llhttp and H1Parser's checks then read as before. Its contract: whenever it returns a
head, H1Parser reading the same bytes through llhttp alone makes the same on_request
call, refuses nothing, and ends the head (and the message, for a body-less request) at
the same byte. These tests check that on generated heads (hypothesis), on every payload
of the smuggling corpus, and on each declining rule one by one; and that the heads real
clients send are accepted, so the gain cannot silently vanish.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pier.proto import h1
from pier.proto._h1head import parse_head
from pier.proto.events import END_OF_MESSAGE, BadRequest, Body, EventRecorder, Request
from pier.proto.h1 import H1Parser
from pier.proto.limits import Limits
from tests.e2e.test_smuggling_corpus import CORPUS, LAST, SMUGGLED

LIMITS = Limits(head_size=4096, fields=20, field_size=1024, request_line=1024, body=65536)


def fast(data: bytes, limits: Limits = LIMITS, start: int = 0) -> tuple[object, ...] | None:
    body = -1 if limits.body is None else limits.body
    return parse_head(data, start, limits.request_line, limits.fields, limits.field_size,
                      limits.head_size, body)


@contextmanager
def llhttp_only() -> Iterator[None]:
    """H1Parser with the fast path switched off, whatever switch it reads."""
    saved = getattr(h1, "parse_head", None)
    h1.parse_head = None  # type: ignore[attr-defined]
    try:
        yield
    finally:
        h1.parse_head = saved  # type: ignore[attr-defined]


def through_llhttp(data: bytes, limits: Limits = LIMITS) -> list[object]:
    recorder = EventRecorder()
    with llhttp_only():
        parser = H1Parser(limits, recorder)
        parser.receive_data(data)
    return recorder.events


def check_contract(data: bytes, limits: Limits = LIMITS) -> bool:
    """Assert the contract on one input; True when the fast path took the head."""
    result = fast(data, limits)
    if result is None:
        return False
    (end, method, raw_path, query, headers, version, keep_alive, expect_continue, length,
     trailers) = result
    assert isinstance(end, int)
    assert isinstance(length, int | None)
    expected = Request(method, raw_path, query, headers, version, keep_alive, expect_continue,
                       None, length, bool(length), trailers)  # type: ignore[arg-type]
    # Exactly the head: llhttp sees the request and, without a body, its end; nothing more.
    events = through_llhttp(data[:end], limits)
    assert events[:1] == [expected], (data, events)
    assert events[1:] == ([] if length else [END_OF_MESSAGE]), (data, events)
    if length:
        body = data[end : end + length].ljust(length, b"x")
        events = through_llhttp(data[:end] + body, limits)
        assert events[1:] == [Body(body), END_OF_MESSAGE], (data, events)
    return True


# --- what real clients send is taken ----------------------------------------------------

CLIENT_HEADS = {
    "wrk": b"GET /plaintext HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n",
    "curl": b"GET /path?q=1 HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\n\r\n",
    "curl-post": b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nContent-Length: 5\r\nContent-Type: application/x-www-form-urlencoded"
    b"\r\n\r\nhello",
    "httpx": b"GET /a HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: */*\r\n"
    b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    b"User-Agent: python-httpx/0.28.1\r\n\r\n",
    "chromium": b"GET /index.html HTTP/1.1\r\nHost: localhost:8000\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="156", "Not)A;Brand";v="24"\r\nsec-ch-ua-mobile: ?0\r\n'
    b'sec-ch-ua-platform: "Linux"\r\nUpgrade-Insecure-Requests: 1\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    b" Chrome/156.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: session=abc; theme=dark\r\n\r\n",
    "http-1.0-ab": b"GET / HTTP/1.0\r\nHost: localhost\r\nUser-Agent: ApacheBench/2.3\r\n"
    b"Accept: */*\r\n\r\n",
    "proxied": b"GET /api HTTP/1.1\r\nHost: app.example.com\r\nX-Real-IP: 203.0.113.7\r\n"
    b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("name", CLIENT_HEADS)
def test_the_heads_real_clients_send_take_the_fast_path(name: str) -> None:
    assert check_contract(CLIENT_HEADS[name]), name


def test_it_reads_the_head_at_the_offset_given() -> None:
    first, second = CLIENT_HEADS["wrk"], CLIENT_HEADS["curl"]
    result = fast(first + second, start=len(first))
    assert result is not None
    assert result[0] == len(first) + len(second)
    assert result[2] == b"/path"
    assert result[3] == b"q=1"


def test_shared_name_objects_are_not_changed_by_a_request() -> None:
    # The common names are one bytes object each; a lower-cased copy is made per head
    # for the rest, never a write into a shared one.
    one = fast(b"GET / HTTP/1.1\r\nHOST: a\r\nX-Odd-Name: 1\r\n\r\n")
    two = fast(b"GET / HTTP/1.1\r\nhost: b\r\nx-odd-name: 2\r\n\r\n")
    assert one is not None and two is not None
    assert one[4] == [(b"host", b"a"), (b"x-odd-name", b"1")]
    assert two[4] == [(b"host", b"b"), (b"x-odd-name", b"2")]


# --- what declines, rule by rule: llhttp and H1Parser read these ------------------------

def head(*fields: bytes, line: bytes = b"GET / HTTP/1.1") -> bytes:
    return b"\r\n".join((line, *fields)) + b"\r\n\r\n"


DECLINED = {
    "incomplete": b"GET / HTTP/1.1\r\nHost: h\r\n",
    "leading-empty-line": b"\r\n" + head(b"Host: h"),
    "bare-lf-line-end": b"GET / HTTP/1.1\nHost: h\r\n\r\n",
    "bare-lf-in-field": b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
    "bare-cr-in-value": head(b"Host: h", b"X: a\rb"),
    "two-spaces": head(b"Host: h", line=b"GET  / HTTP/1.1"),
    "lower-case-method": head(b"Host: h", line=b"get / HTTP/1.1"),
    "connect": head(b"Host: h:443", line=b"CONNECT h:443 HTTP/1.1"),
    "extension-method": head(b"Host: h", line=b"PURGE / HTTP/1.1"),
    "absolute-form": head(b"Host: h", line=b"GET http://h/ HTTP/1.1"),
    "asterisk": head(b"Host: h", line=b"OPTIONS * HTTP/1.1"),
    "fragment": head(b"Host: h", line=b"GET /a#b HTTP/1.1"),
    "non-ascii-target": head(b"Host: h", line="GET /\u00e9 HTTP/1.1".encode()),
    "http-0.9": b"GET /\r\n\r\n",
    "http-2.0": head(b"Host: h", line=b"GET / HTTP/2.0"),
    "obs-fold": head(b"Host: h", b"X: a", b" b"),
    "space-before-colon": head(b"Host : h"),
    "empty-name": head(b"Host: h", b": x"),
    "obs-text": head(b"Host: h", "X: \u00e9".encode()),
    "nul-in-value": head(b"Host: h", b"X: a\x00b"),
    "transfer-encoding": head(b"Host: h", b"Transfer-Encoding: chunked"),
    "upgrade": head(b"Host: h", b"Connection: Upgrade", b"Upgrade: websocket"),
    "connection-upgrade-alone": head(b"Host: h", b"Connection: upgrade"),
    "proxy-connection": head(b"Host: h", b"Proxy-Connection: close"),
    "close-and-keep-alive": head(b"Host: h", b"Connection: close, keep-alive"),
    "connection-empty-element": head(b"Host: h", b"Connection: close,,"),
    "content-length-sign": head(b"Host: h", b"Content-Length: +5"),
    "content-length-list": head(b"Host: h", b"Content-Length: 5, 5"),
    "content-length-twice": head(b"Host: h", b"Content-Length: 5", b"Content-Length: 5"),
    "content-length-huge": head(b"Host: h", b"Content-Length: 1234567890123456"),
    "content-length-over-body-limit": head(b"Host: h", b"Content-Length: 65537"),
    "no-host": head(b"X: y"),
    "two-hosts": head(b"Host: a", b"Host: a"),
    "two-hosts-1.0": head(b"Host: a", b"Host: b", line=b"GET / HTTP/1.0"),
    "empty-host": head(b"Host: "),
    "ipv6-host": head(b"Host: [::1]:80"),
    "host-with-userinfo": head(b"Host: user@h"),
    "host-port-letters": head(b"Host: h:8o"),
    "two-content-types": head(b"Host: h", b"Content-Type: a", b"Content-Type: b"),
    "two-authorizations": head(b"Host: h", b"Authorization: a", b"Authorization: b"),
    "target-over-limit": head(b"Host: h", line=b"GET /" + b"a" * 1024 + b" HTTP/1.1"),
    "field-over-limit": head(b"Host: h", b"X: " + b"a" * 1024),
    "too-many-fields": head(b"Host: h", *[b"X-%d: y" % i for i in range(20)]),
    "head-over-limit": head(b"Host: h", *[b"X-%d: %b" % (i, b"y" * 300) for i in range(14)]),
}


@pytest.mark.parametrize("name", DECLINED)
def test_what_the_fast_path_leaves_to_llhttp(name: str) -> None:
    assert fast(DECLINED[name]) is None


def test_nothing_but_none_for_garbage() -> None:
    for data in (b"", b"\r\n\r\n", b"GET", b"GET \r\n\r\n", b"GET /\r\n\r\n\r\n", b"\x00" * 64):
        assert fast(data) is None
    assert fast(CLIENT_HEADS["wrk"], start=10_000) is None
    assert fast(CLIENT_HEADS["wrk"], start=-1) is None


def test_each_limit_is_allowed_at_its_bound_and_declined_past_it() -> None:
    limits = Limits(head_size=4096, fields=2, field_size=15, request_line=6, body=5)
    at_bounds = head(b"Host: h", b"Content-Length: 5", line=b"POST /12345 HTTP/1.1")
    assert check_contract(at_bounds + b"hello", limits)  # 2 fields, 6-byte target, body 5
    assert check_contract(head(b"Host: h", b"Xy: 123456789abcd"), limits)  # a 15-byte field
    past = [
        head(b"Host: h", b"Content-Length: 5", b"X: y"),
        head(b"Host: h", b"Xyz: 123456789abcd"),
        head(b"Host: h", line=b"GET /123456 HTTP/1.1"),
        head(b"Host: h", b"Content-Length: 6", line=b"POST / HTTP/1.1"),
    ]
    assert [fast(data, limits) for data in past] == [None] * 4
    small_head = Limits(head_size=len(b"/") + len(b"hostyz") + 4, fields=9, field_size=99,
                        request_line=99)
    assert check_contract(head(b"Host: yz"), small_head)
    assert fast(head(b"Host: xyz"), small_head) is None


# --- the contract on everything else ------------------------------------------------------

@pytest.mark.parametrize("name", CORPUS)
def test_smuggling_corpus_payloads_keep_the_contract(name: str) -> None:
    # Each payload, and the request behind it, read from every offset a head could start.
    data = CORPUS[name].raw + SMUGGLED + LAST
    check_contract(data)
    for start in range(1, len(data)):
        result = fast(data, start=start)
        if result is not None:
            check_contract(data[start:])


def test_the_corpus_refusals_are_all_declined() -> None:
    refused = [name for name, case in CORPUS.items() if isinstance(case.expect, int)]
    taken = [name for name in refused if fast(CORPUS[name].raw) is not None]
    assert taken == []


def _cased(word: bytes) -> st.SearchStrategy[bytes]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda flips: bytes(c ^ 0x20 if flip and chr(c).isalpha() else c
                            for c, flip in zip(word, flips, strict=True)))


ODD = [b" ", b"\t", b"\r", b"\n", b"\x00", b"\x7f", b"\xff", b",", b";", b"=", b"\"", b"#",
       b"?", b":", b"[", b"]", b"@", b"%", b"+", b"-", b"{", b"|", b"\\", b"^", b"`"]
TEXT = st.lists(st.one_of(st.sampled_from(ODD), st.binary(min_size=1, max_size=3).filter(
    lambda b: all(0x21 <= c < 0x7f for c in b))), max_size=6).map(b"".join)
VALUES = {
    b"host": [b"h", b"h:80", b"127.0.0.1:8000", b"a-b.c_d~e", b"h:", b"[::1]", b"H.Example"],
    b"content-length": [b"0", b"5", b"007", b"5 ", b" 5", b"5,5", b"-1", b"", b"99999"],
    b"connection": [b"close", b"keep-alive", b"Close", b"KEEP-ALIVE", b"close, te",
                    b"te, close", b"keep-alive,close", b"upgrade", b"closed", b"close ,x",
                    b"x y", b"keep-alive ,  te"],
    b"te": [b"trailers", b"gzip, trailers", b"TRAILERS", b"trailer", b"deflate"],
    b"expect": [b"100-continue", b"100-Continue", b"100-continue ", b"200-ok", b""],
    b"transfer-encoding": [b"chunked", b"identity"],
    b"upgrade": [b"websocket", b"h2c"],
    b"proxy-connection": [b"close", b"keep-alive"],
    b"content-type": [b"text/plain", b"application/json; charset=utf-8"],
    b"authorization": [b"Bearer x"],
    b"x-any": [b"", b"v", b"a b", b"\"q\""],
}


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    """A request head: plain (mostly within the fast path) or rough (mostly outside it)."""
    plain = draw(st.booleans())

    def pick(choices: list[bytes], rough: list[bytes]) -> bytes:
        return draw(st.sampled_from(choices if plain else choices + rough))

    method = pick([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS",
                   b"TRACE"], [b"CONNECT", b"Get", b"FOO"])
    target = draw(st.one_of(
        st.sampled_from([b"/", b"/a?b=c", b"/a?", b"/a/b;c?d=e&f=%20", b"/@:!$&'()*+,="]),
        st.builds(lambda a, b: b"/" + a + b, TEXT, TEXT) if not plain else st.just(b"/x"),
        st.sampled_from([b"*", b"http://h/x", b"/a b"] if not plain else [b"/y"])))
    version = pick([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/1.2", b"http/1.1"])
    lines = [method + pick([b" "], [b"  "]) + target + b" " + version]
    for _ in range(draw(st.integers(0, 7))):
        name = draw(st.sampled_from(list(VALUES)))
        spelled = draw(_cased(name))
        value = draw(st.sampled_from(VALUES[name]) if plain
                     else st.one_of(st.sampled_from(VALUES[name]), TEXT))
        separator = pick([b": ", b":", b":\t", b":  "], [b" : "])
        lines.append(spelled + separator + value + pick([b"", b" ", b"\t"], []))
    if (plain or draw(st.booleans())) and not any(
            line.lower().startswith(b"host") for line in lines):
        lines.insert(draw(st.integers(1, len(lines))), b"Host: h")
    ending = pick([b"\r\n"], [b"\r\n"] * 6 + [b"\n", b"\r", b"\r\r\n"])
    return ending.join(lines) + b"\r\n\r\n" + draw(st.sampled_from([b"", b"hello", SMUGGLED]))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads())
@example(head(b"Host: h", b"Connection: keep-alive ,  te"))
@example(head(b"Host: h", b"Content-Length: 5 ") + b"hello")
def test_generated_heads_keep_the_contract(data: bytes) -> None:
    check_contract(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200))
def test_random_bytes_keep_the_contract(data: bytes, start: int) -> None:
    result = fast(data, start=start)
    if result is not None:
        check_contract(data[start:])


def test_generated_heads_mostly_take_the_fast_path() -> None:
    # A contract kept by declining everything would pass the tests above: the plain heads
    # that clients send must be taken (see also CLIENT_HEADS).
    plain = [head(b"Host: h", b"%b: v" % name, line=b"GET /x?y HTTP/1.1")
             for name in (b"Accept", b"X-Custom", b"Cookie", b"If-None-Match")]
    assert all(check_contract(data) for data in plain)
    assert not any(isinstance(e, BadRequest) for e in through_llhttp(b"".join(plain)))


def test_has_any_name_reads_names_only_and_refuses_other_shapes() -> None:
    from pier.proto._h1head import has_any_name

    names = frozenset({b"forwarded"})
    assert has_any_name(names, [(b"a", b"forwarded"), (b"forwarded", b"")])
    assert not has_any_name(names, [(b"a", b"forwarded")])
    for bad in ([(b"forwarded",)], [b"forwarded"], ((b"forwarded", b""),)):
        with pytest.raises(TypeError):
            has_any_name(names, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0", "false", "Off", "no"])
def test_pier_native_switches_every_c_path_off(value: str) -> None:
    import os
    import subprocess
    import sys

    probe = ("from pier.proto import h1; from pier.asgi import proxy;"
             " from pier.io import connection; from pier.wsgi import environ;"
             " print(h1.parse_head is None, proxy.has_proxy_headers is proxy._has_proxy_headers,"
             " connection.frame_response is None,"
             " environ._known_fields is environ._python_known_fields)")
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PIER_NATIVE": value},
                         capture_output=True, text=True, check=True, timeout=30).stdout
    assert out.split() == ["True", "True", "True", "True"]


def test_a_c_module_older_than_its_source_leaves_pier_on_python_paths() -> None:
    # An editable install pulled without rebuilding keeps a C module that lacks what the
    # newer Python calls (here: everything but parse_head). pier must still import and
    # serve on its Python paths, and say what happened and how to mend it.
    import subprocess
    import sys

    probe = (
        "import sys, types\n"
        "stale = types.ModuleType('pier.proto._h1head')\n"
        "stale.__file__ = '/site/pier/proto/_h1head.so'\n"
        "stale.parse_head = None\n"
        "sys.modules['pier.proto._h1head'] = stale\n"
        "from pier.proto import h1, native\n"
        "from pier.asgi import proxy\n"
        "from pier.wsgi import environ\n"
        "print(h1.parse_head is None, proxy.has_proxy_headers is proxy._has_proxy_headers,"
        " environ._known_fields is environ._python_known_fields)\n"
        "print(native.state())\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True, timeout=30)
    flags, state = done.stdout.splitlines()
    assert flags.split() == ["True", "True", "True"]
    assert state.startswith("built from older source (no has_any_name, environ_fields,")
    assert "pip install -e ." in state
    assert "RuntimeWarning: pier's C module" in done.stderr
    # Said once, though three of pier's modules load the C module.
    assert done.stderr.count("RuntimeWarning: pier's C module") == 1
    assert "built from older source" in done.stderr and "pip install -e ." in done.stderr
