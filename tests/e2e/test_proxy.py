"""Proxy headers: the client address, scheme and host a trusted proxy reports.

Pins: RFC 7239 section 4 (Forwarded: for=, proto=, host=; quoted IPv6 with port; the
last element is the one the nearest proxy added) and the de-facto X-Forwarded-For /
X-Forwarded-Proto / X-Forwarded-Host headers; ASGI HTTP spec "Connection Scope" (client,
scheme, and the Host header an app builds URLs from). Trust follows
--forwarded-allow-ips (addresses, CIDR networks, "*"; default 127.0.0.1): the list is
read from the right, trusted proxies are skipped, the first untrusted address is the
client. An untrusted peer or --no-proxy-headers leaves everything as the socket says.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pier.types import Receive, Scope, Send
from tests.e2e._support import Conn, http_app, read_body, respond
from tests.helpers import running_server


@http_app
async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    host = [v.decode() for n, v in scope["headers"] if n == b"host"]
    answer = {
        "client": list(scope["client"]) if scope.get("client") else None,
        "scheme": scope["scheme"],
        "host": host,
    }
    await respond(send, 200, json.dumps(answer).encode())


def _ask(headers: list[tuple[str, str]], **options: Any) -> dict[str, Any]:
    with running_server(whoami, **options) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/", headers=headers)
        assert response.status == 200, response
        local = conn.sock.getsockname()
        result: dict[str, Any] = response.json()
        result["socket_port"] = local[1]
        return result


XFF = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
       ("X-Forwarded-Host", "public.example")]


def test_x_forwarded_headers_are_honoured_from_localhost_by_default() -> None:
    seen = _ask(XFF)
    assert seen["client"][0] == "203.0.113.7"
    assert seen["scheme"] == "https"
    assert seen["host"] == ["public.example"]


def test_forwarded_header_is_honoured() -> None:
    seen = _ask([("Forwarded", 'for=203.0.113.9;proto=https;host="shop.example"')])
    assert seen["client"][0] == "203.0.113.9"
    assert seen["scheme"] == "https"
    assert seen["host"] == ["shop.example"]


def test_forwarded_quoted_ipv6_with_port() -> None:
    seen = _ask([("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https')])
    assert seen["client"][0] == "2001:db8:cafe::17"
    assert seen["scheme"] == "https"


def test_forwarded_last_element_is_the_nearest_proxy_report() -> None:
    # The client could have sent the first element itself; only the last is trustworthy.
    seen = _ask([("Forwarded", "for=198.51.100.1;proto=http, for=203.0.113.5;proto=https")])
    assert seen["client"][0] == "203.0.113.5"
    assert seen["scheme"] == "https"


def test_proxy_headers_are_ignored_from_an_untrusted_peer() -> None:
    seen = _ask([*XFF, ("Forwarded", "for=203.0.113.9;proto=https")],
                forwarded_allow_ips="10.1.2.3")
    assert seen["client"] == ["127.0.0.1", seen["socket_port"]]
    assert seen["scheme"] == "http"
    assert seen["host"] == ["pier.test"]


def test_proxy_headers_are_ignored_when_switched_off() -> None:
    seen = _ask([*XFF, ("Forwarded", "for=203.0.113.9;proto=https")], proxy_headers=False)
    assert seen["client"] == ["127.0.0.1", seen["socket_port"]]
    assert seen["scheme"] == "http"
    assert seen["host"] == ["pier.test"]


@pytest.mark.parametrize(("allow", "trusted"), [
    ("127.0.0.0/8", True),
    ("10.0.0.0/8, 127.0.0.1/32", True),
    ("*", True),
    ("10.0.0.0/8", False),
    ("127.0.0.2", False),
])
def test_cidr_ranges_decide_which_peers_are_trusted(allow: str, trusted: bool) -> None:
    seen = _ask(XFF, forwarded_allow_ips=allow)
    if trusted:
        assert seen["client"][0] == "203.0.113.7"
        assert seen["scheme"] == "https"
    else:
        assert seen["client"][0] == "127.0.0.1"
        assert seen["scheme"] == "http"


def test_x_forwarded_for_chain_stops_at_the_first_untrusted_address() -> None:
    chain = [("X-Forwarded-For", "198.51.100.1, 10.0.0.2")]
    # Only localhost is trusted: 10.0.0.2 (reported by it) is the client.
    assert _ask(chain)["client"][0] == "10.0.0.2"
    # The internal proxy network is trusted too: the next address to the left is.
    assert _ask(chain, forwarded_allow_ips="127.0.0.1,10.0.0.0/8")["client"][0] == "198.51.100.1"


def test_a_starlette_app_builds_its_urls_from_the_forwarded_values() -> None:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def where(request: Request) -> JSONResponse:
        return JSONResponse({"url": str(request.url), "client": request.client.host
                             if request.client else None})

    app = Starlette(routes=[Route("/where", where)])
    with running_server(app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/where?x=1", headers=XFF)
    assert response.json() == {"url": "https://public.example/where?x=1",
                               "client": "203.0.113.7"}
