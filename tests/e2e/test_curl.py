"""curl, the reference command-line client, against pier.

Pins interoperability for RFC 9112 as curl implements it: a plain GET; a chunked upload
(section 7.1) whose body reaches the app whole; an HTTP/1.0 request (section 2.6, the
app sees http_version "1.0" and the response is complete); HEAD (RFC 9110 section 9.3.2,
curl must not wait for a body); connection reuse across two URLs (section 9.3); and
Expect: 100-continue (RFC 9110 section 10.1.1) answered without curl's fallback wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pier.types import Receive, Scope, Send
from tests.e2e._support import http_app, read_body, respond
from tests.helpers import RunningServer, running_server

CURL = shutil.which("curl")
pytestmark = pytest.mark.skipif(CURL is None, reason="curl is not installed (apt-get install curl)")


@http_app
async def describe(scope: Scope, receive: Receive, send: Send) -> None:
    body, messages = await read_body(receive)
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    answer = {
        "method": scope["method"],
        "path": scope["path"],
        "http_version": scope["http_version"],
        "client_port": scope["client"][1],
        "transfer_encoding": headers.get("transfer-encoding"),
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "messages": len(messages),
    }
    await respond(send, 200, json.dumps(answer).encode(),
                  headers=[(b"content-type", b"application/json"),
                           (b"content-length", str(len(json.dumps(answer))).encode())])


@pytest.fixture(scope="module")
def server() -> Iterator[RunningServer]:
    with running_server(describe) as running:
        yield running


def curl(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    result = subprocess.run([CURL, "-sS", "--max-time", "10", *args], capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, f"curl exited {result.returncode}: {result.stderr}"
    return result


def test_get(server: RunningServer) -> None:
    result = curl(f"{server.url}/hello?x=1")
    answer = json.loads(result.stdout)
    assert answer["method"] == "GET"
    assert answer["path"] == "/hello"
    assert answer["http_version"] == "1.1"


def test_chunked_upload(server: RunningServer, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    result = curl("-H", "Transfer-Encoding: chunked", "-H", "Expect:",
                  "--data-binary", f"@{upload}", f"{server.url}/upload")
    answer = json.loads(result.stdout)
    assert answer["transfer_encoding"] == "chunked"
    assert answer["size"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()


def test_http_1_0(server: RunningServer) -> None:
    result = curl("--http1.0", "-i", f"{server.url}/old")
    # text mode turned CRLF into LF
    head, _, body = result.stdout.partition("\n\n")
    assert head.startswith("HTTP/1.") and " 200 " in head.splitlines()[0]
    assert "transfer-encoding" not in head.lower()
    assert json.loads(body)["http_version"] == "1.0"


def test_head_does_not_make_curl_wait_for_a_body(server: RunningServer) -> None:
    started = time.monotonic()
    result = curl("-I", f"{server.url}/head")
    assert result.stdout.startswith("HTTP/1.1 200")
    assert "content-length:" in result.stdout.lower()
    assert time.monotonic() - started < 5


def test_two_urls_reuse_one_connection(server: RunningServer) -> None:
    result = curl("-w", "\n", f"{server.url}/first", f"{server.url}/second")
    first, second = (json.loads(line) for line in result.stdout.split("\n") if line.strip())
    assert first["path"] == "/first"
    assert second["path"] == "/second"
    assert first["client_port"] == second["client_port"], "curl could not reuse the connection"


def test_expect_100_continue_upload_does_not_stall(server: RunningServer,
                                                   tmp_path: Path) -> None:
    data = os.urandom(2_000_000)
    upload = tmp_path / "big.bin"
    upload.write_bytes(data)
    started = time.monotonic()
    # Without a 100 Continue curl would wait the whole 5 s before sending the body.
    result = curl("-H", "Expect: 100-continue", "--expect100-timeout", "5",
                  "--data-binary", f"@{upload}", f"{server.url}/big")
    elapsed = time.monotonic() - started
    answer = json.loads(result.stdout)
    assert answer["size"] == len(data)
    assert answer["sha256"] == hashlib.sha256(data).hexdigest()
    assert elapsed < 3, f"the upload took {elapsed:.1f} s: no 100 Continue was sent"
