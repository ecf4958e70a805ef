"""--proxy-protocol v1|v2 (issue 12): the PROXY header from a raw socket, as HAProxy or an
AWS NLB sends it, sets scope["client"] and scope["server"]; a missing, malformed, late or
untrusted header closes the connection before any byte reaches HTTP.

Pins HAProxy's proxy-protocol.txt sections 2.1 (v1) and 2.2 (v2), and its advice that a
receiver must not accept a connection without the header once it is configured to
expect one (section 1: "the receiver must be configured to only receive the protocol
described in this specification").
"""

from __future__ import annotations

import base64
import json

import pytest

from pier.config import Config
from pier.errors import ConfigError
from pier.types import Receive, Scope, Send
from tests.e2e._support import http_app, read_body, respond
from tests.helpers import recv_response, recv_until_closed, running_server
from tests.proto.test_proxy_protocol import inet, inet6, v2

V1 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
V2 = v2(addresses=inet("192.0.2.1", "198.51.100.2", 56324, 443))
GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


@http_app
async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    await read_body(receive)
    answer = {"client": scope["client"], "server": scope["server"]}
    await respond(send, 200, json.dumps(answer).encode())


def body(response: bytes) -> dict[str, list[object]]:
    head, _, rest = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    return json.loads(rest)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("version", "header"), [("v1", V1), ("v2", V2)])
def test_header_sets_client_and_server_for_every_request(version: str, header: bytes) -> None:
    with running_server(whoami, proxy_protocol=version) as server, server.connect() as sock:
        sock.sendall(header[:5])  # split anywhere: the header is read whole
        sock.sendall(header[5:] + GET)
        first = body(recv_response(sock))
        assert first == {"client": ["192.0.2.1", 56324], "server": ["198.51.100.2", 443]}
        sock.sendall(GET)  # keep-alive: the same connection keeps its addresses
        assert body(recv_response(sock)) == first


def test_v2_ipv6_and_local_command() -> None:
    header = v2(family=2, addresses=inet6("2001:db8::1", "2001:db8::2", 5, 80))
    with running_server(whoami, proxy_protocol="v2") as server:
        with server.connect() as sock:
            sock.sendall(header + GET)
            assert body(recv_response(sock))["client"] == ["2001:db8::1", 5]
        with server.connect() as sock:  # LOCAL: the proxy itself, its real address
            sock.sendall(v2(command=0) + GET)
            assert body(recv_response(sock))["client"] == list(sock.getsockname())


@pytest.mark.parametrize(
    ("version", "data"),
    [
        ("v1", GET),  # no header at all
        ("v2", GET),
        ("v1", V2 + GET),  # the other version
        ("v2", V1 + GET),
        ("v1", b"PROXY TCP4 192.0.2.1 nonsense 1 2\r\n" + GET),
        ("v1", b"PROXY TCP4 " + b"9" * 200),
    ],
)
def test_missing_or_bad_header_closes_without_an_answer(version: str, data: bytes) -> None:
    with running_server(whoami, proxy_protocol=version) as server, server.connect() as sock:
        sock.sendall(data)
        assert recv_until_closed(sock) == b""


def test_header_from_an_untrusted_peer_closes_the_connection() -> None:
    options = {"proxy_protocol": "v1", "forwarded_allow_ips": "10.0.0.0/8"}
    with running_server(whoami, **options) as server, server.connect() as sock:
        sock.sendall(V1 + GET)
        assert recv_until_closed(sock) == b""


def test_header_that_does_not_arrive_in_time_closes() -> None:
    options = {"proxy_protocol": "v2", "timeout_request_header": 0.3}
    with running_server(whoami, **options) as server, server.connect() as sock:
        sock.sendall(V2[:10])
        assert recv_until_closed(sock, timeout=5.0) == b""


def test_forwarded_headers_from_the_proxied_client_are_not_trusted() -> None:
    # The client behind the proxy (192.0.2.1) is not in --forwarded-allow-ips, so its
    # X-Forwarded-For cannot move scope["client"] again.
    with running_server(whoami, proxy_protocol="v1") as server, server.connect() as sock:
        sock.sendall(V1 + b"GET / HTTP/1.1\r\nhost: x\r\nx-forwarded-for: 6.6.6.6\r\n\r\n")
        assert body(recv_response(sock))["client"] == ["192.0.2.1", 56324]


async def ws_whoami(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    assert scope["type"] == "websocket"
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": json.dumps(scope["client"])})
    await send({"type": "websocket.close"})


def test_websocket_after_the_header_sees_the_client() -> None:
    key = base64.b64encode(b"0123456789abcdef").decode()
    upgrade = (f"GET /ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
               f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n\r\n").encode()
    with running_server(ws_whoami, proxy_protocol="v1", lifespan="off") as server, \
            server.connect() as sock:
        sock.sendall(V1 + upgrade)
        sock.settimeout(5.0)
        received = b""
        while b"56324]" not in received:  # the text frame; then the server's close
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
    assert received.startswith(b"HTTP/1.1 101")
    assert b'["192.0.2.1", 56324]' in received


def test_proxy_protocol_choices_and_tls_refused() -> None:
    with pytest.raises(ConfigError, match="one of off, v1, v2"):
        Config(whoami, proxy_protocol="v3")
    with pytest.raises(ConfigError, match="not supported yet"):
        Config(whoami, proxy_protocol="v1", ssl_certfile="x.pem")

