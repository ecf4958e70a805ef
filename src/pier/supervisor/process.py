"""The supervisor's handle on one worker process: start it, learn when it is ready,
check its health, stop it, and learn how it ended.

Rules:
1. A worker's life is an enum (STARTING -> READY -> STOPPING -> EXITED; STARTING or
   READY may go straight to EXITED when the process dies). Nothing else is tracked.
2. Everything is awaited, never polled: `ready` resolves True on READY or False if the
   process exits first; `exited` resolves with the exit status when the process ends.
   Events the supervisor must act on (exit, RECYCLE, a failed health check) are put on
   the supervisor's queue; this module takes no decisions.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from pier.metrics import Snapshot
from pier.supervisor.channel import (
    LINE_LIMIT,
    METRICS,
    PING,
    PONG,
    READY,
    RECYCLE,
    SNAPSHOT_PREFIX,
    WorkerSpec,
    send_spec,
)

if TYPE_CHECKING:
    from pier.config import Config

__all__ = ["State", "WorkerProcess", "describe_exit"]

logger = logging.getLogger("pier.error")

Notify = Callable[[str, "WorkerProcess"], None]


class State(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


class WorkerProcess:
    def __init__(self, proc: asyncio.subprocess.Process, notify: Notify) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.state = State.STARTING
        self.leaving = False
        """Marked for replacement (max requests, rolling restart): not counted as capacity."""
        self.stop_requested = False
        self.unhealthy = False
        self.exit_reason: str | None = None
        """Why the supervisor asked it to stop (issue 12: pier_worker_exits_total)."""
        self.started_at = asyncio.get_running_loop().time()
        self.snapshot = Snapshot()
        """Its latest metrics (issue 12), from the last METRICS answer."""
        self._snapshot_event = asyncio.Event()
        self._notify = notify
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[bool] = loop.create_future()
        self.exited: asyncio.Future[int] = loop.create_future()
        self._pong = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"<worker {self.pid} {self.state.value}>"

    @classmethod
    async def start(
        cls, spec: WorkerSpec, *, notify: Notify, app_label: str
    ) -> WorkerProcess:
        parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fds = [*spec.fds, child_end.fileno()]
            # stdin/stdout/stderr are inherited: a worker's logs (and a debugger in it)
            # use the supervisor's terminal directly.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pier.supervisor.worker",
                str(child_end.fileno()),
                app_label,
                pass_fds=fds,
            )
        except BaseException:
            parent_end.close()
            raise
        finally:
            child_end.close()
        worker = cls(proc, notify)
        with contextlib.suppress(OSError):  # it died already: its exit is reported below
            send_spec(parent_end, spec)  # small; the worker reads it first thing
        reader, writer = await asyncio.open_unix_connection(sock=parent_end, limit=LINE_LIMIT)
        worker._writer = writer
        worker._tasks = [
            asyncio.create_task(worker._wait_exit()),
            asyncio.create_task(worker._read(reader), name="read"),
        ]
        return worker

    # Events from the process -----------------------------------------------------------

    async def _wait_exit(self) -> None:
        code = await self.proc.wait()
        # The last lines it wrote (its final metrics) are read before it counts as gone.
        reading = [task for task in self._tasks if task.get_name() == "read"]
        if reading:
            await asyncio.wait(reading, timeout=1.0)
        self.state = State.EXITED
        if not self.ready.done():
            self.ready.set_result(False)
        self.exited.set_result(code)
        if self._writer is not None:
            self._writer.close()
        self._notify("exited", self)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ConnectionError, OSError):
                return
            if not line:
                return
            if line == PONG:
                self._pong.set()
            elif line == READY and not self.ready.done():
                if self.state is State.STARTING:  # not if asked to stop meanwhile
                    self.state = State.READY
                self.ready.set_result(True)
            elif line == RECYCLE:
                self._notify("recycle", self)
            elif line.startswith(SNAPSHOT_PREFIX):
                try:
                    self.snapshot = Snapshot.from_json(json.loads(line[len(SNAPSHOT_PREFIX) :]))
                except (ValueError, TypeError):
                    logger.warning("Worker [%d] sent unreadable metrics", self.pid)
                self._snapshot_event.set()

    async def scrape(self, patience: float) -> Snapshot:
        """Ask for fresh metrics; the latest known ones if no answer comes in time."""
        if self.state in (State.READY, State.STOPPING):  # a starting one has none yet
            self._snapshot_event.clear()
            self._send(METRICS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._snapshot_event.wait(), patience)
        return self.snapshot

    # Health ---------------------------------------------------------------------------

    def add_task(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` for this worker; cancelled with it (close())."""
        self._tasks.append(asyncio.create_task(coroutine))

    def watch_health(self, patience: float) -> None:
        """Once READY, ping it until it leaves READY (see health_check)."""

        async def when_ready() -> None:
            if await self.ready:
                await self.health_check(patience)

        self._tasks.append(asyncio.create_task(when_ready()))

    async def health_check(self, patience: float) -> None:
        """Ping until the worker leaves READY; report it if a pong is `patience` s late."""
        interval = min(1.0, patience / 2)
        while self.state is State.READY:
            self._pong.clear()
            self._send(PING)
            try:
                await asyncio.wait_for(self._pong.wait(), patience)
            except TimeoutError:
                if self.state is State.READY:
                    self._notify("unhealthy", self)
                return
            # The next ping is due in `interval`, unless the worker ends first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.exited), interval)

    def _send(self, message: bytes) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closing():
            writer.write(message)

    # Control --------------------------------------------------------------------------

    def stop(self, *, force: bool = False, reason: str = "stopped") -> None:
        """SIGTERM: a graceful stop; sent again, the worker stops at once (force)."""
        if self.exit_reason is None:
            self.exit_reason = reason
        self.stop_requested = True
        if self.state is State.EXITED:
            return
        if self.state is not State.STOPPING or force:
            self.state = State.STOPPING
            self.signal(signal.SIGTERM)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    async def wait_stopped(self, deadline: float) -> int:
        """Wait for the exit after stop(); SIGKILL if it takes longer than `deadline` s."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.exited), deadline)
        except TimeoutError:
            logger.warning(
                "Worker [%d] did not stop within %.0fs of SIGTERM; killing it",
                self.pid,
                deadline,
            )
            self.kill()
            return await self.exited

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()


def describe_exit(code: int) -> str:
    """An exit status as words: 'exit code 1', 'killed by SIGKILL'."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def app_label(config: Config) -> str:
    return config.app if isinstance(config.app, str) else "app"
