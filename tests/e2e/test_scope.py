"""The ASGI http connection scope as an app sees it, over real sockets.

Pins: ASGI HTTP & WebSocket spec, "HTTP" -> "Connection Scope" (type, asgi.version 3.0 and
asgi.spec_version, http_version, method, scheme, path percent-decoded as UTF-8, raw_path,
query_string, root_path, headers, client, server, state) and "Extensions" (the
http.response.trailers and http.response.pathsend keys in scope["extensions"]); the
lifespan spec's "state" clause (each request gets a shallow copy of the lifespan state);
RFC 9112 section 3 (request line), section 5 (field lines: whitespace around a field value
is not part of it); RFC 9110 section 5.3 (field order and repeated fields are kept).
"""

from __future__ import annotations

import socket
from typing import Any

from pier.types import Receive, Scope, Send
from tests.e2e._support import Conn, Recorder, read_body, respond, serve_lifespan
from tests.helpers import running_server


def _one_scope(raw: bytes, **options: Any) -> Scope:
    """Send `raw` to a fresh server; return the scope the app saw."""
    recorder = Recorder()
    with running_server(recorder.app, **options) as server, Conn.open(server) as conn:
        conn.send(raw)
        response = conn.read_response()
        assert response.status == 200, response
        assert recorder.scopes, "the app was not called"
        return recorder.scopes[0]


def test_scope_type_asgi_versions_and_defaults() -> None:
    scope = _one_scope(b"GET / HTTP/1.1\r\nHost: pier.test\r\n\r\n")
    assert scope["type"] == "http"
    assert scope["asgi"]["version"] == "3.0"
    spec = scope["asgi"]["spec_version"]
    assert isinstance(spec, str)
    assert tuple(int(part) for part in spec.split(".")) >= (2, 4), spec
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/"
    assert scope["raw_path"] == b"/"
    assert scope["query_string"] == b""
    assert scope["root_path"] == ""


def test_http_1_0_request_has_http_version_1_0() -> None:
    scope = _one_scope(b"GET /old HTTP/1.0\r\n\r\n")
    assert scope["http_version"] == "1.0"
    assert scope["path"] == "/old"


def test_method_is_passed_as_sent() -> None:
    scope = _one_scope(
        b"PATCH /thing HTTP/1.1\r\nHost: pier.test\r\nContent-Length: 2\r\n\r\n{}"
    )
    assert scope["method"] == "PATCH"


def test_path_is_percent_decoded_utf8_and_raw_path_is_untouched() -> None:
    scope = _one_scope(
        b"GET /caf%C3%A9/a%2Fb/x+y%20z?q=%C3%A9&r=a+b HTTP/1.1\r\nHost: pier.test\r\n\r\n"
    )
    # %2F decodes to "/" in path (which is why raw_path exists); "+" is not a space in a path.
    assert scope["path"] == "/caf\u00e9/a/b/x+y z"
    assert scope["raw_path"] == b"/caf%C3%A9/a%2Fb/x+y%20z"
    assert isinstance(scope["path"], str)
    assert isinstance(scope["raw_path"], bytes)


def test_query_string_is_raw_bytes_without_question_mark() -> None:
    scope = _one_scope(
        b"GET /search?q=%C3%A9&r=a+b&empty=&flag HTTP/1.1\r\nHost: pier.test\r\n\r\n"
    )
    assert scope["query_string"] == b"q=%C3%A9&r=a+b&empty=&flag"
    assert scope["path"] == "/search"
    assert scope["raw_path"] == b"/search"


def test_empty_query_after_question_mark() -> None:
    scope = _one_scope(b"GET /x? HTTP/1.1\r\nHost: pier.test\r\n\r\n")
    assert scope["path"] == "/x"
    assert scope["query_string"] == b""


def test_root_path_option_is_in_scope_and_prefixes_path() -> None:
    # A proxy strips "/api" and forwards "/items"; the app sees where it is mounted.
    scope = _one_scope(b"GET /items?x=1 HTTP/1.1\r\nHost: pier.test\r\n\r\n",
                             root_path="/api")
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items"
    assert scope["raw_path"] == b"/api/items"
    assert scope["query_string"] == b"x=1"


def test_headers_lower_cased_in_order_with_duplicates_and_values_kept() -> None:
    raw = (
        b"GET / HTTP/1.1\r\n"
        b"Host: pier.test\r\n"
        b"X-Custom: First Value\r\n"
        b"ACCEPT: text/html\r\n"
        b"x-custom: Second\r\n"
        b"Cookie: a=1\r\n"
        b"Cookie: b=2\r\n"
        b"X-Padded: \t  spaced  value \t\r\n"
        b"X-Empty:\r\n"
        b"\r\n"
    )
    scope = _one_scope(raw)
    headers = scope["headers"]
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in headers)
    assert [tuple(pair) for pair in headers] == [
        (b"host", b"pier.test"),
        (b"x-custom", b"First Value"),
        (b"accept", b"text/html"),
        (b"x-custom", b"Second"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"x-padded", b"spaced  value"),
        (b"x-empty", b""),
    ]


def test_client_and_server_addresses() -> None:
    recorder = Recorder()
    with running_server(recorder.app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
        assert response.status == 200
        client_host, client_port = conn.sock.getsockname()[:2]
    scope = recorder.scopes[0]
    assert tuple(scope["client"]) == (client_host, client_port)
    assert tuple(scope["server"]) == ("127.0.0.1", server.port)
    assert isinstance(scope["client"][1], int)


def test_server_address_on_a_wildcard_listener_is_the_connections_own() -> None:
    # A listener on 0.0.0.0 accepts on every local address: scope["server"] is the one
    # this connection came in on, never the wildcard (pier reads the listening address
    # once only when it is a single address, io/server.py shared_address).
    recorder = Recorder()
    with running_server(recorder.app, host="0.0.0.0") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: pier.test\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:60]
    assert tuple(recorder.scopes[0]["server"]) == ("127.0.0.1", server.port)


def test_extensions_advertise_trailers_and_pathsend() -> None:
    scope = _one_scope(
        b"GET / HTTP/1.1\r\nHost: pier.test\r\nTE: trailers\r\n\r\n"
    )
    extensions = scope["extensions"]
    assert "http.response.trailers" in extensions
    assert "http.response.pathsend" in extensions
    assert isinstance(extensions["http.response.pathsend"], dict)


def test_state_is_a_shallow_copy_of_lifespan_state() -> None:
    shared: list[str] = []
    seen: list[dict[str, Any]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            scope["state"]["greeting"] = "hello"
            scope["state"]["shared"] = shared
            await serve_lifespan(receive, send)
            return
        await read_body(receive)
        state = scope["state"]
        seen.append(dict(state))
        # A request's own additions must not leak into the next request's state...
        state["per_request"] = scope["path"]
        # ...while objects placed in the state at startup are the same objects.
        state["shared"].append(scope["path"])
        await respond(send, 200, b"ok")

    with running_server(app, lifespan="on") as server, Conn.open(server) as conn:
        assert conn.request("GET", "/one").status == 200
        assert conn.request("GET", "/two").status == 200
    assert seen[0]["greeting"] == "hello"
    assert "per_request" not in seen[1], "state must be copied per request"
    assert seen[1]["greeting"] == "hello"
    assert shared == ["/one", "/two"]


def test_headers_do_not_carry_over_between_requests_on_one_connection() -> None:
    recorder = Recorder()
    with running_server(recorder.app) as server, Conn.open(server) as conn:
        first = conn.request("GET", "/a", headers=[("X-Only-First", "1")])
        second = conn.request("GET", "/b", headers=[("X-Only-Second", "2")])
    assert first.status == second.status == 200
    first_names = [name for name, _ in recorder.scopes[0]["headers"]]
    second_names = [name for name, _ in recorder.scopes[1]["headers"]]
    assert first_names == [b"host", b"x-only-first"]
    assert second_names == [b"host", b"x-only-second"]
    assert recorder.scopes[1]["path"] == "/b"
