"""The event vocabulary between protocol state machines and the ASGI adapter.

Rules: events are plain slotted records with no behaviour; every HTTP version produces
the same ones, so asgi/ never imports a protocol module. Requests carry what the scope
needs already split (path and query), because building a scope is per-request work.
"""

from __future__ import annotations

from dataclasses import dataclass


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
