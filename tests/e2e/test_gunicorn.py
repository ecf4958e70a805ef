"""pier inside the real gunicorn: `gunicorn -k pier.workers.PierWorker`. gunicorn's bind,
workers, max-requests, graceful timeout, logging and boot-failure handling are honoured.

Pins: gunicorn's worker-class contract (gunicorn.workers.base.Worker: run(), notify()
heartbeat, exit code 3 for a boot failure) and its settings' documented meanings; the
ASGI lifespan spec 2.0 (lifespan.startup.failed stops the worker from booting);
RFC 9112 section 9.6 for the zero-failure recycle under load.
"""

from __future__ import annotations

import re
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.supervisor._harness import Load, Proc, get, wait_until

pytest.importorskip("gunicorn", reason="the gunicorn tests need gunicorn (pip install gunicorn)")

APP = "tests.supervisor.apps:app"


@contextmanager
def gunicorn(*args: str, tmp_path: Path, listening: bool = True,
             bind: str = "127.0.0.1:0") -> Iterator[Proc]:
    proc = Proc([
        sys.executable, "-m", "gunicorn", "-k", "pier.workers.PierWorker",
        "-b", bind, "--control-socket", str(tmp_path / "gunicorn.ctl"), *args,
    ])
    try:
        if listening:
            proc.wait_listening()
        yield proc
    finally:
        proc.stop()


def answers(proc: Proc) -> bool:
    try:
        return get(proc.host, proc.port, timeout=1.0)[0] == 200
    except OSError:
        return False


def booted(proc: Proc, count: int) -> set[int]:
    return {int(m.group(1)) for m in proc.wait_count(r"Booting worker with pid: (\d+)", count)}


def test_gunicorn_runs_pier_workers(tmp_path: Path) -> None:
    with gunicorn("-w", "2", "--access-logfile", "-", APP, tmp_path=tmp_path) as server:
        workers = booted(server, 2)
        seen = set()
        for _ in range(20):
            status, body = get(server.host, server.port)
            assert status == 200
            seen.add(int(body))
        assert seen <= workers
        # pier's access lines go through gunicorn's access log.
        server.wait_for(r'127\.0\.0\.1:\d+ - "GET / HTTP/1\.1" 200')
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
        assert "Shutting down: Master" in server.output
    # pier's own messages go through gunicorn's error log, in gunicorn's format.
    assert re.search(r"\[\d+\] \[INFO\] Finished server process", server.output)


def test_gunicorn_log_level_and_no_access_log_without_a_file(tmp_path: Path) -> None:
    # At --log-level warning gunicorn does not say where it listens: choose the port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with gunicorn("-w", "1", "--log-level", "warning", APP, bind=f"127.0.0.1:{port}",
                  tmp_path=tmp_path, listening=False) as server:
        server.port = port
        wait_until(lambda: answers(server), what="gunicorn serving")
        assert get(server.host, server.port)[0] == 200
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    assert '"GET / HTTP/1.1" 200' not in server.output
    assert "Finished server process" not in server.output


def test_max_requests_recycles_workers_under_load_without_failures(tmp_path: Path) -> None:
    with gunicorn("-w", "2", "--max-requests", "100", "--max-requests-jitter", "20", APP,
                  tmp_path=tmp_path) as server:
        booted(server, 2)
        with Load(server.host, server.port, connections=6) as load:
            booted(server, 5)  # three replacements
            load.wait_requests(200)
            result = load.stop()
        assert "Autorestarting worker after current request" in server.output
    assert result.failures == [], result.failures[:5]
    assert len(result.by_body) >= 3


def test_graceful_timeout_lets_a_slow_request_finish(tmp_path: Path) -> None:
    with gunicorn("-w", "1", "--graceful-timeout", "5", APP, tmp_path=tmp_path) as server:
        booted(server, 1)
        answer: list[tuple[int, bytes]] = []
        client = threading.Thread(
            target=lambda: answer.append(get(server.host, server.port, "/slow?s=0.5"))
        )
        client.start()
        server.wait_for("slow request started")
        server.signal(signal.SIGTERM)
        client.join(10)
        assert server.wait() == 0
    assert answer == [(200, b"slow done")]


def test_a_failed_lifespan_startup_stops_gunicorn(tmp_path: Path) -> None:
    # One worker: when two fail at once, gunicorn 27's arbiter itself crashes while
    # halting (HaltServer raised again inside stop()) and exits with 1 instead of 3.
    with gunicorn("-w", "1", "tests.supervisor.apps:failing_startup", tmp_path=tmp_path,
                  listening=False) as server:
        assert server.wait() == 3  # gunicorn's "Worker failed to boot."
    assert "database unreachable" in server.output
    assert "Worker failed to boot" in server.output


def test_the_lifespan_hint_names_gunicorns_way(tmp_path: Path) -> None:
    # gunicorn has no --lifespan: the hint names the worker subclass that sets it.
    with gunicorn("-w", "1", "tests.supervisor.apps:http_only", tmp_path=tmp_path) as server:
        assert get(server.host, server.port)[0] == 200
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    assert "does not support the ASGI lifespan protocol" in server.output
    assert "use CONFIG_KWARGS = {'lifespan': 'off'} in a subclass of" \
        " pier.workers.PierWorker" in server.output, server.output
    assert "--lifespan" not in server.output
