"""The server: start-up, serving, graceful shutdown. The asyncio side of one process.

Rules:
1. `serve()` runs the phases in order: load the app, lifespan startup, bind, serve
   until told to stop, drain, lifespan shutdown. A failure before serving raises a
   PierError (the CLI turns it into one line and exit code 1).
2. Signals only set a flag and wake the main coroutine (design habit 6): SIGINT or
   SIGTERM once starts a graceful shutdown, twice skips the wait for in-flight work.
3. Graceful shutdown: stop accepting, close idle keep-alive connections, let requests
   in flight (and the tasks they spawned) finish within --timeout-graceful-shutdown,
   then cancel what is left, then run lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import ssl
import threading
from collections.abc import Callable
from email.utils import formatdate
from functools import partial
from typing import TYPE_CHECKING, Any

from pier.asgi.lifespan import Lifespan, command_line_option
from pier.collector import YoungThreshold, freeze_startup_heap, set_young_threshold
from pier.errors import PierError
from pier.io.context import ServerContext
from pier.io.deadlines import DeadlineSweep, resolution_for
from pier.io.lifecycle import describe_requests
from pier.io.metered import h1_connection_class
from pier.io.sockets import bind_sockets, describe
from pier.logging import TRACE, traced_app
from pier.proto.limits import H2Limits, Limits

if TYPE_CHECKING:
    from pier.config import Config
    from pier.io.admin import AdminServer
    from pier.metrics import Snapshot

logger = logging.getLogger("pier.error")

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
DISCONNECT_GRACE = 1.0
"""Seconds an app gets, after the graceful timeout closed its connection, to notice the
disconnect and return before its task is cancelled (issue 12)."""


class Server:
    """One pier server in one process: `await Server(config).serve()`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = False
        self.force_exit = False
        self._should_exit = False
        self._exit_event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started_flag = threading.Event()
        self.servers: list[asyncio.Server] = []
        self.bound_addresses: list[Any] = []
        self.listening_on: list[str] = []
        """The listeners as URLs ("http://127.0.0.1:8000"), for status lines."""
        self.ctx: ServerContext | None = None
        self._lifespan: Lifespan | None = None
        self._date_timer: asyncio.TimerHandle | None = None
        self._young: YoungThreshold | None = None
        self._young_timer: asyncio.TimerHandle | None = None
        self._sweep: DeadlineSweep | None = None
        # --- hooks for a worker process (issue 5: pier.supervisor, pier.workers) ----------
        self.ssl_context: ssl.SSLContext | None = None  # built from --ssl-* in serve()
        self.request_limit: int | None = None
        """Call on_request_limit (default: stop gracefully) once this many requests ran."""
        self.on_request_limit: Callable[[], None] | None = None
        self.on_started: Callable[[], None] | None = None
        """Called on the loop once the server listens (a worker tells its supervisor)."""
        self.on_stopping: Callable[[], None] | None = None
        """Called on the loop when a stop is asked for (issue 12: systemd STOPPING=1)."""
        self.tune_gc = False
        """Apply --gc-threshold and --gc-freeze (pier.collector): set by the entry points
        that own the process (pier's command, pier.run(), a worker), not by embedders."""
        self.announce = True
        """Log "Listening on"; a supervisor that shares its sockets announces them itself."""
        self.drain_idle = 0.0
        """Seconds idle keep-alive connections may still carry one request at shutdown."""
        self.spell_option: Callable[[str, str], str] = command_line_option
        """How hints name a setting (a gunicorn worker has no command line of its own)."""
        # --- issue 12: admin listener, readiness, --shutdown-delay -----------------------
        self.serve_admin = True
        """Serve --metrics-bind here; a worker leaves it to its supervisor."""
        self.admin: AdminServer | None = None
        self.draining = False
        """True from the moment a stop was asked for (/readyz fails from then on)."""
        self.shutdown_delay: float = config.shutdown_delay
        """Seconds between the stop signal and the drain (a worker's supervisor waits)."""
        self._in_delay = False

    # Control (thread-safe) ----------------------------------------------------------

    @property
    def should_exit(self) -> bool:
        return self._should_exit

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self._should_exit = value
        if value:
            self.wake()

    def wake(self) -> None:
        """Make the serving loop look at should_exit now (callable from any thread)."""
        loop, event = self._loop, self._exit_event
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def wait_started(self, timeout: float | None = None) -> bool:
        """Block until the server listens (or failed to start); for tests and embedding."""
        return self._started_flag.wait(timeout)

    def handle_exit(self, signum: int, frame: Any = None) -> None:
        if self._in_delay:
            # issue 12: a second signal during --shutdown-delay starts the drain now (a
            # third one skips the wait for in-flight work), as in the supervisor.
            self._in_delay = False
            logger.info("Draining now (second signal; --shutdown-delay cut short)")
            self.wake()
            return
        if self._should_exit and signum == signal.SIGINT:
            self.force_exit = True
        if self._should_exit:
            self.force_exit = True
        self.should_exit = True

    def statistics(self) -> dict[str, int]:
        ctx = self.ctx
        if ctx is None:
            return {"connections": 0, "requests": 0, "tasks": 0, "total_connections": 0}
        return {
            "connections": len(ctx.connections),
            "requests": ctx.total_requests,
            "tasks": len(ctx.tasks),
            "total_connections": ctx.total_connections,
        }

    # Running ------------------------------------------------------------------------

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        """Run serve() on a new event loop of the configured kind."""
        with asyncio.Runner(loop_factory=loop_factory(self.config.loop)) as runner:
            runner.run(self.serve(sockets))

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await self._serve(sockets)
        finally:
            self._started_flag.set()

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._exit_event = asyncio.Event()
        if self._should_exit:
            self._exit_event.set()
        # The lines uvicorn prints, which scripts and people wait for.
        logger.info("Started server process [%d]", os.getpid())
        if config.metrics_bind is not None and self.serve_admin:
            # Before the app loads: /readyz answers 503 during lifespan start-up.
            self.admin = self._admin_server(config.metrics_bind)
            await self.admin.start()
        try:
            await self._serve_app(sockets)
        finally:
            if self.admin is not None:
                await self.admin.close()

    async def _serve_app(self, sockets: list[socket.socket] | None) -> None:
        from pier.app.loader import load_app

        config = self.config
        loop = asyncio.get_running_loop()
        assert self._exit_event is not None
        if self.tune_gc and config.gc_threshold is not None:
            set_young_threshold(config.gc_threshold)
            self._young = YoungThreshold(config.gc_threshold, config.gc_threshold_per_connection)
        app = load_app(
            config.app,
            factory=config.factory,
            interface=config.interface,
            app_dir=config.app_dir,
            wsgi_threads=config.wsgi_threads,
            wsgi_multiprocess=config.workers > 1,
        )
        ctx = self.ctx = self._context(app, loop)
        if self.request_limit is not None:
            self._watch_request_limit(ctx, self.request_limit)
        self._lifespan = Lifespan(
            app, mode=config.lifespan, state=ctx.lifespan_state, spell=self.spell_option
        )
        if self._lifespan.supported:
            logger.info("Waiting for application startup.")
        await self._lifespan.startup()
        if self._lifespan.supported:
            logger.info("Application startup complete.")
        ctx.choose_task_starter()
        if self.tune_gc and config.gc_freeze:
            frozen = freeze_startup_heap()
            logger.debug("Froze %d objects alive after start-up (--gc-freeze)", frozen)
        # Installed before the first "Listening on" line: whoever waits for that line and
        # then sends SIGTERM gets a graceful stop, not the default action's exit -15.
        restore = self._install_signal_handlers(loop)
        try:
            try:
                if config.ssl_certfile is not None:
                    from pier.io.tls import create_ssl_context

                    self.ssl_context = create_ssl_context(config)
                if sockets is None:
                    sockets = bind_sockets(config)
                await self._listen(ctx, sockets)
            except BaseException:
                with contextlib.suppress(PierError):
                    await self._lifespan.shutdown()
                raise
            self._sweep = DeadlineSweep(
                loop,
                ctx.connections,
                resolution_for(config.timeout_keep_alive, config.timeout_request_header),
            )
            self._sweep.start()
            if self._young is not None and self._young.following:
                self._follow_connections(ctx)
            self.started = True
            self._started_flag.set()
            if self.on_started is not None:
                self.on_started()
            try:
                await self._exit_event.wait()
                await self._delay_shutdown()
            finally:
                await self._shutdown(ctx)
        finally:
            # issue 5: restored only after the drain, so that a second SIGTERM
            # (a supervisor's "stop now") forces the shutdown (rule 2) instead of
            # killing the process with the default action half-way.
            restore()

    async def _delay_shutdown(self) -> None:
        """issue 12, --shutdown-delay: fail /readyz, keep serving, then drain."""
        self.draining = True
        if self.on_stopping is not None:
            self.on_stopping()
        delay = self.shutdown_delay
        if not delay or self.force_exit:
            return
        logger.info(
            "Stop requested: failing /readyz and serving for %ss before draining"
            " (--shutdown-delay; CTRL+C again to drain now)",
            delay,
        )
        assert self._exit_event is not None
        self._exit_event.clear()
        self._in_delay = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._exit_event.wait(), delay)
        self._in_delay = False

    # issue 12: the admin listener of a server without a supervisor ------------------------

    def _admin_server(self, bind: str) -> AdminServer:
        from pier.io.admin import AdminServer

        def ready() -> tuple[bool, str]:
            if self.draining:
                return False, "draining"
            if not self.started:
                return False, "starting (lifespan start-up not complete)"
            return True, "ok"

        async def metrics() -> bytes:
            from pier.metrics import ServerState, render

            state = ServerState(
                workers_by_state={"ready": 1} if self.started else {"starting": 1},
                worker_starts=1,
                ready=ready()[0],
                draining=self.draining,
            )
            return render(self.metrics_snapshot(), state)

        return AdminServer(
            bind,
            metrics=metrics,
            live=lambda: (True, "ok"),
            ready=ready,
            backlog=self.config.backlog,
        )

    def metrics_snapshot(self) -> Snapshot:
        """This process's counters and gauges (issue 12; empty with metrics off)."""
        from pier.io.metered import open_connections
        from pier.metrics import Snapshot

        ctx = self.ctx
        if ctx is None or ctx.metrics is None:
            return Snapshot()
        return ctx.metrics.snapshot(
            in_flight=len(ctx.tasks), connections=open_connections(ctx.connections)
        )

    def _context(self, app: Any, loop: asyncio.AbstractEventLoop) -> ServerContext:
        config = self.config
        proxy = None
        if config.proxy_headers:
            from pier.asgi.proxy import TrustedHosts

            proxy = TrustedHosts(config.forwarded_allow_ips)
        access = None
        if config.access_log:
            from pier.logging import AccessLog

            candidate = AccessLog(
                fmt=config.access_log_format, structured=config.log_format == "json"
            )
            access = candidate if candidate.enabled else None
        ctx = ServerContext(
            # --log-level trace: every ASGI message logged (types and sizes only).
            app=traced_app(app) if logger.isEnabledFor(TRACE) else app,
            loop=loop,
            app_name=app_name(config.app),
            app_interface=getattr(app, "interface", "ASGI"),
            limits=Limits(
                head_size=config.limit_request_head_size,
                fields=config.limit_request_fields,
                field_size=config.limit_request_field_size,
                request_line=config.limit_request_line,
                body=config.limit_request_body,
            ),
            root_path=config.root_path,
            timeout_keep_alive=config.timeout_keep_alive,
            timeout_request_header=config.timeout_request_header,
            timeout_send=config.timeout_send,
            timeout_response_start=config.timeout_response_start,
            limit_concurrency=config.limit_concurrency,
            proxy=proxy,
            access_log=access,
            reset_contextvars=config.reset_contextvars,
            h2_limits=_h2_limits(config),
            debug=logger.isEnabledFor(logging.DEBUG),
        )
        if config.metrics_bind is not None:
            # issue 12: the recorder takes the access log's call (pier.metrics rule 1).
            from pier.metrics import Recorder

            ctx.metrics = Recorder(access)
            ctx.access_log = ctx.metrics
        # WebSocket (issue 3): with --ws none, ws_handler stays None and upgrade
        # requests are answered as plain HTTP.
        if config.ws != "none":
            try:
                from pier.io.websocket import handler_from_config
            except ModuleNotFoundError as exc:
                if not (exc.name or "").startswith("websockets") or config.ws != "auto":
                    raise PierError(
                        f"--ws {config.ws} needs the websockets library ({exc});"
                        " pip install websockets, or use --ws none"
                    ) from None
                logger.warning(
                    "WebSocket support is off: the websockets library is not installed"
                    " (pip install websockets); upgrade requests get plain HTTP answers"
                )
            else:
                ctx.ws_handler = handler_from_config(ctx, config)
        self._static_headers = _static_headers(config)
        self._refresh_date(ctx)
        return ctx

    def _refresh_date(self, ctx: ServerContext) -> None:
        date = b""
        if self.config.date_header:
            date = b"date: " + formatdate(usegmt=True).encode("ascii") + b"\r\n"
        ctx.default_headers = date + self._static_headers
        # Refresh on the next whole second, so the header is right to the second.
        loop = ctx.loop
        now = loop.time()
        self._date_timer = loop.call_at(int(now) + 1.0, self._refresh_date, ctx)

    def _follow_connections(self, ctx: ServerContext) -> None:
        """Once a second: the young threshold for the connections open (pier.collector)."""
        young = self._young
        assert young is not None
        young.follow(len(ctx.connections))
        if young.following:
            self._young_timer = ctx.loop.call_later(1.0, self._follow_connections, ctx)

    async def _listen(self, ctx: ServerContext, sockets: list[socket.socket]) -> None:
        loop = ctx.loop
        factory = connection_factory(
            ctx, tls=self.ssl_context is not None, only_h2=self.config.http == "2"
        )
        if self.config.proxy_protocol != "off":
            factory = self._proxy_protocol_gate(factory)
        scheme = "http" if self.ssl_context is None else "https"
        ctx.tls = self.ssl_context is not None
        if len(sockets) == 1 and self.config.proxy_protocol == "off":
            ctx.server_address = shared_address(sockets[0])
        for sock in sockets:
            server = await loop.create_server(
                factory, sock=sock, backlog=self.config.backlog, ssl=self.ssl_context
            )
            self.servers.append(server)
            name = sock.getsockname()
            self.bound_addresses.append(name)
            self.listening_on.append(describe(sock, scheme=scheme))
            if self.announce:
                logger.info("Listening on %s (Press CTRL+C to quit)", self.listening_on[-1])

    def _proxy_protocol_gate(
        self, make: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """issue 12, --proxy-protocol: every connection reads the header first."""
        from pier.asgi.proxy import TrustedHosts
        from pier.io.proxy_protocol import ProxyProtocolGate

        config = self.config
        trusted = TrustedHosts(config.forwarded_allow_ips)

        def gate() -> asyncio.Protocol:
            return ProxyProtocolGate(
                make,
                version=config.proxy_protocol,
                trusted=trusted,
                timeout=config.timeout_request_header,
            )

        return gate

    def _watch_request_limit(self, ctx: ServerContext, limit: int) -> None:
        # issue 5, --limit-max-requests: on_idle runs when a request's app task ends
        # (and when a connection closes), so the count is checked per request at no
        # cost to servers without a limit. _shutdown() replaces on_idle for itself.
        def check() -> None:
            if ctx.total_requests >= limit and not ctx.shutting_down:
                ctx.on_idle = None
                if self.on_request_limit is not None:
                    self.on_request_limit()
                else:
                    logger.info("Served %d requests (the request limit); stopping", limit)
                    self.should_exit = True

        ctx.on_idle = check

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        installed = []
        for signum in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(signum, self.handle_exit, signum, None)
            except (NotImplementedError, RuntimeError):
                continue
            installed.append(signum)

        def restore() -> None:
            for signum in installed:
                loop.remove_signal_handler(signum)

        return restore

    async def _shutdown(self, ctx: ServerContext) -> None:
        logger.info("Shutting down")
        if self._date_timer is not None:
            self._date_timer.cancel()
        if self._young_timer is not None:
            self._young_timer.cancel()
        for server in self.servers:
            server.close()
        ctx.shutting_down = True
        drained = asyncio.Event()

        def check_idle() -> None:
            if not ctx.connections and not ctx.tasks:
                drained.set()

        ctx.on_idle = check_idle
        if self.drain_idle and not self.force_exit:
            # issue 5: a worker replaced under load. A keep-alive connection that sits
            # between two requests may have the next one on the wire already; closing
            # it now loses that request (RFC 9112 section 9.6 allows the close, but the
            # client sees a failure). Serving ctx.shutting_down answers every request
            # from here on with "Connection: close"; only what stays idle is closed.
            check_idle()
            idle_waiter = asyncio.ensure_future(drained.wait())
            await asyncio.wait([idle_waiter], timeout=self.drain_idle)
            idle_waiter.cancel()
        for connection in list(ctx.connections):
            connection.shutdown()
        check_idle()
        if not drained.is_set() and not self.force_exit:
            timeout = self.config.timeout_graceful_shutdown
            logger.info(
                "Waiting for %d connection(s) and %d task(s) to finish"
                " (up to %ss, --timeout-graceful-shutdown; CTRL+C again to stop now)",
                len(ctx.connections),
                len(ctx.tasks),
                timeout,
            )
            waiter = asyncio.ensure_future(drained.wait())
            forced = asyncio.ensure_future(self._wait_forced())
            await asyncio.wait(
                [waiter, forced], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            forced.cancel()
        if not drained.is_set():
            logger.warning(
                "Graceful shutdown timed out (--timeout-graceful-shutdown %ss): closing"
                " %d connection(s), then cancelling what is left of %d task(s)",
                self.config.timeout_graceful_shutdown,
                len(ctx.connections),
                len(ctx.tasks),
            )
            running = describe_requests(ctx.tasks)
            if running:
                logger.warning(
                    "Requests cut by the graceful shutdown timeout: %s", "; ".join(running)
                )
            # issue 12: the connections close first, so a streaming response (SSE) sees
            # http.disconnect and a WebSocket app websocket.disconnect, and each gets
            # DISCONNECT_GRACE to end on its own before it is cancelled.
            for connection in list(ctx.connections):
                connection.transport.abort()
            if ctx.tasks and not self.force_exit:
                await asyncio.wait(list(ctx.tasks), timeout=DISCONNECT_GRACE)
            for task in list(ctx.tasks):
                task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(drained.wait(), 2.0)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self._sweep is not None:
            self._sweep.stop()
        if self._lifespan is not None and self._lifespan.supported:
            await self._lifespan_shutdown(self._lifespan)
        logger.info("Finished server process [%d]", os.getpid())

    async def _lifespan_shutdown(self, lifespan: Lifespan) -> None:
        """Run the app's lifespan shutdown; a signal that arrives meanwhile cuts it short.

        The app's clean-up has no time limit of its own (it may flush or close what it
        must), but one that hangs must not leave a process only SIGKILL ends: CTRL+C
        again (or a supervisor's second SIGTERM) stops waiting for it.
        """
        assert self._exit_event is not None
        logger.info("Waiting for application shutdown.")
        self._exit_event.clear()
        shutdown = asyncio.ensure_future(lifespan.shutdown())
        signalled = asyncio.ensure_future(self._exit_event.wait())
        await asyncio.wait([shutdown, signalled], return_when=asyncio.FIRST_COMPLETED)
        signalled.cancel()
        if shutdown.done():
            shutdown.result()
            logger.info("Application shutdown complete.")
            return
        shutdown.cancel()
        await lifespan.abandon()
        logger.warning("Application shutdown cut short by a second signal: not complete.")

    async def _wait_forced(self) -> None:
        assert self._exit_event is not None
        while not self.force_exit:
            self._exit_event.clear()
            await self._exit_event.wait()


def connection_factory(
    ctx: ServerContext, *, tls: bool, only_h2: bool = False
) -> Callable[[], asyncio.Protocol]:
    """The protocol object for each accepted connection: where a protocol is chosen.

    Every protocol returned here is also an io/context.py `Connection` (the server uses
    nothing else of it; connection_made adds it to ctx.connections) and hands each
    request to io/lifecycle.py. Today every TCP connection starts as HTTP/1.1. HTTP/2
    plugs in here: on TLS the ALPN protocol is known once the handshake is done
    (connection_made: transport.get_extra_info("ssl_object").selected_alpn_protocol()),
    and on cleartext by the client's first bytes (the "PRI * HTTP/2.0" preface) or an
    `Upgrade: h2c` request; in the last two cases H1Connection hands its transport
    over, as it does to the WebSocket glue (ctx.ws_handler). A QUIC listener (HTTP/3)
    would be a datagram endpoint beside these, with its own factory.
    """
    # --log-level debug and --metrics-bind: subclasses that log / count per connection.
    # A partial, not a closure: called per connection, and it makes no Python frame.
    h1: Callable[[], asyncio.Protocol] = partial(h1_connection_class(ctx), ctx)
    limits = ctx.h2_limits
    if limits is None:
        return h1
    from pier.io.h2 import ALPNSelector, H2Connection

    if tls:
        return lambda: ALPNSelector(ctx, limits, only_h2=only_h2)
    if only_h2:
        return lambda: H2Connection(ctx, limits)
    return h1  # it hands prior-knowledge and h2c connections over


def shared_address(sock: socket.socket) -> tuple[str, int] | None:
    """The address every connection accepted on `sock` has as its own, if it is known.

    A TCP socket bound to one address (not 0.0.0.0 or ::) accepts connections on that
    address only, so scope["server"] is the listening address, read here once rather
    than asked of every connection's transport (issue 13: ~3k instructions each).
    None where each connection must be asked: a wildcard or link-local (scoped)
    address, a Unix socket.
    """
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    name = sock.getsockname()
    host = name[0]
    if not isinstance(host, str) or "%" in host or ipaddress.ip_address(host).is_unspecified:
        return None
    return (host, int(name[1]))


def _h2_limits(config: Config) -> H2Limits | None:
    # Imported here: the h2 library is loaded only when HTTP/2 may be spoken.
    if getattr(config, "http", "auto") == "1":
        return None
    from pier.io.h2 import h2_limits

    return h2_limits(config)


def app_name(app: Any) -> str:
    """How log lines name the app: its import string, else its qualified name."""
    if isinstance(app, str):
        return app
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    return f"{getattr(app, '__module__', None) or '?'}:{name}"


def _static_headers(config: Config) -> bytes:
    lines = []
    if config.server_header:
        lines.append(b"server: pier\r\n")
    for name, value in config.headers:
        lines.append(name.encode("latin-1") + b": " + value.encode("latin-1") + b"\r\n")
    return b"".join(lines)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """The event loop constructor for --loop auto|asyncio|uvloop."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise PierError(
                    "--loop uvloop, but uvloop is not installed: pip install uvloop"
                    " (or use --loop asyncio)"
                ) from None
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def log_startup_error(exc: PierError) -> None:
    """A start-up failure: one line, and at --log-level debug the traceback behind it."""
    logger.error("%s", exc)
    cause = exc.__cause__
    if cause is not None and logger.isEnabledFor(logging.DEBUG):
        logger.debug("The traceback behind that error:", exc_info=cause)
