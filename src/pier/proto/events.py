"""The event vocabulary between protocol state machines and the ASGI adapter.

Rules:
1. Every HTTP version speaks the same vocabulary, so asgi/ never imports a protocol
   module. Requests carry what the scope needs already split (path and query),
   because building a scope is per-request work.
2. On the HTTP/1.1 hot path the vocabulary is delivered as calls, not objects: the
   parser calls a `RequestHandler` with plain values, so no event object or event
   list exists per request (design.md, "the hot path is allowed to be fused"). Measured
   under callgrind on a keep-alive hello request: the Request record alone cost 3.6k
   instructions, the event list and the type dispatch over it another ~3k, of ~104k.
3. The records below are the same vocabulary as objects: `Request` travels to the
   WebSocket glue with an upgraded connection, `BadRequest` is the refusal a handler
   receives, and `EventRecorder` turns handler calls back into a list of records
   (for tests, and for anyone who wants to look at what a parser said).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(slots=True)
class Request:
    """A complete request head."""

    method: str
    raw_path: bytes
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    http_version: str
    keep_alive: bool
    expect_continue: bool
    # The protocol named in an `Upgrade` request header (lower-cased), else None.
    upgrade: bytes | None
    # Declared Content-Length, or None (chunked, or no body).
    content_length: int | None
    # Does the request have a body at all? (Content-Length > 0 or chunked)
    has_body: bool
    # The client accepts trailer fields (TE: trailers).
    accepts_trailers: bool


@dataclass(slots=True)
class Body:
    data: bytes


@dataclass(slots=True)
class EndOfMessage:
    pass


@dataclass(slots=True)
class Upgrade:
    """The request asked to switch protocols; `data` is what followed its head."""

    data: bytes


@dataclass(slots=True)
class BadRequest:
    """Input the server must refuse: answer `status`, then close the connection."""

    status: int
    reason: str


Event = Request | Body | EndOfMessage | Upgrade | BadRequest
END_OF_MESSAGE = EndOfMessage()


class RequestHandler(Protocol):
    """What a parser calls, in wire order, as the bytes it is fed complete things.

    `on_request` takes the fields of `Request`, in its order, positionally: it runs
    once per request, and keyword arguments cost measurably there. For a request that
    asks to switch protocols (`upgrade` not None) it returns True when the handler takes
    the connection over (`on_upgrade` then brings the bytes after the head); anything
    else makes it an ordinary request, body included (proto/h1.py rule 3).
    """

    def on_request(  # noqa: PLR0917 - positional: keywords cost 830 more instructions a call
        self,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
        content_length: int | None,
        has_body: bool,
        accepts_trailers: bool,
        /,
    ) -> bool | None: ...

    def on_body(self, data: bytes) -> None: ...

    def on_end(self) -> None: ...

    def on_upgrade(self, data: bytes) -> None: ...

    def on_bad_request(self, refusal: BadRequest) -> None: ...


class EventRecorder:
    """A RequestHandler that keeps what it is told as a list of event records.

    It takes over the upgrades named in `upgrades` (lower-case tokens), as a connection
    that performs them would.
    """

    def __init__(self, upgrades: frozenset[bytes] = frozenset()) -> None:
        self.events: list[Event] = []
        self.upgrades = upgrades

    def on_request(  # noqa: PLR0917 - positional: keywords cost 830 more instructions a call
        self,
        method: str,
        raw_path: bytes,
        query_string: bytes,
        headers: list[tuple[bytes, bytes]],
        http_version: str,
        keep_alive: bool,
        expect_continue: bool,
        upgrade: bytes | None,
        content_length: int | None,
        has_body: bool,
        accepts_trailers: bool,
        /,
    ) -> bool:
        self.events.append(
            Request(
                method,
                raw_path,
                query_string,
                headers,
                http_version,
                keep_alive,
                expect_continue,
                upgrade,
                content_length,
                has_body,
                accepts_trailers,
            )
        )
        return upgrade is not None and upgrade in self.upgrades

    def on_body(self, data: bytes) -> None:
        self.events.append(Body(data))

    def on_end(self) -> None:
        self.events.append(END_OF_MESSAGE)

    def on_upgrade(self, data: bytes) -> None:
        self.events.append(Upgrade(data))

    def on_bad_request(self, refusal: BadRequest) -> None:
        self.events.append(refusal)

    def take(self) -> list[Event]:
        """The events recorded since the last take()."""
        events, self.events = self.events, []
        return events
