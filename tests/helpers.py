"""Shared test harness: start a real pier on 127.0.0.1 with an ephemeral port.

Two ways, both real servers on real sockets:
- `running_server(app, **options)`: pier.Server in a background thread (fast; for
  behaviour that does not involve signals or process exit codes).
- `PierProcess(args)`: `python -m pier ...` as a subprocess (for the CLI, exit codes,
  signals, start-up errors). The listening port is read from pier's
  "Listening on http://HOST:PORT" log line.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pier
from pier.io.server import loop_factory
from pier.proto import native
from pier.proto.h1 import ParseHead

START_TIMEOUT = 10.0
NOT_BUILT = "pier.proto._h1head is not built (no C compiler where pier was installed)"


def native_parse_head() -> ParseHead | None:
    """The native request-head parser (proto/h1.py rule 6) if it was built, whatever
    PIER_NATIVE says."""
    module = native.load(honour_switch=False)
    return None if module is None else cast(ParseHead, module.parse_head)


LISTENING = re.compile(r"Listening on (http|https)://(\S+):(\d+)")


@dataclass
class RunningServer:
    server: pier.Server
    host: str
    port: int
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 5.0) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=timeout)
        return sock


@contextmanager
def running_server(app: Any, **options: Any) -> Iterator[RunningServer]:
    """Serve `app` in a thread until the block ends, then shut down gracefully.

    The event loop is the config's (`loop="auto"`: uvloop when installed, as in
    production); pass loop="asyncio" to pin behaviour on the standard loop.
    """
    options.setdefault("port", 0)
    options.setdefault("log_level", "warning")
    options.setdefault("lifespan", "auto")
    config = pier.Config(app, **options)
    server = pier.Server(config)
    failure: list[BaseException] = []

    def target() -> None:
        try:
            with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
                runner.run(server.serve())
        except BaseException as exc:  # reported to the test below
            failure.append(exc)

    thread = threading.Thread(target=target, name="pier-test-server", daemon=True)
    thread.start()
    server.wait_started(START_TIMEOUT)
    if failure:
        raise failure[0]
    if not server.started:
        raise RuntimeError(f"pier did not start within {START_TIMEOUT} s")
    host, port = server.bound_addresses[0][:2]
    try:
        yield RunningServer(server=server, host=host, port=port, thread=thread)
    finally:
        server.should_exit = True
        server.wake()
        thread.join(30)
        if thread.is_alive():
            raise RuntimeError("pier did not shut down within 30 s")
    if failure:
        raise failure[0]


class PierProcess:
    """`python -m pier ARGS` as a subprocess; `.port` once it logged where it listens."""

    def __init__(self, *args: str, cwd: str | Path | None = None,
                 env: dict[str, str] | None = None, python: str = sys.executable) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        self.args = [python, "-m", "pier", *args]
        self.proc = subprocess.Popen(
            self.args, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self.port: int | None = None
        self.host: str | None = None

    def wait_listening(self, timeout: float = START_TIMEOUT) -> int:
        """Read output until the Listening line; fail with the output if it exits first."""
        assert self.proc.stdout is not None
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            for line in self.proc.stdout:
                self.lines.append(line)
                match = LISTENING.search(line)
                if match:
                    self.host, self.port = match.group(2).strip("[]"), int(match.group(3))
                    return self.port
        finally:
            timer.cancel()
        raise AssertionError("pier exited before listening:\n" + "".join(self.lines))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        """Wait for exit; return (exit code, all output)."""
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out or "")
        return self.proc.returncode, "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


def recv_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def recv_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Read exactly one HTTP/1.1 response (Content-Length or chunked framing)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return buf
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lower = head.lower()
    length_match = re.search(rb"\r\ncontent-length:\s*(\d+)", lower)
    if length_match:
        need = int(length_match.group(1))
        while len(rest) < need:
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return head + b"\r\n\r\n" + rest
    if b"transfer-encoding: chunked" in lower:
        while not rest.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            if not data:
                break
            rest += data
        return head + b"\r\n\r\n" + rest
    return head + b"\r\n\r\n" + rest
