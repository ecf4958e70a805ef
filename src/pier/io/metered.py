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
from typing import Any

from pier.io.connection import H1Connection
from pier.io.context import ServerContext
from pier.proto.events import BadRequest

__all__ = ["MeteredH1Connection", "open_connections"]


class MeteredH1Connection(H1Connection):
    __slots__ = ("metrics",)

    def __init__(self, ctx: ServerContext) -> None:
        super().__init__(ctx)
        metrics = ctx.metrics
        assert metrics is not None
        self.metrics = metrics

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
