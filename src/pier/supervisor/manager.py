"""The supervisor process: binds the sockets once, keeps N worker processes serving.

Rules:
1. Signals only enqueue (design habit 6): every signal, worker exit, RECYCLE request,
   failed health check and file change becomes an event on one queue, and the main
   loop dispatches it (`handle_sigterm()`, `_on_exit()`, ...). Nothing is polled.
2. Work that takes time (starting workers, replacing one, a rolling restart, a reload)
   is an operation; operations run one at a time, in order, on the operator task, so
   two of them never reason about the same workers at once. Stopping cancels them.
3. Capacity first: a worker is replaced by starting the new one, waiting until it is
   READY (listening, lifespan started), and only then stopping the old one (SIGTERM:
   it stops accepting, answers what it has, closes). Under load nothing fails: the
   listening socket is shared, so the other workers (and the new one) keep accepting.
   One exception: a worker done with --limit-max-requests leaves at once when other
   workers are serving (so "about N requests" stays about N); its replacement starts
   at the same time.
4. A worker that exits before READY failed at start-up (import error, lifespan
   failure, bind error); its own error is already on stderr. At first start, or while
   replacing a worker, that stops the whole server with exit code 1 (never a restart
   loop). During a SIGHUP rolling restart the running workers keep serving and the
   restart stops. With --reload the supervisor waits for the next file change.
5. A worker that dies while serving is replaced (with --reload: restarted on the next
   change). One that misses its health check is killed (SIGKILL), then replaced. With
   --reload there is no health check unless --timeout-worker-healthcheck is given: a
   developer stopped at a breakpoint has a blocked event loop on purpose.

Signals: SIGINT/SIGTERM graceful stop (twice: workers stop at once); SIGHUP rolling
restart (with --reload: reload now); SIGTTIN one worker more; SIGTTOU one fewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from pier.errors import ConfigError
from pier.io.sockets import addresses, bind_sockets, describe, open_address
from pier.io.systemd import Notifier
from pier.metrics import ServerState, Snapshot, render, sum_snapshots
from pier.supervisor.channel import WorkerSpec
from pier.supervisor.process import State, WorkerProcess, app_label, describe_exit

if TYPE_CHECKING:
    from pier.config import Config

__all__ = ["DRAIN_IDLE", "Supervisor"]

logger = logging.getLogger("pier.error")

DRAIN_IDLE = 0.5
"""Server.drain_idle for replaced workers. A client that reuses a keep-alive connection
sends its next request within a round trip of the previous response; half a second
covers a loaded machine many times over and bounds how long a restart waits per worker.
"""
STOP_MARGIN = 5.0
"""Seconds, beyond --timeout-graceful-shutdown, for a worker's lifespan shutdown."""

MEMORY_INTERVAL = 1.0
"""Seconds between two RSS samples of a worker (--limit-max-memory): a worker grows past
its limit by at most what it allocates in this time before its replacement starts."""
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)

Operation = Callable[[], Awaitable[Any]]


class Supervisor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.target: int = config.workers
        self.workers: list[WorkerProcess] = []  # oldest first
        self.sockets: list[socket.socket] = []
        self.reserved: list[socket.socket] = []  # --reuse-port: bound, not listening
        self.unix_paths: list[str] = []
        self.exit_code = 0
        self.stopping = False
        self.scheme = "https" if config.ssl_certfile is not None else "http"
        self.drain_idle = 0.0 if config.reload else DRAIN_IDLE
        self.stop_deadline = config.timeout_graceful_shutdown + self.drain_idle + STOP_MARGIN
        self._events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._ops: asyncio.Queue[Operation] = asyncio.Queue()
        self._operator: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._reload_pending: list[str] | None = None
        self._watch_stop: asyncio.Event | None = None
        self.notifier = Notifier(None)
        """systemd's notify socket (issue 12), taken from the environment in run()."""
        # issue 12: metrics and health (--metrics-bind), --shutdown-delay
        self.state = ServerState()
        self.retired = Snapshot()
        """Counters of workers that are gone (pier.metrics rule 3)."""
        self.started = False
        """The first workers all became READY."""
        self.draining = False
        self._cut_delay = asyncio.Event()

    # Entry -------------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until stopped; the process exit code."""
        self._check()
        self.notifier = Notifier.from_environment()
        try:
            with asyncio.Runner() as runner:
                return runner.run(self._main())
        finally:
            self.notifier.close()

    def _check(self) -> None:
        """Refuse what cannot work before any process starts (one error, exit 1)."""
        config = self.config
        if not isinstance(config.app, str):
            raise ConfigError(
                "--workers, --reload and --limit-max-requests start new processes, which"
                ' import the app themselves: pass it as "module:attr", e.g.'
                ' pier.run("main:app", workers=4)'
            )
        if config.ssl_certfile is not None:
            from pier.io.tls import create_ssl_context

            create_ssl_context(config)  # a bad certificate: one error here, not N
        if config.reload:
            from pier.supervisor.reload import check_reload

            check_reload(config)

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        self._bind()
        for signum in SIGNALS:
            loop.add_signal_handler(signum, self._events.put_nowait, ("signal", signum))
        self._operator = asyncio.create_task(self._operate())
        watcher = self._start_watcher() if self.config.reload else None
        logger.info("Started supervisor process [%d]", os.getpid())
        admin = None
        if self.config.metrics_bind is not None:
            from pier.io.admin import AdminServer

            admin = AdminServer(
                self.config.metrics_bind,
                metrics=self.scrape,
                live=self.live,
                ready=self.ready,
                backlog=self.config.backlog,
            )
            await admin.start()
        try:
            self._ops.put_nowait(self._start_first)
            while True:
                kind, subject = await self._events.get()
                if kind == "stopped":
                    break
                self._dispatch(kind, subject)
        finally:
            for signum in SIGNALS:
                loop.remove_signal_handler(signum)
            if self._operator is not None:
                self._operator.cancel()
            if watcher is not None and self._watch_stop is not None:
                self._watch_stop.set()
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(watcher, 2.0)
            await self._stop_all()
            self._close_sockets()
            if admin is not None:
                await admin.close()
        logger.info("Finished supervisor process [%d]", os.getpid())
        return self.exit_code

    # Sockets -----------------------------------------------------------------------------

    def _bind(self) -> None:
        config = self.config
        wanted = addresses(config)
        if config.reuse_port:
            for address in wanted:
                if address.kind != "tcp":
                    raise ConfigError(
                        f"--reuse-port needs TCP addresses, not {address}; leave it off"
                    )
            # Reserve each port (and resolve port 0) without listening: the workers
            # open their own SO_REUSEPORT listeners on the same address.
            for address in wanted:
                self.reserved.append(
                    open_address(
                        address, backlog=config.backlog, reuse_port=True, listen=False
                    )
                )
        else:
            self.sockets = bind_sockets(config)
            self.unix_paths = [address.path for address in wanted if address.kind == "unix"]

    def _close_listeners(self) -> None:
        # The workers close their copies as they begin to drain; while this process
        # still held one, the kernel went on queueing new clients in the backlog, to
        # be reset when the server exited (up to --timeout-graceful-shutdown later).
        for sock in (*self.sockets, *self.reserved):
            sock.close()

    def _close_sockets(self) -> None:
        self._close_listeners()
        for path in self.unix_paths:
            with contextlib.suppress(OSError):
                os.unlink(path)

    def _announce(self) -> None:
        count = len(self._serving())
        suffix = f"{count} worker{'s' if count != 1 else ''}"
        if self.reserved:
            suffix += ", SO_REUSEPORT"
        for sock in self.sockets or self.reserved:
            logger.info(
                "Listening on %s (%s; Press CTRL+C to quit)",
                describe(sock, scheme=self.scheme),
                suffix,
            )

    # Dispatch ----------------------------------------------------------------------------

    def _dispatch(self, kind: str, subject: Any) -> None:
        if kind == "signal":
            name = signal.Signals(subject).name.lower()
            getattr(self, f"handle_{name}")()
        elif kind == "exited":
            self._on_exit(subject)
        elif kind == "recycle":
            self._on_recycle(subject)
        elif kind == "unhealthy":
            self._on_unhealthy(subject)
        elif kind == "changed":
            self._on_change(subject)
        elif kind == "fatal":
            self._begin_stop()
        elif kind == "over_limit":  # issue 12: --limit-max-memory, --limit-max-lifetime
            worker, limit, why = subject
            self._on_over_limit(worker, limit, why)

    def _notify(self, kind: str, worker: WorkerProcess) -> None:
        self._events.put_nowait((kind, worker))

    def handle_sigint(self) -> None:
        self.handle_sigterm()

    def handle_sigterm(self) -> None:
        if self.stopping and not self._cut_delay.is_set():
            logger.info("Draining now (second signal; --shutdown-delay cut short)")
            self._cut_delay.set()
            return
        if self.stopping:
            logger.info("Stopping the workers now (second signal)")
            for worker in self.workers:
                worker.stop(force=True)
            return
        self._begin_stop()

    def handle_sighup(self) -> None:
        if self.stopping:
            return
        if self.config.reload:
            self._on_change(["(SIGHUP)"])
            return
        self._ops.put_nowait(self._rolling_restart)

    def handle_sigttin(self) -> None:
        if self.stopping:
            return
        self.target += 1
        logger.info("SIGTTIN: going to %d workers", self.target)
        self._ops.put_nowait(self._reconcile)

    def handle_sigttou(self) -> None:
        if self.stopping:
            return
        if self.target <= 1:
            logger.info("SIGTTOU ignored: one worker is the fewest")
            return
        self.target -= 1
        logger.info("SIGTTOU: going to %d workers", self.target)
        self._ops.put_nowait(self._reconcile)

    def _on_exit(self, worker: WorkerProcess) -> None:
        if worker in self.workers:
            self.workers.remove(worker)
        worker.close()
        code = worker.exited.result()
        self._count_exit(worker)
        if worker.stop_requested or self.stopping:
            logger.info("Stopped worker [%d]", worker.pid)
            return
        if not worker.ready.result():
            return  # failed at start-up: whoever started it decides (rule 4)
        if worker.unhealthy:
            logger.info("Replacing worker [%d]", worker.pid)
        else:
            logger.error("Worker [%d] died (%s)", worker.pid, describe_exit(code))
        if self.config.reload:
            logger.info("Waiting for a file change to start the app again")
            return
        self._ops.put_nowait(self._reconcile)

    def _on_recycle(self, worker: WorkerProcess) -> None:
        if self.stopping or worker.leaving or worker.state is not State.READY:
            return
        others = [w for w in self._serving() if w is not worker and w.state is State.READY]
        if others:
            # The others keep accepting: it can leave now, so "about N requests" stays
            # about N, and its replacement starts at the same time.
            logger.info("Worker [%d] reached --limit-max-requests; replacing it", worker.pid)
            self._count_recycle("max_requests")
            worker.stop(reason="max_requests")
            self._ops.put_nowait(self._reconcile)
            return
        # The only worker: capacity first (rule 3), it serves until the new one is READY.
        worker.leaving = True
        logger.info(
            "Worker [%d] reached --limit-max-requests; starting its replacement", worker.pid
        )

        self._count_recycle("max_requests")

        async def replace() -> None:
            await self._replace(worker, during="recycle", reason="max_requests")

        self._ops.put_nowait(replace)

    def _on_over_limit(self, worker: WorkerProcess, limit: str, why: str) -> None:
        """Capacity first, whatever the worker count (rule 3): replaced once its
        replacement is READY; the limit is in the log line, the metrics and its exit."""
        if self.stopping or worker.leaving or worker.state is not State.READY:
            return
        worker.leaving = True
        self._count_recycle(limit)
        logger.info("Worker [%d] %s; starting its replacement", worker.pid, why)

        async def replace() -> None:
            await self._replace(worker, during="recycle", reason=limit)

        self._ops.put_nowait(replace)

    def _watch_limits(self, worker: WorkerProcess) -> None:
        """--limit-max-lifetime (a timer) and --limit-max-memory (RSS, sampled)."""
        config = self.config
        loop = asyncio.get_running_loop()

        async def when_ready() -> None:
            if not await worker.ready:
                return
            lifetime = config.limit_max_lifetime
            if lifetime is not None:
                lifetime += random.uniform(0, config.limit_max_lifetime_jitter)
                loop.call_later(lifetime, self._events.put_nowait, (
                    "over_limit",
                    (worker, "max_lifetime",
                     f"served for {lifetime:.0f}s (--limit-max-lifetime)"),
                ))
            limit = config.limit_max_memory
            if limit is not None:
                await self._watch_memory(worker, limit)

        worker.add_task(when_ready())

    async def _watch_memory(self, worker: WorkerProcess, limit_mib: int) -> None:
        # RSS has no change notification: it is sampled (one small /proc read per
        # worker per interval), the one thing this supervisor polls.
        while worker.state is State.READY and not worker.leaving:
            rss = resident_mib(worker.pid)
            if rss is not None and rss > limit_mib:
                self._events.put_nowait((
                    "over_limit",
                    (worker, "max_memory",
                     f"uses {rss:.0f} MiB, over --limit-max-memory {limit_mib}"),
                ))
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(worker.exited), MEMORY_INTERVAL)

    def _on_unhealthy(self, worker: WorkerProcess) -> None:
        if self.stopping or worker.state is not State.READY:
            return
        worker.unhealthy = True
        worker.exit_reason = "unhealthy"
        logger.error(
            "Worker [%d] did not answer its health check within %ss (is its event loop"
            " blocked?); killing it (--timeout-worker-healthcheck)",
            worker.pid,
            self.config.timeout_worker_healthcheck,
        )
        worker.kill()

    def _on_change(self, paths: list[str]) -> None:
        if self.stopping:
            return
        if self._reload_pending is not None:
            self._reload_pending.extend(paths)  # folded into the reload already queued
            return
        self._reload_pending = list(paths)
        self._ops.put_nowait(self._reload)

    # Stopping ----------------------------------------------------------------------------

    def _begin_stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        self.draining = True  # /readyz fails from here on (issue 12)
        self.notifier.stopping()
        if self._operator is not None:
            self._operator.cancel()  # a restart in progress is abandoned
        self._stop_task = asyncio.create_task(self._stop_and_report())

    async def _stop_and_report(self) -> None:
        delay = self.config.shutdown_delay
        if delay and self.workers and self.exit_code == 0:
            # issue 12: the workers keep serving while the load balancer notices /readyz.
            logger.info(
                "Stop requested: failing /readyz and serving for %ss before draining"
                " (--shutdown-delay; CTRL+C again to drain now)",
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cut_delay.wait(), delay)
        self._cut_delay.set()
        await self._stop_all()
        self._events.put_nowait(("stopped", None))

    async def _stop_all(self) -> None:
        workers = list(self.workers)
        if not workers:
            return
        if not any(worker.stop_requested for worker in workers):
            logger.info("Stopping %d worker(s)", len(workers))
        self._close_listeners()  # the drain starts: new clients are refused at once
        for worker in workers:
            worker.stop()
        await asyncio.gather(*(worker.wait_stopped(self.stop_deadline) for worker in workers))
        for worker in workers:
            worker.close()

    # Operations (one at a time, rule 2) ---------------------------------------------------

    async def _operate(self) -> None:
        while True:
            operation = await self._ops.get()
            try:
                await operation()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Supervisor operation failed; stopping the server")
                self.exit_code = 1
                self._events.put_nowait(("fatal", None))

    def _spec(self) -> WorkerSpec:
        config = self.config
        limit = config.limit_max_requests
        if limit is not None and config.limit_max_requests_jitter:
            limit += random.randint(0, config.limit_max_requests_jitter)
        return WorkerSpec(
            config=config,
            fds=[sock.fileno() for sock in self.sockets],
            reuse_port=[sock.getsockname()[:2] for sock in self.reserved],
            request_limit=limit,
            drain_idle=self.drain_idle,
        )

    async def _spawn(self) -> WorkerProcess:
        worker = await WorkerProcess.start(
            self._spec(), notify=self._notify, app_label=app_label(self.config)
        )
        self.workers.append(worker)
        self.state.worker_starts += 1
        config = self.config
        if not config.reload or "timeout_worker_healthcheck" in config.given:
            worker.watch_health(config.timeout_worker_healthcheck)
        if config.limit_max_memory is not None or config.limit_max_lifetime is not None:
            self._watch_limits(worker)
        return worker

    async def _start(self, count: int, *, during: str) -> bool:
        """Start `count` workers at once and wait until all are READY (rule 4 if not)."""
        if during in ("start", "reload") and count > 1:
            # One worker first: an app that cannot start (an import error, a failed
            # lifespan startup) fails once, its error printed once rather than once per
            # worker. Costs one app start-up of latency, only when starting from none.
            return await self._start(1, during=during) and await self._start(
                count - 1, during=during
            )
        started = [await self._spawn() for _ in range(count)]
        results = await asyncio.gather(*(worker.ready for worker in started))
        for worker, ok in zip(started, results, strict=True):
            if ok:
                logger.info("Started worker [%d]", worker.pid)
        if all(results):
            return True
        failed = next(w for w, ok in zip(started, results, strict=True) if not ok)
        for worker in started:
            worker.stop()
        await asyncio.gather(*(w.wait_stopped(self.stop_deadline) for w in started))
        self._startup_failed(failed, during=during)
        return False

    def _startup_failed(self, worker: WorkerProcess, *, during: str) -> None:
        if self.stopping:
            return  # stopped on purpose while starting
        how = describe_exit(worker.exited.result())
        if self.config.reload:
            logger.error(
                "The app failed to start (worker [%d]: %s; the error is above); waiting"
                " for a file change to try again",
                worker.pid,
                how,
            )
        elif during == "sighup":
            logger.error(
                "Rolling restart stopped: a new worker failed to start (%s; the error is"
                " above); the running workers keep serving. Fix it and send SIGHUP again",
                how,
            )
        else:
            logger.error(
                "Worker [%d] failed to start (%s; the error is above); stopping the server",
                worker.pid,
                how,
            )
            self.exit_code = 1
            self._events.put_nowait(("fatal", None))

    async def _start_first(self) -> None:
        if await self._start(self.target, during="start"):
            self.started = True
            self._announce()
            self._notify_ready()
            self.notifier.start_watchdog(asyncio.get_running_loop())

    def _notify_ready(self) -> None:
        count = len(self._serving())
        listeners = self.sockets or self.reserved
        where = ", ".join(describe(sock, scheme=self.scheme) for sock in listeners)
        self.notifier.ready(f"Serving on {where} with {count} worker{'s' if count != 1 else ''}")

    def _serving(self) -> list[WorkerProcess]:
        """Workers that count as capacity: not stopping, not marked for replacement."""
        return [w for w in self.workers if not w.stop_requested and not w.leaving]

    async def _reconcile(self) -> None:
        """Start or stop workers until `target` serve (after a death, SIGTTIN, SIGTTOU)."""
        serving = self._serving()
        missing = self.target - len(serving)
        if missing > 0:
            await self._start(missing, during="replace")
        elif missing < 0:
            extra = serving[:-missing]  # the oldest go first
            for worker in extra:
                worker.stop(reason="scaled_down")
            await asyncio.gather(*(w.wait_stopped(self.stop_deadline) for w in extra))

    async def _replace(
        self, old: WorkerProcess, *, during: str, reason: str = "restarted"
    ) -> bool:
        """Rule 3: the new worker is READY before the old one is asked to leave."""
        old.leaving = True
        new = await self._spawn()
        if not await new.ready:
            old.leaving = False
            self._startup_failed(new, during=during)
            return False
        logger.info("Started worker [%d] in place of worker [%d]", new.pid, old.pid)
        old.stop(reason=reason)
        await old.wait_stopped(self.stop_deadline)
        return True

    async def _rolling_restart(self) -> None:
        old_workers = [w for w in self._serving() if w.state is State.READY]
        logger.info("SIGHUP: restarting %d worker(s) one at a time", len(old_workers))
        self.notifier.reloading(f"Rolling restart of {len(old_workers)} worker(s)")
        try:
            for old in old_workers:
                if old.state is not State.READY or old.stop_requested:
                    continue  # it died meanwhile; _reconcile replaces it
                if not await self._replace(old, during="sighup"):
                    return
            logger.info("Rolling restart done")
        finally:
            if not self.stopping:
                self._notify_ready()

    async def _reload(self) -> None:
        paths, self._reload_pending = self._reload_pending or [], None
        shown = ", ".join(_short(path) for path in paths[:3])
        more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
        logger.info("Detected a change in %s%s; reloading", shown, more)
        self.notifier.reloading("Reloading: " + shown + more)
        old = list(self.workers)
        for worker in old:
            worker.stop(reason="reloaded")
        # The new worker imports the changed code while the old one finishes: the
        # old one has stopped accepting already, and it is done long before the
        # new one's lifespan startup could collide with its shutdown.
        stopped = asyncio.gather(*(w.wait_stopped(self.stop_deadline) for w in old))
        await self._start(self.target, during="reload")
        await stopped
        if not self.stopping:
            self._notify_ready()

    # Metrics and health (issue 12) --------------------------------------------------------

    SCRAPE_PATIENCE = 2.0
    """Seconds a scrape waits for a worker's counters before using its last ones."""

    async def scrape(self) -> bytes:
        """/metrics: every worker's counters plus the retired ones (pier.metrics rule 3)."""
        workers = [w for w in self.workers if w.state is not State.EXITED]
        live = await asyncio.gather(*(w.scrape(self.SCRAPE_PATIENCE) for w in workers))
        # A worker that exited meanwhile was folded into self.retired by _on_exit.
        live = [s for w, s in zip(workers, live, strict=True) if w in self.workers]
        states: dict[str, int] = {}
        for worker in self.workers:
            states[worker.state.value] = states.get(worker.state.value, 0) + 1
        self.state.workers_by_state = states
        self.state.ready = self.ready()[0]
        self.state.draining = self.draining
        return render(sum_snapshots(live, self.retired), self.state)

    def ready(self) -> tuple[bool, str]:
        """/readyz: every wanted worker finished lifespan start-up; no drain has begun."""
        if self.draining:
            return False, "draining"
        ready = sum(1 for w in self.workers if w.state is State.READY and not w.stop_requested)
        if not self.started or ready < self.target:
            return False, f"{ready} of {self.target} workers ready"
        return True, "ok"

    def live(self) -> tuple[bool, str]:
        """/livez: the supervisor answers, and a worker serves or is being started."""
        if self.started and not self.stopping and not any(
            w.state in (State.STARTING, State.READY) for w in self.workers
        ):
            return False, "no worker is running"
        return True, "ok"

    def _count_exit(self, worker: WorkerProcess) -> None:
        self.retired.add(worker.snapshot, gauges=False)
        if worker.exit_reason is not None:
            reason = worker.exit_reason
        elif not worker.ready.result():
            reason = "startup_failed"
        else:
            reason = "died"
        exits = self.state.worker_exits
        exits[reason] = exits.get(reason, 0) + 1

    def _count_recycle(self, limit: str) -> None:
        self.state.recycles[limit] = self.state.recycles.get(limit, 0) + 1

    # Reload ------------------------------------------------------------------------------

    def _start_watcher(self) -> asyncio.Task[None]:
        from pier.supervisor.reload import watch

        self._watch_stop = asyncio.Event()

        def changed(paths: list[str]) -> None:
            self._events.put_nowait(("changed", paths))

        def ended(task: asyncio.Task[None]) -> None:
            if task.cancelled() or task.exception() is None or self.stopping:
                return
            # Reloading silently stopping would be worse than stopping (e.g. inotify's
            # limit: sysctl fs.inotify.max_user_watches).
            logger.error(
                "Watching files for --reload failed (%s: %s); stopping the server",
                type(task.exception()).__name__,
                task.exception(),
            )
            self.exit_code = 1
            self._events.put_nowait(("fatal", None))

        task = asyncio.create_task(watch(self.config, changed, self._watch_stop))
        task.add_done_callback(ended)
        return task


def resident_mib(pid: int) -> float | None:
    """A process's resident set size in MiB (Linux /proc), or None if unknown or gone."""
    try:
        with open(f"/proc/{pid}/statm") as file:
            pages = int(file.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * PAGE_SIZE / (1024 * 1024)


def _short(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative
