"""The logs tell the whole story (issue 11): what a user reads in pier's output.

Pins: the access line's request target as received (RFC 9112 section 3.2: the
request-target, not its percent-decoded path), --access-log-format's named fields,
--log-format json (one object per line, both loggers), the start-up and shutdown lines
a uvicorn user's scripts wait for, per-worker pid tags, a failed lifespan start-up with
--workers N printed once, the traceback behind an import error at --log-level debug,
and a --log-config written for uvicorn's logger names.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
from pathlib import Path

import pytest

from pier.cli import parse_args
from pier.errors import ConfigError
from tests.e2e._support import DEADLINE
from tests.helpers import PierProcess, recv_response

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
