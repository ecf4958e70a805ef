"""pier behind a real nginx on loopback, configured as docs/deployment.md recommends: TLS
terminated by nginx, X-Forwarded-For/-Proto trusted from the proxy, the app mounted
under a prefix (--root-path), keep-alive connections to pier, a Unix socket upstream,
and a graceful drain on SIGTERM (in-flight requests answered, then nothing accepted).

Pins: RFC 9110 section 7.6.3 (a proxy's Via/forwarding chain; here the de facto
X-Forwarded-For and X-Forwarded-Proto), ASGI HTTP scope spec 2.4 (client, scheme,
root_path with path including it), RFC 9112 section 9.3 (persistent connections between
proxy and origin), and RFC 9113 between nginx's grpc_pass and pier (h2c). nginx comes
from Debian (apt-get install nginx-light); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import ast
import os
import shutil
import signal
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.e2e._support import Recorder
from tests.helpers import running_server
from tests.supervisor._harness import Proc, pier

NGINX = shutil.which("nginx") or next(
    (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
    None,
)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (Debian: apt-get install -y nginx-light)"
)

APP = "tests.supervisor.apps:app"

NGINX_CONF = """
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    upstream pier {{
        server 127.0.0.1:{pier_port};
        keepalive 4;
        # Shorter than pier's --timeout-keep-alive: nginx, not pier, closes idle
        # upstream connections, so nginx never sends on a connection pier closed.
        keepalive_timeout 4s;
    }}
    upstream pier_unix {{
        server unix:{socket};
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};

        location /api/ {{
            proxy_pass http://pier/;  # strips /api: pier runs with --root-path /api
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location /raw/ {{
            proxy_pass http://pier/;  # no forwarding headers: pier sees nginx itself
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
        location /unix/ {{
            proxy_pass http://pier_unix/;
        }}
        # HTTP/2 to pier (h2c, prior knowledge): docs/http2.md, "Behind a proxy".
        location /h2c/ {{
            rewrite ^/h2c/(.*)$ /$1 break;
            grpc_pass grpc://127.0.0.1:{pier_port};
            grpc_set_header Host $host;
            grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            grpc_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@dataclass
class Stack:
    pier: Proc
    nginx: Proc
    port: int
    client_context: ssl.SSLContext

    def get(self, path: str, *, source: str = "127.0.0.1") -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=5,
                                      source_address=(source, 0)) as raw, \
                self.client_context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nhost: localhost\r\n"
                        "connection: close\r\n\r\n".encode())
            data = b""
            while chunk := tls.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def shared_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One pier and one nginx for the tests that leave both running."""
    with make_stack(tmp_path_factory.mktemp("nginx")) as stack:
        yield stack


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with make_stack(tmp_path) as stack:
        yield stack


@contextmanager
def make_stack(tmp_path: Path) -> Iterator[Stack]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    unix_socket = tmp_path / "pier.sock"
    with pier(APP, "--workers", "2", "--bind", "127.0.0.1:0", "--bind", f"unix:{unix_socket}",
              "--root-path", "/api", "--forwarded-allow-ips", "127.0.0.1",
              "--timeout-keep-alive", "10", "--no-access-log") as server:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            dir=tmp_path, pier_port=server.port, socket=unix_socket, port=port, cert=cert,
            key=key,
            # As root, nginx's workers would run as "nobody", who may not use the
            # 0660 socket (deployment.md: put nginx in pier's group instead).
            user="user root;" if os.geteuid() == 0 else "",
        ))
        assert NGINX is not None
        nginx = Proc([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr",
                      "-g", "daemon off;"])
        try:
            nginx.wait_for("start worker process")
            context = ssl.create_default_context()
            ca.configure_trust(context)
            yield Stack(server, nginx, port, context)
        finally:
            nginx.signal(signal.SIGQUIT)
            nginx.stop()


def scope_seen(body: bytes) -> dict[str, Any]:
    value = ast.literal_eval(body.decode())
    assert isinstance(value, dict)
    return value


def test_scope_behind_nginx(shared_stack: Stack) -> None:
    stack = shared_stack
    status, body = stack.get("/api/scope", source="127.0.0.2")
    assert status == 200
    seen = scope_seen(body)
    assert seen["scheme"] == "https"  # TLS ends at nginx; X-Forwarded-Proto says so
    assert seen["client"][0] == "127.0.0.2"  # X-Forwarded-For from a trusted proxy
    assert seen["root_path"] == "/api"
    assert seen["path"] == "/api/scope"


def test_nginx_grpc_pass_speaks_http2_to_pier(shared_stack: Stack) -> None:
    # grpc_pass forwards any request over cleartext HTTP/2; pier's --http auto takes it.
    status, body = shared_stack.get("/h2c/scope", source="127.0.0.2")
    assert status == 200
    seen = scope_seen(body)
    assert seen["http_version"] == "2"
    assert seen["scheme"] == "https" and seen["client"][0] == "127.0.0.2"
    assert seen["path"] == "/api/scope"


def test_nginx_keeps_its_connections_to_pier_alive(shared_stack: Stack) -> None:
    stack = shared_stack
    peers = set()
    for _ in range(12):
        status, body = stack.get("/raw/scope")
        assert status == 200
        seen = scope_seen(body)
        assert seen["scheme"] == "http"  # no forwarding headers on /raw/: not rewritten
        peers.add(tuple(seen["client"]))
    # Sequential requests travel over the same upstream connection(s), not 12 new ones.
    assert len(peers) <= 2, peers


def test_unix_socket_upstream(shared_stack: Stack) -> None:
    stack = shared_stack
    status, body = stack.get("/unix/")
    assert status == 200 and body.isdigit()


def test_sigterm_drains_in_flight_requests_then_stops_accepting(stack: Stack) -> None:
    answer: list[tuple[int, bytes]] = []
    client = threading.Thread(target=lambda: answer.append(stack.get("/api/slow?s=0.5")))
    client.start()
    stack.pier.wait_for("slow request started")
    stack.pier.signal(signal.SIGTERM)
    client.join(10)
    assert answer == [(200, b"slow done")]
    assert stack.pier.wait() == 0
    # pier is gone: the proxy answers for it.
    assert stack.get("/api/")[0] == 502




# --- request smuggling through an upgrade pier does not perform (issue 10) ----------------

# nginx's documented WebSocket proxying, in front of a rule that guards /admin.
UPGRADE_CONF = """
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /admin {{ return 403; }}
        location / {{
            proxy_pass http://127.0.0.1:{pier_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_set_header Host $host;
        }}
    }}
}}
"""


def test_an_upgrade_body_cannot_smuggle_a_request_past_nginx(tmp_path: Path) -> None:
    smuggled = b"GET /admin/delete HTTP/1.1\r\nHost: localhost\r\n\r\n"
    attack = (b"POST / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
              b"Upgrade: h2c\r\nContent-Length: %d\r\n\r\n" % len(smuggled) + smuggled)
    recorder = Recorder()
    with running_server(recorder.app) as server:
        port = free_port()
        conf = tmp_path / "nginx.conf"
        conf.write_text(UPGRADE_CONF.format(
            dir=tmp_path, port=port, pier_port=server.port,
            user="user root;" if os.geteuid() == 0 else ""))
        assert NGINX is not None
        nginx = Proc([NGINX, "-p", str(tmp_path), "-c", str(conf), "-e", "stderr",
                      "-g", "daemon off;"])
        try:
            nginx.wait_for("start worker process")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                # The guard works: nginx itself refuses /admin.
                client.sendall(smuggled)
                assert client.recv(65536).startswith(b"HTTP/1.1 403")
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.sendall(attack)
                head = client.recv(65536)
        finally:
            nginx.signal(signal.SIGQUIT)
            nginx.stop()
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    # nginx saw one POST /; pier served that, with its body, and nothing else.
    assert recorder.paths == ["/"]
    assert recorder.bodies == [smuggled]
