"""pier inside gunicorn's process manager: `gunicorn -k pier.workers.PierWorker main:app`.

Rules:
1. gunicorn owns the processes: binding (--bind, --reuse-port), the number of workers,
   replacing them, --max-requests with its jitter, --graceful-timeout, the --timeout
   heartbeat and logging. pier owns HTTP inside each worker: a pier.io.server.Server
   serving gunicorn's listening sockets.
2. gunicorn settings map onto pier options in `PierWorker.pier_options` (one table):
   keepalive, graceful_timeout, limit_request_line/_fields/_field_size,
   forwarded_allow_ips, root_path, backlog and the TLS settings (certfile, keyfile,
   ca_certs, cert_reqs, ciphers). Anything else a subclass sets in CONFIG_KWARGS.
3. pier's loggers write through gunicorn's handlers: pier.error through the error log
   (at gunicorn's --log-level), pier.access through the access log, only when gunicorn
   has one (--access-logfile); the line format is pier's.
4. Signals follow gunicorn: SIGTERM graceful stop, SIGQUIT (the arbiter's quick stop)
   stops now, SIGINT is graceful and stops now when repeated (pier's rule), SIGUSR1
   reopens the log files, SIGABRT (gunicorn's --timeout) exits at once. A start-up
   failure (failed lifespan startup) exits with gunicorn's boot-error code 3, so the
   arbiter stops instead of restarting the worker in a loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from typing import Any, ClassVar

from gunicorn.workers.base import Worker

from pier.config import Config
from pier.errors import PierError
from pier.io.server import Server, loop_factory

__all__ = ["PierWorker"]

WORKER_BOOT_ERROR = 3  # gunicorn.arbiter.Arbiter.WORKER_BOOT_ERROR: stop, do not respawn
DRAIN_IDLE = 0.5  # as pier.supervisor.manager.DRAIN_IDLE: restarts fail no request


class PierWorker(Worker):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn worker class that serves ASGI apps with pier."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto"}
    """pier options for every worker of this class; subclass to change them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.server: Server | None = None
        self._route_logs()

    # gunicorn settings -> pier ------------------------------------------------------------

    def pier_options(self) -> dict[str, Any]:
        cfg = self.cfg
        head_limit = 65536  # pier's --limit-request-head-size default
        options: dict[str, Any] = {
            "timeout_keep_alive": float(cfg.keepalive),
            "timeout_graceful_shutdown": float(cfg.graceful_timeout),
            # gunicorn's 0 means "no limit of its own": the head-size limit still applies.
            "limit_request_line": cfg.limit_request_line or head_limit,
            "limit_request_fields": cfg.limit_request_fields or 32768,
            "limit_request_field_size": cfg.limit_request_field_size or head_limit,
            "forwarded_allow_ips": _ips(cfg.forwarded_allow_ips),
            "backlog": cfg.backlog,
            "access_log": bool(cfg.accesslog),
            "log_level": _pier_level(self.log.error_log.getEffectiveLevel()),
        }
        root_path = getattr(cfg, "root_path", "")
        if root_path:
            options["root_path"] = root_path
        if cfg.is_ssl:
            options.update(
                ssl_certfile=cfg.certfile,
                ssl_keyfile=cfg.keyfile,
                ssl_ca_certs=cfg.ca_certs,
                ssl_cert_reqs=cfg.cert_reqs,
                ssl_ciphers=cfg.ciphers,
            )
            password = getattr(cfg, "keyfile_password", None)
            if password:
                options["ssl_keyfile_password"] = password
        options.update(self.CONFIG_KWARGS)
        return options

    def _route_logs(self) -> None:
        pier_logger = logging.getLogger("pier")
        pier_logger.handlers = list(self.log.error_log.handlers)
        pier_logger.setLevel(self.log.error_log.level)
        pier_logger.propagate = False
        access = logging.getLogger("pier.access")
        if self.cfg.accesslog:
            access.handlers = list(self.log.access_log.handlers)
            access.setLevel(logging.INFO)
            access.disabled = False
        else:
            access.handlers = []
            access.setLevel(logging.CRITICAL + 1)  # pier skips building access lines
        access.propagate = False

    # gunicorn's worker protocol -----------------------------------------------------------

    def run(self) -> None:
        # gunicorn's init_signals() handlers cover the app import; from here the event
        # loop's handlers replace them, because a Python-level handler that raises
        # SystemExit in the middle of the loop would skip the graceful shutdown.
        if not self.alive:  # SIGTERM while the app was importing
            return
        config = Config(self.wsgi, **self.pier_options())
        server = self.server = Server(config)
        server.announce = False  # gunicorn logged "Listening at" already
        server.tune_gc = True  # a gunicorn worker process serves only this app
        server.drain_idle = DRAIN_IDLE
        server.spell_option = gunicorn_option
        if self.cfg.max_requests > 0:
            server.request_limit = self.max_requests  # gunicorn added the jitter
            server.on_request_limit = self._leave_after_max_requests
        sockets = [listener.sock for listener in self.sockets]
        try:
            with asyncio.Runner(loop_factory=loop_factory(config.loop)) as runner:
                runner.run(self._serve(server, sockets))
        except PierError as exc:
            logging.getLogger("pier.error").error("%s", exc)
            sys.exit(WORKER_BOOT_ERROR if not server.started else 1)

    async def _serve(self, server: Server, sockets: list[Any]) -> None:
        loop = asyncio.get_running_loop()
        self._install_loop_signals(loop, server)
        if not self.alive:
            # SIGTERM came after run() looked and before the loop's handlers were in
            # place: gunicorn's handler only cleared `alive`. Stop instead of serving
            # until the arbiter's graceful timeout kills us.
            server.should_exit = True
        heartbeat = _Heartbeat(self, server, loop)
        heartbeat.beat()
        try:
            await server.serve(sockets)
        finally:
            heartbeat.stop()

    def _install_loop_signals(self, loop: asyncio.AbstractEventLoop, server: Server) -> None:
        def stop_now() -> None:
            self.alive = False
            server.force_exit = True
            server.should_exit = True

        def graceful() -> None:
            self.alive = False
            server.handle_exit(signal.SIGTERM)

        def abort() -> None:
            self.alive = False
            self.cfg.worker_abort(self)
            os._exit(1)  # gunicorn's --timeout expired: the loop is not trusted any more

        # The Server adds its own SIGINT/SIGTERM handlers while it serves; SIGTERM
        # there is graceful too, and a second one forces, as here.
        loop.add_signal_handler(signal.SIGTERM, graceful)
        loop.add_signal_handler(signal.SIGQUIT, stop_now)
        loop.add_signal_handler(signal.SIGINT, graceful)
        loop.add_signal_handler(signal.SIGUSR1, self.log.reopen_files)
        loop.add_signal_handler(signal.SIGABRT, abort)
        loop.add_signal_handler(signal.SIGWINCH, lambda: None)

    def _leave_after_max_requests(self) -> None:
        self.log.info("Autorestarting worker after current request (--max-requests)")
        self.alive = False
        if self.server is not None:
            self.server.should_exit = True


class _Heartbeat:
    """Tell gunicorn's arbiter the event loop is alive; notice when the arbiter is gone."""

    def __init__(self, worker: PierWorker, server: Server, loop: asyncio.AbstractEventLoop):
        self.worker = worker
        self.server = server
        self.loop = loop
        # worker.timeout is half of gunicorn's --timeout already; 0 turns it off.
        self.interval = worker.timeout if worker.timeout else 1.0
        self._handle: asyncio.TimerHandle | None = None

    def beat(self) -> None:
        worker = self.worker
        worker.notify()  # a blocked loop misses this, and the arbiter kills the worker
        if worker.ppid != os.getppid():
            worker.log.info("Parent changed, shutting down: %s", worker)
            self.server.should_exit = True
        self._handle = self.loop.call_later(self.interval, self.beat)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()


def gunicorn_option(name: str, value: str) -> str:
    """How a gunicorn user sets a pier option: gunicorn's command line has no place."""
    return (
        f"CONFIG_KWARGS = {{{name!r}: {value!r}}} in a subclass of pier.workers.PierWorker"
        " (gunicorn -k yourmodule.YourWorker)"
    )


def _ips(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def _pier_level(level: int) -> str:
    for name, number in (("debug", 10), ("info", 20), ("warning", 30), ("error", 40)):
        if level <= number:
            return name
    return "critical"
