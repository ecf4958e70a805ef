"""The request-smuggling corpus: payloads that HTTP parsers of other servers and proxies
fell to, replayed against pier over a real socket, one row per payload with the RFC
clause pier's answer relies on.

Every row is followed by the same request (`GET /smuggled`), right after the bytes a
confused parser would take for the end of the first message. A row expecting a status
is refused with exactly that one response, the connection is closed, and `/smuggled` is
never served. A row expecting bytes is served: its app reads exactly those body bytes
(the framing the RFC gives the message, whatever a confused parser would make of it),
and `/smuggled` is served after it only as the next request on a connection that stays
open, never from bytes inside the body. docs/security.md lists the rules behind the rows.

Families: CL.TE and TE.CL (RFC 9112 section 6.1: both present is an error), TE.TE
obfuscations (6.1, 6.3, 5.1: a Transfer-Encoding that is not plainly chunked is refused,
one that is chunked in any spelling is decoded), chunk-size and chunk-extension tricks
(7.1, 7.1.1), bare CR and LF (2.2), obs-fold (5.2), NUL and other controls (RFC 9110
5.5), whitespace before the colon (5.1), duplicate and conflicting framing headers (RFC
9110 8.6, RFC 9112 6.3), request-line tricks (RFC 9112 3), absolute-form targets and
Host mismatches (3.2, 3.2.2), a request after Connection: close (9.6). Every row runs
with pier's native request-head fast path and with llhttp alone (proto/h1.py rule 6).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e._support import Conn, Recorder, assert_serves, parse_all
from tests.helpers import RunningServer, running_server

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: pier.test\r\n\r\n"
LAST = b"GET /last HTTP/1.1\r\nHost: pier.test\r\n\r\n"


@dataclass(frozen=True)
class Case:
    raw: bytes  # everything before the smuggled request
    expect: int | bytes  # the refusal's status, or the body the app reads
    rfc: str
    keep_alive: bool = True  # served rows: is the request after it read?


def head(*fields: bytes, line: bytes = b"POST /first HTTP/1.1") -> bytes:
    return b"\r\n".join((line, b"Host: pier.test", *fields)) + b"\r\n\r\n"


TE = b"Transfer-Encoding: chunked"
CHUNKED_BODY = b"5\r\nhello\r\n0\r\n\r\n"

CORPUS: dict[str, Case] = {
    # --- CL.TE and TE.CL ----------------------------------------------------------------
    "cl-te": Case(head(b"Content-Length: 4", TE) + CHUNKED_BODY, 400, "RFC 9112 6.1"),
    "te-cl": Case(head(TE, b"Content-Length: 4") + CHUNKED_BODY, 400, "RFC 9112 6.1"),
    "cl-te-zero-length": Case(head(b"Content-Length: 0", TE) + CHUNKED_BODY, 400,
                              "RFC 9112 6.1"),
    # --- TE.TE obfuscations ---------------------------------------------------------------
    "te-xchunked": Case(head(b"Transfer-Encoding: xchunked") + CHUNKED_BODY, 400,
                        "RFC 9112 6.3 (final coding not chunked)"),
    "te-chunked-then-identity": Case(head(b"Transfer-Encoding: chunked, identity")
                                     + CHUNKED_BODY, 400, "RFC 9112 6.3"),
    "te-two-lines-last-not-chunked": Case(head(TE, b"Transfer-Encoding: identity")
                                          + CHUNKED_BODY, 400, "RFC 9112 6.3"),
    "te-chunked-twice": Case(head(TE, TE) + CHUNKED_BODY, 400,
                             "RFC 9112 7 (chunked applied at most once)"),
    "te-space-before-colon": Case(head(b"Transfer-Encoding : chunked") + CHUNKED_BODY, 400,
                                  "RFC 9112 5.1"),
    "te-leading-space-obs-fold": Case(head(b"X-A: b", b" Transfer-Encoding: chunked")
                                      + CHUNKED_BODY, 400, "RFC 9112 5.2"),
    "te-vertical-tab": Case(head(b"Transfer-Encoding: \x0bchunked") + CHUNKED_BODY, 400,
                            "RFC 9110 5.5 (CTL in a value)"),
    "te-nul-in-value": Case(head(b"Transfer-Encoding: chunked\x00") + CHUNKED_BODY, 400,
                            "RFC 9110 5.5"),
    "te-quoted": Case(head(b'Transfer-Encoding: "chunked"') + CHUNKED_BODY, 400,
                      "RFC 9112 6.3 (not the chunked coding)"),
    "te-upper-case": Case(head(b"Transfer-Encoding: CHUNKED") + CHUNKED_BODY, b"hello",
                          "RFC 9112 7 (coding names are case-insensitive)"),
    "te-tab-before-value": Case(head(b"Transfer-Encoding:\tchunked") + CHUNKED_BODY,
                                b"hello", "RFC 9110 5.6.3 (OWS)"),
    "te-underscore-is-another-field": Case(
        head(b"Transfer_Encoding: chunked", b"Content-Length: %d" % len(CHUNKED_BODY))
        + CHUNKED_BODY,
        CHUNKED_BODY, "RFC 9110 5.1 (a different field name: Content-Length frames)"),
    "te-in-http-1-0": Case(head(TE, line=b"POST /first HTTP/1.0") + CHUNKED_BODY, 400,
                           "RFC 9112 6.1 (faulty framing)"),
    # --- chunk size and chunk extensions -------------------------------------------------
    "chunk-size-0x-prefix": Case(head(TE) + b"0x5\r\nhello\r\n0\r\n\r\n", 400, "RFC 9112 7.1"),
    "chunk-size-plus": Case(head(TE) + b"+5\r\nhello\r\n0\r\n\r\n", 400, "RFC 9112 7.1"),
    "chunk-size-negative": Case(head(TE) + b"-5\r\nhello\r\n0\r\n\r\n", 400, "RFC 9112 7.1"),
    "chunk-size-overflow": Case(head(TE) + b"10000000000000005\r\nhello\r\n0\r\n\r\n", 400,
                                "RFC 9112 7.1 (llhttp refuses sizes past 64 bits)"),
    "chunk-size-leading-zeros": Case(head(TE) + b"0005\r\nhello\r\n0\r\n\r\n", b"hello",
                                     "RFC 9112 7.1 (1*HEXDIG)"),
    "chunk-size-space-before-crlf": Case(head(TE) + b"5 \r\nhello\r\n0\r\n\r\n", 400,
                                         "RFC 9112 7.1 (no whitespace after the size)"),
    "chunk-size-bare-lf": Case(head(TE) + b"5\nhello\r\n0\r\n\r\n", 400, "RFC 9112 2.2"),
    "chunk-size-bare-cr": Case(head(TE) + b"5\rhello\r\n0\r\n\r\n", 400, "RFC 9112 2.2"),
    "chunk-data-longer-than-size": Case(head(TE) + b"3\r\nhello\r\n0\r\n\r\n", 400,
                                        "RFC 9112 7.1"),
    "chunk-data-no-crlf": Case(head(TE) + b"5\r\nhelloXX0\r\n\r\n", 400, "RFC 9112 7.1"),
    "chunk-data-bare-lf": Case(head(TE) + b"5\r\nhello\n0\r\n\r\n", 400, "RFC 9112 7.1"),
    "last-chunk-without-final-crlf": Case(head(TE) + b"5\r\nhello\r\n0\r\n", 400,
                                          "RFC 9112 7.1 (the next line is read as a trailer)"),
    "chunk-extension": Case(head(TE) + b"5;name=value\r\nhello\r\n0\r\n\r\n", b"hello",
                            "RFC 9112 7.1.1 (extensions are ignored)"),
    "chunk-extension-quoted-crlf": Case(head(TE) + b'5;a="x\r\n0\r\n\r\n"\r\nhello\r\n0\r\n\r\n',
                                        400, "RFC 9112 7.1.1 (no CR/LF in a quoted-string)"),
    "chunk-extension-bare-lf": Case(head(TE) + b"5;a\nhello\r\n0\r\n\r\n", 400,
                                    "RFC 9112 2.2"),
    "chunk-extension-nul": Case(head(TE) + b"5;a\x00\r\nhello\r\n0\r\n\r\n", 400,
                                "RFC 9112 7.1.1"),
    # --- trailers -------------------------------------------------------------------------
    "trailer-content-length": Case(head(TE) + b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
                                   400, "RFC 9110 6.5.1"),
    "trailer-transfer-encoding": Case(head(TE) + b"5\r\nhello\r\n0\r\n" + TE + b"\r\n\r\n",
                                      400, "RFC 9110 6.5.1"),
    "trailer-host": Case(head(TE) + b"5\r\nhello\r\n0\r\nHost: evil.test\r\n\r\n", 400,
                         "RFC 9110 6.5.1"),
    # --- bare CR/LF, obs-fold, NUL, whitespace before the colon --------------------------
    "bare-lf-in-head": Case(b"POST /first HTTP/1.1\nHost: pier.test\nContent-Length: 5\n\n"
                            b"hello", 400, "RFC 9112 2.2"),
    "bare-cr-in-value": Case(head(b"X-A: a\rContent-Length: 5") + b"hello", 400,
                             "RFC 9112 2.2"),
    "obs-fold-content-length": Case(head(b"Content-Length: 0", b" 5") + b"hello", 400,
                                    "RFC 9112 5.2"),
    "nul-in-field-name": Case(head(b"Content-Length\x00: 5") + b"hello", 400, "RFC 9110 5.1"),
    "cl-space-before-colon": Case(head(b"Content-Length : 5") + b"hello", 400,
                                  "RFC 9112 5.1"),
    "cl-tab-before-colon": Case(head(b"Content-Length\t: 5") + b"hello", 400, "RFC 9112 5.1"),
    # --- duplicate and conflicting framing headers ----------------------------------------
    "cl-duplicate-different": Case(head(b"Content-Length: 5", b"Content-Length: 6") + b"hello",
                                   400, "RFC 9112 6.3"),
    "cl-duplicate-same": Case(head(b"Content-Length: 5", b"Content-Length: 5") + b"hello", 400,
                              "RFC 9110 8.6 (pier refuses even equal copies)"),
    "cl-list": Case(head(b"Content-Length: 5, 5") + b"hello", 400, "RFC 9110 8.6"),
    "cl-plus-sign": Case(head(b"Content-Length: +5") + b"hello", 400, "RFC 9110 8.6 (1*DIGIT)"),
    "cl-hex": Case(head(b"Content-Length: 0x5") + b"hello", 400, "RFC 9110 8.6"),
    "cl-space-inside": Case(head(b"Content-Length: 5 0") + b"hello", 400, "RFC 9110 8.6"),
    "cl-empty": Case(head(b"Content-Length: ") + b"hello", 400, "RFC 9110 8.6"),
    "cl-leading-zeros": Case(head(b"Content-Length: 005") + b"hello", b"hello",
                             "RFC 9110 8.6 (1*DIGIT)"),
    "content-type-twice": Case(head(b"Content-Type: a/b", b"Content-Type: c/d",
                                    b"Content-Length: 5") + b"hello", 400,
                               "RFC 9110 5.3 (pier's singleton list)"),
    # --- request line ---------------------------------------------------------------------
    "request-line-double-space": Case(b"GET  /first HTTP/1.1\r\nHost: pier.test\r\n\r\n", b"",
                                      "RFC 9112 3 (recipients may split on whitespace runs)"),
    "request-line-tab": Case(b"GET\t/first HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400,
                             "RFC 9112 3"),
    "request-line-trailing-space": Case(b"GET /first HTTP/1.1 \r\nHost: pier.test\r\n\r\n",
                                        400, "RFC 9112 3"),
    "request-line-bare-lf": Case(b"POST /first\nX: HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400,
                                 "RFC 9112 2.2 and 3 (no HTTP/1.1 request line)"),
    "lower-case-version": Case(b"GET /first http/1.1\r\nHost: pier.test\r\n\r\n", 400,
                               "RFC 9112 2.3 (HTTP-name is case-sensitive)"),
    "asterisk-for-get": Case(b"GET * HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400,
                             "RFC 9112 3.2.4"),
    "raw-utf8-target": Case(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: pier.test\r\n\r\n", 400,
                            "RFC 9112 3.2"),
    # --- Host and absolute-form -----------------------------------------------------------
    "host-twice": Case(head(b"Host: evil.test", b"Content-Length: 5") + b"hello", 400,
                       "RFC 9112 3.2"),
    "host-missing": Case(b"POST /first HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400,
                         "RFC 9112 3.2"),
    "host-with-path": Case(b"GET /first HTTP/1.1\r\nHost: pier.test/admin\r\n\r\n", 400,
                           "RFC 9110 7.2 (invalid Host value)"),
    "host-with-userinfo": Case(b"GET /first HTTP/1.1\r\nHost: pier.test@evil.test\r\n\r\n",
                               400, "RFC 9110 7.2"),
    "host-with-space": Case(b"GET /first HTTP/1.1\r\nHost: pier.test evil.test\r\n\r\n", 400,
                            "RFC 9110 7.2"),
    "host-ipv6-literal": Case(b"GET /first HTTP/1.1\r\nHost: [::1]:8000\r\n\r\n", b"",
                              "RFC 3986 3.2.2"),
    "absolute-form": Case(b"POST http://pier.test/first HTTP/1.1\r\nHost: pier.test\r\n"
                          b"Content-Length: 5\r\n\r\nhello", b"hello", "RFC 9112 3.2.2"),
    "absolute-form-host-mismatch": Case(b"POST http://other.test/first HTTP/1.1\r\n"
                                        b"Host: pier.test\r\nContent-Length: 5\r\n\r\nhello",
                                        b"hello", "RFC 9112 3.2.2 (the target's host wins)"),
    # --- upgrades and connection management ----------------------------------------------
    "upgrade-h2c-body": Case(head(b"Connection: Upgrade", b"Upgrade: h2c",
                                  b"Content-Length: %d" % len(SMUGGLED)) + SMUGGLED, SMUGGLED,
                             "RFC 9110 7.8 (not performed: an ordinary request)"),
    "connect-with-content": Case(b"CONNECT pier.test:443 HTTP/1.1\r\nHost: pier.test:443\r\n"
                                 b"Content-Length: 5\r\n\r\nhello", 400, "RFC 9110 9.3.6"),
    "connection-close-then-more": Case(head(b"Connection: close", b"Content-Length: 5")
                                       + b"hello", b"hello", "RFC 9112 9.6", keep_alive=False),
    "http-1-0-then-more": Case(b"POST /first HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
                               b"hello", "RFC 9112 9.3 (HTTP/1.0: not persistent)",
                               keep_alive=False),
}


@pytest.fixture(scope="module")
def served(h1_path: str) -> Iterator[tuple[RunningServer, Recorder]]:
    # Every row is replayed with the native head fast path and with llhttp alone.
    recorder = Recorder()
    with running_server(recorder.app) as server:
        yield server, recorder


@pytest.mark.parametrize("case", CORPUS.values(), ids=CORPUS.keys())
def test_the_smuggled_request_is_never_served(
        served: tuple[RunningServer, Recorder], case: Case) -> None:
    server, recorder = served
    before = len(recorder.scopes)
    with Conn.open(server) as conn:
        if isinstance(case.expect, int) or not case.keep_alive:
            with contextlib.suppress(OSError):  # the server may close before reading all
                conn.send(case.raw + SMUGGLED)
            responses = parse_all(conn.wait_closed())
        else:
            # Answered in order: once /last is answered, every request before it was.
            conn.send(case.raw + SMUGGLED + LAST)
            responses = [conn.read_response() for _ in range(3)]
    paths = recorder.paths[before:]
    if isinstance(case.expect, int):
        assert "/smuggled" not in paths, f"{case.rfc}: the smuggled request was served"
        assert [r.status for r in responses] == [case.expect], case.rfc
    else:
        expected = ["/first", "/smuggled", "/last"] if case.keep_alive else ["/first"]
        assert paths == expected, case.rfc
        assert [r.status for r in responses] == [200] * len(expected), case.rfc
        assert recorder.bodies[before] == case.expect, case.rfc
    assert_serves(server)
