"""HTTP/2 end to end: real clients (httpx, curl, the h2 library on a raw socket) and a real
pier on 127.0.0.1, over TLS with ALPN and over cleartext (prior knowledge and h2c).

Pins RFC 9113 section 3.2 (TLS: ALPN "h2", RFC 7301), 3.3 (prior knowledge), RFC 7540
3.2 (Upgrade: h2c), 5.2 (flow control: the window reopens only as the app reads),
5.4.2 / 8.1 (a reset stream's app is cancelled and sees http.disconnect), 6.7 (PING),
6.8 (two-step GOAWAY on shutdown, GOAWAY on idle close), 8.1 (trailers), 8.2.3 (one
cookie field), 8.3.1 (:authority becomes the host); ASGI HTTP spec 2.4 (http_version
"2", pathsend, trailers, http.disconnect); and that each flood of docs/http2.md sent
over a real socket ends that connection with its GOAWAY code and a warning naming the
limit, while another client keeps being served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest
import trustme
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
)

from pier.proto.h2 import PREFACE, ErrorCode
from pier.types import Receive, Scope, Send
from tests.e2e._support import (
    DEADLINE,
    Gate,
    capture_logs,
    http_app,
    read_body,
    respond,
    serve_lifespan,
    wait_until,
)
from tests.helpers import running_server

GET = [(":method", "GET"), (":scheme", "http"), (":authority", "example.test"),
       (":path", "/")]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(server certificate chain + key, CA certificate) from trustme."""
    directory = tmp_path_factory.mktemp("h2tls")
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    server_pem, ca_pem = directory / "server.pem", directory / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(server_pem))
    ca.cert_pem.write_to_path(str(ca_pem))
    return server_pem, ca_pem


async def echo_scope(scope: Scope, receive: Receive, send: Send) -> None:
    body, _ = await read_body(receive)
    answer = {
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "method": scope["method"],
        "path": scope["path"],
        "query_string": scope["query_string"].decode(),
        "headers": [[name.decode(), value.decode()] for name, value in scope["headers"]],
        "body": len(body),
    }
    await respond(send, 200, json.dumps(answer).encode(),
                  headers=[(b"content-type", b"application/json")])


ECHO = http_app(echo_scope)


class RawClient:
    """The h2 library as a client on a blocking socket, with deadlines on every read."""

    def __init__(self, port: int, *, tls_context: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        if tls_context is not None:
            sock = tls_context.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.events: list[Any] = []
        self.closed = False
        self.ack_data = True  # reopen the server's windows as its data arrives
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, predicate: Any, timeout: float = DEADLINE) -> list[Any]:
        """Read until an event satisfies `predicate` (or the server closes)."""
        self.sock.settimeout(timeout)
        while not any(predicate(event) for event in self.events):
            try:
                data = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                data = b""
            if not data:
                self.closed = True
                break
            try:
                new = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                new = []
            for event in new:
                if isinstance(event, h2.events.DataReceived) and self.ack_data:
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            self.events += new
            self.flush()
        return self.events

    def of(self, kind: type) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    def barrier(self) -> None:
        """Everything the server sends in answer to what was sent so far has arrived
        (a PING is answered in order, after the frames before it)."""
        payload = b"barrier%d" % len(self.events)
        payload = payload[:8].ljust(8, b"_")
        self.conn.ping(payload)
        self.flush()
        self.read_until(lambda e: isinstance(e, h2.events.PingAckReceived)
                        and e.ping_data == payload)

    def get(self, stream_id: int, path: str = "/") -> None:
        self.conn.send_headers(stream_id, [*GET[:3], (":path", path)], end_stream=True)
        self.flush()

    def response(self, stream_id: int) -> tuple[int, bytes]:
        self.read_until(lambda e: isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)
                        and e.stream_id == stream_id)
        status = 0
        body = b""
        for event in self.events:
            if getattr(event, "stream_id", None) != stream_id:
                continue
            if isinstance(event, h2.events.ResponseReceived):
                status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived):
                body += event.data
        return status, body

    def goaway_code(self) -> int | None:
        self.read_until(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        ended = self.of(h2.events.ConnectionTerminated)
        return ended[-1].error_code if ended else None

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw_client() -> Iterator[list[RawClient]]:
    clients: list[RawClient] = []
    yield clients
    for client in clients:
        client.close()


# --- real clients --------------------------------------------------------------------


def test_httpx_over_tls_negotiates_h2_with_alpn(tls_files: tuple[Path, Path]) -> None:
    server_pem, ca_pem = tls_files
    with running_server(ECHO, ssl_certfile=str(server_pem)) as server, httpx.Client(
        http2=True, verify=ssl.create_default_context(cafile=str(ca_pem))
    ) as client:
        response = client.post(f"https://127.0.0.1:{server.port}/p?q=1", content=b"x" * 100_000,
                               headers={"cookie": "a=1"})
        assert response.http_version == "HTTP/2"
        answer = response.json()
        assert answer["http_version"] == "2" and answer["scheme"] == "https"
        assert answer["query_string"] == "q=1" and answer["body"] == 100_000
        names = [name for name, _ in answer["headers"]]
        assert names[0] == "host" and not any(name.startswith(":") for name in names)
        # An HTTP/1.1-only client on the same port is still served HTTP/1.1.
        plain = httpx.get(f"https://127.0.0.1:{server.port}/",
                          verify=ssl.create_default_context(cafile=str(ca_pem)))
        assert plain.http_version == "HTTP/1.1" and plain.json()["http_version"] == "1.1"


def test_alpn_prefers_h2_and_still_speaks_http_1_1(tls_files: tuple[Path, Path]) -> None:
    server_pem, ca_pem = tls_files
    with running_server(ECHO, ssl_certfile=str(server_pem)) as server:
        for offered, chosen in ((["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")):
            context = ssl.create_default_context(cafile=str(ca_pem))
            context.set_alpn_protocols(offered)
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                    context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.selected_alpn_protocol() == chosen


def test_httpx_h2c_prior_knowledge_many_streams_on_one_connection() -> None:
    with running_server(ECHO) as server, httpx.Client(http1=False, http2=True) as client:

        async def many() -> list[httpx.Response]:
            async with httpx.AsyncClient(http1=False, http2=True) as aclient:
                return await asyncio.gather(
                    *(aclient.get(f"{server.url}/n/{i}") for i in range(50))
                )

        responses = asyncio.run(many())
        assert {r.json()["path"] for r in responses} == {f"/n/{i}" for i in range(50)}
        assert all(r.http_version == "HTTP/2" for r in responses)
        assert client.get(server.url).json()["http_version"] == "2"


CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    assert CURL is not None
    return subprocess.run([CURL, "-sS", "--max-time", "10", *args], capture_output=True,
                          text=True, timeout=20, check=False)


@needs_curl
def test_curl_prior_knowledge_h2c_upgrade_and_tls(tls_files: tuple[Path, Path]) -> None:
    with running_server(ECHO) as server:
        prior = curl("--http2-prior-knowledge", f"{server.url}/prior")
        assert json.loads(prior.stdout)["http_version"] == "2", prior.stderr
        upgraded = curl("-v", "--http2", f"{server.url}/upgraded")
        assert "101 Switching Protocols" in upgraded.stderr
        assert json.loads(upgraded.stdout)["http_version"] == "2"
    server_pem, ca_pem = tls_files
    with running_server(ECHO, ssl_certfile=str(server_pem)) as server:
        secure = curl("--http2", "--cacert", str(ca_pem),
                      "-w", "\n%{http_version}", f"https://127.0.0.1:{server.port}/tls")
        body, version = secure.stdout.rsplit("\n", 1)
        assert version == "2" and json.loads(body)["scheme"] == "https", secure.stderr


H2LOAD = shutil.which("h2load")


@pytest.mark.skipif(H2LOAD is None, reason="h2load is not installed (Debian nghttp2-client)")
def test_h2load_many_concurrent_streams_all_succeed() -> None:
    assert H2LOAD is not None
    with running_server(http_app(lambda s, r, send: respond(send, 200, b"hi"))) as server:
        done = subprocess.run(
            [H2LOAD, "-n", "2000", "-c", "4", "-m", "64", f"{server.url}/"],
            capture_output=True, text=True, timeout=60, check=False,
        )
    assert "2000 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout


# --- ASGI features per stream ----------------------------------------------------------


def test_trailers_pathsend_and_the_access_log(tmp_path: Path, raw_client: list[RawClient],
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pier.access")
    payload = tmp_path / "file.bin"
    payload.write_bytes(b"f" * 200_000)

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/file":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.pathsend", "path": str(payload)})
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"trailer", b"x-sum")]})
        await send({"type": "http.response.body", "body": b"data", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})

    with capture_logs() as logs, running_server(http_app(handler), log_level="info") as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.conn.send_headers(1, [*GET, ("te", "trailers")], end_stream=True)
        client.flush()
        status, body = client.response(1)
        assert (status, body) == (200, b"data")
        trailers = client.of(h2.events.TrailersReceived)
        assert trailers and trailers[0].headers == [(b"x-sum", b"42")]
        client.get(3, "/file")
        status, body = client.response(3)
        assert status == 200 and body == payload.read_bytes()
        headers = dict(client.of(h2.events.ResponseReceived)[-1].headers)
        assert headers[b"content-length"] == b"200000"
        logs.wait_for('"GET /file HTTP/2" 200', level=20)


def test_a_server_made_500_logs_the_same_size_on_http1_and_http2(
    raw_client: list[RawClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pier.access")
    # The access line's size is the body bytes sent, whichever version carried the
    # server's own answer: "Internal Server Error\n" is 22 bytes (it said 0 on HTTP/1.1).
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    with capture_logs() as logs, running_server(
        http_app(broken), log_level="info", access_log_format="{protocol} {status} {bytes}"
    ) as server:
        answer = httpx.get(f"http://127.0.0.1:{server.port}/", timeout=DEADLINE)
        assert (answer.status_code, answer.content) == (500, b"Internal Server Error\n")
        client = RawClient(server.port)
        raw_client.append(client)
        client.get(1, "/")
        assert client.response(1) == (500, b"Internal Server Error\n")
        logs.wait_for("HTTP/1.1 500 22", level=logging.INFO)
        logs.wait_for("HTTP/2 500 22", level=logging.INFO)


def test_body_window_reopens_only_as_the_app_reads(raw_client: list[RawClient]) -> None:
    reading = Gate()
    arrived = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        arrived.set()
        await reading.wait()
        body, _ = await read_body(receive)
        await respond(send, 200, str(len(body)).encode())

    with running_server(http_app(handler)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.conn.send_headers(1, [(":method", "POST"), *GET[1:], ("content-length", "100000")])
        for _ in range(4):
            client.conn.send_data(1, b"u" * 16383)
        client.flush()
        assert arrived.wait(DEADLINE)
        client.barrier()
        # The app has not read: the stream's window stays spent (65532 of 65535 sent).
        assert client.conn.local_flow_control_window(1) == 65535 - 4 * 16383
        reading.open()
        client.read_until(lambda e: isinstance(e, h2.events.WindowUpdated) and e.stream_id == 1)
        rest = 100_000 - 4 * 16383
        while rest:
            size = min(rest, client.conn.local_flow_control_window(1), 16384)
            if size == 0:
                client.read_until(lambda e: isinstance(e, h2.events.WindowUpdated))
                continue
            client.conn.send_data(1, b"u" * size, end_stream=size == rest)
            rest -= size
            client.flush()
        assert client.response(1) == (200, b"100000")


def test_reset_stream_cancels_its_app_and_others_go_on(raw_client: list[RawClient]) -> None:
    cancelled = threading.Event()
    started = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/slow":
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        await respond(send, 200, b"fine")

    with running_server(http_app(handler)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.get(1, "/slow")
        assert started.wait(DEADLINE)
        client.conn.reset_stream(1, ErrorCode.CANCEL)
        client.flush()
        assert cancelled.wait(DEADLINE)
        client.get(3, "/")
        assert client.response(3) == (200, b"fine")


def test_expect_continue_gets_100_when_the_app_reads(raw_client: list[RawClient]) -> None:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        body, _ = await read_body(receive)
        await respond(send, 200, body)

    with running_server(http_app(handler)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.conn.send_headers(1, [(":method", "POST"), *GET[1:], ("expect", "100-continue")])
        client.flush()
        client.read_until(lambda e: isinstance(e, h2.events.InformationalResponseReceived))
        assert client.of(h2.events.InformationalResponseReceived)[0].headers == [
            (b":status", b"100")
        ]
        client.conn.send_data(1, b"payload", end_stream=True)
        client.flush()
        assert client.response(1) == (200, b"payload")


def test_limits_413_and_503_are_per_stream(raw_client: list[RawClient]) -> None:
    gate = Gate()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/hold":
            await gate.wait()
        await read_body(receive)
        await respond(send, 200, b"ok")

    with running_server(http_app(handler), limit_request_body=10,
                        limit_concurrency=1) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.conn.send_headers(1, [(":method", "POST"), *GET[1:], ("content-length", "11")])
        client.conn.send_data(1, b"x" * 11, end_stream=True)
        client.flush()
        assert client.response(1)[0] == 413
        client.get(3, "/hold")
        client.barrier()
        client.get(5, "/")
        assert client.response(5)[0] == 503
        gate.open()
        assert client.response(3) == (200, b"ok")


def test_idle_connection_gets_goaway_after_keep_alive_timeout(
    raw_client: list[RawClient],
) -> None:
    with running_server(ECHO, timeout_keep_alive=0.2) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.get(1)
        assert client.response(1)[0] == 200
        assert client.goaway_code() == ErrorCode.NO_ERROR
        client.read_until(lambda e: False)
        assert client.closed


def test_limit_max_requests_counts_streams() -> None:
    """--limit-max-requests counts requests, not connections: the third stream on one
    HTTP/2 connection reaches a limit of three and the worker is replaced."""
    from tests.supervisor._harness import pier

    with pier("tests.supervisor.apps:app", "--limit-max-requests", "3", "--port", "0",
              "--no-access-log") as server, httpx.Client(http1=False, http2=True,
                                                          timeout=DEADLINE) as client:
        url = f"http://{server.host}:{server.port}/"
        for _ in range(2):
            assert client.get(url).http_version == "HTTP/2"
        assert "starting its replacement" not in server.output, "replaced before the limit"
        assert client.get(url).status_code == 200
        server.wait_for("starting its replacement")


def test_graceful_shutdown_is_two_goaways_and_finishes_the_stream(
    raw_client: list[RawClient],
) -> None:
    gate = Gate()
    started = threading.Event()

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        started.set()
        await gate.wait()
        await respond(send, 200, b"finished")

    with running_server(http_app(handler)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.get(1)
        assert started.wait(DEADLINE)
        server.server.should_exit = True
        # h2 refuses every frame after a GOAWAY: from here the frames are read by hand.
        client.sock.settimeout(DEADLINE)
        goaways: list[GoAwayFrame] = []
        body = b""
        buffered = b""
        while True:
            data = client.sock.recv(65536)
            if not data:
                break
            buffered += data
            while len(buffered) >= 9 and len(buffered) >= 9 + int.from_bytes(buffered[:3], "big"):
                frame, length = Frame.parse_frame_header(memoryview(buffered[:9]))
                frame.parse_body(memoryview(buffered[9 : 9 + length]))
                buffered = buffered[9 + length :]
                if isinstance(frame, GoAwayFrame):
                    goaways.append(frame)
                elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
                    # The first step's PING comes back: the second GOAWAY follows.
                    client.send_raw(PingFrame(0, flags=["ACK"],
                                              opaque_data=frame.opaque_data).serialize())
                    gate.open()
                elif isinstance(frame, DataFrame):
                    body += frame.data
        assert [g.last_stream_id for g in goaways] == [2**31 - 1, 1]
        assert all(g.error_code == 0 for g in goaways)
        assert body == b"finished"


# --- attacks over a real socket ----------------------------------------------------------


def _attack(port: int, raw: bytes) -> tuple[int | None, bool]:
    """Send raw frames after the preface; the GOAWAY code and whether the server closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        sock.sendall(PREFACE + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" + raw)
        received = b""
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                break
            received += data
        code = None
        while len(received) >= 9:  # the server's frames, read by hand: a GOAWAY's code
            length = int.from_bytes(received[:3], "big")
            if received[3] == 0x7:
                code = int.from_bytes(received[9 + 4 : 9 + 8], "big")
            received = received[9 + length :]
        return code, True


def _headers(stream_id: int) -> bytes:
    import hpack

    frame = HeadersFrame(stream_id)
    frame.data = hpack.Encoder().encode([(k.encode(), v.encode()) for k, v in GET])
    frame.flags.add("END_HEADERS")
    frame.flags.add("END_STREAM")
    return frame.serialize()


def test_rapid_reset_is_bounded_and_cancels_apps_while_others_are_served() -> None:
    started = 0
    running = 0
    peak = 0

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal started, running, peak
        started += 1
        running += 1
        peak = max(peak, running)
        try:
            await asyncio.sleep(30)  # an app that is slow to answer
        finally:
            running -= 1

    raw = b"".join(_headers(i) + RstStreamFrame(i, error_code=ErrorCode.CANCEL).serialize()
                   for i in range(1, 2 * 400, 2))
    with running_server(
        http_app(handler), h2_max_reset_streams=100, h2_max_concurrent_streams=20
    ) as server, capture_logs() as logs:
        code, closed = _attack(server.port, raw)
        assert code == ErrorCode.ENHANCE_YOUR_CALM and closed
        logs.wait_for("--h2-max-reset-streams", level=30)
        # Never more than the stream limit ran at once, far fewer than 400 started, and
        # every app of a reset stream was cancelled.
        wait_until(lambda: running == 0, message=f"apps cancelled ({running} left)")
        assert peak <= 20 and started <= 150


@pytest.mark.parametrize(
    ("name", "raw", "code", "limit"),
    [
        ("ping-flood", PingFrame(0, opaque_data=b"12345678").serialize() * 3000,
         ErrorCode.ENHANCE_YOUR_CALM, "--h2-max-control-frames"),
        ("settings-flood", b"\x00\x00\x00\x04\x00\x00\x00\x00\x00" * 3000,
         ErrorCode.ENHANCE_YOUR_CALM, "--h2-max-control-frames"),
        ("window-update-flood", b"\x00\x00\x04\x08\x00\x00\x00\x00\x00\x00\x00\x00\x01" * 3000,
         ErrorCode.ENHANCE_YOUR_CALM, "--h2-max-control-frames"),
        ("continuation-flood",
         b"\x00\x40\x00\x01\x00\x00\x00\x00\x01" + b"\x00" * 16384
         + (b"\x00\x40\x00\x09\x00\x00\x00\x00\x01" + b"\x00" * 16384) * 60,
         ErrorCode.ENHANCE_YOUR_CALM, "--h2-max-header-list-size"),
        ("oversized-frame", b"\xff\xff\xff\x00\x00\x00\x00\x00\x01",
         ErrorCode.FRAME_SIZE_ERROR, "--h2-max-frame-size"),
    ],
    ids=lambda value: value if isinstance(value, str) and "-" in value else "",
)
def test_floods_end_the_connection_with_a_warning_naming_the_limit(
    name: str, raw: bytes, code: int, limit: str
) -> None:
    with running_server(ECHO, log_level="info") as server, capture_logs() as logs:
        got, closed = _attack(server.port, raw)
        assert got == code and closed, name
        logs.wait_for(limit, level=30)
        # The server keeps serving everyone else.
        with httpx.Client(http1=False, http2=True) as client:
            assert client.get(f"{server.url}/").status_code == 200


def test_preface_split_byte_by_byte_is_still_http2() -> None:
    """Prior knowledge sniffed across reads: a preface trickled one byte per packet
    (its first byte alone included) is still taken for HTTP/2, not HTTP/1.1."""
    with running_server(ECHO) as server, socket.create_connection(
        ("127.0.0.1", server.port), timeout=DEADLINE
    ) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in PREFACE:
            sock.sendall(bytes([byte]))
        sock.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # empty SETTINGS
        first = sock.recv(9)
        assert len(first) == 9 and first[3] == 0x4, f"not an HTTP/2 SETTINGS frame: {first!r}"


def test_garbage_preface_is_refused_as_http_1_1(raw_client: list[RawClient]) -> None:
    with running_server(ECHO) as server, socket.create_connection(
        ("127.0.0.1", server.port), timeout=DEADLINE
    ) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        data = sock.recv(65536)
        # Neither HTTP/2 (the preface is wrong) nor HTTP/1.1: GOAWAY PROTOCOL_ERROR.
        assert data[3:4] == b"\x04" or data.startswith(b"HTTP/1.1 400")


# --- 103 Early Hints (RFC 8297), on both versions ------------------------------------------


async def hinting(scope: Scope, receive: Receive, send: Send) -> None:
    assert "http.response.early_hint" in scope["extensions"]
    await send({"type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]})
    await respond(send, 200, b"page")


def test_early_hints_over_http2(raw_client: list[RawClient]) -> None:
    with running_server(http_app(hinting)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.get(1)
        assert client.response(1) == (200, b"page")
        early = client.of(h2.events.InformationalResponseReceived)
        assert early and early[0].headers == [
            (b":status", b"103"), (b"link", b"</style.css>; rel=preload; as=style"),
            (b"link", b"</app.js>; rel=preload"),
        ]


def test_early_hints_over_http1_and_never_to_http1_0() -> None:
    with running_server(http_app(hinting)) as server:
        for version, expected in (("1.1", True), ("1.0", False)):
            with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
                sock.sendall(f"GET / HTTP/{version}\r\nhost: x\r\n\r\n".encode())
                data = b""
                while not data.endswith(b"page"):
                    chunk = sock.recv(65536)
                    assert chunk, data
                    data += chunk
            hint = (b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n"
                    b"link: </app.js>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\n")
            assert data.startswith(hint) is expected, data
            assert b" 200 OK\r\n" in data


# --- a real browser: Chromium loads the page over h2 (ALPN) and opens a WebSocket -------------

BROWSER_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pending</title></head>
<body><pre id="result">pending</pre>
<script>
const protocol = performance.getEntries()[0].nextHopProtocol;
const ws = new WebSocket(`wss://${location.host}/ws`);
const done = (text) => {
  document.getElementById("result").textContent = text;
  document.title = "finished";
};
ws.onopen = () => ws.send("ping");
ws.onmessage = (event) => { ws.close(); done(protocol + " " + event.data); };
ws.onerror = () => done(protocol + " websocket-error");
</script></body></html>
"""


async def browser_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await respond(send, 200, BROWSER_PAGE.encode(),
                      headers=[(b"content-type", b"text/html; charset=utf-8")])
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    message = await receive()
    await send({"type": "websocket.send",
                "text": f"pong:{message.get('text', '')}:{scope['http_version']}"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def test_chromium_loads_the_page_over_h2_and_opens_a_websocket(
    tls_files: tuple[Path, Path],
) -> None:
    from tests.e2e.test_browser_ws import CHROMIUM, page_result

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    server_pem, _ = tls_files
    with running_server(_with_lifespan(browser_app), ssl_certfile=str(server_pem)) as server:
        result = page_result(f"https://127.0.0.1:{server.port}/",
                             "--ignore-certificate-errors")
    # The page came over h2, and so did its WebSocket (RFC 8441: pier advertises
    # SETTINGS_ENABLE_CONNECT_PROTOCOL, and Chromium then opens a stream, not a socket).
    assert result == "h2 pong:ping:2", result


def _with_lifespan(handler: Any) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        await handler(scope, receive, send)

    return app


# --- --http 1 | 2 ------------------------------------------------------------------------


def test_http_1_offers_no_h2_and_http_2_speaks_only_h2(tls_files: tuple[Path, Path]) -> None:
    server_pem, ca_pem = tls_files
    context = ssl.create_default_context(cafile=str(ca_pem))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with running_server(ECHO, ssl_certfile=str(server_pem), http="1") as server, \
            socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        assert tls.selected_alpn_protocol() == "http/1.1"
    with running_server(ECHO, http="1") as server, socket.create_connection(
        ("127.0.0.1", server.port), timeout=DEADLINE
    ) as sock:
        # Prior knowledge is not HTTP/2 here: the preface is a bad HTTP/1.1 request.
        sock.sendall(PREFACE)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400")
    with running_server(ECHO, http="2") as server:
        with httpx.Client(http1=False, http2=True) as client:
            assert client.get(server.url).json()["http_version"] == "2"
        with socket.create_connection(("127.0.0.1", server.port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            # An HTTP/1.1 request to an HTTP/2-only server: GOAWAY PROTOCOL_ERROR.
            assert answer[3] == 0x4 or b"\x07\x00\x00\x00\x00\x00" in answer
            assert not answer.startswith(b"HTTP/1.1")


# --- WebSocket over HTTP/2 (RFC 8441) --------------------------------------------------------


def _ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (RFC 6455 section 5.2), payload under 126 bytes."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await respond(send, 200, b"plain")
        return
    assert (await receive())["type"] == "websocket.connect"
    if scope["path"] == "/deny":
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})
        return
    await send({"type": "websocket.accept", "subprotocol": "chat"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send",
                    "text": f"{scope['http_version']}:{message['text']}"})


def _connect(client: RawClient, stream_id: int, path: str) -> None:
    client.read_until(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
    assert client.conn.remote_settings.enable_connect_protocol == 1
    client.conn.send_headers(stream_id, [
        (":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
        (":path", path), (":authority", "example.test"), ("sec-websocket-version", "13"),
        ("sec-websocket-protocol", "chat"),
    ])
    client.flush()


def test_websocket_over_http2_echoes_and_denies_on_streams(
    raw_client: list[RawClient], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pier.access")
    with capture_logs() as logs, running_server(
        _with_lifespan(ws_echo), log_level="info", access_log_format="{protocol} {status} {target}"
    ) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        _connect(client, 1, "/ws")
        client.read_until(lambda e: isinstance(e, h2.events.ResponseReceived))
        head = dict(client.of(h2.events.ResponseReceived)[0].headers)
        assert head[b":status"] == b"200" and head[b"sec-websocket-protocol"] == b"chat"
        assert b"sec-websocket-accept" not in head and b"upgrade" not in head
        # The access line says what was sent: 200, not HTTP/1.1's 101.
        logs.wait_for("HTTP/2 200 /ws", level=logging.INFO)
        client.conn.send_data(1, _ws_frame(b"hello"))
        client.flush()
        client.read_until(lambda e: isinstance(e, h2.events.DataReceived))
        data = b"".join(e.data for e in client.of(h2.events.DataReceived))
        assert data == b"\x81\x07" + b"2:hello"  # an unmasked server text frame
        # A plain request on the same connection meanwhile.
        client.get(3, "/")
        assert client.response(3) == (200, b"plain")
        # A denial is an ordinary response on its stream.
        _connect(client, 5, "/deny")
        assert client.response(5) == (403, b"no")
        # The client closes: close frame, then the server's close and END_STREAM.
        client.conn.send_data(1, _ws_frame(b"\x03\xe8", opcode=0x8), end_stream=True)
        client.flush()
        client.read_until(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == 1)
        frames = b"".join(e.data for e in client.of(h2.events.DataReceived)
                          if e.stream_id == 1)
        assert frames.endswith(b"\x88\x02\x03\xe8")


def test_a_client_that_never_opens_its_window_holds_back_the_app_not_memory(
    raw_client: list[RawClient],
) -> None:
    # The client's stream window is 0 and never reopened: no DATA can go out. The app
    # streams 1 MiB; its send() must stop after about one stream mark (64 KiB) queued.
    sent = [0]

    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"z" * 16384
        for _ in range(64):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent[0] += len(chunk)
        await send({"type": "http.response.body", "body": b""})

    with running_server(http_app(handler)) as server:
        client = RawClient(server.port)
        raw_client.append(client)
        client.ack_data = False
        client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
        client.flush()
        client.read_until(lambda e: isinstance(e, h2.events.SettingsAcknowledged))
        client.get(1)
        client.read_until(lambda e: isinstance(e, h2.events.ResponseReceived))
        client.barrier()
        client.barrier()  # a loop turn or two later, the app is still held back
        assert 0 < sent[0] <= 64 * 1024 + 16384
        assert not client.of(h2.events.DataReceived)
        # Opening the window lets the rest through.
        client.conn.increment_flow_control_window(2**20, stream_id=1)
        client.ack_data = True
        client.flush()
        status, body = client.response(1)
        assert status == 200 and len(body) == 64 * 16384


# --- real frameworks over HTTP/2 ---------------------------------------------------------------


def test_starlette_and_fastapi_over_h2_uploads_streams_sse_and_lifespan_state() -> None:
    import hashlib

    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Mount, Route

    from tests.e2e.test_frameworks import UPLOAD, Probe, fastapi_app, starlette_app

    async def events(request: Any) -> StreamingResponse:
        async def stream() -> Any:
            for index in range(3):
                await asyncio.sleep(0)
                yield f"event: tick\ndata: {index}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    for name, inner in (("starlette", starlette_app(Probe())), ("fastapi", fastapi_app(Probe()))):
        app = Starlette(routes=[Route("/sse", events), Mount("/", inner)],
                        lifespan=inner.router.lifespan_context)
        with running_server(app, lifespan="on") as server, httpx.Client(
            http1=False, http2=True, base_url=server.url, timeout=10
        ) as client:
            # A 2 MiB multipart upload: many windows' worth, reopened as the app reads.
            response = client.post("/upload", files={"file": ("data.bin", UPLOAD)},
                                   data={"note": "h2"})
            assert response.http_version == "HTTP/2", name
            answer = response.json()
            assert answer["size"] == len(UPLOAD), name
            assert answer["sha256"] == hashlib.sha256(UPLOAD).hexdigest()
            with client.stream("GET", "/stream") as streamed:
                assert "transfer-encoding" not in streamed.headers  # HTTP/2 frames it
                assert list(streamed.iter_lines()) == [f"piece {i}" for i in range(5)]
            with client.stream("GET", "/sse") as sse:
                assert sse.headers["content-type"].startswith("text/event-stream")
                data = [line for line in sse.iter_lines() if line.startswith("data:")]
            assert data == ["data: 0", "data: 1", "data: 2"]
            assert "lifespan" in client.get("/state").text, name
