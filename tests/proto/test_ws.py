"""pier.proto.ws, sans I/O: the opening handshake and frames in, events and bytes out.

Pins RFC 6455 section 4.2.1 (what a valid handshake request carries) and 4.2.2 (the
101 answer, Sec-WebSocket-Accept), 4.4 (426 + Sec-WebSocket-Version for an unknown
version), 5.1-5.5 (masking, reserved bits, opcodes, fragmentation, control frames of at
most 125 bytes, never fragmented), 7.1.7 (failing the connection), 7.4 (close codes),
8.1 (invalid UTF-8 fails with 1007, as soon as it is seen), and RFC 7692 (the
permessage-deflate negotiation, and a bound on decompressed size). Every input is fed
whole and byte by byte (design habit 10).
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from typing import Any

import pytest

from pier.proto.events import Request
from pier.proto.h1 import switching_protocols
from pier.proto.ws import (
    CloseReceived,
    Failed,
    HandshakeRefused,
    Message,
    Ping,
    Pong,
    ServerHandshake,
    WSConnection,
    WSEvent,
    accept_headers,
    check_close,
    negotiate,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # the sample nonce of RFC 6455 section 1.3


def accept_response(
    handshake: ServerHandshake, *, subprotocol: str | None, headers: Any,
    default_headers: bytes,
) -> bytes:
    """The whole HTTP/1.1 101 answer, as the HTTP/1.1 glue writes it."""
    fields = accept_headers(handshake, subprotocol=subprotocol, headers=headers)
    return switching_protocols(handshake.accept_key, fields, default_headers)


def request(
    headers: list[tuple[bytes, bytes]] | None = None,
    *,
    method: str = "GET",
    http_version: str = "1.1",
    drop: tuple[bytes, ...] = (),
) -> Request:
    base = [
        (b"host", b"example.com"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
    ]
    names = {name for name, _ in headers or []} | set(drop)
    fields = [(n, v) for n, v in base if n not in names] + (headers or [])
    return Request(
        method=method, raw_path=b"/chat", query_string=b"", headers=fields,
        http_version=http_version, keep_alive=True, expect_continue=False,
        upgrade=b"websocket", content_length=None, has_body=False, accepts_trailers=False,
    )


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
          mask: bool = True) -> bytes:
    """A client frame (RFC 6455 section 5.2), masked unless told otherwise."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload)
    bit = 0x80 if mask else 0
    if size < 126:
        head += bytes([bit | size])
    elif size < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def parse_server_frames(data: bytes) -> list[tuple[int, bytes, bool, int]]:
    """(opcode, payload, fin, rsv1) for each unmasked server frame in `data`."""
    frames = []
    while data:
        first, second = data[0], data[1]
        assert not second & 0x80, "a server must not mask its frames"
        size, offset = second & 0x7F, 2
        if size == 126:
            size, offset = struct.unpack("!H", data[2:4])[0], 4
        elif size == 127:
            size, offset = struct.unpack("!Q", data[2:10])[0], 10
        frames.append((first & 0x0F, data[offset:offset + size], bool(first & 0x80),
                       (first >> 6) & 1))
        data = data[offset + size:]
    return frames


def connection(*, max_size: int | None = 1 << 20, offer: bytes | None = None) -> WSConnection:
    headers = [(b"sec-websocket-extensions", offer)] if offer else []
    return WSConnection(negotiate(request(headers)), max_size=max_size)


@pytest.fixture(params=["whole", "bytewise"])
def feed(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """Feed bytes to a connection whole or one byte at a time; the events must agree."""

    def feed_(conn: WSConnection, data: bytes) -> list[WSEvent]:
        if request.param == "whole":
            return conn.receive_data(data)
        events: list[WSEvent] = []
        for i in range(len(data)):
            events += conn.receive_data(data[i:i + 1])
        return events

    return feed_


# --- the opening handshake -------------------------------------------------------------


def test_valid_handshake_computes_the_accept_key_of_rfc6455_section_1_3() -> None:
    handshake = negotiate(request())
    assert handshake.accept_key == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    response = accept_response(handshake, subprotocol=None, headers=[],
                               default_headers=b"server: pier\r\n")
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\nserver: pier\r\n")
    assert b"\r\nupgrade: websocket\r\n" in response
    assert b"\r\nconnection: Upgrade\r\n" in response
    assert b"\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.endswith(b"\r\n\r\n")
    assert b"sec-websocket-extensions" not in response  # none offered


def test_accept_key_follows_the_key_for_random_keys() -> None:
    key = base64.b64encode(os.urandom(16))
    handshake = negotiate(request([(b"sec-websocket-key", key)]))
    expected = base64.b64encode(
        hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
    )
    assert handshake.accept_key == expected


def test_subprotocols_are_listed_in_offer_order_across_header_lines() -> None:
    handshake = negotiate(request([
        (b"sec-websocket-protocol", b"graphql-ws, chat"),
        (b"sec-websocket-protocol", b"v2.chat"),
    ]))
    assert handshake.subprotocols == ["graphql-ws", "chat", "v2.chat"]
    response = accept_response(handshake, subprotocol="chat", headers=[],
                               default_headers=b"")
    assert b"\r\nsec-websocket-protocol: chat\r\n" in response


@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"method": "POST"}, 400, "must be a GET request"),
        ({"http_version": "1.0"}, 400, "needs HTTP/1.1"),
        ({"headers": [(b"sec-websocket-version", b"8")]}, 426, "speaks version 13"),
        ({"drop": (b"sec-websocket-version",)}, 426, "speaks version 13"),
        ({"drop": (b"sec-websocket-key",)}, 400, "exactly one Sec-WebSocket-Key"),
        ({"headers": [(b"sec-websocket-key", b"c2hvcnQ=")]}, 400, "not 16 random bytes"),
        ({"headers": [(b"sec-websocket-key", b"!!notbase64!!!!!!!!!!!==")]}, 400,
         "not 16 random bytes"),
        ({"headers": [(b"sec-websocket-key", KEY), (b"sec-websocket-key", KEY)]}, 400,
         "exactly one"),
        ({"headers": [(b"upgrade", b"h2c")]}, 426, "must be 'websocket'"),
        ({"headers": [(b"connection", b"keep-alive")]}, 400, "Connection: Upgrade"),
        ({"drop": (b"host",)}, 400, "Host header"),
        ({"headers": [(b"sec-websocket-protocol", b"a b")]}, 400, "not a token"),
    ],
)
def test_invalid_handshakes_are_refused_with_status_and_reason(
    change: dict[str, object], status: int, words: str
) -> None:
    with pytest.raises(HandshakeRefused) as info:
        negotiate(request(**change))  # type: ignore[arg-type]
    assert info.value.status == status
    assert words in info.value.reason


def test_unsupported_version_names_the_supported_one_in_a_header() -> None:
    with pytest.raises(HandshakeRefused) as info:
        negotiate(request([(b"sec-websocket-version", b"7")]))
    assert (b"sec-websocket-version", b"13") in info.value.headers


def test_upgrade_and_connection_tokens_are_case_insensitive_list_elements() -> None:
    negotiate(request([(b"upgrade", b"WebSocket"), (b"connection", b"keep-alive, UPGRADE")]))


def test_app_headers_are_sent_but_cannot_replace_the_handshake_fields() -> None:
    response = accept_response(
        negotiate(request()), subprotocol=None,
        headers=[(b"x-session", b"42"), (b"sec-websocket-accept", b"forged"),
                 (b"Upgrade", b"other")],
        default_headers=b"",
    )
    assert b"\r\nx-session: 42\r\n" in response
    assert b"forged" not in response
    assert b"other" not in response


@pytest.mark.parametrize(
    "headers",
    [[(b"x-a", b"1\r\nx-injected: 1")], [("x-a", b"1")], [(b"bad name", b"1")], [b"x"]],
)
def test_app_headers_that_could_split_the_response_are_refused(headers: list[object]) -> None:
    with pytest.raises(ValueError, match=r"websocket\.accept"):
        accept_response(negotiate(request()), subprotocol=None, headers=headers,
                        default_headers=b"")


# --- permessage-deflate negotiation (RFC 7692 section 5, 7) ----------------------------


def test_deflate_is_negotiated_when_offered_and_on() -> None:
    handshake = negotiate(request([(b"sec-websocket-extensions",
                                    b"permessage-deflate; client_max_window_bits")]))
    assert handshake.extensions_header is not None
    assert handshake.extensions_header.startswith(b"permessage-deflate")
    response = accept_response(handshake, subprotocol=None, headers=[], default_headers=b"")
    assert b"\r\nsec-websocket-extensions: permessage-deflate" in response


def test_deflate_is_not_negotiated_when_switched_off() -> None:
    handshake = negotiate(
        request([(b"sec-websocket-extensions", b"permessage-deflate")]),
        per_message_deflate=False,
    )
    assert handshake.extensions_header is None
    assert handshake.extensions == []


def test_unknown_extensions_are_declined_silently() -> None:
    handshake = negotiate(request([(b"sec-websocket-extensions", b"x-webkit-deflate-frame")]))
    assert handshake.extensions_header is None


def test_malformed_extension_header_is_a_400() -> None:
    with pytest.raises(HandshakeRefused) as info:
        negotiate(request([(b"sec-websocket-extensions", b"permessage-deflate; ;=")]))
    assert info.value.status == 400
    assert "Sec-WebSocket-Extensions" in info.value.reason


def test_server_window_of_8_bits_is_accepted_and_messages_go_out_uncompressed() -> None:
    # zlib cannot compress with a 256-byte window; declining would cost the client its
    # compression, so the server accepts and simply sends uncompressed messages.
    conn = connection(offer=b"permessage-deflate; server_max_window_bits=8")
    handshake = negotiate(request([(b"sec-websocket-extensions",
                                    b"permessage-deflate; server_max_window_bits=8")]))
    assert handshake.extensions_header is not None
    assert b"server_max_window_bits=8" in handshake.extensions_header
    [(opcode, payload, _, rsv1)] = parse_server_frames(conn.message_frame("a" * 1000))
    assert (opcode, rsv1, payload) == (1, 0, b"a" * 1000)


def deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def test_compressed_messages_are_inflated_and_replies_compressed(feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection(offer=b"permessage-deflate")
    text = "compress me " * 100
    assert feed(conn, frame(1, deflate(text.encode()), rsv=4)) == [Message(text)]
    [(opcode, payload, fin, rsv1)] = parse_server_frames(conn.message_frame(text))
    assert (opcode, fin, rsv1) == (1, True, 1)
    assert len(payload) < len(text) // 5
    assert zlib.decompressobj(wbits=-15).decompress(payload + b"\x00\x00\xff\xff") == (
        text.encode()
    )


def test_decompression_stops_at_max_size_a_zip_bomb_closes_with_1009() -> None:
    conn = connection(max_size=64 * 1024, offer=b"permessage-deflate")
    bomb = deflate(b"\x00" * (10 * 1024 * 1024))  # 10 MiB of zeros in ~10 KiB
    assert len(bomb) < 20 * 1024
    events = conn.receive_data(frame(2, bomb, rsv=4))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].code == 1009
    assert "--ws-max-size" in events[0].reason
    data, eof = conn.data_to_send()
    [(opcode, payload, _, _)] = parse_server_frames(data)
    assert (opcode, payload[:2]) == (8, struct.pack("!H", 1009))
    assert eof


# --- messages ------------------------------------------------------------------------


def test_text_and_binary_messages(feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection()
    data = frame(1, "héllo ✓".encode()) + frame(2, b"\x00\xff")
    assert feed(conn, data) == [Message("héllo ✓"), Message(b"\x00\xff")]


def test_fragmented_message_with_a_ping_in_between(feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection()
    data = (frame(1, b"frag", fin=False) + frame(9, b"p") + frame(0, b"men", fin=False)
            + frame(0, b"ted"))
    assert feed(conn, data) == [Ping(b"p"), Message("fragmented")]


def test_utf8_split_across_fragments_is_valid(feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection()
    encoded = "€".encode()
    data = frame(1, encoded[:1], fin=False) + frame(0, encoded[1:2], fin=False) + frame(
        0, encoded[2:])
    assert feed(conn, data) == [Message("€")]


def test_invalid_utf8_fails_fast_on_the_first_bad_fragment() -> None:
    conn = connection()
    events = conn.receive_data(frame(1, b"ok", fin=False) + frame(0, b"\xff", fin=False))
    assert [type(e) for e in events] == [Failed]
    assert events[0].code == 1007  # type: ignore[union-attr]
    # The message never finished: the failure came from the fragment itself.
    data, eof = conn.data_to_send()
    assert parse_server_frames(data)[0][1][:2] == struct.pack("!H", 1007)
    assert eof


def test_truncated_utf8_at_the_end_of_a_message_is_1007() -> None:
    conn = connection()
    [event] = conn.receive_data(frame(1, "€".encode()[:2]))
    assert isinstance(event, Failed) and event.code == 1007


def test_binary_messages_are_not_checked_for_utf8() -> None:
    assert connection().receive_data(frame(2, b"\xff\xfe")) == [Message(b"\xff\xfe")]


def test_message_over_max_size_across_fragments_is_1009() -> None:
    conn = connection(max_size=10)
    events = conn.receive_data(frame(2, b"123456", fin=False) + frame(0, b"789012"))
    assert [type(e) for e in events] == [Failed]
    assert events[0].code == 1009  # type: ignore[union-attr]


def test_message_of_exactly_max_size_is_accepted() -> None:
    assert connection(max_size=10).receive_data(frame(2, b"x" * 10)) == [Message(b"x" * 10)]


def test_whole_frames_per_read_give_the_same_messages_as_any_other_split() -> None:
    # One frame per read is the common case and is read without websockets' parser;
    # every other arrival goes through it. Both must agree, in any order of the two.
    text = "κόσμε " * 30  # 16-bit length, multi-byte UTF-8
    stream = [
        frame(1, text.encode()),
        frame(2, b"\x00\xff"),
        frame(1, b"frag", fin=False) + frame(9, b"p") + frame(0, b"ment"),
        frame(1, b"after a fragmented message"),
        frame(1, b"two in ") + frame(1, b"one read"),
        frame(2, b""),
    ]
    expected = [Message(text), Message(b"\x00\xff"), Ping(b"p"), Message("fragment"),
                Message("after a fragmented message"), Message("two in "),
                Message("one read"), Message(b"")]
    conn = connection()
    assert [event for read in stream for event in conn.receive_data(read)] == expected


def test_a_frame_split_after_its_header_is_not_mistaken_for_a_new_frame() -> None:
    # The rest of this frame (mask key + payload) happens to look like a whole empty
    # text frame; only websockets' parser, which has read the header, knows otherwise.
    key, payload = bytes([0x81, 0x80, 0x00, 0x00]), b"ok"
    data = bytes([0x81, 0x80 | len(payload)]) + key + bytes(
        b ^ key[i % 4] for i, b in enumerate(payload))
    conn = connection()
    assert conn.receive_data(data[:2]) == []
    assert conn.receive_data(data[2:]) == [Message("ok")]
    assert conn.receive_data(frame(1, b"next")) == [Message("next")]


def test_a_whole_frame_over_max_size_is_still_1009() -> None:
    events = connection(max_size=10).receive_data(frame(2, b"x" * 11))
    assert [type(e) for e in events] == [Failed] and events[0].code == 1009


def test_outgoing_messages_are_unmasked_single_frames() -> None:
    conn = connection()
    sizes = [0, 1, 125, 126, 65535, 65536]  # each length encoding and its edges
    data = b"".join(conn.message_frame("é" * (n // 2) + "a" * (n % 2)) for n in sizes)
    data += b"".join(conn.message_frame(b"\x01" * n) for n in sizes)
    assert parse_server_frames(data) == (
        [(1, ("é" * (n // 2) + "a" * (n % 2)).encode(), True, 0) for n in sizes]
        + [(2, b"\x01" * n, True, 0) for n in sizes]
    )
    assert conn.data_to_send() == (b"", False)  # written at once, nothing left queued


def test_a_message_goes_out_after_the_frames_queued_before_it() -> None:
    conn = connection()
    assert conn.receive_data(frame(9, b"ping!")) == [Ping(b"ping!")]
    conn.send_pong(b"ping!")  # the glue's answer, queued in the protocol core
    assert parse_server_frames(conn.message_frame("after")) == [
        (10, b"ping!", True, 0), (1, b"after", True, 0)]
    assert parse_server_frames(conn.message_frame("next")) == [(1, b"next", True, 0)]


# --- bad frames (RFC 6455 section 5) ---------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(1, b"x", mask=False), 1002),  # 5.1: client frames must be masked
        (frame(1, b"x", rsv=2), 1002),  # 5.2: reserved bits without an extension
        (frame(1, b"x", rsv=4), 1002),  # RSV1 without permessage-deflate
        (frame(3, b"x"), 1002),  # reserved data opcode
        (frame(11, b"x"), 1002),  # reserved control opcode
        (frame(9, b"x" * 126), 1002),  # 5.5: control frame payload > 125
        (frame(9, b"x", fin=False), 1002),  # 5.5: fragmented control frame
        (frame(0, b"x"), 1002),  # continuation with nothing to continue
        (frame(1, b"a", fin=False) + frame(1, b"b"), 1002),  # new message mid-message
        (frame(1, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80"), 1007),  # surrogate
        (frame(8, b"\x03"), 1002),  # close payload of one byte
        (frame(8, close_payload(999)), 1002),  # 7.4: invalid close codes
        (frame(8, close_payload(1005)), 1002),
        (frame(8, close_payload(1006)), 1002),
        (frame(8, close_payload(1016)), 1002),
        (frame(8, close_payload(5000)), 1002),
        (frame(8, close_payload(1000, b"\xff")), 1007),  # 8.1: close reason UTF-8
    ],
)
def test_invalid_frames_fail_with_the_rfc_close_code(data: bytes, code: int, feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection()
    events = feed(conn, data)
    assert [type(e) for e in events] == [Failed]
    assert events[0].code == code
    out, eof = conn.data_to_send()
    [(opcode, payload, _, _)] = parse_server_frames(out)
    assert opcode == 8 and payload[:2] == struct.pack("!H", code)
    assert eof
    assert not conn.open
    # A failed connection reads nothing more (RFC 6455 section 7.1.7).
    assert conn.receive_data(frame(1, b"more")) == []


# --- control frames and closing ------------------------------------------------------


def test_pings_become_events_and_pongs_are_sent_only_when_asked() -> None:
    conn = connection()
    assert conn.receive_data(frame(9, b"ping!")) == [Ping(b"ping!")]
    assert conn.data_to_send() == (b"", False)  # the glue decides when to answer
    conn.send_pong(b"ping!")
    assert parse_server_frames(conn.data_to_send()[0]) == [(10, b"ping!", True, 0)]


def test_pongs_are_reported() -> None:
    assert connection().receive_data(frame(10, b"\x00\x00\x00\x01")) == [
        Pong(b"\x00\x00\x00\x01")
    ]


def test_client_close_is_echoed_then_the_stream_ends(feed) -> None:  # type: ignore[no-untyped-def]
    conn = connection()
    events = feed(conn, frame(8, close_payload(1001, b"bye")))
    assert events == [CloseReceived(1001, "bye")]
    data, eof = conn.data_to_send()
    assert parse_server_frames(data) == [(8, close_payload(1001, b"bye"), True, 0)]
    assert eof
    assert not conn.open
    assert conn.receive_data(frame(1, b"late")) == []


def test_empty_close_frame_reports_1005_and_is_echoed_empty() -> None:
    conn = connection()
    assert conn.receive_data(frame(8)) == [CloseReceived(1005, "")]
    assert parse_server_frames(conn.data_to_send()[0]) == [(8, b"", True, 0)]


def test_close_between_fragments_is_a_normal_close() -> None:
    # Autobahn 7.1.5: the unfinished message is dropped; the close is not an error.
    conn = connection()
    events = conn.receive_data(frame(1, b"part", fin=False) + frame(8, close_payload(1000)))
    assert events == [CloseReceived(1000, "")]


def test_server_close_then_client_answer() -> None:
    conn = connection()
    conn.close(1001, "going away")
    data, eof = conn.data_to_send()
    assert parse_server_frames(data) == [(8, close_payload(1001, b"going away"), True, 0)]
    assert not eof and not conn.open
    assert conn.close_sent == (1001, "going away")
    conn.close(1000)  # a second close is a no-op
    assert conn.data_to_send() == (b"", False)
    # Messages sent before the client saw our close are still delivered.
    events = conn.receive_data(frame(1, b"in flight") + frame(8, close_payload(1001)))
    assert events == [Message("in flight"), CloseReceived(1001, "")]
    assert conn.data_to_send() == (b"", True)  # no second close frame; end the stream


def test_eof_without_close_is_1006() -> None:
    conn = connection()
    conn.receive_data(frame(1, b"half", fin=False))
    [event] = conn.receive_eof()
    assert isinstance(event, Failed) and event.code == 1006
    assert "without a closing handshake" in event.reason
    assert conn.receive_eof() == []


def test_fail_sends_the_code_once() -> None:
    conn = connection()
    conn.fail(1011, "keepalive ping timeout")
    data, eof = conn.data_to_send()
    assert parse_server_frames(data) == [(8, close_payload(1011, b"keepalive ping timeout"),
                                          True, 0)]
    assert eof
    conn.fail(1011)
    assert conn.data_to_send() == (b"", False)


@pytest.mark.parametrize(
    ("code", "reason", "problem"),
    [
        (1000, "", None),
        (4000, "app specific", None),
        (3999, "é" * 61, None),
        (1005, "", "cannot be sent"),
        (1006, "", "cannot be sent"),
        (999, "", "cannot be sent"),
        (5000, "", "cannot be sent"),
        (True, "", "must be an int"),
        ("1000", "", "must be an int"),
        (1000, b"bytes", "must be a str"),
        (1000, "x" * 124, "at most 123"),
        (1000, "\ud800", "not encodable"),
    ],
)
def test_check_close(code: object, reason: object, problem: str | None) -> None:
    found = check_close(code, reason)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_rfc8441_extended_connect_negotiates_without_key_or_upgrade() -> None:
    # RFC 8441 section 5: over HTTP/2 the handshake is CONNECT with :protocol websocket;
    # no Upgrade, Connection or Sec-WebSocket-Key, the rest as over HTTP/1.1.
    h2_request = Request(
        "CONNECT", b"/chat", b"", [
            (b"host", b"example.test"), (b"sec-websocket-version", b"13"),
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-extensions", b"permessage-deflate"),
        ], "2", True, False, b"websocket", None, True, False,
    )
    handshake = negotiate(h2_request)
    assert handshake.subprotocols == ["chat", "superchat"]
    assert handshake.extensions_header is not None
    with pytest.raises(HandshakeRefused) as refused:
        negotiate(Request("CONNECT", b"/", b"", [(b"sec-websocket-version", b"8")], "2",
                          True, False, b"websocket", None, True, False))
    assert refused.value.status == 426
