"""The admin listener (issue 12): /metrics summed across workers, /readyz and /livez, and
--shutdown-delay, on real processes under real load.

Pins: the Prometheus text exposition format 0.0.4 (read back with prometheus_client's
parser, so a malformed line fails the test); counter semantics (monotonic: a worker's
replacement does not take its counts away); Kubernetes probe semantics (a readiness
probe is a 2xx or not; the endpoints controller drops a pod whose readiness fails, so
/readyz must fail before the drain, and answer only once every worker is started).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pier.types import Receive, Scope, Send
from tests.helpers import recv_until_closed, running_server
from tests.supervisor._harness import Load, Proc, get, pier, wait_until
from tests.test_cli import run_pier

APP = "tests.supervisor.apps:app"
ADMIN = re.compile(r"Admin listener on http://127\.0\.0\.1:(\d+)")


def admin_port(proc: Proc) -> int:
    return int(proc.wait_for(ADMIN).group(1))


def scrape(port: int) -> dict[str, float]:
    """One /metrics scrape, parsed by Prometheus's own parser: sample name{labels} -> value."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            samples[f"{sample.name}{{{labels}}}"] = sample.value
    return samples


def probe(port: int, path: str) -> int:
    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10).status_code


GETS_2XX = "pier_requests_total{method=GET,protocol=HTTP/1.1,status=2xx}"


def test_two_workers_under_load_counts_add_up_across_a_rolling_restart() -> None:
    args = (APP, "--workers", "2", "--port", "0", "--no-access-log",
            "--metrics-bind", "127.0.0.1:0")
    with pier(*args) as proc:
        port = admin_port(proc)
        seen = []
        with Load(proc.host, proc.port, connections=4) as load:
            for _ in range(3):
                load.wait_requests(50)
                seen.append(scrape(port)[GETS_2XX])
            mark = proc.mark()
            proc.signal(signal.SIGHUP)  # every worker replaced while the load runs
            proc.wait_for("Rolling restart done", after=mark)
            load.wait_requests(50)
            seen.append(scrape(port)[GETS_2XX])
            result = load.stop()
        final = scrape(port)
        assert result.failures == []
        assert seen == sorted(seen)  # a counter never goes back, restarts included
        # Every request the client got an answer to, counted once, all workers together.
        assert final[GETS_2XX] == result.ok
        assert final["pier_request_duration_seconds_count{}"] == result.ok
        request_bytes = len("GET / HTTP/1.1\r\nhost: load\r\n\r\n")
        assert final["pier_received_bytes_total{}"] == result.ok * request_bytes
        assert final["pier_worker_starts_total{}"] == 4
        assert final["pier_worker_exits_total{reason=restarted}"] == 2
        assert final["pier_workers{state=ready}"] == 2
        assert final["pier_ready{}"] == 1


@pytest.fixture
def start_gate(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "gate")
    gate = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    gate.bind(path)
    gate.listen(8)
    gate.settimeout(15)
    yield path, gate
    gate.close()


def test_readyz_waits_for_every_worker_and_fails_from_sigterm_through_the_delay(
    start_gate: tuple[str, socket.socket],
) -> None:
    path, gate = start_gate
    args = ("tests.supervisor.apps:gated_startup", "--workers", "2", "--port", "0",
            "--no-access-log", "--metrics-bind", "127.0.0.1:0", "--shutdown-delay", "30")
    with pier(*args, env={"APPS_START_GATE": path}, listening=False) as proc:
        port = admin_port(proc)
        first = gate.accept()[0]  # the first worker is in lifespan start-up
        assert probe(port, "/readyz") == 503
        assert probe(port, "/livez") == 200
        first.sendall(b"go")
        second = gate.accept()[0]  # the second starts once the first is up
        # One worker ready is not ready: /readyz stays 503 and says why.
        readyz = f"http://127.0.0.1:{port}/readyz"
        wait_until(lambda: httpx.get(readyz).text == "1 of 2 workers ready\n", what="1 ready")
        assert probe(port, "/readyz") == 503
        second.sendall(b"go")
        proc.wait_listening()
        assert probe(port, "/readyz") == 200
        first.close()
        second.close()

        proc.signal(signal.SIGTERM)
        proc.wait_for("failing /readyz and serving for 30.0s before draining")
        assert probe(port, "/readyz") == 503
        # The delay: the load balancer still sends traffic, and it is served normally.
        for _ in range(5):
            assert get(proc.host, proc.port)[0] == 200
        assert scrape(port)["pier_draining{}"] == 1
        proc.signal(signal.SIGTERM)  # a second signal cuts the delay short
        proc.wait_for("Draining now")
        assert proc.wait() == 0


def test_single_process_admin_counts_refusals_websockets_and_limits_routes() -> None:
    args = (APP, "--port", "0", "--no-access-log", "--metrics-bind", "127.0.0.1:0",
            "--limit-request-body", "10", "--limit-request-field-size", "100")
    with pier(*args) as proc:
        port = admin_port(proc)
        assert probe(port, "/readyz") == 200 and probe(port, "/livez") == 200

        def send(raw: bytes) -> bytes:
            with socket.create_connection((proc.host, proc.port), timeout=5) as sock:
                sock.sendall(raw)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
                return data

        assert send(b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n"
                    b"transfer-encoding: chunked\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert send(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 11\r\n\r\n"
                    b"01234567890").startswith(b"HTTP/1.1 413")
        assert send(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 200 + b"\r\n\r\n"
                    ).startswith(b"HTTP/1.1 431")
        metrics = scrape(port)
        assert metrics["pier_refusals_total{reason=bad_request}"] == 1
        assert metrics["pier_refusals_total{reason=body_too_large}"] == 1
        assert metrics["pier_refusals_total{reason=headers_too_large}"] == 1
        assert metrics["pier_workers{state=ready}"] == 1
        # The admin routes are the admin listener's only; the app's port serves the app.
        assert get(proc.host, proc.port, "/metrics")[0] == 200  # the app answers its pid
        assert probe(port, "/") == 404
        assert httpx.post(f"http://127.0.0.1:{port}/metrics").status_code == 405
        assert httpx.head(f"http://127.0.0.1:{port}/metrics").status_code == 200
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nx: " + b"a" * 9000 + b"\r\n\r\n")
            assert sock.recv(100) == b""  # an oversize head on the admin port: closed


def test_metrics_bind_refuses_fd_and_explains() -> None:
    result = run_pier(APP, "--metrics-bind", "fd://3")
    assert result.returncode == 2
    assert "an inherited fd is for the app's listeners" in result.stderr


def test_in_flight_gauge_sees_a_slow_request() -> None:
    args = (APP, "--workers", "2", "--port", "0", "--no-access-log",
            "--metrics-bind", "127.0.0.1:0")
    with pier(*args) as proc:
        port = admin_port(proc)
        answer: list[tuple[int, bytes]] = []
        client = threading.Thread(
            target=lambda: answer.append(get(proc.host, proc.port, "/slow?s=2"))
        )
        client.start()
        proc.wait_for("slow request started")
        assert scrape(port)["pier_requests_in_flight{}"] == 1
        assert scrape(port)["pier_connections_open{protocol=http/1.1}"] == 1
        client.join(10)
        assert answer == [(200, b"slow done")]
        wait_until(lambda: scrape(port)["pier_requests_in_flight{}"] == 0, what="idle")


async def status_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    status = int(scope["path"].strip("/") or "200")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_requests_by_method_status_class_and_protocol() -> None:
    with running_server(status_app, metrics_bind="127.0.0.1:0", lifespan="off") as server:
        admin = server.server.admin
        assert admin is not None
        port = int(admin.url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.url) as client:
            for path in ("/", "/", "/404", "/", "/503", "/201"):
                client.get(path)
            client.post("/404")
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert recv_until_closed(sock).startswith(b"HTTP/1.1 200")
        metrics = scrape(port)
    assert metrics[GETS_2XX] == 4
    assert metrics["pier_requests_total{method=GET,protocol=HTTP/1.1,status=4xx}"] == 1
    assert metrics["pier_requests_total{method=GET,protocol=HTTP/1.1,status=5xx}"] == 1
    assert metrics["pier_requests_total{method=POST,protocol=HTTP/1.1,status=4xx}"] == 1
    assert metrics["pier_requests_total{method=GET,protocol=HTTP/1.0,status=2xx}"] == 1
    # An app's own 503 is not a refusal; only the server's are.
    assert not any(name.startswith("pier_refusals_total{") for name in metrics)
    assert metrics["pier_request_duration_seconds_count{}"] == 8


def test_single_process_shutdown_delay_serves_with_readyz_failing() -> None:
    args = (APP, "--port", "0", "--no-access-log", "--metrics-bind", "127.0.0.1:0",
            "--shutdown-delay", "30")
    with pier(*args) as proc:
        port = admin_port(proc)
        assert probe(port, "/readyz") == 200
        proc.signal(signal.SIGTERM)
        proc.wait_for("failing /readyz and serving for 30.0s before draining")
        assert probe(port, "/readyz") == 503
        assert get(proc.host, proc.port) == (200, str(proc.pid).encode())
        proc.signal(signal.SIGTERM)  # the drain starts now, gracefully
        proc.wait_for("Draining now")
        assert proc.wait() == 0
        assert "Finished server process" in proc.output


def test_http2_requests_and_refusals_are_counted() -> None:
    options = {"metrics_bind": "127.0.0.1:0", "lifespan": "off", "limit_request_body": 4}
    with running_server(status_app, **options) as server:
        admin = server.server.admin
        assert admin is not None
        port = int(admin.url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.url, http1=False, http2=True) as client:
            assert client.get("/").http_version == "HTTP/2"
            client.get("/404")
            assert client.post("/", content=b"too long").status_code == 413
            metrics = scrape(port)
    assert metrics["pier_requests_total{method=GET,protocol=HTTP/2,status=2xx}"] == 1
    assert metrics["pier_requests_total{method=GET,protocol=HTTP/2,status=4xx}"] == 1
    assert metrics["pier_refusals_total{reason=body_too_large}"] == 1
    assert metrics["pier_connections_open{protocol=h2}"] == 1
    assert metrics["pier_received_bytes_total{}"] > len(b"too long")
    assert metrics["pier_sent_bytes_total{}"] > 0


def test_websocket_sessions_and_their_bytes_are_counted() -> None:
    from websockets.sync.client import connect

    from tests.autobahn.echo_app import app as echo

    with running_server(echo, metrics_bind="127.0.0.1:0") as server:
        admin = server.server.admin
        assert admin is not None
        port = int(admin.url.rsplit(":", 1)[1])
        with connect(f"ws://{server.host}:{server.port}/", open_timeout=10) as ws:
            before = scrape(port)
            noise = os.urandom(1000)  # incompressible: permessage-deflate leaves it be
            ws.send(noise)
            assert ws.recv(timeout=10) == noise
            after = scrape(port)
    assert after["pier_websocket_sessions_total{}"] == 1
    assert after["pier_connections_open{protocol=websocket}"] == 1
    assert after["pier_received_bytes_total{}"] - before["pier_received_bytes_total{}"] >= 1000
    assert after["pier_sent_bytes_total{}"] - before["pier_sent_bytes_total{}"] >= 1000


def test_sent_bytes_count_large_and_streamed_bodies() -> None:
    # Pieces of 16 KiB and more are written as separate buffers (writelines), with no
    # joined copy; they are bytes sent all the same.
    piece = b"b" * (64 * 1024)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        streamed = scope["path"] == "/streamed"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": piece, "more_body": streamed})
        if streamed:
            await send({"type": "http.response.body", "body": piece})

    with running_server(app, metrics_bind="127.0.0.1:0", lifespan="off") as server:
        admin = server.server.admin
        assert admin is not None
        port = int(admin.url.rsplit(":", 1)[1])
        with httpx.Client(base_url=server.url) as client:
            before = scrape(port)["pier_sent_bytes_total{}"]
            assert client.get("/whole").content == piece
            middle = scrape(port)["pier_sent_bytes_total{}"]
            assert client.get("/streamed").content == piece * 2
            after = scrape(port)["pier_sent_bytes_total{}"]
    assert middle - before > len(piece)
    assert after - middle > 2 * len(piece)
