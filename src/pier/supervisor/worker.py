"""One worker process: `python -m pier.supervisor.worker CONTROL_FD [APP]`, started by
pier.supervisor.process. (APP is only there so that `ps` shows what the worker serves.)

Rules:
1. A worker is a plain pier.io.server.Server on sockets it inherited (or, with
   --reuse-port, bound itself); everything about HTTP is the Server's business.
2. The supervisor decides: the worker ignores SIGINT and SIGHUP (a Ctrl-C or a hang-up
   reaches the whole process group, and the supervisor turns it into SIGTERM or a
   restart), stops gracefully on SIGTERM and immediately on a second SIGTERM, and
   stops gracefully when the control channel reaches end of file (the supervisor died).
3. Exit codes: 0 after serving, 1 when start-up failed (the error is logged here,
   once, as the single-process server would log it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import sys
from typing import Any

from pier import logging as pier_logging
from pier.errors import PierError
from pier.io.server import Server, log_startup_error, loop_factory
from pier.io.sockets import bind_tcp, from_fd
from pier.supervisor.channel import (
    LINE_LIMIT,
    METRICS,
    PING,
    PONG,
    READY,
    RECYCLE,
    SNAPSHOT_PREFIX,
    WorkerSpec,
    receive_spec,
)

logger = logging.getLogger("pier.error")


class WorkerServer(Server):
    """A Server whose SIGINT belongs to the supervisor (see rule 2)."""

    def handle_exit(self, signum: int, frame: Any = None) -> None:
        if signum == signal.SIGINT:
            return
        super().handle_exit(signum, frame)


class ControlLink:
    """The worker's end of the control channel, on the worker's event loop."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.writer: asyncio.StreamWriter | None = None

    def send(self, message: bytes) -> None:
        writer = self.writer
        if writer is not None and not writer.is_closing():
            writer.write(message)

    def send_snapshot(self) -> None:
        """issue 12: this worker's counters, for the supervisor's /metrics."""
        snapshot = self.server.metrics_snapshot().to_json()
        self.send(SNAPSHOT_PREFIX + json.dumps(snapshot, separators=(",", ":")).encode() + b"\n")

    async def serve(self, reader: asyncio.StreamReader) -> None:
        """Answer pings until the supervisor goes away; then stop the server."""
        while True:
            try:
                line = await reader.readline()
            except (ConnectionError, OSError):
                line = b""
            if not line:
                break
            if line == PING:
                self.send(PONG)
            elif line == METRICS:
                self.send_snapshot()
        if not self.server.should_exit:
            logger.warning("The supervisor is gone; stopping this worker")
            self.server.should_exit = True


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    # Until the server installs its own handlers: the supervisor handles these (rule 2).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    control = socket.socket(fileno=int(args[0]))
    control.set_inheritable(False)  # the app's own subprocesses must not keep it open
    spec = receive_spec(control)
    pier_logging.configure(spec.config, worker=True)
    sys.exit(run_worker(spec, control))


def run_worker(spec: WorkerSpec, control: socket.socket) -> int:
    config = spec.config
    server = WorkerServer(config)
    server.announce = False  # the supervisor announces the addresses once
    server.tune_gc = True  # a worker process is pier's (pier.collector rule 1)
    server.drain_idle = spec.drain_idle
    server.request_limit = spec.request_limit
    server.serve_admin = False  # issue 12: the supervisor serves --metrics-bind
    server.shutdown_delay = 0.0  # ...and waits out --shutdown-delay before SIGTERM
    link = ControlLink(server)
    server.on_started = lambda: link.send(READY)
    server.on_request_limit = lambda: link.send(RECYCLE)
    try:
        sockets = _sockets(spec)
        with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
            runner.run(_serve(server, link, control, sockets))
    except PierError as exc:
        log_startup_error(exc)
        return exc.exit_code
    return 0


def _sockets(spec: WorkerSpec) -> list[socket.socket]:
    if spec.reuse_port:
        return [
            bind_tcp(host, port, backlog=spec.config.backlog, reuse_port=True)
            for host, port in spec.reuse_port
        ]
    return [from_fd(fd) for fd in spec.fds]


async def _serve(
    server: Server, link: ControlLink, control: socket.socket, sockets: list[socket.socket]
) -> None:
    reader, writer = await asyncio.open_unix_connection(sock=control, limit=LINE_LIMIT)
    link.writer = writer
    watcher = asyncio.create_task(link.serve(reader))
    try:
        await server.serve(sockets)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        if server.config.metrics_bind is not None:
            # The counts since the last scrape, so a replaced worker's requests stay
            # counted (pier.metrics rule 3).
            link.send_snapshot()
            with contextlib.suppress(ConnectionError, OSError):
                await asyncio.wait_for(writer.drain(), 2.0)
        writer.close()


if __name__ == "__main__":
    main()
