"""Harness for process-level tests: a pier (or gunicorn) subprocess whose output is read
continuously, a bounded keep-alive load loop that counts every failed request, and
process-table helpers.

Rules: everything here is real (subprocesses, sockets, signals) and every wait has a
deadline and waits on something observable (a log line, a response, a pid in /proc),
never on the passage of time.
"""

from __future__ import annotations

import collections
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEADLINE = 15.0
LISTENING = re.compile(r"Listening (?:on|at):? (http|https)://(\S+?):(\d+)")
STARTED = re.compile(r"Started worker \[(\d+)\]")
REPO = Path(__file__).resolve().parents[2]


class Proc:
    """A subprocess whose merged stdout/stderr is collected line by line in a thread."""

    def __init__(self, args: list[str], *, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, **popen: Any) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.pop("WEB_CONCURRENCY", None)
        for name in list(full_env):
            if name.startswith("PIER_"):
                del full_env[name]
        if env:
            full_env.update(env)
        self.args = args
        self.proc = subprocess.Popen(
            args, cwd=cwd or REPO, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, **popen,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], *, after: int = 0,
                 timeout: float = DEADLINE) -> re.Match[str]:
        """The first output line from index `after` on that matches; fail on exit or timeout."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        index = after
        with self._changed:
            while True:
                while index < len(self.lines):
                    match = regex.search(self.lines[index])
                    index += 1
                    if match:
                        return match
                if not self._reader.is_alive():
                    raise AssertionError(
                        f"process exited before {regex.pattern!r}:\n{''.join(self.lines)}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{regex.pattern!r} not seen within {timeout}s:\n{''.join(self.lines)}"
                    )
                self._changed.wait(remaining)

    def wait_count(self, pattern: str | re.Pattern[str], count: int, *,
                   timeout: float = DEADLINE) -> list[re.Match[str]]:
        """Wait until `count` output lines match; return their matches."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        matches: list[re.Match[str]] = []
        index = 0
        while len(matches) < count:
            match = self.wait_for(regex, after=index, timeout=timeout)
            matches.append(match)
            with self._changed:
                index = self.lines.index(match.string, index) + 1
        return matches

    def mark(self) -> int:
        """The current output position, for wait_for(after=...)."""
        with self._changed:
            return len(self.lines)

    def wait_listening(self, timeout: float = DEADLINE) -> int:
        match = self.wait_for(LISTENING, timeout=timeout)
        self.scheme, self.host, self.port = match.group(1), match.group(2).strip("[]"), int(
            match.group(3)
        )
        return self.port

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = DEADLINE) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def stop(self) -> None:
        """Make sure nothing outlives the test: the process and any of its children."""
        if self.proc.poll() is None:
            family = children(self.pid)
            self.proc.kill()
            self.proc.wait(10)
            for pid in family:
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@contextmanager
def pier(*args: str, cwd: str | Path | None = None, env: dict[str, str] | None = None,
         listening: bool = True, new_session: bool = False) -> Iterator[Proc]:
    """`python -m pier ARGS` on an ephemeral port; stopped (and reaped) afterwards.

    `new_session` puts it in a process group of its own (for signals to the group).
    """
    proc = Proc([sys.executable, "-m", "pier", *args], cwd=cwd, env=env,
                start_new_session=new_session)
    try:
        if listening:
            proc.wait_listening()
        yield proc
    finally:
        proc.stop()


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (from /proc; zombies not counted)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        # The command name is in parentheses and may contain spaces.
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as file:
            stat = file.read()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


def wait_until(predicate: Callable[[], Any], *, timeout: float = DEADLINE,
               what: str = "condition") -> Any:
    """Poll a condition with a deadline (for /proc state, which offers no event)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout}s"
        time.sleep(0.02)


# --- HTTP --------------------------------------------------------------------------------


def get(host: str, port: int, path: str = "/", *, timeout: float = 5.0) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@dataclass
class LoadResult:
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    by_body: collections.Counter[bytes] = field(default_factory=collections.Counter)


class Load:
    """`connections` keep-alive clients in threads, each sending GETs back to back.

    Every request that does not end in a complete 200 response is a failure, with its
    reason. A response with "connection: close" is followed by a new connection, as
    any client does; that is not a failure.
    """

    def __init__(self, host: str, port: int, *, connections: int = 8, path: str = "/") -> None:
        self.address = (host, port)
        self.request = f"GET {path} HTTP/1.1\r\nhost: load\r\n\r\n".encode()
        self.result = LoadResult()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, daemon=True) for _ in range(connections)
        ]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        return self.result

    @property
    def count(self) -> int:
        with self._lock:
            return self.result.ok + len(self.result.failures)

    def wait_requests(self, count: int, timeout: float = DEADLINE) -> None:
        """Wait until `count` more requests have completed (ok or failed)."""
        with self._lock:
            target = self.result.ok + len(self.result.failures) + count
            deadline = time.monotonic() + timeout
            while self.result.ok + len(self.result.failures) < target:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"load made no progress: {self.result}"
                self._lock.wait(remaining)

    def _record(self, body: bytes | None, failure: str | None) -> None:
        with self._lock:
            if failure is None:
                self.result.ok += 1
                assert body is not None
                self.result.by_body[body] += 1
            else:
                self.result.failures.append(failure)
            self._lock.notify_all()

    def _client(self) -> None:
        sock: socket.socket | None = None
        buffer = b""
        while not self._stop.is_set():
            try:
                if sock is None:
                    sock = socket.create_connection(self.address, timeout=5.0)
                    buffer = b""
                sock.sendall(self.request)
                status, close, body, buffer = _read_response(sock, buffer)
            except (OSError, EOFError, ValueError) as exc:
                self._record(None, f"{type(exc).__name__}: {exc}")
                if sock is not None:
                    sock.close()
                sock = None
                continue
            if status != 200:
                self._record(None, f"status {status}: {body[:100]!r}")
            else:
                self._record(body, None)
            if close:
                sock.close()
                sock = None
        if sock is not None:
            sock.close()


def _read_response(sock: socket.socket, buffer: bytes) -> tuple[int, bool, bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed before a response")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    close = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed inside a response body")
        rest += chunk
    return status, close, rest[:length], rest[length:]
