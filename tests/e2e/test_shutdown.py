"""Graceful shutdown of `python -m pier` on SIGTERM and SIGINT.

Pins the issue's shutdown contract, which follows uvicorn and gunicorn practice: stop
accepting, let in-flight requests finish (bounded by --timeout-graceful-shutdown), close
idle keep-alive connections, then run lifespan shutdown, and exit 0. RFC 9112 section 9.6
(a server closing a persistent connection closes it between requests, so an idle client
sees a clean close, not a cut response); ASGI lifespan spec "Shutdown" (sent once the
server has stopped serving).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

from tests.e2e._support import Conn, build_request, connect_to
from tests.helpers import PierProcess

APPS = Path(__file__).parent / "apps"
SLOW_BODY = b"s" * 100_000


def _start(*extra: str, app: str = "shutdown_apps:app") -> PierProcess:
    proc = PierProcess(app, "--app-dir", str(APPS), "--port", "0", *extra)
    proc.wait_listening()
    return proc


def _wait_output(proc: PierProcess, marker: str, timeout: float = 10.0) -> None:
    """Read the process output until a line contains `marker`."""
    assert proc.proc.stdout is not None
    if any(marker in line for line in proc.lines):
        return
    timer = threading.Timer(timeout, proc.proc.kill)
    timer.start()
    try:
        for line in proc.proc.stdout:
            proc.lines.append(line)
            if marker in line:
                return
    finally:
        timer.cancel()
    raise AssertionError(f"{marker!r} never appeared:\n" + "".join(proc.lines))


def test_sigterm_lets_the_in_flight_request_finish_then_exits_0() -> None:
    proc = _start()
    try:
        with Conn(connect_to(proc), timeout=15) as conn:
            conn.send(build_request("GET", "/slow?seconds=0.5"))
            _wait_output(proc, "MARK slow started")
            proc.signal(signal.SIGTERM)
            response = conn.read_response()
            assert response.status == 200
            assert response.body == SLOW_BODY
        code, output = proc.wait(timeout=15)
    finally:
        proc.stop()
    assert code == 0, output
    assert output.index("MARK slow answered") < output.index("MARK lifespan shutdown")


def test_idle_keep_alive_connections_are_closed_promptly() -> None:
    proc = _start("--timeout-keep-alive", "30")
    try:
        with Conn(connect_to(proc)) as conn:
            assert conn.request("GET", "/quick").body == b"quick"
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            # The idle connection gets a clean close, not a 30 s keep-alive wait.
            assert conn.wait_closed(timeout=5) == b""
        code, output = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        proc.stop()
    assert code == 0, output
    assert elapsed < 5, f"shutdown took {elapsed:.1f} s with only an idle connection"


def test_new_connections_are_refused_once_shutdown_began() -> None:
    proc = _start()
    try:
        with Conn(connect_to(proc), timeout=15) as conn:
            conn.send(build_request("GET", "/slow?seconds=1.2"))
            _wait_output(proc, "MARK slow started")
            proc.signal(signal.SIGTERM)
            deadline = time.monotonic() + 1.0
            while True:
                assert time.monotonic() < deadline, "still accepting 1 s after SIGTERM"
                try:
                    probe = socket.create_connection((proc.host, proc.port), timeout=1)
                except ConnectionRefusedError:
                    break
                probe.close()
                time.sleep(0.01)
            # Refused while the slow request was still being worked on...
            assert conn.nothing_arrives_within(0), "the slow request finished before refusal"
            # ...and that request is still answered in full.
            response = conn.read_response()
            assert response.status == 200
            assert response.body == SLOW_BODY
        code, output = proc.wait(timeout=15)
    finally:
        proc.stop()
    assert code == 0, output


def test_graceful_timeout_bounds_a_request_that_never_finishes() -> None:
    proc = _start("--timeout-graceful-shutdown", "0.5")
    try:
        with Conn(connect_to(proc), timeout=15) as conn:
            conn.send(build_request("GET", "/forever"))
            _wait_output(proc, "MARK forever started")
            started = time.monotonic()
            proc.signal(signal.SIGTERM)
            # The stuck request's connection is closed, not left hanging.
            data = conn.wait_closed(timeout=10)
            assert b"200 OK" not in data
        _, output = proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        proc.stop()
    assert elapsed < 5, f"exit took {elapsed:.1f} s with a 0.5 s graceful timeout"
    assert "MARK lifespan shutdown" in output, "lifespan shutdown must still run"


def test_sigint_shuts_down_like_sigterm() -> None:
    proc = _start()
    try:
        with Conn(connect_to(proc)) as conn:
            assert conn.request("GET", "/quick").status == 200
        proc.signal(signal.SIGINT)
        code, output = proc.wait(timeout=10)
    finally:
        proc.stop()
    assert code == 0, output
    assert "MARK lifespan shutdown" in output
    assert "KeyboardInterrupt" not in output


def test_a_second_signal_stops_waiting_for_a_hung_lifespan_shutdown() -> None:
    # Without it, an app whose clean-up never ends leaves a process only SIGKILL ends.
    proc = _start(app="shutdown_apps:hangs_on_shutdown")
    try:
        proc.signal(signal.SIGINT)
        _wait_output(proc, "MARK lifespan shutdown hangs")
        proc.signal(signal.SIGINT)
        code, output = proc.wait(timeout=10)
    finally:
        proc.stop()
    assert code == 0, output
    assert "Application shutdown cut short by a second signal" in output
    assert "MARK lifespan cancelled" in output  # the app's task saw it, so its finally ran
    assert "Application shutdown complete." not in output


def test_sigterm_right_after_the_listening_line_is_a_graceful_stop() -> None:
    """Scripts wait for "Listening on" and may stop the server at once: the handlers
    must already be in place then (before, the default action ended it with -15)."""
    for _ in range(3):
        proc = _start()
        try:
            proc.signal(signal.SIGTERM)
            code, output = proc.wait(timeout=10)
        finally:
            proc.stop()
        assert code == 0, output
        assert "MARK lifespan shutdown" in output
