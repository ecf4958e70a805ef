"""The response stream: what one HTTP version's glue provides to one request's cycle.

Rules:
1. `HTTPCycle` (asgi/http.py) speaks ASGI to the app and speaks to the connection only
   through this interface; io/lifecycle.py runs the app around it. A glue (io/
   connection.py for HTTP/1.1, io/h2.py `_Stream` for HTTP/2) implements every method
   here, and nothing else about the ASGI cycle: it never sets a cycle's attributes
   (phase, status, sent) and never reads its private fields; it calls the cycle's
   public methods (`feed_body`, `feed_end`, `feed_disconnect`, `abort`,
   `continue_pending`, `fail`, `plain_answer_sent`).
2. Validation happens before anything is written: `send_head`, `send_data` and
   `send_trailers` raise `AppResponseError` (proto/headers.py) for what the protocol
   cannot carry, and write nothing in that case. The cycle advances its phase only
   after the call returned, and turns the error into an `ASGIProtocolError` for the app.
3. After the stream or its connection is gone, every send method writes nothing and
   returns; the cycle learns of it from `feed_disconnect`.
4. Exactly one of these ends a response on the glue's side: `response_done` (the app
   finished it), `send_error` (the server answered it: 500, 503), `abort` (part of it
   is on the wire and it cannot be finished honestly: HTTP/1.1 closes the connection,
   HTTP/2 resets the stream). Each glue records the access log line on the first two
   through io/lifecycle.py `log_response`.
5. Flow control: the glue pauses reading on its own when what it buffered for the app
   passes its mark, and resumes when the cycle calls `want_body` (the app took what was
   there); the cycle awaits `drain()` after a send while `write_paused` is true.

A contract test (tests/asgi/test_lifecycle_contract.py) drives a cycle through an
in-memory stream; every glue must behave as that fake does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pier.asgi.http import HTTPCycle

__all__ = ["ResponseStream"]


class ResponseStream(Protocol):
    """What the protocol glue provides to one cycle (the methods' rules: module docstring)."""

    @property
    def write_paused(self) -> bool:
        """True while the peer does not take what was written: the cycle awaits drain().
        (Read only: an attribute of the connection, or derived from a stream's window.)"""

    def send_head(  # noqa: PLR0917 - positional: once per response on the hot path
        self,
        cycle: HTTPCycle,
        status: int,
        headers: Any,
        body: bytes,
        more_body: bool,
        length: int | None,
        /,
    ) -> bool:
        """Send the head with the first body piece (one write where the protocol allows).

        `length` is the whole body's length when known (Content-Length), else None (a
        stream). Returns whether the response carries a body at all (not for HEAD,
        204, 304), so that a file need not be read for nothing.
        """

    def send_data(self, cycle: HTTPCycle, body: bytes, more_body: bool, /) -> None:
        """Send a body piece; `more_body=False` ends the body (and the response, unless
        trailers follow)."""

    def send_trailers(self, cycle: HTTPCycle, headers: list[Any], /) -> None:
        """Send the trailer fields (all of them: the cycle joins more_trailers pieces);
        a protocol or peer that cannot carry them drops them."""

    def send_interim(self, cycle: HTTPCycle, status: int, headers: Any, /) -> None:
        """Send an informational (1xx) response before the head: 100 Continue when the
        app first waits for a body the client holds back, 103 Early Hints."""

    def send_error(self, cycle: HTTPCycle, status: int, text: str, /) -> None:
        """Answer with the server's own short text/plain response and end the stream
        (HTTP/1.1 closes the connection after it). Only before anything was sent.
        The body bytes written go to `cycle.plain_answer_sent` before the access line."""

    def abort(self, cycle: HTTPCycle, /) -> None:
        """End a response that cannot be finished: close the connection (HTTP/1.1) or
        reset the stream (HTTP/2), so the client sees it broke."""

    def want_body(self, cycle: HTTPCycle, /) -> None:
        """The app took the buffered body and waits for more: resume reading."""

    def response_done(self, cycle: HTTPCycle, /) -> None:
        """The app finished its response: go on with the connection (keep-alive, the
        next request)."""

    async def drain(self) -> None:
        """Wait until the peer takes more data (or is gone)."""
