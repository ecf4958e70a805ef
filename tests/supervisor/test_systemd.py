"""systemd notify (issue 12): a datagram socket plays systemd's part.

Pins sd_notify(3) as systemd reads it: newline-separated assignments in one datagram
to $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace); READY=1 once serving,
STOPPING=1 when a stop begins, RELOADING=1 with MONOTONIC_USEC before a rolling restart
(sd_notify(3), Type=notify-reload) and READY=1 after it, WATCHDOG=1 more often than
WATCHDOG_USEC; and that only the main process speaks for the unit.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.supervisor._harness import STARTED, children, pier

APP = "tests.supervisor.apps:app"


class FakeSystemd:
    """The receiving end of NOTIFY_SOCKET: one message per datagram, in order."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self.address = address

    def next(self, timeout: float = 15.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096)
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def until(self, key: str, timeout: float = 15.0) -> tuple[dict[str, str], list[str]]:
        """Read messages until one sets `key`; it, and the keys seen before it."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            message = self.next(max(0.01, deadline - time.monotonic()))
            if key in message:
                return message, seen
            seen.extend(message)


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[FakeSystemd]:
    fake = FakeSystemd(str(tmp_path / "notify"))
    yield fake
    fake.sock.close()


def test_single_process_ready_then_stopping(systemd: FakeSystemd) -> None:
    with pier(APP, "--port", "0", env={"NOTIFY_SOCKET": systemd.address}) as proc:
        ready = systemd.next()
        assert ready["READY"] == "1"
        assert ready["STATUS"] == f"Serving on http://127.0.0.1:{proc.port}"
        proc.signal(signal.SIGTERM)
        stopping = systemd.next()
        assert stopping["STOPPING"] == "1"
        assert proc.wait() == 0


def test_supervisor_ready_reloading_ready_stopping_in_order(systemd: FakeSystemd) -> None:
    env = {"NOTIFY_SOCKET": systemd.address}
    with pier(APP, "--port", "0", "--workers", "2", env=env) as proc:
        ready = systemd.next()
        assert ready["READY"] == "1"
        assert ready["STATUS"].endswith("with 2 workers")
        # Workers and the app never see the socket: only the main process speaks.
        workers = children(proc.pid)
        assert len(workers) == 2
        for pid in workers:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert not any(item.startswith(b"NOTIFY_SOCKET=") for item in environ)
        proc.signal(signal.SIGHUP)
        reloading = systemd.next()
        assert reloading["RELOADING"] == "1"
        usec = int(reloading["MONOTONIC_USEC"])
        assert abs(usec - time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000) < 30_000_000
        proc.wait_count(STARTED, 4)  # two replacements, one at a time
        assert systemd.next()["READY"] == "1"
        proc.wait_for("Rolling restart done")
        proc.signal(signal.SIGTERM)
        assert systemd.next()["STOPPING"] == "1"
        assert proc.wait() == 0


def test_watchdog_keepalives_and_abstract_socket(tmp_path: Path) -> None:
    fake = FakeSystemd(f"@pier-test-{os.getpid()}-{tmp_path.name}")
    try:
        env = {"NOTIFY_SOCKET": fake.address, "WATCHDOG_USEC": "200000"}
        with pier(APP, "--port", "0", env=env) as proc:
            fake.until("READY")
            started = time.monotonic()
            for _ in range(3):
                fake.until("WATCHDOG")
            # Every 0.1 s (half of WATCHDOG_USEC): three within a generous bound.
            assert time.monotonic() - started < 5.0
            proc.signal(signal.SIGTERM)
            _, between = fake.until("STOPPING")
            assert set(between) <= {"WATCHDOG"}
            assert proc.wait() == 0
    finally:
        fake.sock.close()


def test_no_notify_socket_no_messages_and_gone_systemd_is_not_fatal(tmp_path: Path) -> None:
    # NOTIFY_SOCKET naming a socket nobody listens on: one warning, and pier serves.
    env = {"NOTIFY_SOCKET": str(tmp_path / "nobody")}
    with pier(APP, "--port", "0", env=env) as proc:
        proc.wait_for("Cannot notify systemd at NOTIFY_SOCKET=")
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert proc.output.count("Cannot notify systemd") == 1
