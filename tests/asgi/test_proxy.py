"""Trusted proxy headers (pier.asgi.proxy).

Pins RFC 7239 (Forwarded): section 4 (element and pair syntax, quoted strings,
one occurrence per parameter), section 5.2 (for=), 5.3 (host=), 5.4 (proto=),
section 6 (node names: IPv4, bracketed IPv6 with optional port, "unknown",
obfuscated identifiers) and section 8.1 (header chains are only trustworthy up to
the first untrusted hop); RFC 9110 section 5.3 (repeated field lines form one
list); the ASGI HTTP/WebSocket connection scope keys "client" and "scheme".
X-Forwarded-For/-Proto/-Host have no RFC; the de facto rule pinned here is the
right-most untrusted address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pier.asgi import proxy
from pier.asgi.proxy import TrustedHosts, apply_proxy_headers, has_proxy_headers
from pier.errors import ConfigError

PROXY = ("10.0.0.1", 5000)


def _scope(
    headers: list[tuple[bytes, bytes]],
    *,
    client: tuple[str, int] | None = PROXY,
    kind: str = "http",
) -> dict[str, Any]:
    return {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": client,
        "headers": [(b"host", b"internal:8000"), *headers],
    }


def _apply(
    headers: list[tuple[bytes, bytes]],
    trusted: str = "10.0.0.0/8",
    **kwargs: Any,
) -> dict[str, Any]:
    scope = _scope(headers, **kwargs)
    apply_proxy_headers(scope, TrustedHosts(trusted))
    return scope


def _host(scope: dict[str, Any]) -> list[bytes]:
    return [v for n, v in scope["headers"] if n == b"host"]


# --- TrustedHosts ---------------------------------------------------------------


def test_addresses_networks_and_literals() -> None:
    trusted = TrustedHosts("127.0.0.1, 10.0.0.0/8 ,::1, fd00::/8, unix:, _proxy1")
    assert "127.0.0.1" in trusted
    assert "10.255.1.2" in trusted
    assert "::1" in trusted
    assert "fd00::abcd" in trusted
    assert "_proxy1" in trusted
    assert "127.0.0.2" not in trusted
    assert "11.0.0.1" not in trusted
    assert "fe80::1" not in trusted
    assert "" not in trusted
    assert "garbage" not in trusted


def test_list_form_and_star() -> None:
    assert "192.0.2.1" in TrustedHosts(["127.0.0.1", "192.0.2.0/24"])
    star = TrustedHosts("*")
    assert "203.0.113.9" in star
    assert None in star
    assert "anything" in star


def test_ipv4_mapped_ipv6_peer_matches_ipv4_entry() -> None:
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    assert "::ffff:10.1.2.3" in TrustedHosts("10.0.0.0/8")
    assert "::ffff:11.1.2.3" not in TrustedHosts("10.0.0.0/8")


def test_unix_peer_needs_the_unix_literal() -> None:
    assert None in TrustedHosts("unix:")
    assert "unix:/run/pier.sock" in TrustedHosts("unix:")
    assert None not in TrustedHosts("127.0.0.1")


def test_results_are_cached_and_repeatable() -> None:
    trusted = TrustedHosts("10.0.0.0/8")
    for _ in range(3):
        assert "10.1.1.1" in trusted
        assert "8.8.8.8" not in trusted


def test_cache_stays_bounded_under_many_distinct_hosts() -> None:
    trusted = TrustedHosts("10.0.0.0/8")
    for i in range(10_000):
        assert f"192.168.{i // 256 % 256}.{i % 256}" not in trusted
    assert len(trusted._cache) <= 4096


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        ("10.0.0.300", "use an IPv4/IPv6 address"),
        ("10.0.0.0/33", "use an IPv4/IPv6 address"),
        ("::1::2", "use an IPv4/IPv6 address"),
        ("10.1.2.3/8", 'did you mean "10.0.0.0/8"?'),
    ],
)
def test_invalid_entries_name_the_entry_and_the_fix(entry: str, fix: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrustedHosts(f"127.0.0.1,{entry}")
    assert f'--forwarded-allow-ips entry "{entry}" is not a valid address or network' in str(
        info.value
    )
    assert fix in str(info.value)


def test_bracketed_ipv6_entry_is_accepted() -> None:
    assert "::1" in TrustedHosts("[::1]")


# --- fast path: untrusted peers and absent headers ------------------------------


def test_untrusted_peer_changes_nothing() -> None:
    headers = [(b"x-forwarded-for", b"1.2.3.4"), (b"x-forwarded-proto", b"https")]
    scope = _apply(headers, client=("203.0.113.7", 4000))
    assert scope["client"] == ("203.0.113.7", 4000)
    assert scope["scheme"] == "http"


def test_trusted_peer_without_proxy_headers_changes_nothing() -> None:
    scope = _apply([(b"user-agent", b"curl")])
    assert scope["client"] == PROXY
    assert _host(scope) == [b"internal:8000"]


def test_unix_socket_peer_trusted_by_literal() -> None:
    scope = _apply([(b"x-forwarded-for", b"1.2.3.4")], trusted="unix:", client=None)
    assert scope["client"] == ("1.2.3.4", 0)
    scope = _apply([(b"x-forwarded-for", b"1.2.3.4")], trusted="127.0.0.1", client=None)
    assert scope["client"] is None


# --- X-Forwarded-For / -Proto / -Host -------------------------------------------


def test_single_xff_sets_client_with_port_zero() -> None:
    scope = _apply([(b"x-forwarded-for", b"203.0.113.5")])
    assert scope["client"] == ("203.0.113.5", 0)


def test_xff_takes_right_most_untrusted_not_the_spoofable_left_most() -> None:
    # The client sent "X-Forwarded-For: 6.6.6.6" itself; our proxy appended
    # the real address. Believing the left-most would let anyone pick their IP.
    scope = _apply([(b"x-forwarded-for", b"6.6.6.6, 203.0.113.5, 10.0.0.2")])
    assert scope["client"] == ("203.0.113.5", 0)


def test_xff_all_trusted_gives_left_most() -> None:
    scope = _apply([(b"x-forwarded-for", b"10.0.0.3, 10.0.0.2")])
    assert scope["client"] == ("10.0.0.3", 0)


def test_xff_star_gives_left_most() -> None:
    scope = _apply([(b"x-forwarded-for", b"198.51.100.1, 203.0.113.5")], trusted="*")
    assert scope["client"] == ("198.51.100.1", 0)


def test_xff_repeated_header_lines_are_one_list() -> None:
    scope = _apply(
        [(b"x-forwarded-for", b"203.0.113.5"), (b"x-forwarded-for", b"198.51.100.1, 10.0.0.2")]
    )
    assert scope["client"] == ("198.51.100.1", 0)


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b"203.0.113.5:4711", ("203.0.113.5", 4711)),
        (b"[2001:db8::17]:4711", ("2001:db8::17", 4711)),
        (b"[2001:db8::17]", ("2001:db8::17", 0)),
        (b"2001:db8::17", ("2001:db8::17", 0)),
        (b" 203.0.113.5 ,, ", ("203.0.113.5", 0)),
        (b"unknown", ("unknown", 0)),
    ],
)
def test_xff_entry_forms(value: bytes, client: tuple[str, int]) -> None:
    assert _apply([(b"x-forwarded-for", value)])["client"] == client


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b",,,",
        b"203.0.113.5:99999",
        b"203.0.113.5:http",
        b"[2001:db8::17",
        b"[not-ipv6]:80",
        b"2001:db8::zz",
        b"has space",
        b"<script>",
        b"\xff\xfe",
        b"1.2.3.4, <bad>",
    ],
)
def test_xff_malformed_right_most_is_ignored(value: bytes) -> None:
    scope = _apply([(b"x-forwarded-for", value)])
    assert scope["client"] == PROXY


def test_xff_walk_stops_at_malformed_entry() -> None:
    # Left of our trusted hop is garbage: we know only the trusted hop.
    scope = _apply([(b"x-forwarded-for", b"<bad>, 10.0.0.2")])
    assert scope["client"] == ("10.0.0.2", 0)


@pytest.mark.parametrize(
    ("value", "scheme"),
    [(b"https", "https"), (b"HTTPS", "https"), (b"http", "http"), (b"wss", "https")],
)
def test_x_forwarded_proto_http(value: bytes, scheme: str) -> None:
    scope = _apply([(b"x-forwarded-proto", value)])
    assert scope["scheme"] == scheme


@pytest.mark.parametrize(("value", "scheme"), [(b"https", "wss"), (b"http", "ws"), (b"wss", "wss")])
def test_x_forwarded_proto_websocket_maps_to_ws_schemes(value: bytes, scheme: str) -> None:
    scope = _apply([(b"x-forwarded-proto", value)], kind="websocket")
    assert scope["scheme"] == scheme


@pytest.mark.parametrize("value", [b"ftp", b"javascript", b"", b"https\x00", b"\xff"])
def test_x_forwarded_proto_unknown_values_are_ignored(value: bytes) -> None:
    assert _apply([(b"x-forwarded-proto", value)])["scheme"] == "http"


def test_x_forwarded_proto_list_aligned_with_xff() -> None:
    # Two proxies each appended: the edge proxy saw https from the client.
    scope = _apply(
        [
            (b"x-forwarded-for", b"203.0.113.5, 10.0.0.2"),
            (b"x-forwarded-proto", b"https, http"),
        ]
    )
    assert scope["client"] == ("203.0.113.5", 0)
    assert scope["scheme"] == "https"


def test_x_forwarded_proto_list_without_alignment_uses_right_most() -> None:
    scope = _apply([(b"x-forwarded-proto", b"http, https")])
    assert scope["scheme"] == "https"


def test_x_forwarded_host_replaces_host_header() -> None:
    scope = _apply([(b"x-forwarded-host", b"example.com:8443")])
    assert _host(scope) == [b"example.com:8443"]
    assert scope["headers"][0] == (b"host", b"example.com:8443")  # kept in place


def test_x_forwarded_host_added_when_request_had_no_host() -> None:
    scope = _scope([(b"x-forwarded-host", b"example.com")])
    scope["headers"] = [h for h in scope["headers"] if h[0] != b"host"]
    apply_proxy_headers(scope, TrustedHosts("10.0.0.0/8"))
    assert _host(scope) == [b"example.com"]


@pytest.mark.parametrize(
    "value", [b"evil.com/path", b"a b", b"user@evil.com", b"evil.com\r\nx: y", b""]
)
def test_x_forwarded_host_malformed_is_ignored(value: bytes) -> None:
    assert _host(_apply([(b"x-forwarded-host", value)])) == [b"internal:8000"]


def test_x_forwarded_headers_from_untrusted_peer_are_ignored() -> None:
    scope = _apply([(b"x-forwarded-host", b"evil.com")], client=("203.0.113.9", 1))
    assert _host(scope) == [b"internal:8000"]


# --- Forwarded (RFC 7239) ---------------------------------------------------------


def test_forwarded_sets_client_proto_and_host() -> None:
    scope = _apply([(b"forwarded", b'for=192.0.2.60;proto=https;host="example.com"')])
    assert scope["client"] == ("192.0.2.60", 0)
    assert scope["scheme"] == "https"
    assert _host(scope) == [b"example.com"]


def test_forwarded_takes_precedence_over_x_forwarded() -> None:
    scope = _apply(
        [
            (b"x-forwarded-for", b"198.51.100.1"),
            (b"x-forwarded-proto", b"http"),
            (b"forwarded", b"for=192.0.2.60;proto=https"),
        ]
    )
    assert scope["client"] == ("192.0.2.60", 0)
    assert scope["scheme"] == "https"


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b'for="[2001:db8:cafe::17]:4711"', ("2001:db8:cafe::17", 4711)),
        (b'for="[2001:db8:cafe::17]"', ("2001:db8:cafe::17", 0)),
        (b'for="192.0.2.43:47011"', ("192.0.2.43", 47011)),
        (b"FOR=192.0.2.43", ("192.0.2.43", 0)),
        (b"for=unknown", ("unknown", 0)),
        (b"for=_hidden", ("_hidden", 0)),
        (b'for="_hidden:_port"', ("_hidden", 0)),
        (b'for="\\1\\9\\2.0.2.43"', ("192.0.2.43", 0)),  # quoted-pair escapes
        (b"for=192.0.2.43, for=198.51.100.17", ("198.51.100.17", 0)),
        (b"for=192.0.2.43;by=10.0.0.9", ("192.0.2.43", 0)),
    ],
)
def test_forwarded_node_forms(value: bytes, client: tuple[str, int]) -> None:
    assert _apply([(b"forwarded", value)])["client"] == client


def test_forwarded_right_most_untrusted_and_its_own_proto() -> None:
    # The edge proxy (10.0.0.2) wrote the client's element, with the proto it
    # saw; the inner proxy (10.0.0.1, our peer) wrote 10.0.0.2's element.
    scope = _apply(
        [
            (
                b"forwarded",
                b"for=6.6.6.6;proto=http, for=203.0.113.5;proto=https;host=example.com, "
                b"for=10.0.0.2;proto=http;host=internal",
            )
        ]
    )
    assert scope["client"] == ("203.0.113.5", 0)
    assert scope["scheme"] == "https"
    assert _host(scope) == [b"example.com"]


def test_forwarded_without_for_still_sets_proto() -> None:
    scope = _apply([(b"forwarded", b"proto=https;host=example.com")])
    assert scope["client"] == PROXY
    assert scope["scheme"] == "https"
    assert _host(scope) == [b"example.com"]


def test_forwarded_trusted_obfuscated_proxy_is_walked_past() -> None:
    scope = _apply([(b"forwarded", b"for=203.0.113.5, for=_edge")], trusted="10.0.0.0/8,_edge")
    assert scope["client"] == ("203.0.113.5", 0)


def test_forwarded_websocket_proto() -> None:
    scope = _apply([(b"forwarded", b"for=192.0.2.60;proto=https")], kind="websocket")
    assert scope["scheme"] == "wss"


def test_forwarded_repeated_lines_combine() -> None:
    scope = _apply([(b"forwarded", b"for=192.0.2.60"), (b"forwarded", b"for=198.51.100.17")])
    assert scope["client"] == ("198.51.100.17", 0)


def test_forwarded_comma_inside_quotes_is_not_a_separator() -> None:
    scope = _apply([(b"forwarded", b'for=192.0.2.60;host="a,b", for=198.51.100.17')])
    assert scope["client"] == ("198.51.100.17", 0)


@pytest.mark.parametrize(
    "value",
    [
        b"for=",
        b"for",
        b'for="192.0.2.60',
        b"for=192.0.2.60;for=198.51.100.1",  # a parameter twice in one element
        b"for=[2001:db8::1]",  # brackets need quotes: ":" is not a token char
        b'for="[2001:db8::1"',
        b'for="[zzzz::1]:80"',
        b"for=192.0.2.999",
        b'for="192.0.2.60:99999"',
        b"for=hostname.example",
        b"for=192.0.2.60 x",
        b"\xff\xfe",
        b'for="\\"',
        b"for=1.2.3.4, garbage",
    ],
)
def test_forwarded_malformed_is_ignored(value: bytes) -> None:
    scope = _apply([(b"forwarded", value), (b"x-forwarded-for", b"198.51.100.1")])
    assert scope["client"] == PROXY
    assert scope["scheme"] == "http"


def test_forwarded_walk_stops_at_malformed_element() -> None:
    scope = _apply([(b"forwarded", b"for=garbage!, for=10.0.0.2")])
    assert scope["client"] == ("10.0.0.2", 0)


def test_forwarded_bad_proto_or_host_is_ignored_but_client_kept() -> None:
    scope = _apply([(b"forwarded", b'for=192.0.2.60;proto=gopher;host="evil.com/x"')])
    assert scope["client"] == ("192.0.2.60", 0)
    assert scope["scheme"] == "http"
    assert _host(scope) == [b"internal:8000"]


def test_headers_tuple_is_accepted() -> None:
    # ASGI says headers is an iterable of pairs; a tuple must not break us.
    scope = _scope([(b"x-forwarded-host", b"example.com")])
    scope["headers"] = tuple(scope["headers"])
    apply_proxy_headers(scope, TrustedHosts("10.0.0.0/8"))
    assert _host(scope) == [b"example.com"]


def test_zone_id_peer_matches_its_network() -> None:
    assert "fe80::1%eth0" in TrustedHosts("fe80::/10")
    assert "fe80::1%eth0" not in TrustedHosts("fd00::/8")


def test_non_string_entry_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"entry 5 is not a string \(int\); use strings"):
        TrustedHosts(["127.0.0.1", 5])  # type: ignore[list-item]


@pytest.mark.parametrize("check", [has_proxy_headers, proxy._has_proxy_headers],
                         ids=["served", "python"])
@pytest.mark.parametrize(
    "name", [b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"]
)
def test_the_per_request_check_sees_every_proxy_header(
    name: bytes, check: Callable[[list[tuple[bytes, bytes]]], bool]
) -> None:
    # The connection skips apply_proxy_headers when this says no: a header it missed
    # would let a request through unrewritten.
    headers = [(b"host", b"example.com"), (name, b"203.0.113.7"), (b"accept", b"*/*")]
    assert check(headers)
    assert not check([(b"host", b"example.com"), (b"x-forwarded", b"x")])
    assert not check([])


def test_the_check_served_is_the_c_one_where_it_is_built() -> None:
    # ~1.2k instructions less per request from a trusted peer (127.0.0.1 by default).
    assert has_proxy_headers is not proxy._has_proxy_headers
