"""One WebSocket session as the ASGI app sees it (ASGI WebSocket spec 2.4).

Rules:
1. This module knows ASGI messages, not frames or bytes: it talks to a
   `WebSocketStream` (the protocol glue, io/websocket.py) and never imports a protocol
   module or the WebSocket library under it, so another transport (WebSocket over
   HTTP/2, RFC 8441) can reuse it unchanged.
2. The session is a state machine (`Phase`): a message the current phase does not
   accept is an `ASGIProtocolError` naming the phase, what it expects and what came.
   The order is the spec's: websocket.connect is received first; then the app answers
   the handshake with websocket.accept, websocket.close (HTTP 403) or a denial response
   (websocket.http.response.start/body); then websocket.send/receive until either side
   closes; websocket.disconnect is the last message received: a receive() after it
   raises `ASGIProtocolError` naming the mistake, so an app that loops on receive()
   without looking at the type stops instead of spinning (issue 15).
3. send() after the peer went away raises `WebSocketDisconnected` (an OSError, as the
   spec asks); websocket.close after that is accepted and does nothing, because apps
   commonly close in a `finally:` block.
4. Incoming messages queue here until the app receives them; the glue pauses reading
   while the queue is full (--ws-max-queue) and `receive()` asks it to resume.
5. A send() that raises `ASGIProtocolError` fails the session at once
   (`WebSocketStream.fail`: 500 before the handshake is answered, a started denial
   cut, close code 1011 after) and records the error; later sends raise again.
6. `run_websocket_app` is the one place that turns what an app does wrong into one
   clear log line (the recorded error, whether the app let it propagate or caught it)
   and an answer on the wire.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Any, Protocol

from pier.asgi.http import ASGIProtocolError, ClientDisconnected, log_protocol_error
from pier.asgi.wakeup import Wakeup
from pier.types import ASGIApp, Message, Scope

logger = logging.getLogger("pier.error")

__all__ = [
    "PHASE_CLOSED",
    "PHASE_DENIAL_BODY",
    "PHASE_HANDSHAKE",
    "PHASE_OPEN",
    "Phase",
    "WebSocketDisconnected",
    "WebSocketSession",
    "WebSocketStream",
    "run_websocket_app",
]


class WebSocketDisconnected(ClientDisconnected):
    """send() was called after the WebSocket closed (ASGI WebSocket spec 2.4)."""


class Phase(enum.IntEnum):
    HANDSHAKE = 0  # expects websocket.accept, websocket.close or a denial response
    DENIAL_BODY = 1  # denial started; expects websocket.http.response.body
    OPEN = 2  # accepted; expects websocket.send or websocket.close
    CLOSED = 3  # the app closed (or finished its denial): nothing more may be sent


# On Python 3.11 `Phase.OPEN` costs ~1,100 instructions (the enum class's __getattr__
# path), a module global ~50; send() and the glue test the phase on every message.
PHASE_HANDSHAKE, PHASE_DENIAL_BODY, PHASE_OPEN, PHASE_CLOSED = (
    Phase.HANDSHAKE, Phase.DENIAL_BODY, Phase.OPEN, Phase.CLOSED
)

_EXPECTS = {
    Phase.HANDSHAKE: "'websocket.accept', 'websocket.close' or"
    " 'websocket.http.response.start' (the handshake is not answered yet)",
    Phase.DENIAL_BODY: "'websocket.http.response.body' (a denial response has started)",
    Phase.OPEN: "'websocket.send' or 'websocket.close'",
    Phase.CLOSED: "nothing: the app already closed the WebSocket",
}

# What an app written against another scope type probably meant.
_DID_YOU_MEAN = {
    "http.response.start": "websocket.http.response.start",
    "http.response.body": "websocket.http.response.body",
    "websocket.receive": "websocket.send",
    "websocket.connect": "websocket.accept",
}

# Close codes for a connection that ended without a close frame (RFC 6455 7.1.5).
CLOSE_ABNORMAL = 1006
CLOSE_NORMAL = 1000


class WebSocketStream(Protocol):
    """What the protocol glue provides to one session."""

    write_paused: bool

    def accept(self, session: WebSocketSession, subprotocol: str | None, headers: Any) -> int:
        """Send the accepting answer and return its status (101 on HTTP/1.1, 200 on
        HTTP/2); raise ValueError (with the reason) for bad headers."""

    def deny_start(self, session: WebSocketSession, status: int, headers: Any) -> None: ...
    def deny_body(self, session: WebSocketSession, body: bytes, more_body: bool) -> None:
        """Send denial body bytes; raise ValueError (with the reason) for a bad response."""

    def send_data(self, session: WebSocketSession, data: str | bytes) -> None: ...
    def close(self, session: WebSocketSession, code: int, reason: str) -> None: ...
    def check_close(self, code: object, reason: object) -> str | None:
        """Why (code, reason) cannot be sent, or None."""

    def want_messages(self, session: WebSocketSession) -> None: ...
    def fail(self, session: WebSocketSession) -> None:
        """The app broke the protocol: 500 if the handshake is unanswered, cut a denial
        that started, close with 1011 if open; nothing if the WebSocket is closing."""

    async def drain(self) -> None: ...


class WebSocketSession(Wakeup):
    """State of one WebSocket, and the receive/send pair given to the app."""

    __slots__ = (
        "_connect_pending",
        "_disconnect_delivered",
        "_queue",
        "backlogged",
        "close_code",
        "close_reason",
        "disconnected",
        "error",
        "phase",
        "queued_bytes",
        "scope",
        "started_at",
        "status",
        "stream",
    )

    def __init__(self, scope: Scope, stream: WebSocketStream) -> None:
        self.scope = scope
        self.stream = stream
        self.phase = PHASE_HANDSHAKE
        self.disconnected = False
        self.close_code = CLOSE_ABNORMAL
        self.close_reason = ""
        # The app's handshake answer as sent (101, 200 over HTTP/2, a denial's status).
        self.status = 0
        self.started_at = 0.0
        self._connect_pending = True
        self._disconnect_delivered = False
        # The first ASGIProtocolError send() raised, for run_websocket_app's log line.
        self.error: ASGIProtocolError | None = None
        self._queue: deque[str | bytes] = deque()
        # Characters or bytes of the messages queued.
        self.queued_bytes = 0
        # The glue stopped reading because the queue is full (rule 4): receive() tells
        # it when the app has taken a message.
        self.backlogged = False
        self._waiter: asyncio.Future[None] | None = None

    # Fed by the protocol glue ----------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self._queue)

    def feed_message(self, data: str | bytes) -> int:
        """Queue a message for receive(); returns how many are queued now."""
        queue = self._queue
        queue.append(data)
        self.queued_bytes += len(data)
        waiter = self._waiter  # self._wake(), inlined: this runs for every message
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return len(queue)

    def feed_disconnect(self, code: int, reason: str = "") -> None:
        """The connection is over (closing handshake done, failed, or TCP lost)."""
        if not self.disconnected:
            self.disconnected = True
            self.close_code = code
            self.close_reason = reason
        self._wake()

    # The app's receive() ---------------------------------------------------------------

    async def receive(self) -> Message:
        if self._connect_pending:
            self._connect_pending = False
            if self.phase is PHASE_HANDSHAKE:
                return {"type": "websocket.connect"}
        while True:
            queue = self._queue
            if queue:
                data = queue.popleft()
                self.queued_bytes -= len(data)
                if self.backlogged:
                    self.stream.want_messages(self)
                if type(data) is str:
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self.disconnected:
                if self._disconnect_delivered:
                    raise ASGIProtocolError(
                        "receive() was called again after it returned"
                        f" 'websocket.disconnect' (code {self.close_code}): that is the last"
                        " message of a WebSocket; stop receiving when it arrives"
                    )
                self._disconnect_delivered = True
                return {
                    "type": "websocket.disconnect",
                    "code": self.close_code,
                    "reason": self.close_reason,
                }
            # self._wait(), inlined: one coroutine object fewer per message.
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter

    # The app's send() ------------------------------------------------------------------

    async def send(self, message: Message) -> None:
        try:
            kind = message["type"]
        except (KeyError, TypeError):
            raise self._broken(
                f"send() takes a message dict with a 'type' key, got {message!r}"
            ) from None
        phase = self.phase
        if kind == "websocket.send":
            if phase is not PHASE_OPEN:
                raise self._unexpected(kind)
            if self.disconnected:
                self._check_open()
            # The common message (exactly one of text and bytes, of the plain type)
            # is checked here; _payload() says what is wrong with any other.
            payload = message.get("text")
            if type(payload) is not str or message.get("bytes") is not None:
                payload = message.get("bytes")
                if type(payload) is not bytes or message.get("text") is not None:
                    try:
                        payload = _payload(message)
                    except ASGIProtocolError as exc:
                        raise self._broken(str(exc)) from None
            stream = self.stream
            stream.send_data(self, payload)
            if stream.write_paused:
                await stream.drain()
                self._check_open()
        elif kind == "websocket.close":
            if self.disconnected and phase is not PHASE_DENIAL_BODY:
                self.phase = PHASE_CLOSED
                return  # nobody left to tell (rule 3)
            if phase is PHASE_OPEN:
                code = message.get("code", CLOSE_NORMAL)
                reason = message.get("reason") or ""
                problem = self.stream.check_close(code, reason)
                if problem is not None:
                    raise self._broken(f"websocket.close: {problem}")
                self.phase = PHASE_CLOSED
                self.stream.close(self, code, reason)
            elif phase is PHASE_HANDSHAKE:
                # ASGI: a close before accept refuses the handshake with 403.
                reason = message.get("reason") or ""
                self._deny(403, [(b"content-type", b"text/plain; charset=utf-8")],
                           str(reason).encode("utf-8", "replace"), more=False)
            else:
                raise self._unexpected(kind)
        elif kind == "websocket.accept":
            if phase is not PHASE_HANDSHAKE:
                raise self._unexpected(kind)
            self._check_open()
            subprotocol = message.get("subprotocol")
            if subprotocol is not None:
                offered = self.scope.get("subprotocols", [])
                if not isinstance(subprotocol, str):
                    raise self._broken(
                        f"websocket.accept 'subprotocol' must be a str or None,"
                        f" got {subprotocol!r}"
                    )
                if subprotocol not in offered:
                    raise self._broken(
                        f"websocket.accept chose subprotocol {subprotocol!r}, which the"
                        f" client did not offer (offered: {offered!r}); pick one of"
                        " scope['subprotocols'] or None"
                    )
            try:
                self.status = self.stream.accept(self, subprotocol, message.get("headers") or ())
            except ValueError as exc:
                raise self._broken(str(exc)) from None
            self.phase = PHASE_OPEN
        elif kind == "websocket.http.response.start":
            if phase is not PHASE_HANDSHAKE:
                raise self._unexpected(kind)
            self._check_open()
            status = message.get("status")
            if not isinstance(status, int) or isinstance(status, bool) or status == 101:
                raise self._broken(
                    "websocket.http.response.start needs a 'status' int other than 101"
                    f" (such as 403), got {status!r}"
                )
            self.status = status
            self.phase = PHASE_DENIAL_BODY
            try:
                self.stream.deny_start(self, status, message.get("headers") or ())
            except ValueError as exc:
                raise self._broken(str(exc)) from None
        elif kind == "websocket.http.response.body":
            if phase is not PHASE_DENIAL_BODY:
                raise self._unexpected(kind)
            self._check_open()
            body = message.get("body", b"")
            if not isinstance(body, bytes | bytearray | memoryview):
                raise self._broken(
                    "websocket.http.response.body 'body' must be bytes,"
                    f" got {type(body).__name__}"
                )
            more = bool(message.get("more_body", False))
            if not more:
                self.phase = PHASE_CLOSED
            try:
                self.stream.deny_body(self, bytes(body), more)
            except ValueError as exc:
                raise self._broken(str(exc)) from None
            if more and self.stream.write_paused:
                await self.stream.drain()
                self._check_open()
        else:
            raise self._unexpected(kind)

    def _deny(self, status: int, headers: Any, body: bytes, *, more: bool) -> None:
        self.status = status
        self.phase = PHASE_CLOSED
        self.stream.deny_start(self, status, headers)
        self.stream.deny_body(self, body, more)

    def _check_open(self) -> None:
        if self.disconnected:
            raise WebSocketDisconnected(
                f"the WebSocket is closed (code {self.close_code}"
                f"{', ' + repr(self.close_reason) if self.close_reason else ''})"
            )

    def _broken(self, text: str) -> ASGIProtocolError:
        """An error for the app's send(); the session fails with it (rule 5)."""
        error = ASGIProtocolError(text)
        if self.error is None:
            self.error = error
        self.phase = PHASE_CLOSED
        self.stream.fail(self)
        return error

    def _unexpected(self, kind: object) -> ASGIProtocolError:
        if self.error is not None:
            return ASGIProtocolError(
                f"unexpected ASGI message {kind!r} sent after an earlier error: {self.error}"
            )
        hint = ""
        if isinstance(kind, str) and kind in _DID_YOU_MEAN:
            hint = f" (did you mean {_DID_YOU_MEAN[kind]!r}?)"
        return self._broken(
            f"unexpected ASGI message {kind!r} sent{hint}; the WebSocket expects"
            f" {_EXPECTS[self.phase]}"
        )


def _payload(message: Message) -> str | bytes:
    data = message.get("bytes")
    text = message.get("text")
    if data is not None:
        if text is not None:
            raise ASGIProtocolError(
                "websocket.send has both 'bytes' and 'text'; exactly one must be non-None"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ASGIProtocolError(
                f"websocket.send 'bytes' must be bytes, got {type(data).__name__}"
            )
        return bytes(data) if type(data) is not bytes else data
    if text is None:
        raise ASGIProtocolError(
            "websocket.send needs 'bytes' or 'text'; exactly one must be non-None"
        )
    if not isinstance(text, str):
        raise ASGIProtocolError(
            f"websocket.send 'text' must be a str, got {type(text).__name__}"
        )
    return text if type(text) is str else str(text)  # a str subclass: plain str


class SessionSink(Protocol):
    """How run_websocket_app reports the app's end back to the glue."""

    def app_finished(self, session: WebSocketSession, *, failed: bool) -> None: ...


async def run_websocket_app(
    app: ASGIApp,
    session: WebSocketSession,
    sink: SessionSink,
    *,
    app_name: str = "the app",
) -> None:
    """Call the app for one WebSocket; turn every way it can fail into a log line and answer."""
    scope = session.scope
    failed = True
    try:
        awaitable: Any = app(scope, session.receive, session.send)
        try:
            result = await awaitable
        except TypeError:
            if hasattr(awaitable, "__await__"):
                raise
            logger.error(
                "The ASGI app %s returned %s instead of an awaitable for WebSocket %s: an"
                " ASGI3 app is `async def app(scope, receive, send)` (an ASGI2 app needs"
                " --interface asgi2)",
                app_name,
                type(awaitable).__name__,
                scope["path"],
            )
            result = None
        else:
            if session.error is not None:
                _log_protocol_error(session, session.error, app_name, caught=True)
            else:
                failed = _returned_early(session, app_name)
        if result is not None:
            logger.warning(
                "The ASGI app %s returned %r for WebSocket %s; ASGI apps should return None",
                app_name,
                result,
                scope["path"],
            )
    except ClientDisconnected:
        failed = False  # the peer left while the app was sending; nothing is owed
    except ASGIProtocolError as exc:
        _log_protocol_error(session, session.error or exc, app_name, caught=False)
    except asyncio.CancelledError:
        sink.app_finished(session, failed=True)
        raise
    except Exception as exc:
        if session.error is not None:
            # It broke the protocol first; what it raised later is the consequence.
            _log_protocol_error(session, session.error, app_name, caught=False, exc_info=exc)
        else:
            logger.error(
                "Exception in ASGI application for WebSocket %s (app %s)",
                scope["path"],
                app_name,
                exc_info=exc,
            )
    except BaseException:
        sink.app_finished(session, failed=True)
        raise
    sink.app_finished(session, failed=failed)


def _log_protocol_error(
    session: WebSocketSession,
    error: ASGIProtocolError,
    app_name: str,
    *,
    caught: bool,
    exc_info: BaseException | None = None,
) -> None:
    where = f"WebSocket {session.scope['path']}"
    log_protocol_error(where, error, app_name, caught=caught, exc_info=exc_info)


def _returned_early(session: WebSocketSession, app_name: str) -> bool:
    """Log an app that returned leaving its answer unfinished; True if it did."""
    if session.disconnected:
        return False
    path = session.scope["path"]
    if session.phase is PHASE_HANDSHAKE:
        logger.error(
            "The ASGI app returned without answering the WebSocket handshake for %s"
            " (expected 'websocket.accept', 'websocket.close' or"
            " 'websocket.http.response.start'; app %s)",
            path,
            app_name,
        )
        return True
    if session.phase is PHASE_DENIAL_BODY:
        logger.error(
            "The ASGI app returned before finishing its denial response for WebSocket"
            " %s (the last 'websocket.http.response.body' must have more_body=False;"
            " app %s)",
            path,
            app_name,
        )
        return True
    return False
