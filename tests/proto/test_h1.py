"""The sans-I/O HTTP/1.1 layer: bytes in, handler calls out; responses in, bytes out.

Pins RFC 9112 section 2-3 (message and request line), 3.2 (Host), 6 (body framing),
7.1 (chunked), RFC 9110 section 5.5 (field values) and 10.1.1 (Expect). Every input
is fed whole, byte by byte, and split at every point, as h11's tests do: the parser
must give the same events however the bytes arrive. The parser reports to a handler
by plain calls; an EventRecorder turns them back into records to compare. Each test
runs twice: with the native request-head fast path (proto/h1.py rule 6) and without.
"""

from __future__ import annotations

import pytest

from pier.proto.events import BadRequest, Body, EndOfMessage, EventRecorder, Request, Upgrade
from pier.proto.h1 import H1Parser, ResponseFramer
from pier.proto.headers import AppResponseError
from pier.proto.limits import Limits

WEBSOCKET = frozenset({b"websocket"})
# Every test here runs with the native head fast path and with llhttp alone (rule 6).
pytestmark = pytest.mark.usefixtures("h1_path")


def feed(
    data: bytes,
    *,
    how: str = "whole",
    limits: Limits | None = None,
    upgrades: frozenset[bytes] = WEBSOCKET,
) -> list[object]:
    recorder = EventRecorder(upgrades)
    parser = H1Parser(limits or Limits(), recorder)
    if how == "whole":
        parser.receive_data(data)
    elif how == "bytes":
        for index in range(len(data)):
            parser.receive_data(data[index : index + 1])
    else:
        split = int(how)
        parser.receive_data(data[:split])
        parser.receive_data(data[split:])
    return list(recorder.events)


def merged(events: list[object]) -> list[object]:
    """Consecutive Body events joined, so splits that cut a body compare equal."""
    out: list[object] = []
    for event in events:
        if isinstance(event, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + event.data)
        else:
            out.append(event)
    return out


GET = b"GET /a%20b/c?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\nX-Pad: v \t\r\n\r\n"
POST_CHUNKED = (
    b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
)


@pytest.mark.parametrize("how", ["whole", "bytes", "7", "30"])
def test_a_get_parses_the_same_however_the_bytes_arrive(how: str) -> None:
    events = feed(GET, how=how)
    assert len(events) == 2
    request, end = events
    assert isinstance(request, Request) and isinstance(end, EndOfMessage)
    assert request.method == "GET"
    assert request.raw_path == b"/a%20b/c"
    assert request.query_string == b"x=1&y=%20"
    assert request.http_version == "1.1"
    assert request.headers == [(b"host", b"example.test"), (b"x-pad", b"v")]
    assert request.keep_alive and not request.has_body


@pytest.mark.parametrize("how", ["whole", "bytes", "60", "75"])
def test_a_chunked_body_arrives_intact(how: str) -> None:
    events = merged(feed(POST_CHUNKED, how=how))
    assert isinstance(events[0], Request) and events[0].has_body
    assert events[1:] == [Body(b"hello world"), EndOfMessage()]


def test_pipelined_requests_come_out_in_order_with_their_own_versions() -> None:
    data = (
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /2 HTTP/1.0\r\n\r\n"
    )
    requests = [e for e in feed(data) if isinstance(e, Request)]
    assert [(r.raw_path, r.http_version) for r in requests] == [
        (b"/1", "1.1"),
        (b"/2", "1.0"),
    ]
    assert not requests[1].keep_alive


def test_a_version_lookalike_inside_a_body_is_not_taken_for_the_next_request_line() -> None:
    recorder = EventRecorder()
    parser = H1Parser(Limits(), recorder)
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n")
    recorder.take()
    # The rest of the body, then a new request, in one chunk: the chunk does not
    # start at a message boundary, so its first line says nothing about the request.
    parser.receive_data(b"ab HTTP/1.0\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    events = recorder.take()
    request = next(e for e in events if isinstance(e, Request))
    assert request.http_version == "1.1"
    assert request.raw_path == b"/next"


def test_leading_empty_lines_before_a_request_are_tolerated() -> None:
    requests = [e for e in feed(b"\r\nGET / HTTP/1.0\r\n\r\n") if isinstance(e, Request)]
    assert [r.http_version for r in requests] == ["1.0"]


def test_an_upgrade_hands_over_the_bytes_after_the_head() -> None:
    data = (
        b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\nFRAME"
    )
    events = feed(data)
    assert isinstance(events[0], Request) and events[0].upgrade == b"websocket"
    assert events[-1] == Upgrade(b"FRAME")


def test_an_upgrade_header_without_connection_upgrade_is_a_plain_request() -> None:
    events = feed(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n")
    assert isinstance(events[0], Request) and events[0].upgrade is None


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
H2C = b"POST /a HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"


@pytest.mark.parametrize("how", ["whole", "bytes", "40", "80", "100"])
@pytest.mark.parametrize("framing", ["length", "chunked", "chunked-trailers"])
def test_an_upgrade_not_performed_reads_its_body_and_the_next_request_after_it(
    how: str, framing: str
) -> None:
    # RFC 9110 section 7.8; issue 10: llhttp skips the body of an upgrade request, and
    # reading on from the end of its head served the body as a request.
    if framing == "length":
        body = b"Content-Length: %d\r\n\r\n" % len(SMUGGLED) + SMUGGLED
    else:
        trailers = b"X-T: 1\r\n" if framing == "chunked-trailers" else b""
        body = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%b\r\n0\r\n%b\r\n" % (
            len(SMUGGLED), SMUGGLED, trailers)
    events = merged(feed(H2C + body + b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n", how=how))
    first, data, end, second, second_end = events
    # Offered to the handler, which did not take it: an ordinary request.
    assert isinstance(first, Request) and first.upgrade == b"h2c" and first.keep_alive
    assert data == Body(SMUGGLED) and end == second_end == EndOfMessage()
    assert isinstance(second, Request) and second.raw_path == b"/next"


def test_an_upgrade_not_performed_that_closes_reads_its_body_and_nothing_after() -> None:
    data = H2C + b"Connection: close\r\nContent-Length: 3\r\n\r\nabc" + SMUGGLED
    events = merged(feed(data, how="bytes"))
    assert [type(e) for e in events] == [Request, Body, EndOfMessage]
    assert events[1] == Body(b"abc")


def test_any_upgrade_is_ordinary_when_the_parser_takes_none() -> None:
    data = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    events = feed(data + SMUGGLED, upgrades=frozenset())
    assert [type(e) for e in events] == [Request, EndOfMessage, Request, EndOfMessage]
    assert events[0].upgrade == b"websocket"  # type: ignore[union-attr]  # offered, not taken


def test_trailers_never_join_the_headers_and_are_bounded() -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    events = feed(head + b"X-Sum: 1\r\n\r\n", how="bytes")
    assert isinstance(events[0], Request)
    assert events[0].headers == [(b"host", b"h"), (b"transfer-encoding", b"chunked")]
    assert merged(events)[1:] == [Body(b"abc"), EndOfMessage()]
    many = b"".join(b"X-%d: v\r\n" % i for i in range(4))
    limits = Limits(fields=5)
    refusal = feed(head + many + b"\r\n", limits=limits)[-1]
    assert isinstance(refusal, BadRequest) and refusal.status == 431
    refusal = feed(head + b"Host: evil\r\n\r\n")[-1]
    assert isinstance(refusal, BadRequest) and refusal.status == 400


def test_an_endless_trailer_line_is_cut_off_before_it_is_complete() -> None:
    recorder = EventRecorder()
    parser = H1Parser(Limits(head_size=1000), recorder)
    parser.receive_data(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    parser.receive_data(b"3\r\nabc\r\n0\r\nX: ")
    for _ in range(400):  # the backstop allows one read (256 KiB) of slack
        parser.receive_data(b"v" * 1000)
        if parser.dead:
            break
    refusal = recorder.events[-1]
    assert isinstance(refusal, BadRequest) and refusal.status == 431


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /\r\nHost: a\r\n\r\n", 400),  # HTTP/0.9
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\nHost: a\n\n", 400),  # bare LF
        (b"GET / HTTP/1.1\r\nHost: a\x00\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400),  # obs-fold
    ],
)
def test_malformed_and_ambiguous_requests_are_refused(data: bytes, status: int) -> None:
    events = feed(data)
    refusal = events[-1]
    assert isinstance(refusal, BadRequest) and refusal.status == status
    assert not any(isinstance(e, Request) for e in events)


def test_after_a_refusal_the_parser_reads_nothing_more() -> None:
    recorder = EventRecorder()
    parser = H1Parser(Limits(), recorder)
    parser.receive_data(b"BAD\r\n\r\n")
    assert isinstance(recorder.take()[-1], BadRequest)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert recorder.take() == [] and parser.dead


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_nothing_is_read_after_a_request_that_closes_the_connection(how: str) -> None:
    # RFC 9112 section 9.6: a request pipelined after "Connection: close" is not served.
    data = (
        b"GET /1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    events = feed(data, how=how)
    requests = [e for e in events if isinstance(e, Request)]
    assert [r.raw_path for r in requests] == [b"/1"]
    assert events[-1] == EndOfMessage()


def test_a_closed_parser_reads_nothing_and_closes_once() -> None:
    recorder = EventRecorder()
    parser = H1Parser(Limits(), recorder)
    parser.receive_data(b"GET /half HTTP/1.1\r\nHost:")
    assert parser.reading_head
    parser.close()
    parser.close()
    parser.receive_data(b" h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n")
    assert recorder.take() == [] and parser.dead and not parser.reading_head


class _Broken(EventRecorder):
    def on_request(self, *values: object) -> None:
        raise LookupError("a bug in the handler")


def test_a_failing_handler_surfaces_as_itself_not_as_a_bad_request() -> None:
    handler = _Broken()
    parser = H1Parser(Limits(), handler)
    with pytest.raises(LookupError, match="a bug in the handler"):
        parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert parser.dead and handler.events == []


@pytest.mark.parametrize("how", ["whole", "bytes"])
def test_limits_answer_with_the_status_that_names_them(how: str) -> None:
    limits = Limits(head_size=4000, fields=5, field_size=100, request_line=50, body=10)

    def status(data: bytes) -> int:
        event = feed(data, how=how, limits=limits)[-1]
        assert isinstance(event, BadRequest), event
        return event.status

    assert status(b"GET /" + b"a" * 60 + b" HTTP/1.1\r\nHost: h\r\n\r\n") == 414
    assert status(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 120 + b"\r\n\r\n") == 431
    many = b"".join(b"X%d: v\r\n" % i for i in range(6))
    assert status(b"GET / HTTP/1.1\r\nHost: h\r\n" + many + b"\r\n") == 431
    assert status(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n") == 413
    chunked = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n"
    assert status(chunked + b"6\r\nabcdef\r\n0\r\n\r\n") == 413


def test_an_endless_header_line_is_cut_off_before_it_is_complete() -> None:
    recorder = EventRecorder()
    parser = H1Parser(Limits(head_size=1000), recorder)
    parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nX: ")
    events: list[object] = []
    for _ in range(400):  # the backstop allows one read (256 KiB) of slack
        parser.receive_data(b"v" * 1000)
        events += recorder.take()
        if events:
            break
    assert isinstance(events[-1], BadRequest) and events[-1].status == 431


def test_expect_continue_counts_for_http_1_1_only() -> None:
    expect = b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    (new,) = [e for e in feed(b"POST / HTTP/1.1\r\nHost: h\r\n" + expect) if isinstance(e, Request)]
    (old,) = [e for e in feed(b"POST / HTTP/1.0\r\n" + expect) if isinstance(e, Request)]
    assert new.expect_continue and not old.expect_continue


# Response side ------------------------------------------------------------------------


def head(framer: ResponseFramer, status: int = 200, headers: object = (), **kw: object) -> bytes:
    options: dict[str, object] = {
        "method": "GET",
        "http_version": "1.1",
        "keep_alive": True,
        "default_headers": b"server: pier\r\n",
        "body_length": None,
    }
    options.update(kw)
    return framer.head(status, headers, **options)  # type: ignore[arg-type]


def test_a_complete_body_gets_a_content_length_and_a_stream_gets_chunked() -> None:
    whole = ResponseFramer()
    assert b"content-length: 5\r\n" in head(whole, body_length=5)
    assert whole.body(b"hello", False) == b"hello"
    stream = ResponseFramer()
    assert b"transfer-encoding: chunked\r\n" in head(stream)
    assert stream.body(b"ab", True) == b"2\r\nab\r\n"
    assert stream.body(b"", False) == b"0\r\n\r\n"


@pytest.mark.parametrize("trailers", [False, True])
@pytest.mark.parametrize(
    ("body_length", "http_version"), [(None, "1.1"), (5, "1.1"), (None, "1.0")]
)
def test_body_pieces_frame_exactly_like_body(
    body_length: int | None, http_version: str, trailers: bool
) -> None:
    # The connection writes large pieces with writelines(body_pieces(...)) and small
    # ones with write(body(...)): the bytes on the wire must not depend on the size.
    joined, pieces = ResponseFramer(), ResponseFramer()
    for framer in (joined, pieces):
        head(framer, body_length=body_length, http_version=http_version, trailers=trailers)
    sequence = [(b"ab", True), (b"", True), (b"cde", False)]
    expected = b"".join(joined.body(data, more) for data, more in sequence)
    assert b"".join(b"".join(pieces.body_pieces(d, m)) for d, m in sequence) == expected
    assert pieces.sent == joined.sent == 5
    if body_length is None and http_version == "1.1":
        assert pieces.body_pieces(b"x", True)[1] == b"x"  # the data itself, not a copy


def test_an_http_1_0_stream_is_close_delimited() -> None:
    framer = ResponseFramer()
    encoded = head(framer, http_version="1.0")
    assert b"connection: close\r\n" in encoded and not framer.keep_alive
    assert framer.body(b"raw", True) == b"raw"


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_is_sent_for_head_204_and_304(method: str, status: int) -> None:
    framer = ResponseFramer()
    head(framer, status, method=method)
    assert framer.body(b"ignored", False) == b""


def test_the_apps_content_length_is_enforced() -> None:
    framer = ResponseFramer()
    head(framer, headers=[(b"content-length", b"3")])
    with pytest.raises(AppResponseError, match="Content-Length"):
        framer.body(b"four", False)
    short = ResponseFramer()
    head(short, headers=[(b"content-length", b"3")])
    with pytest.raises(AppResponseError, match="Content-Length"):
        short.body(b"ab", False)


def test_one_content_length_line_however_often_the_app_repeats_it() -> None:
    # Two lines would frame the response two ways for a proxy in front (RFC 9110 8.6):
    # the same value is sent once, two different ones are refused (tests/e2e/
    # test_app_misbehaviour.py "two-lengths" sees the 500).
    encoded = head(ResponseFramer(), headers=[(b"content-length", b"3")] * 2)
    assert encoded.count(b"content-length") == 1
    with pytest.raises(AppResponseError, match=r"two different Content-Length values \(3 and 4\)"):
        head(ResponseFramer(), headers=[(b"content-length", b"3"), (b"Content-Length", b"4")])


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-a", b"v\r\nInjected: 1")],
        [(b"x-a", b"v\nx")],
        [(b"bad name", b"v")],
        [("x-str", b"v")],
        [(b"x-a", "str value")],
        [(b"x-a",)],
    ],
)
def test_header_pairs_that_could_split_a_response_are_refused(headers: object) -> None:
    with pytest.raises(AppResponseError):
        head(ResponseFramer(), headers=headers)


def test_the_apps_server_header_replaces_the_default_one() -> None:
    encoded = head(ResponseFramer(), headers=[(b"Server", b"mine")])
    assert encoded.count(b"erver:") == 1 and b"Server: mine" in encoded


def test_trailers_close_the_chunked_body() -> None:
    framer = ResponseFramer()
    head(framer, trailers=True)
    assert framer.body(b"x", False) == b"1\r\nx\r\n"
    assert framer.trailer_block([(b"x-sum", b"1")]) == b"0\r\nx-sum: 1\r\n\r\n"


def test_reading_head_is_true_only_while_a_head_is_partly_read() -> None:
    # The connection starts the request-head deadline from this (RFC 9112 section 9.5
    # leaves timeouts to the server), never for a connection idle between requests.
    parser = H1Parser(Limits(), EventRecorder())
    parser.receive_data(b"\r\n")
    assert not parser.reading_head
    parser.receive_data(b"GET / HTTP/1.1\r\nHo")
    assert parser.reading_head
    parser.receive_data(b"st: h\r\n\r\n")
    assert not parser.reading_head


def test_a_refusal_after_an_upgrade_not_performed_is_a_refusal() -> None:
    # Found by tests/proto/test_h1_properties.py: the request after an upgrade pier does
    # not perform was read from inside the parser's upgrade handler, so its refusal
    # carried the upgrade as context and escaped as httptools.HttpParserUpgrade.
    data = H2C + b"\r\nGET /r0HTTP/1.1\r\nHost: h\r\n\r\n"
    events = feed(data)
    assert [type(e) for e in events] == [Request, EndOfMessage, BadRequest]


@pytest.mark.parametrize(
    "start",
    [
        b"GET /",
        b"GET / HTTP/1.1\r\nHost: h\r\nX: ",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: ",
    ],
    ids=["request-line", "header", "trailer"],
)
def test_a_line_trickled_a_byte_at_a_time_is_cut_off_near_the_line_limits(start: bytes) -> None:
    # httptools joins a partial line's pieces read after read: a 320 KiB value sent one
    # byte per read cost ~10 s of CPU before the head-size backstop stopped it.
    recorder = EventRecorder()
    parser = H1Parser(Limits(), recorder)
    parser.receive_data(start)
    fed = 0
    while not parser.dead and fed < 400_000:
        parser.receive_data(b"v")
        fed += 1
    refusal = recorder.events[-1]
    assert isinstance(refusal, BadRequest) and refusal.status == 431
    limits = Limits()
    assert fed <= limits.request_line + 2 * limits.field_size + 1024 + len(start)


@pytest.mark.parametrize("how", ["whole", "bytes", "9"])
def test_a_request_line_ended_by_a_bare_lf_is_not_taken_for_http_1_1(how: str) -> None:
    # Found by scripts/fuzz: the version was read from the first CRLF-ended line of the
    # read, and llhttp had ended the request line earlier, at a bare LF (HTTP/0.9 style):
    # served whole, refused when split.
    events = feed(b"POST /\nX: HTTP/1.1\r\nHost: h\r\n\r\n", how=how)
    assert [type(e) for e in events] == [BadRequest]
