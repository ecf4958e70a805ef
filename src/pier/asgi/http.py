"""One HTTP request-response cycle as the ASGI app sees it (ASGI HTTP spec 2.4).

Rules:
1. This module knows ASGI messages, not bytes: it talks to a `ResponseStream` (the
   protocol glue for one HTTP version) and never imports a protocol module, so one
   adapter serves HTTP/1.1 and later HTTP/2 alike.
2. The response is a state machine (`Phase`): a message the current phase does not
   accept is an `ASGIProtocolError` naming the phase, what it expects and what came.
3. Request bodies are streamed: the glue feeds chunks in (`feed_body`), `receive()`
   hands out everything buffered so far in one message and asks the glue to read more
   only when the app has taken what was there (flow control).
4. `run_app` is the one place that turns what an app does wrong (raises, returns a
   non-awaitable, returns without answering) into a 500 or a closed connection plus
   one error log line that says what ASGI expected.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from typing import Any, Protocol

from pier.asgi.wakeup import Wakeup
from pier.logging import escape
from pier.types import ASGIApp, Message, Scope

logger = logging.getLogger("pier.error")

__all__ = ["ASGIProtocolError", "ClientDisconnected", "HTTPCycle", "Phase", "run_app"]


class ClientDisconnected(OSError):
    """send() was called after the client went away (ASGI HTTP spec 2.4)."""


class ASGIProtocolError(RuntimeError):
    """The app sent a message that the response's current phase does not accept."""


class Phase(enum.IntEnum):
    START = 0  # expects http.response.start
    BODY_FIRST = 1  # start received; expects the first body (or pathsend)
    BODY = 2  # streaming; expects http.response.body
    TRAILERS = 3  # body done; expects http.response.trailers
    DONE = 4  # response complete: nothing more may be sent


_EXPECTS = {
    Phase.START: "'http.response.start'",
    Phase.BODY_FIRST: "'http.response.body' or 'http.response.pathsend'",
    Phase.BODY: "'http.response.body' (the last one with more_body=False)",
    Phase.TRAILERS: "'http.response.trailers'",
    Phase.DONE: "nothing: the response is already complete",
}

# Enum members bound to module names: on Python 3.11 each `Phase.X` lookup costs ~1,100
# instructions (callgrind), and send() made eight of them per hello response (~9k of
# 114k per request); a module global is ~50. 3.12 made member lookup cheap.
_START = Phase.START
_BODY_FIRST = Phase.BODY_FIRST
_BODY = Phase.BODY
_TRAILERS = Phase.TRAILERS
_DONE = Phase.DONE


class ResponseStream(Protocol):
    """What the protocol glue provides to one cycle."""

    write_paused: bool

    def start_response(
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes, more_body: bool
    ) -> None: ...
    def send_body(self, cycle: HTTPCycle, body: bytes, more_body: bool) -> None: ...
    def send_trailers(self, cycle: HTTPCycle, headers: Any, more: bool) -> None: ...
    async def send_file(self, cycle: HTTPCycle, status: int, headers: Any, path: str) -> None: ...
    def send_continue(self, cycle: HTTPCycle) -> None: ...
    def want_body(self, cycle: HTTPCycle) -> None: ...
    def response_done(self, cycle: HTTPCycle) -> None: ...
    async def drain(self) -> None: ...


_DISCONNECT: Message = {"type": "http.disconnect"}


class HTTPCycle(Wakeup):
    """State of one request and its response, and the receive/send pair given to the app."""

    __slots__ = (
        "_body",
        "_body_delivered",
        "_buffered",
        "_continue_pending",
        "_more_body",
        "disconnected",
        "headers",
        "phase",
        "scope",
        "started_at",
        "status",
        "stream",
        "task",
        "trailers",
    )

    def __init__(self, scope: Scope, stream: ResponseStream) -> None:
        # A bodyless request by default; the glue calls expect_body() for the others.
        # (Two positional arguments: keyword arguments to a class call cost ~1,300
        # instructions on 3.11, a fifth of this constructor.)
        self.scope = scope
        self.stream = stream
        self.phase = _START
        self.status = 0
        self.headers: Any = ()
        self.trailers = False
        self.disconnected = False
        self.started_at = 0.0
        # The Task running the app for this cycle, set by the glue that starts it.
        self.task: asyncio.Task[None] | None = None
        # Request body chunks received and not yet handed to the app.
        self._body: list[bytes] = []
        self._buffered = 0
        # Is more request body still to come from the client? The first receive()
        # must return an http.request even for a bodyless request.
        self._more_body = False
        self._continue_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self._body_delivered = False

    def expect_body(self, expect_continue: bool) -> None:
        """The request has a body (Content-Length > 0 or chunked) still to arrive."""
        self._more_body = True
        self._continue_pending = expect_continue

    # Fed by the protocol glue ----------------------------------------------------------

    @property
    def buffered(self) -> int:
        return self._buffered

    def feed_body(self, data: bytes) -> None:
        if self.phase is _DONE:
            return  # the app answered without reading the body; drop the rest
        self._body.append(data)
        self._buffered += len(data)
        self._wake()

    def feed_end(self) -> None:
        self._more_body = False
        if self._waiter is not None:
            self._wake()

    def feed_disconnect(self) -> None:
        self.disconnected = True
        self._wake()

    # The app's receive() ---------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._body or not self._more_body:
                if self._body_delivered:
                    break
                body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
                self._body.clear()
                self._buffered = 0
                more = self._more_body
                if not more:
                    self._body_delivered = True
                else:
                    self.stream.want_body(self)
                return {"type": "http.request", "body": body, "more_body": more}
            if self.disconnected:
                return {"type": "http.disconnect"}
            if self._continue_pending:
                self._continue_pending = False
                if self.phase is _START:
                    self.stream.send_continue(self)
            self.stream.want_body(self)
            await self._wait()
        # After the body: http.disconnect once the response is sent or the client left.
        while not (self.disconnected or self.phase is _DONE):
            await self._wait()
        return {"type": "http.disconnect"}

    # The app's send() ------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise ClientDisconnected("the client closed the connection")
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise ASGIProtocolError(
                f"send() takes a message dict with a 'type' key, got {message!r}"
            ) from None
        phase = self.phase
        stream = self.stream
        if kind == "http.response.body":
            if phase is _BODY_FIRST:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if type(body) is not bytes:
                    _check_body(body)
                if more:
                    self.phase = _BODY
                else:
                    self.phase = _TRAILERS if self.trailers else _DONE
                stream.start_response(self, self.status, self.headers, body, more)
            elif phase is _BODY:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if type(body) is not bytes:
                    _check_body(body)
                if not more:
                    self.phase = _TRAILERS if self.trailers else _DONE
                stream.send_body(self, body, more)
            else:
                raise self._unexpected(kind)
        elif kind == "http.response.start":
            if phase is not _START:
                raise self._unexpected(kind)
            try:
                self.status = message["status"]
            except KeyError:
                raise ASGIProtocolError(
                    "http.response.start needs a 'status' key (an int such as 200)"
                ) from None
            self.headers = message.get("headers", ())
            self.trailers = bool(message.get("trailers", False))
            self.phase = _BODY_FIRST
        elif kind == "http.response.trailers":
            if phase is not _TRAILERS:
                raise self._unexpected(kind)
            more = bool(message.get("more_trailers", False))
            if not more:
                self.phase = _DONE
            stream.send_trailers(self, message.get("headers", ()), more)
        elif kind == "http.response.pathsend":
            if phase is not _BODY_FIRST:
                raise self._unexpected(kind)
            path = message.get("path")
            if not isinstance(path, str):
                raise ASGIProtocolError(
                    f"http.response.pathsend needs a 'path' str, got {path!r}"
                )
            self.phase = self._after_body()
            await stream.send_file(self, self.status, self.headers, path)
        else:
            raise self._unexpected(kind)
        if self.phase is _DONE:
            stream.response_done(self)
            if self._waiter is not None:
                self._wake()
        elif stream.write_paused:
            await stream.drain()
            if self.disconnected:
                raise ClientDisconnected("the client closed the connection")

    def _after_body(self) -> Phase:
        return _TRAILERS if self.trailers else _DONE

    def _unexpected(self, kind: object) -> ASGIProtocolError:
        return ASGIProtocolError(
            f"unexpected ASGI message {kind!r} sent; the response expects"
            f" {_EXPECTS[self.phase]}"
        )

    @property
    def response_started(self) -> bool:
        return self.phase > _BODY_FIRST

    @property
    def response_complete(self) -> bool:
        return self.phase is _DONE


def _check_body(body: object) -> None:
    if type(body) is not bytes and not isinstance(body, (bytes, bytearray, memoryview)):
        raise ASGIProtocolError(
            f"http.response.body 'body' must be bytes, got {type(body).__name__}"
        )


class AppFailureSink(Protocol):
    """How run_app reports a broken app back to the glue."""

    def app_failed(self, cycle: HTTPCycle) -> None: ...
    def cycle_finished(self, cycle: HTTPCycle) -> None: ...


async def run_app(app: ASGIApp, cycle: HTTPCycle, sink: AppFailureSink) -> None:
    """Call the app for one cycle; turn every way it can fail into a clear log and answer."""
    scope = cycle.scope
    try:
        awaitable: Any = app(scope, cycle.receive, cycle.send)
        try:
            result = await awaitable
        except TypeError as exc:
            if hasattr(awaitable, "__await__"):
                raise
            logger.error(
                "The ASGI app returned %s instead of an awaitable for %s %s: an ASGI3 app"
                " is `async def app(scope, receive, send)`, or returns a coroutine when"
                " called with those three arguments (an ASGI2 app needs --interface asgi2)",
                type(awaitable).__name__,
                scope["method"],
                escape(scope["path"]),
            )
            del exc
            sink.app_failed(cycle)
            return
        if result is not None:
            logger.warning(
                "The ASGI app returned %r for %s %s; ASGI apps should return None",
                result,
                scope["method"],
                escape(scope["path"]),
            )
    except ClientDisconnected:
        pass  # the client left while the app was sending; nothing is owed to anyone
    except ASGIProtocolError as exc:
        logger.error(
            "ASGI protocol error in %s %s: %s", scope["method"], escape(scope["path"]), exc
        )
        sink.app_failed(cycle)
        return
    except asyncio.CancelledError:
        sink.app_failed(cycle)
        raise
    except BaseException as exc:
        if not cycle.disconnected:
            logger.error(
                "Exception in ASGI application for %s %s",
                scope["method"],
                escape(scope["path"]),
                exc_info=exc,
            )
        sink.app_failed(cycle)
        if not isinstance(exc, Exception):
            raise
        return
    else:
        if cycle.phase is not _DONE and not cycle.disconnected:
            if cycle.phase is _START or cycle.phase is _BODY_FIRST:
                logger.error(
                    "The ASGI app returned without sending a response for %s %s"
                    " (expected 'http.response.start' then 'http.response.body')",
                    scope["method"],
                    escape(scope["path"]),
                )
            else:
                logger.error(
                    "The ASGI app returned before finishing its response for %s %s"
                    " (the last 'http.response.body' must have more_body=False)",
                    scope["method"],
                    escape(scope["path"]),
                )
            sink.app_failed(cycle)
            return
    finally:
        sink.cycle_finished(cycle)
