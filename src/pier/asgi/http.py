"""One HTTP request-response cycle as the ASGI app sees it (ASGI HTTP spec 2.4).

Rules:
1. This module knows ASGI messages, not bytes: it talks to a `ResponseStream`
   (asgi/stream.py: the protocol glue for one HTTP version) and never imports a
   protocol's framing, so one adapter serves HTTP/1.1 and HTTP/2 alike.
2. The response is a state machine (`Phase`): a message the current phase does not
   accept is an `ASGIProtocolError` naming the phase, what it expects and what came.
   Only this class changes its phase and status; the glue and the lifecycle
   (io/lifecycle.py) call its methods (`abort`, `answer_plainly`, `fail`).
3. The phase advances only after the stream accepted what was sent (it validates
   before writing). A send() that raises `ASGIProtocolError` fails the response at
   once (`fail`: 500 if nothing was sent, else the stream is aborted) and records the
   error; the lifecycle logs it once when the app returns, whether the app let it
   propagate or caught it. Later sends raise again; receive() returns http.disconnect.
4. Request bodies are streamed: the glue feeds chunks in (`feed_body`), `receive()`
   hands out what is buffered (small chunks joined into one message, a large chunk as
   it came: joining copies every byte) and asks the glue to read more only when the
   app has taken all that was there (flow control).
5. receive() after http.disconnect returns http.disconnect again: the spec sends it
   "if receive is called after a response has been sent", however often that is, and
   apps (a disconnect listener beside a streaming response) rely on it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from typing import Any

from pier.asgi.stream import ResponseStream
from pier.asgi.wakeup import Wakeup
from pier.proto.headers import AppResponseError
from pier.types import Message, Scope

__all__ = [
    "ASGIProtocolError",
    "ClientDisconnected",
    "HTTPCycle",
    "Phase",
    "ResponseStream",
    "log_protocol_error",
]

logger = logging.getLogger("pier.error")

# Bytes read from a file per body piece for http.response.pathsend.
FILE_CHUNK = 256 * 1024
# A buffered request-body chunk this large is handed to the app alone rather than
# joined with the next ones: a join copies ~1 instruction per byte, an extra message
# costs a few thousand.
WHOLE_CHUNK = 16 * 1024


class ClientDisconnected(OSError):
    """send() was called after the client went away (ASGI HTTP spec 2.4)."""


class ASGIProtocolError(RuntimeError):
    """The app sent a message that the response's current phase does not accept."""


class Phase(enum.IntEnum):
    START = 0  # expects http.response.start
    BODY_FIRST = 1  # start received; expects the first body (or pathsend)
    BODY = 2  # streaming; expects http.response.body
    TRAILERS = 3  # body done; expects http.response.trailers
    DONE = 4  # response complete, answered by the server, or failed: nothing more


_EXPECTS = {
    Phase.START: "'http.response.start' (or 'http.response.early_hint')",
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


# How a response ended, as the access log says it (pier.logging.AccessLog `ended`).
ENDED_COMPLETED = "completed"
ENDED_CLIENT_GONE = "client gone"
ENDED_APP_ERROR = "app error"
ENDED_SHUTDOWN = "cut by shutdown"
ENDED_REFUSED = "refused"  # the request's body broke a limit or the protocol
LOGGED = "logged"  # HTTPCycle.ended once the line is written


class HTTPCycle(Wakeup):
    """State of one request and its response, and the receive/send pair given to the app."""

    __slots__ = (
        "_body",
        "_body_delivered",
        "_buffered",
        "_continue_pending",
        "_more_body",
        "_trailer_fields",
        "disconnected",
        "ended",
        "error",
        "headers",
        "phase",
        "scope",
        "send_timeout",
        "sent",
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
        # How the response ended, for the access log (ENDED_*): None while nothing but
        # the client's leaving (`disconnected`) says otherwise; LOGGED once its line is
        # written, so that every response gets exactly one.
        self.ended: str | None = None
        self.started_at = 0.0
        # Response body bytes the stream accepted (the access log's size).
        self.sent = 0
        # The first ASGIProtocolError send() raised, kept for the lifecycle's log line.
        self.error: ASGIProtocolError | None = None
        # The Task running the app for this cycle, set by the lifecycle that starts it.
        self.task: asyncio.Task[None] | None = None
        # Seconds send() waits for the peer to take what was written (--timeout-send,
        # set by the lifecycle); None waits as long as it takes.
        self.send_timeout: float | None = None
        # Request body chunks received and not yet handed to the app.
        self._body: list[bytes] = []
        self._buffered = 0
        # Is more request body still to come from the client? The first receive()
        # must return an http.request even for a bodyless request.
        self._more_body = False
        self._continue_pending = False
        self._waiter: asyncio.Future[None] | None = None
        self._body_delivered = False
        self._trailer_fields: list[Any] | None = None

    def expect_body(self, expect_continue: bool) -> None:
        """The request has a body (Content-Length > 0 or chunked) still to arrive."""
        self._more_body = True
        self._continue_pending = expect_continue

    # Fed by the protocol glue ----------------------------------------------------------

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def continue_pending(self) -> bool:
        """The client waits for 100 Continue and the app never asked for the body."""
        return self._continue_pending

    def feed_body(self, data: bytes) -> int:
        """Buffer a piece of the request body; returns the bytes now buffered (what the
        glue's flow control compares with its mark: the `buffered` property costs a
        call more per piece)."""
        if self.phase is _DONE:
            return 0  # the app answered without reading the body; drop the rest
        self._body.append(data)
        buffered = self._buffered = self._buffered + len(data)
        if self._waiter is not None:  # _wake() only when someone waits: a call fewer
            self._wake()
        return buffered

    def feed_end(self) -> None:
        self._more_body = False
        if self._waiter is not None:
            self._wake()

    def feed_disconnect(self) -> None:
        self.disconnected = True
        # A bodyless request answered on a closing connection ends here with nobody
        # in receive(): the check spares a call per connection (issue 13).
        if self._waiter is not None:
            self._wake()

    def abort(self, status: int = 0) -> None:
        """The glue gave up on this request (its body was refused): nothing more is sent.

        `status`: what the glue answered instead (413...), when it could still answer.
        """
        self.disconnected = True
        if self.ended is None:
            self.ended = ENDED_REFUSED
        if status:
            self.status = status
        self.phase = _DONE
        self._wake()

    # The lifecycle's answers -----------------------------------------------------------

    def answer_plainly(self, status: int, text: str) -> None:
        """The server answers this request itself (503, 500); nothing of the app's is sent."""
        self.phase = _DONE
        self.status = status
        self.stream.send_error(self, status, text)
        self._wake()

    def plain_answer_sent(self, size: int) -> None:
        """The glue wrote the server's answer (send_error) with `size` body bytes: the
        access log's size, as for an app's response."""
        self.sent = size

    def fail(self) -> None:
        """The app broke its response: 500 if nothing was sent, else abort the stream.

        The one failure policy, for every protocol. A response already complete is
        left alone: nothing is owed on the wire (the connection may be serving the
        next request by now).
        """
        phase = self.phase
        if phase is _DONE:
            return
        if self.ended is None:
            self.ended = ENDED_APP_ERROR
        if phase is _START or phase is _BODY_FIRST:
            self.answer_plainly(500, "Internal Server Error")
        else:
            self.phase = _DONE
            self.stream.abort(self)
            self._wake()

    def _broken(self, text: str) -> ASGIProtocolError:
        """An error for the app's send(); the response fails with it (rule 3)."""
        error = ASGIProtocolError(text)
        if self.error is None:
            self.error = error
        self.fail()
        return error

    # The app's receive() ---------------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            if self._body or not self._more_body:
                if self._body_delivered:
                    break
                chunks = self._body
                if len(chunks) > 1 and len(chunks[0]) < WHOLE_CHUNK:
                    body = b"".join(chunks)
                    chunks.clear()
                    self._buffered = 0
                elif chunks:
                    # A large chunk goes out as it came (rule 4): joining would copy
                    # it, a cost per byte (~1M instructions per 1 MiB upload).
                    body = chunks.pop(0)
                    self._buffered -= len(body)
                else:
                    body = b""
                more = self._more_body or len(chunks) > 0
                if not more:
                    self._body_delivered = True
                elif not chunks:
                    self.stream.want_body(self)
                return {"type": "http.request", "body": body, "more_body": more}
            if self.disconnected:
                return {"type": "http.disconnect"}
            if self._continue_pending:
                self._continue_pending = False
                if self.phase is _START:
                    self.stream.send_interim(self, 100, ())
            self.stream.want_body(self)
            await self._wait()
        # After the body: http.disconnect once the response is sent or the client left.
        while not (self.disconnected or self.phase is _DONE):
            await self._wait()
        return {"type": "http.disconnect"}

    # The app's send() ------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self.disconnected:
            raise self._gone()
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise self._broken(
                f"send() takes a message dict with a 'type' key, got {message!r}"
            ) from None
        phase = self.phase
        stream = self.stream
        if kind == "http.response.body":
            if phase is _BODY_FIRST:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if type(body) is not bytes:
                    self._check_body(body)
                try:
                    stream.send_head(
                        self, self.status, self.headers, body, more, None if more else len(body)
                    )
                except AppResponseError as exc:
                    raise self._broken(str(exc)) from None
                self.sent = len(body)
                if more:
                    self.phase = _BODY
                else:
                    self.phase = _TRAILERS if self.trailers else _DONE
            elif phase is _BODY:
                body = message.get("body", b"")
                more = message.get("more_body", False)
                if type(body) is not bytes:
                    self._check_body(body)
                try:
                    stream.send_data(self, body, more)
                except AppResponseError as exc:
                    raise self._broken(str(exc)) from None
                self.sent += len(body)
                if not more:
                    self.phase = _TRAILERS if self.trailers else _DONE
            else:
                raise self._unexpected(kind)
        elif kind == "http.response.start":
            if phase is not _START:
                raise self._unexpected(kind)
            try:
                self.status = message["status"]
            except KeyError:
                raise self._broken(
                    "http.response.start needs a 'status' key (an int such as 200)"
                ) from None
            self.headers = message.get("headers", ())
            # Not bool(): a call costs ~100 instructions more per response.
            self.trailers = True if message.get("trailers") else False  # noqa: SIM210
            self.phase = _BODY_FIRST
            return  # nothing was written: no completion or back-pressure to look at
        elif kind == "http.response.trailers":
            if phase is not _TRAILERS:
                raise self._unexpected(kind)
            fields = self._trailer_fields
            if fields is None:
                fields = self._trailer_fields = []
            try:
                fields.extend(message.get("headers", ()))
            except TypeError:
                raise self._broken(
                    "http.response.trailers 'headers' must be an iterable of [name, value]"
                    " byte pairs"
                ) from None
            if message.get("more_trailers", False):
                return
            try:
                stream.send_trailers(self, fields)
            except AppResponseError as exc:
                raise self._broken(str(exc)) from None
            self.phase = _DONE
        elif kind == "http.response.early_hint":
            # issue 9: 103 Early Hints (RFC 8297), before the response starts; each
            # entry of 'links' becomes one Link field.
            if phase is not _START:
                raise self._unexpected(kind)
            links = message.get("links", ())
            if isinstance(links, bytes) or not all(isinstance(link, bytes) for link in links):
                raise self._broken(
                    "http.response.early_hint 'links' must be a list of bytes Link values,"
                    f" got {links!r}"
                )
            if links and not self.disconnected:
                try:
                    stream.send_interim(self, 103, [(b"link", link) for link in links])
                except AppResponseError as exc:
                    raise self._broken(str(exc)) from None
            return
        elif kind == "http.response.pathsend":
            if phase is not _BODY_FIRST:
                raise self._unexpected(kind)
            path = message.get("path")
            if not isinstance(path, str):
                raise self._broken(f"http.response.pathsend needs a 'path' str, got {path!r}")
            await self._send_file(path)
        else:
            raise self._unexpected(kind)
        if self.phase is _DONE:
            stream.response_done(self)
            if self._waiter is not None:
                self._wake()
        elif stream.write_paused:
            await self._drain()

    async def _send_file(self, path: str) -> None:
        """http.response.pathsend: the file's bytes as the body, with its length."""
        try:
            file = open(path, "rb")  # noqa: SIM115, ASYNC230 - closed below; local file reads do not block for long
        except OSError as exc:
            raise self._broken(
                f"http.response.pathsend could not open {path!r}: {exc.strerror}"
            ) from None
        stream = self.stream
        with file:
            size = os.fstat(file.fileno()).st_size
            try:
                has_body = stream.send_head(self, self.status, self.headers, b"", True, size)
                self.phase = _BODY
                more = has_body
                while more:
                    chunk = file.read(FILE_CHUNK)
                    more = len(chunk) == FILE_CHUNK
                    stream.send_data(self, chunk, more)
                    self.sent += len(chunk)
                    if more and stream.write_paused:
                        await self._drain()
                if not has_body:
                    stream.send_data(self, b"", False)
            except AppResponseError as exc:
                raise self._broken(str(exc)) from None
        self.phase = _TRAILERS if self.trailers else _DONE

    async def _drain(self) -> None:
        """Wait until the peer takes what was written; give up after send_timeout.

        A peer that reads nothing (or a byte a second) would otherwise hold the app and
        everything it already wrote for as long as it likes (issue 10): past the timeout
        the stream is aborted (dropping what it holds), receive() says http.disconnect
        and this send() raises, as for a client that left.
        """
        timeout = self.send_timeout
        try:
            async with asyncio.timeout(timeout):
                await self.stream.drain()
        except TimeoutError:
            if not self.disconnected:
                scope = self.scope
                client = scope.get("client")
                logger.warning(
                    "Closed the connection to %s: it took none of the response to %s %r"
                    " for %ss (--timeout-send); the app's send() raised",
                    f"{client[0]}:{client[1]}" if client else "a unix socket peer",
                    scope.get("method"),
                    scope.get("path", ""),  # %r: repr escapes what a client put in it
                    timeout,
                )
                self.phase = _DONE
                self.disconnected = True
                self.stream.abort(self)
                self._wake()
            raise ClientDisconnected(
                f"the client took no response bytes for {timeout}s (--timeout-send)"
            ) from None
        if self.disconnected:
            raise self._gone()

    def _check_body(self, body: object) -> None:
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise self._broken(
                f"http.response.body 'body' must be bytes, got {type(body).__name__}"
            )

    def _gone(self) -> Exception:
        error = self.error
        if error is not None:
            # The app carries on after its response failed (rule 3).
            return ASGIProtocolError(f"send() after an earlier error: {error}")
        return ClientDisconnected("the client closed the connection")

    def _unexpected(self, kind: object) -> ASGIProtocolError:
        phase = self.phase
        if phase is _DONE and self.error is not None:
            return ASGIProtocolError(
                f"unexpected ASGI message {kind!r} sent after an earlier error: {self.error}"
            )
        return self._broken(
            f"unexpected ASGI message {kind!r} sent; the response expects {_EXPECTS[phase]}"
        )

    @property
    def response_started(self) -> bool:
        """Has part of the response gone to the stream (so a 500 is no longer possible)?"""
        return self.phase > _BODY_FIRST

    @property
    def response_complete(self) -> bool:
        return self.phase is _DONE


def log_protocol_error(
    where: str,
    error: ASGIProtocolError,
    app_name: str,
    *,
    caught: bool,
    exc_info: BaseException | None = None,
) -> None:
    """The one error line for an app that broke the message protocol (HTTP or WebSocket).

    `where` names the request ("GET /path", "WebSocket /path"); `caught` says the app
    caught the error send() raised and carried on.
    """
    logger.error(
        "ASGI protocol error in %s: %s (app %s%s)",
        where,
        error,
        app_name,
        "; it caught the error send() raised and carried on, and the answer was given"
        " when it was raised"
        if caught
        else "",
        exc_info=exc_info,
    )
