"""Trusted proxy headers: who the client really is, when a proxy says so.

Rules:
1. Headers are believed only when the peer (scope["client"]) is a trusted proxy
   (--forwarded-allow-ips). Anyone can send X-Forwarded-For; only a proxy we
   trust may change what the app sees.
2. RFC 7239 `Forwarded` wins over the X-Forwarded-* family when both are present.
3. Lists are read from the right: each proxy appends the address it received the
   request from, so the right-most entries are the ones our own proxies wrote.
   The client is the right-most entry that is not itself a trusted proxy; if
   every entry is trusted, the left-most. An entry that cannot be parsed stops
   the walk (what is left of it was written by someone we cannot vouch for).
4. Malformed values are ignored, never raised: this runs per request, and a bad
   header from a client must not become a 500.
5. Per request cost: one cached dict lookup for an untrusted peer; one pass over
   the header list for a trusted peer without proxy headers.

What does not live here: the option itself (config.py), building the scope
(scope.py). This module only rewrites client, scheme and the host header.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

from pier.errors import ConfigError
from pier.proto import native

__all__ = ["TrustedHosts", "apply_proxy_headers"]

_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# An entry made only of these characters (and at least one digit, or a colon
# or slash) is an attempt at an address or network, so a typo in it is an error
# rather than a literal that silently never matches.
_IP_LIKE = re.compile(r"[0-9A-Fa-f:.%/\[\]]+")
_CACHE_MAX = 4096
"""Peer strings are partly attacker-chosen (X-Forwarded-For entries are looked
up too), so the cache is bounded; a full cache is simply cleared."""
_MAX_HOST_LEN = 64
"""Longer than any IPv6 address with a zone id: not worth caching."""

UNIX_PEER = "unix:"
"""The literal that trusts peers on a Unix domain socket (scope["client"] is None,
or a host string that starts with "unix:")."""


class TrustedHosts:
    """The set of peers whose proxy headers are believed (--forwarded-allow-ips)."""

    __slots__ = ("_cache", "addresses", "literals", "networks", "trust_all")

    def __init__(self, value: str | Iterable[str]) -> None:
        entries = value.split(",") if isinstance(value, str) else list(value)
        self.trust_all = False
        self.addresses: set[_IPAddress] = set()
        self.networks: list[_IPNetwork] = []
        self.literals: set[str] = set()
        self._cache: dict[str | None, bool] = {}
        for raw in entries:
            if not isinstance(raw, str):
                raise ConfigError(
                    f"--forwarded-allow-ips entry {raw!r} is not a string ({type(raw).__name__}); "
                    'use strings such as "127.0.0.1", "10.0.0.0/8" or "*"'
                )
            entry = raw.strip()
            if not entry:
                continue
            if entry == "*":
                self.trust_all = True
            elif _IP_LIKE.fullmatch(entry) and (
                any(c.isdigit() for c in entry) or ":" in entry or "/" in entry
            ):
                self._add_ip(entry)
            else:
                self.literals.add(entry)

    def _add_ip(self, entry: str) -> None:
        text = entry[1:-1] if entry.startswith("[") and entry.endswith("]") else entry
        try:
            if "/" in text:
                self.networks.append(ipaddress.ip_network(text, strict=True))
            else:
                self.addresses.add(ipaddress.ip_address(text))
        except ValueError as exc:
            hint = 'use an IPv4/IPv6 address, a CIDR network such as "10.0.0.0/8", or "*"'
            if "/" in text and "host bits set" in str(exc):
                try:
                    net = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    pass
                else:
                    hint = f'did you mean "{net}"?'
            raise ConfigError(
                f'--forwarded-allow-ips entry "{entry}" is not a valid address or network '
                f"({exc}); {hint}"
            ) from None

    def __contains__(self, host: object) -> bool:
        if host is not None and not isinstance(host, str):
            return self.trust_all
        cached = self._cache.get(host)
        if cached is not None:
            return cached
        found = self._lookup(host)
        if host is None or len(host) <= _MAX_HOST_LEN:
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[host] = found
        return found

    def _lookup(self, host: str | None) -> bool:
        if self.trust_all:
            return True
        if host is None:
            return UNIX_PEER in self.literals
        if host in self.literals:
            return True
        if host.startswith(UNIX_PEER):
            return UNIX_PEER in self.literals
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        candidates: list[_IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            if ip.scope_id:
                candidates.append(ipaddress.IPv6Address(host.partition("%")[0]))
            if ip.ipv4_mapped is not None:
                # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d.
                candidates.append(ip.ipv4_mapped)
        for candidate in candidates:
            if candidate in self.addresses:
                return True
            for net in self.networks:
                if candidate.version == net.version and candidate in net:
                    return True
        return False

    def __repr__(self) -> str:
        parts = ["*"] if self.trust_all else []
        parts += sorted(str(a) for a in self.addresses)
        parts += [str(n) for n in self.networks]
        parts += sorted(self.literals)
        return f"TrustedHosts({','.join(parts)!r})"


_PROXY_HEADERS = frozenset(
    (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_XFF_NAME = re.compile(r"[A-Za-z0-9._-]+")
# RFC 3986 host (reg-name or IP literal) with an optional port; anything else in
# a Host header from a proxy is refused rather than passed to the app.
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~-]+)(?::[0-9]{0,5})?")
_SCHEMES = {
    "http": {"http": "http", "https": "https", "ws": "http", "wss": "https"},
    "websocket": {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"},
}

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
"""Dotted-quad validation; a regex is ~10x cheaper than ipaddress.IPv4Address."""

_Hop = tuple[str, int]
_ANONYMOUS: _Hop = ("", 0)
"""A Forwarded element without for=: never trusted ("" matches no entry)."""


_LIST_ITEM = {sep: re.compile(rf'(?:[^"{sep}]|"(?:[^"\\]|\\.)*")*', re.DOTALL) for sep in ",;"}
"""Text up to the next separator, quoted strings (with quoted-pairs) taken whole."""


def _split_quoted(text: str, sep: str) -> list[str] | None:
    """Split on sep outside quoted strings; None if a quote is left open."""
    if '"' not in text:
        return text.split(sep)
    item = _LIST_ITEM[sep]
    parts: list[str] = []
    pos = 0
    end = len(text)
    while True:
        m = item.match(text, pos)
        assert m is not None  # the pattern matches the empty string
        parts.append(m.group())
        pos = m.end()
        if pos == end:
            return parts
        if text[pos] != sep:  # stopped at a quote that never closes
            return None
        pos += 1


def _unquote(value: str) -> str | None:
    if _TOKEN.fullmatch(value):
        return value
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            return None
        body = value[1:-1]
        out: list[str] = []
        i = 0
        while i < len(body):
            c = body[i]
            if c == "\\":
                i += 1
                if i == len(body):
                    return None
                c = body[i]
            elif c == '"':
                return None
            out.append(c)
            i += 1
        return "".join(out)
    return None


def _parse_element(element: str) -> dict[str, str] | None:
    pairs = _split_quoted(element, ";")
    if pairs is None:
        return None
    params: dict[str, str] = {}
    for raw_pair in pairs:
        pair = raw_pair.strip(" \t")
        if not pair:
            continue
        name, eq, raw = pair.partition("=")
        name = name.lower()
        text = _unquote(raw) if eq else None
        # RFC 7239 section 4: a parameter occurs at most once per element.
        if text is None or not _TOKEN.fullmatch(name) or name in params:
            return None
        params[name] = text
    return params


def _parse_forwarded(value: str) -> list[dict[str, str] | None]:
    """RFC 7239 section 4: elements left to right; a malformed element is None."""
    elements = _split_quoted(value, ",")
    if elements is None:
        return []
    # RFC 9110 5.6.1: empty list elements are ignored.
    return [_parse_element(e) for e in elements if e.strip(" \t")]


def _parse_node(node: str) -> _Hop | None:
    """RFC 7239 section 6: a node is an IP (v6 in brackets), obfuscated or "unknown",
    with an optional port (numeric or obfuscated)."""
    if node.startswith("["):
        host, close, rest = node[1:].partition("]")
        if not close:
            return None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        port_text = rest[1:] if rest.startswith(":") else None
        if rest and port_text is None:
            return None
    else:
        host, colon, port_part = node.partition(":")
        port_text = port_part if colon else None
        if host.lower() == "unknown":
            host = "unknown"
        elif not (_IPV4.fullmatch(host) or _OBFUSCATED.fullmatch(host)):
            return None
    port = 0
    if port_text is not None:
        if _PORT.fullmatch(port_text) and int(port_text) <= 65535:
            port = int(port_text)
        elif not _OBFUSCATED.fullmatch(port_text):
            return None
    return host, port


def _parse_xff_entry(entry: str) -> _Hop | None:
    entry = entry.strip(" \t")
    if not entry:
        return None
    if entry.startswith("["):
        return _parse_node(entry)
    colons = entry.count(":")
    if colons > 1:  # a bare IPv6 address: no room for a port
        try:
            ipaddress.IPv6Address(entry)
        except ValueError:
            return None
        return entry, 0
    host, colon, port_text = entry.partition(":")
    # Some proxies write "unknown" or an obfuscated name: still the answer to
    # "who connected", just not an address. (_XFF_NAME also admits dotted quads.)
    if not _XFF_NAME.fullmatch(host) or (host[0].isdigit() and not _IPV4.fullmatch(host)):
        return None
    port = 0
    if colon:
        if not (_PORT.fullmatch(port_text) and int(port_text) <= 65535):
            return None
        port = int(port_text)
    return host, port


def _pick(hops: list[_Hop | None], trusted: TrustedHosts) -> int | None:
    """Index of the client among hops (left to right), per rule 3."""
    chosen: int | None = None
    for i in range(len(hops) - 1, -1, -1):
        hop = hops[i]
        if hop is None:
            break
        chosen = i
        if hop is _ANONYMOUS or hop[0] not in trusted:
            break
    return chosen


def _aligned(values: list[str], index: int | None, count: int) -> str | None:
    """The value written by the same proxy as hop `index` of `count` hops, if the
    lists line up; otherwise the right-most (written by our own proxy)."""
    if not values:
        return None
    if index is not None and len(values) == count:
        return values[index]
    return values[-1]


def _set_host(scope: MutableMapping[str, Any], host: str) -> None:
    if not _HOST.fullmatch(host):
        return
    value = host.encode("latin-1")
    headers: list[tuple[bytes, bytes]] = []
    replaced = False
    for name, old in scope.get("headers", ()):
        if name == b"host":
            if not replaced:
                headers.append((b"host", value))
                replaced = True
            continue
        headers.append((name, old))
    if not replaced:
        headers.append((b"host", value))
    scope["headers"] = headers


def _set_scheme(scope: MutableMapping[str, Any], proto: str) -> None:
    scheme = _SCHEMES.get(scope.get("type", "http"), _SCHEMES["http"]).get(proto.strip().lower())
    if scheme is not None:
        scope["scheme"] = scheme


def _has_proxy_headers(headers: list[tuple[bytes, bytes]]) -> bool:
    """Does the request carry any header apply_proxy_headers reads?

    For the per-request path of a connection from a trusted proxy, which calls
    apply_proxy_headers only when this says yes. A plain loop: measured cheaper than
    frozenset.isdisjoint over a map (~2.4k against ~3.4k instructions, 3 headers). Where
    pier's C module is built, the same loop in C replaces this function (below).
    """
    for name, _ in headers:  # noqa: SIM110 - any() over a generator costs more per request
        if name in _PROXY_HEADERS:
            return True
    return False


# Does the request carry any header apply_proxy_headers reads? (_has_proxy_headers)
# From a trusted peer (127.0.0.1 is trusted by default), three headers: ~2.7k
# instructions in Python, ~1.4k through the partial and pier's C module.
_native = native.load()
has_proxy_headers: Callable[[list[tuple[bytes, bytes]]], bool] = (
    _has_proxy_headers
    if _native is None
    else functools.partial(_native.has_any_name, _PROXY_HEADERS)
)


def trusts_peer(trusted: TrustedHosts, client: tuple[str, int] | None) -> bool:
    """Is this connection's peer a trusted proxy (decided once per connection)?"""
    return (client[0] if client else None) in trusted


def apply_proxy_headers(scope: MutableMapping[str, Any], trusted: TrustedHosts) -> None:
    """Rewrite scope["client"], scope["scheme"] and the host header from proxy headers,
    if and only if the peer is a trusted proxy. Never raises on header content."""
    client = scope.get("client")
    host = client[0] if client else None
    # The cache lookup inline: this line runs for every request.
    ok = trusted._cache.get(host)
    if ok is None:
        ok = host in trusted
    if not ok:
        return
    found: dict[bytes, list[bytes]] | None = None
    for name, value in scope.get("headers", ()):
        if name in _PROXY_HEADERS:
            if found is None:
                found = {}
            found.setdefault(name, []).append(value)
    if found is None:
        return
    try:
        if b"forwarded" in found:
            _apply_forwarded(scope, trusted, _join(found[b"forwarded"]))
        else:
            _apply_x_forwarded(scope, trusted, found)
    except (UnicodeError, ValueError):  # rule 4: a header we missed a case for
        return


def _join(values: list[bytes]) -> str:
    # RFC 9110 5.3: repeated field lines combine into one list, comma-separated.
    # latin-1 never fails, and non-ASCII bytes then fail the grammar checks.
    return ",".join(v.decode("latin-1") for v in values)


def _apply_forwarded(scope: MutableMapping[str, Any], trusted: TrustedHosts, value: str) -> None:
    elements = _parse_forwarded(value)
    hops: list[_Hop | None] = []
    for element in elements:
        if element is None:
            hops.append(None)
            continue
        node = element.get("for")
        # No for= (it is optional): the hop is real but anonymous, so the walk
        # stops there, and its proto/host still count.
        hops.append(_parse_node(node) if node is not None else _ANONYMOUS)
    index = _pick(hops, trusted)
    if index is None:
        return
    hop = hops[index]
    element = elements[index]
    assert hop is not None and element is not None  # _pick only returns parsed hops
    if hop is not _ANONYMOUS:
        scope["client"] = hop
    proto = element.get("proto")
    if proto is not None:
        _set_scheme(scope, proto)
    host = element.get("host")
    if host is not None:
        _set_host(scope, host)


def _apply_x_forwarded(
    scope: MutableMapping[str, Any], trusted: TrustedHosts, found: dict[bytes, list[bytes]]
) -> None:
    index: int | None = None
    count = 0
    xff = found.get(b"x-forwarded-for")
    if xff is not None:
        entries = [e for e in _join(xff).split(",") if e.strip(" \t")]
        count = len(entries)
        hops = [_parse_xff_entry(e) for e in entries]
        index = _pick(hops, trusted)
        if index is not None:
            hop = hops[index]
            assert hop is not None
            scope["client"] = hop
    proto = found.get(b"x-forwarded-proto")
    if proto is not None:
        value = _aligned([p for p in _join(proto).split(",") if p.strip()], index, count)
        if value is not None:
            _set_scheme(scope, value)
    host = found.get(b"x-forwarded-host")
    if host is not None:
        value = _aligned([h.strip() for h in _join(host).split(",") if h.strip()], index, count)
        if value is not None:
            _set_host(scope, value)
