"""The PROXY protocol header, versions 1 (text) and 2 (binary), sans-I/O.

Spec: HAProxy's "The PROXY protocol" (proxy-protocol.txt, versions 1 and 2). A proxy
(HAProxy, AWS NLB, an ingress) opens the TCP connection and, before any byte of the
client's, sends one header naming the client's and the proxy's addresses.

Rules:
1. `parse_header(buffer, version)` is called with everything received so far. It
   returns None while the header may still be incomplete, a `ProxyHeader` and the
   number of bytes it used once complete, and raises `ProxyHeaderError` as soon as
   the bytes cannot be a header of that version: a missing header is refused on its
   first differing byte, never waited for.
2. Only the version configured is accepted (a v1 header to a v2 server is an error):
   the operator knows what their proxy sends, and accepting both widens the surface.
3. Sizes are the spec's: a v1 line is at most 107 bytes with its CRLF; a v2 header is
   16 bytes plus at most 65535 (its length field is 16 bits), so a peer cannot make
   us buffer more.
4. "Use the real connection's addresses" is `ProxyHeader(None, None)`: v1 UNKNOWN,
   v2 LOCAL (the proxy's own health check), and v2 families other than TCP over IPv4
   or IPv6 (the spec says to accept them and ignore the addresses).
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

__all__ = ["V1_MAX", "V2_SIGNATURE", "ProxyHeader", "ProxyHeaderError", "parse_header"]

V1_PREFIX = b"PROXY "
V1_MAX = 107
"""The longest v1 line, CRLF included (spec section 2.1)."""
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_V2_FIXED = struct.Struct("!12sBBH")  # signature, version+command, family+protocol, length
_V2_INET = struct.Struct("!4s4sHH")
_V2_INET6 = struct.Struct("!16s16sHH")

Address = tuple[str, int]


class ProxyHeaderError(ValueError):
    """The bytes are not a valid PROXY header of the configured version."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    client: Address | None
    """The original client (source) address, or None: use the real peer (rule 4)."""
    server: Address | None
    """The address the client connected to (destination), or None."""


def parse_header(buffer: bytes, version: str) -> tuple[ProxyHeader, int] | None:
    """Rule 1: None (need more), (header, bytes used), or ProxyHeaderError."""
    if version == "v1":
        return _parse_v1(buffer)
    if version == "v2":
        return _parse_v2(buffer)
    raise ValueError(f"unknown PROXY protocol version {version!r}")


def _parse_v1(buffer: bytes) -> tuple[ProxyHeader, int] | None:
    prefix = buffer[: len(V1_PREFIX)]
    if not V1_PREFIX.startswith(prefix):
        raise ProxyHeaderError(f"expected a PROXY v1 header, got {bytes(buffer[:16])!r}")
    end = buffer.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(buffer) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1 header longer than {V1_MAX} bytes")
        return None
    try:
        line = bytes(buffer[:end]).decode("ascii")
    except UnicodeDecodeError:
        raise ProxyHeaderError("PROXY v1 header is not ASCII") from None
    parts = line.split(" ")
    used = end + 2
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(None, None), used  # the rest of the line is to be ignored
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise ProxyHeaderError(f"malformed PROXY v1 header {line!r}")
    _, family, source, destination, source_port, destination_port = parts
    want = ipaddress.IPv4Address if family == "TCP4" else ipaddress.IPv6Address
    try:
        client = (_address(source, want), _port(source_port))
        server = (_address(destination, want), _port(destination_port))
    except ValueError:
        raise ProxyHeaderError(f"malformed PROXY v1 header {line!r}") from None
    return ProxyHeader(client, server), used


def _address(text: str, want: type[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> str:
    address = ipaddress.ip_address(text)
    if not isinstance(address, want):
        raise ValueError(text)
    return str(address)


def _port(text: str) -> int:
    # Decimal, no sign, no leading zero (spec section 2.1); 0 to 65535.
    if not text.isdigit() or (len(text) > 1 and text[0] == "0") or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def _parse_v2(buffer: bytes) -> tuple[ProxyHeader, int] | None:
    head = bytes(buffer[: len(V2_SIGNATURE)])
    if not V2_SIGNATURE.startswith(head):
        raise ProxyHeaderError(f"expected a PROXY v2 header, got {bytes(buffer[:16])!r}")
    if len(buffer) < _V2_FIXED.size:
        return None
    _, version_command, family_protocol, length = _V2_FIXED.unpack_from(buffer)
    if version_command >> 4 != 2:
        raise ProxyHeaderError(f"PROXY v2 header with version {version_command >> 4}")
    command = version_command & 0x0F
    if command not in (0, 1):
        raise ProxyHeaderError(f"PROXY v2 header with unknown command {command}")
    used = _V2_FIXED.size + length
    if len(buffer) < used:
        return None
    if command == 0:  # LOCAL: the proxy speaking for itself (health checks)
        return ProxyHeader(None, None), used
    family, protocol = family_protocol >> 4, family_protocol & 0x0F
    if protocol == 2:
        raise ProxyHeaderError("PROXY v2 header for a datagram connection on a stream")
    layout = {1: _V2_INET, 2: _V2_INET6}.get(family)
    if layout is None or protocol != 1:
        return ProxyHeader(None, None), used  # UNSPEC or AF_UNIX: rule 4
    if length < layout.size:
        raise ProxyHeaderError(
            f"PROXY v2 header too short for its address family ({length} bytes)"
        )
    source, destination, source_port, destination_port = layout.unpack_from(
        buffer, _V2_FIXED.size
    )
    # The TLVs after the addresses (ALPN, authority, TLS details) are not used.
    return ProxyHeader(
        (str(ipaddress.ip_address(source)), source_port),
        (str(ipaddress.ip_address(destination)), destination_port),
    ), used
