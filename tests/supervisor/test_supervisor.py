"""The supervisor's contract with an operator: workers replaced when they die or hang,
start-up failures stop the server (exit code 1, the app's error shown, no restart loop),
signals (SIGTERM/SIGINT graceful stop, SIGHUP rolling restart, SIGTTIN/SIGTTOU scaling).

Pins: pier's process model (issue 5), which follows the conventions of gunicorn's and
uvicorn's supervisors for signal meanings, and RFC 9110 section 9.2.2 / RFC 9112
section 9.6 for the graceful part: requests in flight at SIGTERM are answered.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
from pathlib import Path

import pytest

from pier.config import Config
from pier.errors import ConfigError
from pier.supervisor.manager import Supervisor
from tests.supervisor._harness import (
    STARTED,
    Proc,
    alive,
    children,
    get,
    pier,
    wait_until,
)

APP = "tests.supervisor.apps:app"
QUIET = ("--no-access-log", "--port", "0")


def started_pids(proc: Proc, after: int = 0) -> list[int]:
    return [int(pid) for pid in STARTED.findall("".join(proc.lines[after:]))]


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_workers_serve_and_a_stop_drains_them_all(stop: str) -> None:
    # Ctrl-C in a terminal sends SIGINT to the whole process group, workers included.
    with pier(APP, "--workers", "2", *QUIET, new_session=True) as server:
        workers = started_pids(server)
        assert sorted(workers) == children(server.pid)
        assert "2 workers" in server.output
        status, body = get(server.host, server.port)
        assert status == 200 and int(body) in workers
        # Kubernetes-style drain: stop accepting, finish in-flight, exit.
        answer: list[tuple[int, bytes]] = []
        client = threading.Thread(
            target=lambda: answer.append(get(server.host, server.port, "/slow?s=0.5"))
        )
        client.start()
        server.wait_for("slow request started")
        if stop == "SIGTERM":
            server.signal(signal.SIGTERM)
        else:
            os.killpg(server.pid, signal.SIGINT)
        client.join(10)
        assert server.wait() == 0
        assert answer == [(200, b"slow done")]
        assert not any(alive(pid) for pid in workers)
        assert "Finished supervisor process" in server.output


def test_new_clients_are_refused_at_once_while_workers_drain() -> None:
    # Issue 10: the supervisor's copy of the listening socket kept the kernel queueing
    # new clients in the backlog during the drain; they were reset when the server
    # exited, up to --timeout-graceful-shutdown later. A single process refuses them.
    with pier(APP, "--workers", "2", *QUIET) as server:
        answer: list[tuple[int, bytes]] = []
        client = threading.Thread(
            target=lambda: answer.append(get(server.host, server.port, "/slow?s=3"))
        )
        client.start()
        server.wait_for("slow request started")
        server.signal(signal.SIGTERM)
        server.wait_count("Shutting down", 2)  # both workers began to drain

        def refused() -> bool:
            try:
                socket.create_connection((server.host, server.port), timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_until(refused, timeout=2, what="a new client refused during the drain")
        client.join(10)
        assert answer == [(200, b"slow done")]  # the request in flight is still answered
        assert server.wait() == 0


def test_workers_stop_when_the_supervisor_is_killed() -> None:
    with pier(APP, "--workers", "2", *QUIET) as server:
        workers = started_pids(server)
        server.signal(signal.SIGKILL)
        server.wait()
        # No orphans: each worker sees its control channel close and stops gracefully.
        wait_until(lambda: not any(alive(pid) for pid in workers), what="workers gone")
        assert "The supervisor is gone; stopping this worker" in server.output


def test_a_killed_worker_is_replaced() -> None:
    with pier(APP, "--workers", "2", *QUIET) as server:
        victim, survivor = started_pids(server)
        mark = server.mark()
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf"Worker \[{victim}\] died \(killed by SIGKILL\)", after=mark)
        replacement = int(server.wait_for(STARTED, after=mark).group(1))
        assert children(server.pid) == sorted([survivor, replacement])
        assert get(server.host, server.port)[0] == 200


def test_a_hung_worker_is_killed_and_replaced() -> None:
    with pier(APP, "--workers", "2", "--timeout-worker-healthcheck", "0.5", *QUIET) as server:
        first = set(started_pids(server))
        mark = server.mark()
        hang = Proc(["curl", "-s", "-m", "10", f"http://{server.host}:{server.port}/block"])
        try:
            match = server.wait_for(r"Worker \[(\d+)\] did not answer its health check",
                                    after=mark)
            hung = int(match.group(1))
            assert hung in first
            server.wait_for(STARTED, after=mark)
            wait_until(lambda: not alive(hung), what="the hung worker is gone")
            assert len(children(server.pid)) == 2
            # The client of the hung request sees its connection end, not a hang.
            assert hang.wait() != 0
        finally:
            hang.stop()
        assert get(server.host, server.port)[0] == 200


def test_sigttin_adds_and_sigttou_removes_a_worker() -> None:
    with pier(APP, "--workers", "2", *QUIET) as server:
        before = children(server.pid)
        mark = server.mark()
        server.signal(signal.SIGTTIN)
        server.wait_for(STARTED, after=mark)
        wait_until(lambda: len(children(server.pid)) == 3, what="3 workers")
        mark = server.mark()
        server.signal(signal.SIGTTOU)
        stopped = int(server.wait_for(r"Stopped worker \[(\d+)\]", after=mark).group(1))
        assert stopped == before[0], "the oldest worker leaves first"
        wait_until(lambda: len(children(server.pid)) == 2, what="2 workers")
        server.signal(signal.SIGTTOU)
        wait_until(lambda: len(children(server.pid)) == 1, what="1 worker")
        mark = server.mark()
        server.signal(signal.SIGTTOU)
        server.wait_for("SIGTTOU ignored: one worker is the fewest", after=mark)
        assert len(children(server.pid)) == 1
        assert get(server.host, server.port)[0] == 200


def test_import_error_at_start_stops_the_server_with_exit_code_1(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import module_that_does_not_exist_anywhere\n")
    proc = Proc([*pier_cmd("broken:app", "--workers", "2", "--app-dir", str(tmp_path))])
    try:
        assert proc.wait() == 1
    finally:
        proc.stop()
    out = proc.output
    assert "module_that_does_not_exist_anywhere" in out
    assert "failed to start" in out and "stopping the server" in out
    # No restart loop: one attempt per worker, and nothing left running.
    assert out.count("failed to start") == 1
    assert len(re.findall(r"module_that_does_not_exist_anywhere", out)) <= 4
    assert children(proc.pid) == []


def test_failed_lifespan_startup_stops_the_server() -> None:
    proc = Proc(pier_cmd("tests.supervisor.apps:failing_startup", "--workers", "2", *QUIET))
    try:
        assert proc.wait() == 1
    finally:
        proc.stop()
    assert "database unreachable" in proc.output
    assert "failed to start" in proc.output


def test_replacement_failing_at_start_stops_the_server_instead_of_looping(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "broken-deploy"
    with pier("tests.supervisor.apps:marker_app", "--workers", "2", *QUIET,
              env={"APPS_FAIL_IF_EXISTS": str(marker)}) as server:
        victim = started_pids(server)[0]
        marker.write_text("the code on disk is now broken\n")
        os.kill(victim, signal.SIGKILL)
        assert server.wait() == 1
        assert "this deploy is broken" in server.output
        assert server.output.count("failed to start") == 1


def test_sighup_with_a_broken_new_version_keeps_the_old_workers(tmp_path: Path) -> None:
    marker = tmp_path / "broken-deploy"
    with pier("tests.supervisor.apps:marker_app", "--workers", "2", *QUIET,
              env={"APPS_FAIL_IF_EXISTS": str(marker)}) as server:
        workers = sorted(started_pids(server))
        marker.write_text("the code on disk is now broken\n")
        mark = server.mark()
        server.signal(signal.SIGHUP)
        server.wait_for("Rolling restart stopped", after=mark)
        assert children(server.pid) == workers
        assert get(server.host, server.port)[0] == 200
        marker.unlink()
        mark = server.mark()
        server.signal(signal.SIGHUP)
        server.wait_for("Rolling restart done", after=mark)
        assert not set(children(server.pid)) & set(workers)


def test_a_callable_app_with_workers_is_refused_with_the_fix() -> None:
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("never served")

    with pytest.raises(ConfigError, match=r'pass it as "module:attr"'):
        Supervisor(Config(app, workers=2, port=0)).run()


def pier_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pier", *args]
