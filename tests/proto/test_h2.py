"""pier.proto.h2, sans I/O, with the h2 library as the client and raw frames for attacks.

Pins RFC 9113 section 3.4 (the preface), 5.1.2 (concurrent streams: REFUSED_STREAM),
5.2 (flow control: windows reopen as the app consumes), 6.5.2 (SETTINGS_MAX_FRAME_SIZE,
SETTINGS_MAX_HEADER_LIST_SIZE), 6.8 (the two-step GOAWAY), 8.1 (RST_STREAM NO_ERROR
after a complete response), 8.2.3 (split cookies joined), 8.3.1 (:authority becomes the
host, pseudo-headers never reach the app), RFC 7540 3.2 (Upgrade: h2c), and that every
flood named in docs/http2.md ends with GOAWAY ENHANCE_YOUR_CALM, FRAME_SIZE_ERROR or a
stream reset, never with unbounded work.
"""

from __future__ import annotations

import base64
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from pier.proto.events import Request
from pier.proto.h2 import (
    PREFACE,
    ConnectionEnded,
    ErrorCode,
    H2Protocol,
    ShutdownComplete,
    StreamBody,
    StreamEnd,
    StreamRefused,
    StreamRequest,
    StreamReset,
    StreamWritable,
    h2c_settings,
    sniff,
)
from pier.proto.limits import H2Limits

GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"example.com"),
       (b":path", b"/a%20b?x=1&y=2")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"h"),
        (b":path", b"/upload")]


def client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding=None)
    )
    conn.initiate_connection()
    return conn


class Pair:
    """A pier server protocol and an h2 client, wired back to back."""

    def __init__(self, limits: H2Limits | None = None, **options: Any) -> None:
        self.server = H2Protocol(limits or H2Limits(), **options)
        self.server.initiate()
        self.client = client()
        self.client_events: list[Any] = []
        self.pump()

    def pump(self, raw: bytes = b"") -> list[Any]:
        """Client bytes (plus `raw`) to the server, the server's answer to the client."""
        events = self.server.receive_data(self.client.data_to_send() + raw)
        self.to_client()
        return events

    def to_client(self) -> list[Any]:
        data = self.server.data_to_send()
        new = self.client.receive_data(data) if data else []
        self.client_events.extend(new)
        # Client acknowledgements (SETTINGS ACK, WINDOW_UPDATE) are sent on next pump.
        return new

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.client_events if isinstance(event, kind)]

    def goaway_code(self) -> int | None:
        ended = self.of(h2.events.ConnectionTerminated)
        return ended[-1].error_code if ended else None


def send_window(conn: h2.connection.H2Connection, stream_id: int) -> None:
    """Send 65535 body bytes, in frames the server's max frame size allows."""
    for size in (16384, 16384, 16384, 16383):
        conn.send_data(stream_id, b"x" * size)


def frames(data: bytes) -> list[Any]:
    """The frames in a server's output (after its SETTINGS)."""
    from hyperframe.frame import Frame

    out = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        out.append(frame)
        data = data[9 + length :]
    return out


def raw_client_preface() -> bytes:
    return PREFACE + SettingsFrame(0).serialize()


def headers_frame(stream_id: int, fields: list[tuple[bytes, bytes]], *, end: bool = True) -> bytes:
    import hpack

    frame = HeadersFrame(stream_id)
    frame.data = hpack.Encoder().encode(fields)
    frame.flags.add("END_HEADERS")
    if end:
        frame.flags.add("END_STREAM")
    return frame.serialize()


def server_after_raw(raw: bytes, limits: H2Limits | None = None) -> tuple[list[Any], list[Any]]:
    """Feed raw client bytes to a fresh server; its events and what a client reads back."""
    server = H2Protocol(limits or H2Limits())
    server.initiate()
    events = server.receive_data(raw)
    reader = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    reader.initiate_connection()
    answer = reader.receive_data(server.data_to_send())
    return events, answer


def goaway(answer: list[Any]) -> int | None:
    ended = [event for event in answer if isinstance(event, h2.events.ConnectionTerminated)]
    return ended[-1].error_code if ended else None


# --- detection ----------------------------------------------------------------------


def test_sniff_tells_the_preface_from_http1_and_waits_for_a_partial_one() -> None:
    assert sniff(PREFACE + b"\x00") == "h2"
    assert sniff(PREFACE[:5]) is None
    assert sniff(b"") is None
    assert sniff(b"GET / HTTP/1.1\r\n") == "h1"
    assert sniff(b"PRI * HTTP/1.1\r\n") == "h1"


def upgrade_request(**changes: Any) -> Request:
    settings = base64.urlsafe_b64encode(SettingsFrame(0).serialize_body()).rstrip(b"=")
    fields = {
        "method": "GET", "raw_path": b"/", "query_string": b"",
        "headers": [(b"host", b"h"), (b"connection", b"Upgrade, HTTP2-Settings"),
                 (b"upgrade", b"h2c"), (b"http2-settings", settings)],
        "http_version": "1.1", "keep_alive": True, "expect_continue": False, "upgrade": b"h2c",
        "content_length": None, "has_body": False, "accepts_trailers": False,
    }
    fields.update(changes)
    return Request(**fields)


def test_h2c_upgrade_needs_the_settings_and_connection_tokens_and_no_body() -> None:
    assert h2c_settings(upgrade_request()) is not None
    # RFC 7540 3.2: "Connection: Upgrade, HTTP2-Settings" is required.
    assert h2c_settings(upgrade_request(headers=[(b"upgrade", b"h2c")])) is None
    # A body would have to be read as HTTP/1.1 after the switch: never upgraded.
    assert h2c_settings(upgrade_request(has_body=True, content_length=5)) is None
    assert h2c_settings(upgrade_request(upgrade=b"websocket")) is None


def test_h2c_upgrade_serves_the_request_as_stream_one() -> None:
    request = upgrade_request()
    settings = h2c_settings(request)
    assert settings is not None
    server = H2Protocol(H2Limits())
    events = server.initiate_upgrade(settings, request)
    assert [type(event) for event in events] == [StreamRequest, StreamEnd]
    assert events[0].stream_id == 1 and events[0].request.http_version == "2"
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_upgrade_connection()
    conn.receive_data(server.data_to_send())
    server.send_headers(1, 200, [(b"content-type", b"text/plain")])
    server.send_data(1, b"hi", end_stream=True)
    answer = conn.receive_data(server.data_to_send())
    assert any(isinstance(event, h2.events.ResponseReceived) for event in answer)
    assert [event.data for event in answer if isinstance(event, h2.events.DataReceived)] == [
        b"hi"
    ]


def test_h2c_upgrade_with_garbage_settings_is_refused() -> None:
    with pytest.raises(ValueError, match="HTTP2-Settings"):
        H2Protocol(H2Limits()).initiate_upgrade(b"AAA", upgrade_request())


# --- requests -----------------------------------------------------------------------


def test_request_head_becomes_pier_request_without_pseudo_headers() -> None:
    pair = Pair()
    pair.client.send_headers(
        1, [*GET, (b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")],
        end_stream=True,
    )
    events = pair.pump()
    assert [type(event) for event in events] == [StreamRequest, StreamEnd]
    request = events[0].request
    assert request.method == "GET"
    assert request.raw_path == b"/a%20b" and request.query_string == b"x=1&y=2"
    assert request.http_version == "2" and not request.has_body
    # :authority is the host; pseudo-headers are gone; cookies are one field again.
    assert request.headers == [
        (b"host", b"example.com"), (b"accept", b"*/*"), (b"cookie", b"a=1; b=2")
    ]


def test_host_that_contradicts_authority_is_a_protocol_error() -> None:
    raw = headers_frame(1, [*GET, (b"host", b"evil.example")])
    events, answer = server_after_raw(raw_client_preface() + raw)
    assert isinstance(events[-1], ConnectionEnded)
    assert goaway(answer) == ErrorCode.PROTOCOL_ERROR


def test_host_field_is_kept_when_it_matches_authority() -> None:
    events, _ = server_after_raw(
        raw_client_preface() + headers_frame(1, [*GET, (b"host", b"example.com")])
    )
    assert events[0].request.headers == [(b"host", b"example.com")]


def test_plain_connect_is_refused_with_501_and_extended_connect_names_its_protocol() -> None:
    pair = Pair(connect_protocol=True)
    pair.pump()
    pair.client.send_headers(1, [(b":method", b"CONNECT"), (b":authority", b"h:1")])
    events = pair.pump()
    assert isinstance(events[0], StreamRefused) and events[0].status == 501
    pair.client.send_headers(3, [(b":method", b"CONNECT"), (b":protocol", b"websocket"),
                                 (b":scheme", b"https"), (b":path", b"/ws"),
                                 (b":authority", b"h")])
    events = pair.pump()
    assert isinstance(events[0], StreamRequest)
    assert events[0].request.upgrade == b"websocket" and events[0].request.raw_path == b"/ws"


def test_body_window_reopens_only_as_the_app_consumes() -> None:
    pair = Pair()
    pair.client.send_headers(1, POST)
    send_window(pair.client, 1)
    events = pair.pump()
    body = [event for event in events if isinstance(event, StreamBody)]
    assert sum(len(event.data) for event in body) == 65535
    # The stream window is spent: the client may send nothing more until the app reads.
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 0
    pair.server.consumed(1, 65535)
    pair.to_client()
    assert pair.client.local_flow_control_window(1) == 65535
    pair.client.send_data(1, b"end", end_stream=True)
    events = pair.pump()
    assert [type(event) for event in events] == [StreamBody, StreamEnd]


def test_connection_window_is_the_sum_of_stream_windows() -> None:
    limits = H2Limits(max_concurrent_streams=4)
    pair = Pair(limits)
    pair.pump()
    assert pair.client.outbound_flow_control_window == 4 * 65535
    # Two stalled streams do not stop a third from sending its whole window.
    for stream_id in (1, 3, 5):
        pair.client.send_headers(stream_id, POST)
        send_window(pair.client, stream_id)
    events = pair.pump()
    assert sum(len(e.data) for e in events if isinstance(e, StreamBody)) == 3 * 65535


def test_body_over_the_limit_is_refused_with_413() -> None:
    pair = Pair(body_limit=10)
    pair.client.send_headers(1, [*POST, (b"content-length", b"11")])
    events = pair.pump()
    assert isinstance(events[0], StreamRefused) and events[0].status == 413
    pair.client.send_headers(3, POST)
    pair.client.send_data(3, b"x" * 11)
    events = pair.pump()
    assert [type(event) for event in events] == [StreamRequest, StreamRefused]
    assert events[1].status == 413


def test_expect_continue_and_te_trailers_reach_the_request() -> None:
    pair = Pair()
    pair.client.send_headers(1, [*POST, (b"expect", b"100-continue"), (b"te", b"trailers")])
    request = pair.pump()[0].request
    assert request.expect_continue and request.accepts_trailers and request.has_body


# --- responses ----------------------------------------------------------------------


def test_response_respects_the_peer_window_and_resumes_on_window_update() -> None:
    pair = Pair()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, 200, [(b"Content-Type", b"text/plain"),
                                      (b"Connection", b"close")])
    pair.server.send_data(1, b"y" * 100_000, end_stream=True)
    assert pair.server.pending(1) == 100_000 - 65535
    pair.to_client()
    response = pair.of(h2.events.ResponseReceived)[0]
    # Lower-case names; HTTP/1.1 connection fields never go out on HTTP/2.
    assert response.headers == [(b":status", b"200"), (b"content-type", b"text/plain")]
    received = sum(len(e.data) for e in pair.of(h2.events.DataReceived))
    assert received == 65535 and not pair.of(h2.events.StreamEnded)
    pair.client.acknowledge_received_data(65535, 1)
    events = pair.pump()
    assert StreamWritable(1) in events and pair.server.pending(1) == 0
    assert sum(len(e.data) for e in pair.of(h2.events.DataReceived)) == 100_000
    assert pair.of(h2.events.StreamEnded)


def test_trailers_end_the_stream_after_the_body() -> None:
    pair = Pair()
    pair.client.send_headers(1, [*GET, (b"te", b"trailers")], end_stream=True)
    pair.pump()
    pair.server.send_headers(1, 200, [(b"trailer", b"x-checksum")])
    pair.server.send_data(1, b"body")
    pair.server.send_trailers(1, [(b"X-Checksum", b"abc")])
    pair.to_client()
    trailers = pair.of(h2.events.TrailersReceived)
    assert trailers and trailers[0].headers == [(b"x-checksum", b"abc")]
    assert pair.of(h2.events.StreamEnded)


def test_informational_heads_precede_the_response() -> None:
    pair = Pair()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, 103, [(b"link", b"</s.css>; rel=preload")])
    pair.server.send_headers(1, 200, [], end_stream=True)
    pair.to_client()
    early = pair.of(h2.events.InformationalResponseReceived)
    assert early and early[0].headers[0] == (b":status", b"103")
    assert pair.of(h2.events.ResponseReceived)


def test_complete_response_to_an_unfinished_upload_resets_with_no_error() -> None:
    pair = Pair()
    pair.client.send_headers(1, POST)
    pair.pump()
    pair.server.send_headers(1, 413, [], end_stream=True)
    pair.to_client()
    resets = pair.of(h2.events.StreamReset)
    assert resets and resets[0].error_code == ErrorCode.NO_ERROR


def test_peer_reset_reaches_the_glue_and_drops_queued_output() -> None:
    pair = Pair()
    pair.client.send_headers(1, GET, end_stream=True)
    pair.pump()
    pair.server.send_headers(1, 200, [])
    pair.server.send_data(1, b"z" * 200_000)
    pair.client.reset_stream(1, ErrorCode.CANCEL)
    events = pair.pump()
    assert StreamReset(1, ErrorCode.CANCEL) in events
    assert pair.server.pending(1) == 0
    pair.server.send_data(1, b"more")  # the app did not notice yet: ignored
    assert pair.server.data_to_send() == b""


# --- connection management ------------------------------------------------------------


def test_settings_advertise_the_limits() -> None:
    limits = H2Limits(max_concurrent_streams=7, initial_window_size=70000,
                      max_header_list_size=5000, max_frame_size=20000)
    pair = Pair(limits, connect_protocol=True)
    remote = pair.client.remote_settings
    assert remote.max_concurrent_streams == 7
    assert remote.initial_window_size == 70000
    assert remote.max_header_list_size == 5000
    assert remote.max_frame_size == 20000
    assert remote.enable_connect_protocol == 1
    assert remote.enable_push == 0


def test_ping_is_answered() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.pump()
    assert pair.of(h2.events.PingAckReceived)[0].ping_data == b"12345678"


def test_graceful_shutdown_is_a_two_step_goaway() -> None:
    from hyperframe.frame import GoAwayFrame

    server = H2Protocol(H2Limits())
    server.initiate()
    server.receive_data(raw_client_preface() + headers_frame(1, GET))
    server.data_to_send()
    server.announce_shutdown()
    sent = frames(server.data_to_send())
    assert isinstance(sent[0], GoAwayFrame) and sent[0].last_stream_id == 2**31 - 1
    assert sent[0].error_code == 0
    assert isinstance(sent[1], PingFrame)
    # Stream 3 was in flight: it is still served.
    assert isinstance(server.receive_data(headers_frame(3, GET))[0], StreamRequest)
    # The PING comes back: one round trip later, the real last stream id.
    ack = PingFrame(0, flags=["ACK"], opaque_data=sent[1].opaque_data).serialize()
    events = server.receive_data(ack)
    assert not any(isinstance(event, ShutdownComplete) for event in events)  # 1, 3 run
    final = frames(server.data_to_send())
    assert isinstance(final[-1], GoAwayFrame) and final[-1].last_stream_id == 3
    server.send_headers(1, 200, [], end_stream=True)
    assert server.stream_finished(1) == []  # 3 still runs
    server.send_headers(3, 200, [], end_stream=True)
    assert server.stream_finished(3) == [ShutdownComplete()]


def test_stream_above_the_final_goaway_is_refused() -> None:
    server = H2Protocol(H2Limits())
    server.initiate()
    raw = raw_client_preface() + headers_frame(1, GET)
    assert isinstance(server.receive_data(raw)[0], StreamRequest)
    server.announce_shutdown()
    server.data_to_send()
    server.receive_data(PingFrame(0, flags=["ACK"], opaque_data=b"pier-bye").serialize())
    events = server.receive_data(headers_frame(3, GET))
    assert events == []
    reader_frames = server.data_to_send()
    assert RstStreamFrame(3, error_code=ErrorCode.REFUSED_STREAM).serialize() in reader_frames


# --- attacks --------------------------------------------------------------------------


def test_rapid_reset_ends_the_connection_with_enhance_your_calm() -> None:
    # CVE-2023-44487: open, reset, open, reset... Each reset app is cancelled by the
    # glue; the count of unanswered resets ends the connection.
    limits = H2Limits(max_reset_streams=20)
    raw = bytearray(raw_client_preface())
    for stream_id in range(1, 2 * 30, 2):
        raw += headers_frame(stream_id, GET)
        raw += RstStreamFrame(stream_id, error_code=ErrorCode.CANCEL).serialize()
    events, answer = server_after_raw(bytes(raw), limits)
    ended = [event for event in events if isinstance(event, ConnectionEnded)]
    assert ended and ended[0].limit == "--h2-max-reset-streams"
    assert goaway(answer) == ErrorCode.ENHANCE_YOUR_CALM


def test_reset_streams_keep_their_slot_until_the_app_finishes() -> None:
    limits = H2Limits(max_concurrent_streams=2)
    pair = Pair(limits)
    for stream_id in (1, 3):
        pair.client.send_headers(stream_id, GET, end_stream=True)
        pair.pump()
        pair.client.reset_stream(stream_id)
        pair.pump()
    # h2 counts no open streams now, but both apps still run: the next is refused.
    pair.client.send_headers(5, GET, end_stream=True)
    events = pair.pump()
    assert not any(isinstance(event, StreamRequest) for event in events)
    assert pair.of(h2.events.StreamReset)[-1].error_code == ErrorCode.REFUSED_STREAM
    pair.server.stream_finished(1)
    pair.client.send_headers(7, GET, end_stream=True)
    assert isinstance(pair.pump()[0], StreamRequest)


def test_continuation_flood_ends_before_the_block_outgrows_the_header_list_size() -> None:
    # CVE-2024-27316: HEADERS without END_HEADERS, then CONTINUATION after CONTINUATION.
    raw = bytearray(raw_client_preface())
    first = HeadersFrame(1)
    first.data = b"\x00" * 16000
    raw += first.serialize()
    for _ in range(10):  # h2's own backstop would wait for 64 frames (1 MiB)
        frame = ContinuationFrame(1)
        frame.data = b"\x00" * 16000
        raw += frame.serialize()
    events, answer = server_after_raw(bytes(raw), H2Limits(max_header_list_size=65536))
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].limit == "--h2-max-header-list-size"
    assert goaway(answer) == ErrorCode.ENHANCE_YOUR_CALM


def _hpack_int(value: int, prefix_bits: int, first: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def test_hpack_bomb_ends_the_connection() -> None:
    # One 4000-byte field put in the dynamic table, then referenced by its 1-byte index
    # 200 times: a 4.2 KB block that decodes to 800 KB.
    name, value = b"x-bomb", b"v" * 4000
    block = bytearray(GET_BLOCK())
    block += b"\x40" + _hpack_int(len(name), 7, 0) + name + _hpack_int(len(value), 7, 0) + value
    block += bytes([0x80 | 62]) * 200
    frame = HeadersFrame(1)
    frame.data = bytes(block)
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    events, answer = server_after_raw(raw_client_preface() + frame.serialize())
    assert isinstance(events[-1], ConnectionEnded)
    assert goaway(answer) == ErrorCode.ENHANCE_YOUR_CALM


def GET_BLOCK() -> bytes:
    import hpack

    return hpack.Encoder().encode(GET)


FLOODS = {
    "ping": lambda: PingFrame(0, opaque_data=b"flooding").serialize(),
    "settings": lambda: SettingsFrame(0).serialize(),
    "window-update": lambda: WindowUpdateFrame(0, window_increment=1).serialize(),
    "priority": lambda: PriorityFrame(1, depends_on=0, stream_weight=1).serialize(),
    "empty-data": lambda: DataFrame(1).serialize(),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_control_frame_floods_end_with_enhance_your_calm(kind: str) -> None:
    limits = H2Limits(max_control_frames=100)
    raw = bytearray(raw_client_preface())
    raw += headers_frame(1, POST, end=False)
    frame = FLOODS[kind]()
    raw += frame * 150
    events, answer = server_after_raw(bytes(raw), limits)
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].limit == "--h2-max-control-frames"
    assert goaway(answer) == ErrorCode.ENHANCE_YOUR_CALM


def test_frames_below_the_flood_bound_with_progress_between_are_fine() -> None:
    limits = H2Limits(max_control_frames=100)
    raw = bytearray(raw_client_preface())
    for stream_id in range(1, 40, 2):
        raw += PingFrame(0, opaque_data=b"12345678").serialize() * 60
        raw += headers_frame(stream_id, GET)
    events, answer = server_after_raw(bytes(raw), limits)
    assert sum(isinstance(event, StreamRequest) for event in events) == 20
    assert goaway(answer) is None


def test_oversized_frame_is_refused_from_its_header_alone() -> None:
    # A 9-byte header announcing 16 MiB: refused before any payload is buffered.
    header = (2**24 - 1).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big")
    events, answer = server_after_raw(raw_client_preface() + header)
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].limit == "--h2-max-frame-size"
    assert goaway(answer) == ErrorCode.FRAME_SIZE_ERROR


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        # A SETTINGS payload must be a multiple of 6 bytes.
        ((5).to_bytes(3, "big") + b"\x04\x00" + bytes(4) + bytes(5), ErrorCode.FRAME_SIZE_ERROR),
        # PING belongs to stream 0.
        ((8).to_bytes(3, "big") + b"\x06\x00" + (1).to_bytes(4, "big") + bytes(8),
         ErrorCode.PROTOCOL_ERROR),
        # A client may not use even stream ids.
        (headers_frame(2, GET), ErrorCode.PROTOCOL_ERROR),
        # Stream ids only go up: 3 after 5 is refused (and the id space cannot be reused).
        (headers_frame(5, GET) + headers_frame(3, GET), ErrorCode.PROTOCOL_ERROR),
        # Pseudo-header missing (:path).
        (headers_frame(1, [(b":method", b"GET"), (b":scheme", b"http")]),
         ErrorCode.PROTOCOL_ERROR),
    ],
    ids=["settings-length", "ping-on-stream", "even-stream", "stream-id-down", "no-path"],
)
def test_malformed_frames_end_the_connection_with_the_right_code(raw: bytes, code: int) -> None:
    events, answer = server_after_raw(raw_client_preface() + raw)
    assert isinstance(events[-1], ConnectionEnded)
    assert goaway(answer) == code


def test_highest_stream_id_is_served_and_nothing_can_follow_it() -> None:
    top = 2**31 - 1
    events, answer = server_after_raw(raw_client_preface() + headers_frame(top, GET))
    assert isinstance(events[0], StreamRequest) and events[0].stream_id == top
    assert goaway(answer) is None


def test_bad_preface_is_a_protocol_error() -> None:
    events, _answer = server_after_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(events[-1], ConnectionEnded)
    assert events[-1].error_code == ErrorCode.PROTOCOL_ERROR


@pytest.mark.parametrize("step", [1, 7, None])
def test_requests_fed_whole_and_in_pieces_give_the_same_events(step: int | None) -> None:
    raw = raw_client_preface() + headers_frame(1, GET) + headers_frame(3, POST, end=False)
    data = DataFrame(3, data=b"hello")
    data.flags.add("END_STREAM")
    raw += data.serialize()
    server = H2Protocol(H2Limits())
    server.initiate()
    events: list[Any] = []
    if step is None:
        events = server.receive_data(raw)
    else:
        for start in range(0, len(raw), step):
            events += server.receive_data(raw[start : start + step])
    assert [type(event) for event in events] == [
        StreamRequest, StreamEnd, StreamRequest, StreamBody, StreamEnd
    ]
