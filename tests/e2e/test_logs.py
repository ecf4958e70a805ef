"""The logs tell the whole story (issue 11): what a user reads in pier's output.

Pins: the access line's request target as received (RFC 9112 section 3.2: the
request-target, not its percent-decoded path), --access-log-format's named fields,
--log-format json (one object per line, both loggers), the start-up and shutdown lines
a uvicorn user's scripts wait for, per-worker pid tags, a failed lifespan start-up with
--workers N printed once, the traceback behind an import error at --log-level debug,
and a --log-config written for uvicorn's logger names.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pier.cli import parse_args
from pier.errors import ConfigError
from pier.types import Receive, Scope, Send
from tests.e2e._support import DEADLINE, capture_logs, wait_until
from tests.helpers import PierProcess, recv_response, recv_until_closed, running_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = str(ROOT / "examples")


def served(*args: str, requests: tuple[bytes, ...] = (), cwd: Path | None = None,
           env: dict[str, str] | None = None) -> str:
    """Run pier on the example app, send each raw request, stop it; all its output."""
    proc = PierProcess("--app-dir", EXAMPLES, "hello:app", "--port", "0", *args,
                       cwd=cwd, env=env)
    try:
        port = proc.wait_listening()
        for request in requests:
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
                sock.sendall(request)
                recv_response(sock)
    finally:
        proc.signal(signal.SIGTERM)
        code, output = proc.wait()
    assert code == 0, output
    return output


def test_access_log_shows_the_target_as_received() -> None:
    output = served(requests=(b"GET /a%20b/%2F?q=%22x%22 HTTP/1.1\r\nHost: x\r\n\r\n",))
    # Decoded, "/a b//" would split the line on the space and hide the encoded slash.
    assert '"GET /a%20b/%2F?q=%22x%22 HTTP/1.1" 404' in output, output


def test_access_log_format_named_fields() -> None:
    fmt = ("{client} {method} {target} {protocol} {status} {bytes} {duration_ms:.0f}"
           " {request_id} {user_agent} {referer} {request_header:x-trace}"
           " {response_header:content-type} {ended} us={duration_us}")
    output = served("--access-log-format", fmt, requests=(
        b"GET /?a=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nReferer: http://r/\r\n"
        b"X-Request-ID: abc-1\r\nX-Trace: t\xe9\r\n\r\n",
    ))
    line = next((line for line in output.splitlines() if " GET /?a=1 " in line), output)
    assert re.search(
        r"INFO:     127\.0\.0\.1:\d+ GET /\?a=1 HTTP/1\.1 200 \d+ \d+ abc-1 curl/8"
        r" http://r/ t\\xe9 text/plain; charset=utf-8 completed us=\d+$", line), line


def test_an_unknown_access_log_field_is_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"not \{stauts\}; did you mean 'status'"):
        parse_args(["m:a", "--access-log-format", "{stauts}"], environ={})


def test_json_logs_one_object_per_line_for_both_loggers() -> None:
    output = served("--log-format", "json",
                    requests=(b"GET /x%20y HTTP/1.1\r\nHost: x\r\n\r\n",))
    lines = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [line for line in lines if line["logger"] == "pier.access"]
    assert len(access) == 1
    assert access[0]["target"] == "/x%20y"
    assert access[0]["status"] == 404
    assert access[0]["protocol"] == "HTTP/1.1"
    assert isinstance(access[0]["duration_ms"], float)
    assert access[0]["ended"] == "completed"
    errors = [line["message"] for line in lines if line["logger"] == "pier.error"]
    assert "Application startup complete." in errors


def test_start_up_and_shutdown_lines_a_uvicorn_user_knows() -> None:
    proc = PierProcess("--app-dir", EXAMPLES, "hello:app", "--port", "0")
    try:
        port = proc.wait_listening()
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_response(sock)  # serving: the signal handlers are in place
    finally:
        proc.signal(signal.SIGTERM)
        _, output = proc.wait()
    pid = proc.proc.pid
    expected = [f"Started server process [{pid}]", "Waiting for application startup.",
                "Application startup complete.", "Listening on http://127.0.0.1:",
                "Shutting down", "Waiting for application shutdown.",
                "Application shutdown complete.", f"Finished server process [{pid}]"]
    positions = [output.find(text) for text in expected]
    assert -1 not in positions and positions == sorted(positions), output


def test_each_workers_lines_carry_its_pid() -> None:
    output = served("--workers", "2")
    started = re.findall(r"INFO:     \[(\d+)\] Started server process \[(\d+)\]", output)
    assert len(started) == 2 and all(tag == pid for tag, pid in started), output
    assert len({pid for pid, _ in started}) == 2
    assert re.search(r"INFO:     \[\d+\] Application shutdown complete\.", output), output


FAILING_APP = """
import traceback

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        try:
            raise RuntimeError("database is down")
        except BaseException:
            # Starlette's way: the traceback in the message, then re-raise.
            await send({"type": "lifespan.startup.failed", "message": traceback.format_exc()})
            raise
"""


def test_a_failed_lifespan_start_up_with_workers_is_printed_once(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_APP)
    proc = PierProcess("failing:app", "--port", "0", "--workers", "3", cwd=tmp_path)
    code, output = proc.wait(timeout=30)
    assert code == 1, output
    assert output.count("RuntimeError: database is down") == 1, output
    assert output.count("Traceback (most recent call last)") == 1, output


def test_an_import_error_shows_its_traceback_at_debug(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f():\n    return 1 / 0\n\nf()\n")
    _, quiet = PierProcess("broken:app", "--port", "0", cwd=tmp_path).wait(timeout=30)
    assert "broken.py:2 while being imported" in quiet
    assert "Traceback" not in quiet
    _, verbose = PierProcess("broken:app", "--port", "0", "--log-level", "debug",
                             cwd=tmp_path).wait(timeout=30)
    assert "Traceback (most recent call last)" in verbose
    assert 'broken.py", line 4, in <module>' in verbose, verbose


def test_a_log_config_for_uvicorns_loggers_works_for_pier(tmp_path: Path) -> None:
    access_file = tmp_path / "access.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
        "handlers": {
            "access": {"class": "logging.FileHandler", "filename": str(access_file),
                       "formatter": "plain"},
            "default": {"class": "logging.StreamHandler", "formatter": "plain",
                        "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn.error": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }
    (tmp_path / "log.json").write_text(json.dumps(config))
    output = served("--log-config", str(tmp_path / "log.json"),
                    requests=(b"GET /uv HTTP/1.1\r\nHost: x\r\n\r\n",))
    assert "pier.error|INFO|--log-config configures uvicorn's logger 'uvicorn.access';" \
        " applied to pier's 'pier.access'" in output, output
    assert "pier.error|INFO|Application startup complete." in output
    assert '"GET /uv HTTP/1.1" 404' in access_file.read_text()


def test_the_pid_tag_is_only_for_workers() -> None:
    output = served(requests=(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",))
    assert f"Started server process [{os.getpid()}]" not in output
    assert not re.search(r"INFO:     \[\d+\]", output), output


# --- every response gets an access line, saying how it ended (io/lifecycle.py rule 4) ---


@contextlib.contextmanager
def access_records() -> Iterator[Callable[[], list[logging.LogRecord]]]:
    """The access log's records while a test's servers run (pier.access at INFO)."""
    access = logging.getLogger("pier.access")
    level = access.level
    access.setLevel(logging.INFO)
    try:
        with capture_logs() as logs:
            yield lambda: [r for r in list(logs.records) if r.name == "pier.access"]
    finally:
        access.setLevel(level)


def _one_line(records: Callable[[], list[logging.LogRecord]]) -> logging.LogRecord:
    wait_until(lambda: records(), DEADLINE, "an access line")
    [record] = records()
    return record


async def stream_until_gone(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
    while (await receive())["type"] != "http.disconnect":
        pass


def test_a_stream_the_client_abandoned_is_logged_as_client_gone() -> None:
    with access_records() as records, running_server(stream_until_gone) as server:
        with server.connect() as sock:
            sock.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while b"data: 1" not in received:
                received += sock.recv(4096)
        record = _one_line(records)
    assert (record.status_code, record.size, record.ended) == (200, 9, "client gone")
    assert record.getMessage().endswith("ms client gone")


async def raise_after_part(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"part", "more_body": True})
    raise RuntimeError("the database went away mid-response")


def test_an_app_that_raised_mid_response_is_logged_as_app_error() -> None:
    with access_records() as records, running_server(raise_after_part) as server:
        with server.connect() as sock:
            sock.sendall(b"GET /report HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_until_closed(sock)
        record = _one_line(records)
    assert (record.status_code, record.size, record.ended) == (200, 4, "app error")


def test_a_request_cut_by_shutdown_is_not_logged_as_a_500() -> None:
    started = threading.Event()

    async def forever(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await asyncio.Event().wait()

    with access_records() as records:
        with running_server(forever, timeout_graceful_shutdown=0.2) as server:
            sock = server.connect()
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            assert started.wait(DEADLINE)
        received = recv_until_closed(sock)
        sock.close()
        record = _one_line(records)
    assert received == b""  # the client got nothing: no 500 was sent
    assert (record.status_code, record.size, record.ended) == (0, 0, "cut by shutdown")
    assert '"GET /slow HTTP/1.1" 0 0B' in record.getMessage()


# --- --log-level debug and trace say what happens on the wire -----------------------------

WS_APP = """
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": message["text"]})
        await send({"type": "websocket.close"})
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"the secret answer"})
"""


def run_with(tmp_path: Path, level: str, exchange: Callable[[int], None],
             *args: str) -> str:
    (tmp_path / "wsapp.py").write_text(WS_APP)
    proc = PierProcess("wsapp:app", "--port", "0", "--lifespan", "off", "--log-level", level,
                       *args, cwd=tmp_path)
    try:
        exchange(proc.wait_listening())
    finally:
        proc.signal(signal.SIGTERM)
        code, output = proc.wait()
    assert code == 0, output
    return output


def two_requests_then_close(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
        for _ in range(2):
            sock.sendall(b"POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n"
                         b"hunter2-passwd!")
            recv_response(sock)


def test_debug_tells_connections_opened_reused_and_closed_with_the_reason(
    tmp_path: Path,
) -> None:
    def exchange(port: int) -> None:
        two_requests_then_close(port)
        # An idle connection the server closes itself.
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            recv_response(sock)
            assert recv_until_closed(sock) == b""

    output = run_with(tmp_path, "debug", exchange, "--timeout-keep-alive", "0.2")
    peers = re.findall(r"DEBUG:    Connection from (127\.0\.0\.1:\d+) opened", output)
    assert len(peers) == 2, output
    assert f"Connection from {peers[0]} kept alive for its next request" in output
    assert f"Connection from {peers[0]} closed: by the client" in output
    assert f"Connection from {peers[1]} closed: idle past --timeout-keep-alive" in output
    assert "ASGI" not in output  # message traces are for --log-level trace


def test_debug_tells_connections_with_metrics_on_over_tls_and_over_http2(
    tmp_path: Path,
) -> None:
    """The debug lines do not depend on how the connection was made: with --metrics-bind
    (a counting connection class), over TLS (chosen by ALPN) and over HTTP/2."""
    import httpx
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))

    def tls_exchange(port: int) -> None:
        verify = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        with httpx.Client(verify=verify, timeout=DEADLINE) as client:
            assert client.get(f"https://127.0.0.1:{port}/").status_code == 200

    def h2c_exchange(port: int) -> None:
        with httpx.Client(http1=False, http2=True, timeout=DEADLINE) as client:
            response = client.get(f"http://127.0.0.1:{port}/")
            assert (response.status_code, response.http_version) == (200, "HTTP/2")

    opened = r"DEBUG:    Connection from 127\.0\.0\.1:\d+ opened"
    output = run_with(tmp_path, "debug", two_requests_then_close,
                      "--metrics-bind", "127.0.0.1:0")
    assert len(re.findall(opened, output)) == 1, output
    assert re.search(r"Connection from 127\.0\.0\.1:\d+ kept alive", output), output
    output = run_with(tmp_path, "debug", tls_exchange, "--ssl-certfile",
                      str(tmp_path / "cert.pem"), "--ssl-keyfile", str(tmp_path / "key.pem"))
    assert re.search(opened, output), output
    assert re.search(r"Connection from 127\.0\.0\.1:\d+ closed: ", output), output
    output = run_with(tmp_path, "debug", h2c_exchange)
    assert re.search(opened + r"\n.*Connection from 127\.0\.0\.1:\d+ switched to HTTP/2",
                     output), output
    assert re.search(r"Connection from 127\.0\.0\.1:\d+ closed \(HTTP/2\): ", output), output


def test_debug_tells_an_upgrade(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    def exchange(port: int) -> None:
        with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=DEADLINE) as ws:
            ws.send("hi")
            assert ws.recv(timeout=DEADLINE) == "hi"

    output = run_with(tmp_path, "debug", exchange)
    assert re.search(r"Connection from 127\.0\.0\.1:\d+ upgraded to WebSocket for /chat",
                     output), output


def test_trace_tells_every_asgi_message_with_sizes_never_bodies(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    def exchange(port: int) -> None:
        two_requests_then_close(port)
        with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=DEADLINE) as ws:
            ws.send("private words")
            ws.recv(timeout=DEADLINE)

    output = run_with(tmp_path, "trace", exchange)
    assert re.search(r"TRACE:    ASGI receive POST /login from 127\.0\.0\.1:\d+: http\.request,"
                     r" body 15 bytes, more_body=False", output), output
    assert re.search(r"ASGI send POST /login from [\d.:]+: http\.response\.start, status 200,"
                     r" 0 headers", output), output
    assert re.search(r"ASGI send POST /login from [\d.:]+: http\.response\.body, body 17 bytes",
                     output), output
    assert re.search(r"ASGI receive WebSocket /chat from [\d.:]+: websocket\.receive,"
                     r" text 13 chars", output), output
    for secret in ("hunter2", "the secret answer", "private words"):
        assert secret not in output
