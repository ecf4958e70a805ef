"""--metrics-bind: the HTTP/1.1 connection with connection and refusal counting.

Rules: the server uses `MeteredH1Connection` instead of H1Connection only when metrics
are on, for what happens once per connection or per refusal: connections accepted,
400/413/414/431 and 408 refusals (the 503 of --limit-concurrency is counted in
ServerContext.warn_over_capacity). What happens per request is counted inline, where a
subclass would cost a call per request: bytes in H1Connection (data_received and its
two writes), responses in io/lifecycle.py log_response (pier.metrics rule 1).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pier.io.connection import DebugH1Connection, H1Connection
from pier.io.context import ServerContext
from pier.proto.events import BadRequest

if TYPE_CHECKING:
    from pier.metrics import Recorder

__all__ = ["MeteredH1Connection", "h1_connection_class", "open_connections"]


class MeteredH1Connection(H1Connection):
    # No slot of its own, so that MeteredDebugH1Connection can join it with
    # DebugH1Connection (two bases that each add slots cannot be combined).
    __slots__ = ()

    @property
    def metrics(self) -> Recorder:
        metrics = self.ctx.metrics
        assert metrics is not None
        return metrics

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.metrics.connected("http/1.1")
        super().connection_made(transport)

    def on_bad_request(self, refusal: BadRequest) -> None:
        self.metrics.refused(refusal.status)
        super().on_bad_request(refusal)

    def deadline_passed(self) -> None:
        if self.reading_head_too_long():
            self.metrics.refused(408)
        super().deadline_passed()


class MeteredDebugH1Connection(MeteredH1Connection, DebugH1Connection):
    """--metrics-bind with --log-level debug: counted and logged."""

    __slots__ = ()


def h1_connection_class(ctx: ServerContext) -> type[H1Connection]:
    """The HTTP/1.1 connection class for this server, chosen once: whatever a TLS
    (ALPN) or cleartext connection speaks HTTP/1.1 with, so both log and count alike."""
    if ctx.metrics is not None:
        return MeteredDebugH1Connection if ctx.debug else MeteredH1Connection
    return DebugH1Connection if ctx.debug else H1Connection


_PROTOCOLS = {"WSProtocol": "websocket", "H2Connection": "h2"}


def open_connections(connections: Iterable[Any]) -> dict[str, int]:
    """Open connections by protocol, for a snapshot (a gauge, read when asked)."""
    counts: dict[str, int] = {}
    for connection in connections:
        if isinstance(connection, H1Connection):
            protocol = "http/1.1"
        else:
            name = type(connection).__name__
            protocol = _PROTOCOLS.get(name, name.lower())
        counts[protocol] = counts.get(protocol, 0) + 1
    return counts
