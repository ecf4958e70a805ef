"""What every connection of one server shares, in one object (design habit 9).

Rules: built once by the server from Config; connections read it and touch only the
counters and the two sets. Nothing here does I/O beyond one rate-limited log line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pier.io.tasks import task_starter
from pier.io.throttle import Throttle
from pier.proto.limits import H2Limits, Limits
from pier.types import ASGIApp

logger = logging.getLogger("pier.error")

if TYPE_CHECKING:
    from pier.asgi.proxy import TrustedHosts
    from pier.logging import AccessLog
    from pier.metrics import Recorder


class Connection(Protocol):
    """What the server needs of every connection it serves, whatever the protocol.

    H1Connection (io/connection.py) and WSProtocol (io/websocket.py) today; an HTTP/2
    connection and a QUIC endpoint's connections later. io/server.py picks the class
    per connection (`connection_factory`) and only ever uses these members.
    """

    # Loop time by which the client must act, read by the deadline sweep (io/deadlines.py).
    deadline: float

    @property
    def transport(self) -> asyncio.Transport:
        """Aborted when graceful shutdown runs out of time."""

    def deadline_passed(self) -> None:
        """The deadline passed: close (or answer 408) as the protocol requires."""

    def shutdown(self) -> None:
        """Graceful stop: close when idle, else after the work in flight."""


@dataclass(slots=True, eq=False)
class ServerContext:
    app: ASGIApp
    loop: asyncio.AbstractEventLoop
    limits: Limits
    # How log lines name the app ("main:app"), so the operator knows whose bug it is.
    app_name: str = "the ASGI app"
    # "ASGI", or "WSGI" for an app served through pier.wsgi: named in the error lines.
    app_interface: str = "ASGI"
    root_path: str = ""
    # issue 13: what every connection's ConnectionInfo shares, worked out once per server
    # instead of once per connection. tls: connections are TLS (the ssl_object lookup is
    # made); server_address: the address every accepted connection has as its own, when
    # that is known from the listening socket (io/server.py), else None (looked up).
    tls: bool = False
    server_address: tuple[str, int] | None = None
    timeout_keep_alive: float = 5.0
    timeout_request_header: float = 10.0
    # --timeout-send, --timeout-response-start (io/lifecycle.py); None: no limit.
    timeout_send: float | None = 60.0
    timeout_response_start: float | None = None
    limit_concurrency: int | None = None
    proxy: TrustedHosts | None = None
    access_log: AccessLog | Recorder | None = None
    reset_contextvars: bool = False  # --reset-contextvars: app tasks get a fresh Context
    # issue 12, --metrics-bind: the counters (also in access_log's place; pier.metrics).
    metrics: Recorder | None = None
    # --log-level debug, decided once at start-up so that the hot path tests a plain
    # attribute, never the logging machinery (design habit 8). (trace wraps ctx.app.)
    debug: bool = False
    # "server: pier\r\ndate: ...\r\n" plus --header lines; refreshed once a second.
    default_headers: bytes = b""
    lifespan_state: dict[str, Any] = field(default_factory=dict)
    # HTTP/2's settings and bounds (issue 9); None when --http 1.
    h2_limits: H2Limits | None = None
    # Rate limit of the warnings that name a limit (--limit-concurrency, HTTP/2's).
    warnings: Throttle = field(default_factory=Throttle)
    # Takes over upgraded connections (io/websocket.py); None when --ws none.
    ws_handler: Callable[..., Any] | None = None
    connections: set[Connection] = field(default_factory=set)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    total_requests: int = 0
    total_connections: int = 0
    shutting_down: bool = False
    # Called when a connection closes or a task ends, so shutdown can wait on an event.
    on_idle: Callable[[], None] | None = None
    # Starts an app's Task on this loop (io/tasks.py), the same way for every protocol.
    start_task: Callable[[Any], asyncio.Task[None]] = field(init=False)
    raw_root_path: bytes = field(init=False)
    # A new connection's first deadline: idle, or its first request head, whichever is
    # shorter (io/connection.py connection_made).
    first_wait: float = field(init=False)

    def __post_init__(self) -> None:
        self.choose_task_starter()
        self.raw_root_path = self.root_path.encode("utf-8")
        self.first_wait = min(self.timeout_keep_alive, self.timeout_request_header)

    def choose_task_starter(self) -> None:
        """Decide how app Tasks start (io/tasks.py): when the context is made, and again
        once lifespan startup has run, where an app may set the loop's task factory."""
        self.start_task = task_starter(self.loop, fresh_context=self.reset_contextvars)

    def over_capacity(self) -> bool:
        # Counts requests in flight (app tasks), not connections: idle keep-alive
        # connections cost a few KiB and should not turn real requests away.
        limit = self.limit_concurrency
        return limit is not None and len(self.tasks) >= limit

    def warn_over_capacity(self) -> None:
        """Tell the operator why clients get 503 (at most once per interval)."""
        if self.metrics is not None:
            self.metrics.refused(503)
        if self.warnings.allows("--limit-concurrency"):
            logger.warning(
                "Answering 503: %d requests in flight reached --limit-concurrency %s"
                " (raise it, or add workers, if the server has capacity to spare)",
                len(self.tasks),
                self.limit_concurrency,
            )
