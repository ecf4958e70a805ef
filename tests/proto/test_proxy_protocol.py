"""The PROXY protocol header parser, sans-I/O (HAProxy's proxy-protocol.txt, v1 and v2).

Pins: section 2.1 (v1: "PROXY TCP4|TCP6|UNKNOWN src dst sport dport\\r\\n", at most
107 bytes, ports without leading zeros), section 2.2 (v2: the 12-byte signature,
version 2, LOCAL/PROXY commands, AF_INET/AF_INET6 over STREAM, 16-bit length, TLVs
skipped, other families accepted with their addresses ignored). Each header is fed
whole, byte by byte and followed by the request's first bytes.
"""

from __future__ import annotations

import socket
import struct

import pytest

from pier.proto.proxy_protocol import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderError,
    parse_header,
)

REQUEST = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def v2(command: int = 1, family: int = 1, protocol: int = 1, addresses: bytes = b"",
       tlvs: bytes = b"") -> bytes:
    body = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family << 4 | protocol]) + struct.pack(
        "!H", len(body)) + body


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)


def inet6(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
            + struct.pack("!HH", sport, dport))


GOOD = [
    ("v1", b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n",
     ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443))),
    ("v1", b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
     ProxyHeader(("2001:db8::1", 1), ("2001:db8::2", 65535))),
    ("v1", b"PROXY UNKNOWN\r\n", ProxyHeader(None, None)),
    ("v1", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", ProxyHeader(None, None)),
    ("v2", v2(addresses=inet("192.0.2.1", "198.51.100.2", 56324, 443)),
     ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443))),
    ("v2", v2(family=2, addresses=inet6("2001:db8::1", "2001:db8::2", 7, 8)),
     ProxyHeader(("2001:db8::1", 7), ("2001:db8::2", 8))),
    # TLVs after the addresses (here PP2_TYPE_AUTHORITY) are skipped.
    ("v2", v2(addresses=inet("10.0.0.1", "10.0.0.2", 1, 2), tlvs=b"\x02\x00\x03abc"),
     ProxyHeader(("10.0.0.1", 1), ("10.0.0.2", 2))),
    ("v2", v2(command=0), ProxyHeader(None, None)),  # LOCAL: the proxy's health check
    ("v2", v2(family=0, protocol=0), ProxyHeader(None, None)),  # UNSPEC
    ("v2", v2(family=3, addresses=b"\x00" * 216), ProxyHeader(None, None)),  # AF_UNIX
]


@pytest.mark.parametrize(("version", "header", "expected"), GOOD)
def test_header_whole_split_and_followed_by_the_request(
    version: str, header: bytes, expected: ProxyHeader
) -> None:
    assert parse_header(header, version) == (expected, len(header))
    assert parse_header(header + REQUEST, version) == (expected, len(header))
    for end in range(len(header)):  # byte by byte: incomplete until the last byte
        assert parse_header(header[:end], version) is None, end


BAD = [
    ("v1", REQUEST, "expected a PROXY v1 header"),  # missing: refused on the first byte
    ("v1", b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n", "malformed"),
    ("v1", b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n", "malformed"),  # family mismatch
    ("v1", b"PROXY TCP4 192.0.2.1 198.51.100.2 056 2\r\n", "malformed"),  # leading zero
    ("v1", b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n", "malformed"),
    ("v1", b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n", "malformed"),  # double space
    ("v1", b"PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n", "malformed"),
    ("v1", b"PROXY TCP4 " + b"1" * 100, "longer than 107 bytes"),
    ("v1", v2(addresses=inet("10.0.0.1", "10.0.0.2", 1, 2)), "expected a PROXY v1"),
    ("v2", b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\n", "expected a PROXY v2 header"),
    ("v2", REQUEST, "expected a PROXY v2 header"),
    ("v2", V2_SIGNATURE + b"\x11\x11\x00\x00", "version 1"),
    ("v2", V2_SIGNATURE + b"\x22\x11\x00\x00", "unknown command 2"),
    ("v2", v2(protocol=2, addresses=inet("10.0.0.1", "10.0.0.2", 1, 2)), "datagram"),
    ("v2", v2(addresses=b"\x00" * 8), "too short"),
]


@pytest.mark.parametrize(("version", "data", "message"), BAD)
def test_bad_headers_are_refused(version: str, data: bytes, message: str) -> None:
    with pytest.raises(ProxyHeaderError, match=message):
        parse_header(data, version)


def test_missing_header_is_refused_on_its_first_differing_byte() -> None:
    with pytest.raises(ProxyHeaderError):
        parse_header(b"G", "v1")
    with pytest.raises(ProxyHeaderError):
        parse_header(b"G", "v2")
    assert parse_header(b"PROX", "v1") is None
    assert parse_header(V2_SIGNATURE[:5], "v2") is None
