"""TLS: https in the scope, the ASGI `tls` extension, client certificates, ALPN, and every
way a certificate option can be wrong, each one error that names the fix.

Pins: ASGI HTTP and WebSocket connection scopes, spec 2.4 ("scheme": "https" / "wss"),
and the ASGI "TLS"
extension (server_cert, client_cert_chain, client_cert_name in RFC 4514 form,
client_cert_error, tls_version as the TLS record version number, cipher_suite as the
IANA number); RFC 7301 (ALPN: the server selects http/1.1 for a client offering only
that); RFC 8446 / RFC 5246 (a client without a required certificate fails the
handshake). Certificates come from trustme, generated for each test session.
"""

from __future__ import annotations

import json
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from pier.config import Config
from pier.errors import ConfigError
from pier.io.tls import create_ssl_context, distinguished_name
from pier.types import Receive, Scope, Send
from tests.e2e._support import http_app, respond
from tests.helpers import running_server
from tests.supervisor._harness import pier


@dataclass
class Certs:
    ca: trustme.CA
    server_pem: Path  # certificate chain and key in one file
    cert: Path
    key: Path
    ca_pem: Path
    client: trustme.LeafCert


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    directory = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("alice@example.com", common_name="alice, the tester")
    paths = Certs(ca, directory / "server.pem", directory / "cert.pem", directory / "key.pem",
                  directory / "ca.pem", client)
    leaf.private_key_and_cert_chain_pem.write_to_path(str(paths.server_pem))
    leaf.cert_chain_pems[0].write_to_path(str(paths.cert))
    leaf.private_key_pem.write_to_path(str(paths.key))
    ca.cert_pem.write_to_path(str(paths.ca_pem))
    return paths


def client_context(certs: Certs, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context()
    certs.ca.configure_trust(context)
    if with_cert:
        certs.client.configure_cert(context)
    return context


@http_app
async def scope_app(scope: Scope, receive: Receive, send: Send) -> None:
    await respond(send, 200, json.dumps(
        {"scheme": scope["scheme"], "tls": scope["extensions"].get("tls")}
    ).encode())


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_https_scope_and_tls_extension(certs: Certs, loop: str) -> None:
    with running_server(scope_app, loop=loop, ssl_certfile=str(certs.cert),
                        ssl_keyfile=str(certs.key)) as server:
        response = httpx.get(f"https://127.0.0.1:{server.port}/",
                             verify=client_context(certs))
    seen = response.json()
    assert seen["scheme"] == "https"
    tls = seen["tls"]
    assert tls["server_cert"] == certs.cert.read_text()
    assert tls["client_cert_chain"] == []
    assert tls["client_cert_name"] is None
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] in (0x0303, 0x0304)
    # TLS 1.3 suites are 0x1301-0x1305; TLS 1.2 ECDHE suites live at 0xC0xx/0xCCxx.
    assert isinstance(tls["cipher_suite"], int) and 0 < tls["cipher_suite"] <= 0xFFFF


def test_client_certificate_in_the_tls_extension(certs: Certs) -> None:
    with running_server(scope_app, ssl_certfile=str(certs.server_pem),
                        ssl_ca_certs=str(certs.ca_pem), ssl_cert_reqs="required") as server:
        response = httpx.get(f"https://127.0.0.1:{server.port}/",
                             verify=client_context(certs, with_cert=True))
        tls = response.json()["tls"]
        leaf_pem = certs.client.cert_chain_pems[0].bytes().decode()
        assert tls["client_cert_chain"][0] == leaf_pem
        assert tls["client_cert_name"].startswith("CN=alice\\, the tester,")
        # Without a certificate the handshake itself fails.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"https://127.0.0.1:{server.port}/", verify=client_context(certs))


def test_alpn_selects_http_1_1_for_an_http_1_1_client(certs: Certs) -> None:
    # A client offering h2 too gets h2: tests/e2e/test_http2.py.
    context = client_context(certs)
    context.set_alpn_protocols(["http/1.1"])
    with running_server(scope_app, ssl_certfile=str(certs.server_pem)) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"


def test_plain_http_on_a_tls_port_does_not_reach_the_app(certs: Certs) -> None:
    with running_server(scope_app, ssl_certfile=str(certs.server_pem)) as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        try:
            while chunk := raw.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
        assert b"HTTP/1.1 200" not in data


def test_websocket_over_tls_is_wss_with_the_tls_extension(certs: Certs) -> None:
    client = pytest.importorskip("websockets.sync.client",
                                 reason="the wss test needs the websockets package")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            tls = scope["extensions"]["tls"]
            await send({"type": "websocket.send", "text": json.dumps(
                {"scheme": scope["scheme"], "tls_version": tls["tls_version"]}
            )})
            await send({"type": "websocket.close"})

    with running_server(app, lifespan="off", ssl_certfile=str(certs.server_pem)) as server, \
            client.connect(f"wss://127.0.0.1:{server.port}/",
                           ssl=client_context(certs)) as websocket:
        seen = json.loads(websocket.recv())
    assert seen["scheme"] == "wss"
    assert seen["tls_version"] in (0x0303, 0x0304)


def test_workers_listen_on_https(certs: Certs) -> None:
    with pier("tests.supervisor.apps:app", "--workers", "2", "--port", "0",
              "--ssl-certfile", str(certs.server_pem), "--no-access-log") as server:
        assert server.scheme == "https"
        response = httpx.get(f"https://127.0.0.1:{server.port}/", verify=client_context(certs))
        assert response.status_code == 200


# --- configuration errors --------------------------------------------------------------


def encrypted_key(certs: Certs, directory: Path, password: bytes) -> Path:
    key = serialization.load_pem_private_key(certs.key.read_bytes(), None)
    path = directory / "encrypted.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    ))
    return path


def context_error(**options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        create_ssl_context(Config("m:a", **options))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_an_encrypted_key_with_its_password_works(certs: Certs, tmp_path: Path) -> None:
    key = encrypted_key(certs, tmp_path, b"s3cret")
    context = create_ssl_context(Config("m:a", ssl_certfile=str(certs.cert),
                                        ssl_keyfile=str(key), ssl_keyfile_password="s3cret"))
    assert context is not None


def test_certificate_mistakes_are_one_line_with_the_fix(certs: Certs, tmp_path: Path) -> None:
    key = encrypted_key(certs, tmp_path, b"s3cret")
    other_key = tmp_path / "other.pem"
    trustme.CA().issue_cert("x").private_key_pem.write_to_path(str(other_key))
    missing = tmp_path / "missing.pem"

    assert context_error(ssl_certfile=str(missing)) == (
        f"--ssl-certfile {missing} does not exist; fix the path"
    )
    assert "holds no PEM certificate" in context_error(ssl_certfile=str(certs.key))
    assert context_error(ssl_certfile=str(certs.cert)) == (
        f"--ssl-certfile {certs.cert} holds no private key; give the key with"
        " --ssl-keyfile PATH"
    )
    assert context_error(ssl_certfile=str(certs.cert), ssl_keyfile=str(key)) == (
        f"--ssl-keyfile {key} is encrypted; give its password with --ssl-keyfile-password"
        " (or PIER_SSL_KEYFILE_PASSWORD)"
    )
    assert context_error(ssl_certfile=str(certs.cert), ssl_keyfile=str(key),
                         ssl_keyfile_password="wrong") == (
        f"--ssl-keyfile-password does not decrypt --ssl-keyfile {key}; check the password"
    )
    assert "is not the private key of the certificate" in context_error(
        ssl_certfile=str(certs.cert), ssl_keyfile=str(other_key)
    )
    assert "selects no cipher OpenSSL knows" in context_error(
        ssl_certfile=str(certs.server_pem), ssl_ciphers="NO-SUCH-CIPHER"
    )
    assert "holds no usable CA certificate" in context_error(
        ssl_certfile=str(certs.server_pem), ssl_ca_certs=str(certs.key)
    )


def test_a_bad_certificate_stops_the_cli_with_exit_code_1(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pier("tests.supervisor.apps:app", "--workers", "2", "--ssl-certfile", str(missing),
              listening=False) as proc:
        assert proc.wait() == 1
    assert f"--ssl-certfile {missing} does not exist; fix the path" in proc.output
    assert "Started worker" not in proc.output


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ([[("commonName", "a")]], "CN=a"),
        ([[("countryName", "DE")], [("organizationName", "Acme, Inc.")],
          [("commonName", "#1 ")]], "CN=\\#1\\ ,O=Acme\\, Inc.,C=DE"),
        ([[("commonName", "x"), ("userId", "7")]], "CN=x+UID=7"),
    ],
)
def test_client_cert_name_is_rfc_4514(subject: Any, name: str) -> None:
    assert distinguished_name(subject) == name


def test_a_certificate_and_key_of_different_types_say_so(tmp_path: Path) -> None:
    # OpenSSL's own words for this are NO_CERTIFICATE_ASSIGNED or KEY_VALUES_MISMATCH.
    ca = trustme.CA()
    ec = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.ECDSA)
    rsa = ca.issue_cert("127.0.0.1", key_type=trustme.KeyType.RSA)
    cert, key = tmp_path / "ec.pem", tmp_path / "rsa.key"
    ec.cert_chain_pems[0].write_to_path(str(cert))
    rsa.private_key_pem.write_to_path(str(key))
    with pytest.raises(ConfigError, match=r"holds an EC certificate but --ssl-keyfile .* an RSA"
                       r" private key; pass the EC key"):
        create_ssl_context(Config("m:a", ssl_certfile=str(cert), ssl_keyfile=str(key)))
    pkcs8 = tmp_path / "rsa8.key"
    pkcs8.write_bytes(_pkcs8(rsa.private_key_pem.bytes()))
    with pytest.raises(ConfigError, match="an RSA private key"):
        create_ssl_context(Config("m:a", ssl_certfile=str(cert), ssl_keyfile=str(pkcs8)))


def _pkcs8(pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(pem, password=None)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
