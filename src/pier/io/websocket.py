"""One WebSocket connection on asyncio: socket bytes -> WSConnection -> WebSocketSession.

Rules:
1. This is the only place where a WebSocket meets asyncio. Frames and the handshake
   live in proto/ws.py, ASGI semantics in asgi/websocket.py; the class here routes
   events, owns the transport, and runs the timers (keepalive ping, handshake timeouts).
2. It takes the transport over from H1Connection (ctx.ws_handler): from then on this
   object is the transport's protocol and the one entry for it in ctx.connections.
   It writes no HTTP itself: the handshake's answers (accept, a denial, a refusal)
   are written by the `HandshakeAnswer` of the protocol it runs over (H1Handshake in
   io/connection.py for HTTP/1.1; io/h2.py `_WebSocketStream` for RFC 8441 on HTTP/2).
3. Nothing a client sends can make the server buffer without limit: bytes sent before
   the handshake is answered pause reading past `_EARLY_DATA`; messages the app has not
   received pause reading once --ws-max-queue messages or --ws-max-size bytes wait
   (the rest of the socket read that crossed the mark is still queued); the app's
   send() waits while the write buffer is above its mark; and pongs owed while the
   peer does not read collapse into one (for its latest ping).
4. Closing: the server half-closes TCP after the closing handshake (RFC 6455 section
   7.1.1: the server closes first) and aborts a peer that has not closed its side or
   answered our close frame within --timeout-ws-handshake. Graceful shutdown closes
   with 1001 (going away); the app then receives websocket.disconnect.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol, cast

from pier.asgi.scope import ConnectionInfo, websocket_scope
from pier.asgi.websocket import (
    PHASE_CLOSED,
    PHASE_HANDSHAKE,
    WebSocketDisconnected,
    WebSocketSession,
    run_websocket_app,
)
from pier.io.context import ServerContext
from pier.io.deadlines import NEVER
from pier.io.flow import FlowControl
from pier.proto import ws as proto
from pier.proto.events import Request
from pier.proto.headers import AppResponseError

if TYPE_CHECKING:
    from pier.config import Config

logger = logging.getLogger("pier.error")

__all__ = [
    "HandshakeAnswer",
    "WSProtocol",
    "WSSettings",
    "handler_from_config",
    "make_ws_handler",
]

# Bytes a client may send before its handshake is answered; RFC 6455 section 4.1 says it
# must wait for the answer, so this only has to hold a pipelined first frame or two.
_EARLY_DATA = 64 * 1024
CLOSE_SHUTDOWN = proto.CLOSE_GOING_AWAY


@dataclass(frozen=True, slots=True)
class WSSettings:
    """The --ws-* options, as the glue needs them."""

    max_size: int | None = 16 * 1024 * 1024
    max_queue: int = 32
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    per_message_deflate: bool = True
    handshake_timeout: float = 10.0


class HandshakeAnswer(Protocol):
    """How the protocol under a WebSocket answers its opening handshake.

    Each method checks what the app gave before writing anything, and raises
    AppResponseError (proto/headers.py) for what cannot be sent.
    """

    def accept(self, handshake: proto.ServerHandshake, fields: list[tuple[bytes, bytes]]) -> int:
        """The success answer with these fields; returns its status (HTTP/1.1: 101
        Switching Protocols, HTTP/2: 200, RFC 8441 section 5)."""

    def deny_head(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        """The start of the app's denial response, with its first body piece."""

    def deny_body(self, body: bytes, more_body: bool) -> None:
        """More of the denial response's body."""

    def refuse(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> int:
        """The server's own short text/plain refusal (a bad handshake, 503, 500);
        returns its body size."""


def make_ws_handler(ctx: ServerContext, settings: WSSettings) -> Callable[..., None]:
    """The ctx.ws_handler H1Connection calls with an upgrade request and its transport."""

    def ws_handler(
        *, transport: asyncio.BaseTransport, request: Request, info: ConnectionInfo,
        data: bytes, answer: HandshakeAnswer,
    ) -> None:
        connection = WSProtocol(ctx, settings, request=request, info=info, answer=answer)
        transport.set_protocol(connection)
        connection.take_over(transport, data)

    return ws_handler


class WSProtocol(FlowControl, asyncio.Protocol):
    """The asyncio protocol of one WebSocket, from its upgrade request to its close."""

    # Its timeouts (handshake, ping, close) are its own timers, not the server's
    # deadline sweep (io/deadlines.py), which this tells to pass it by.
    deadline = NEVER

    __slots__ = (
        "_app_done",
        "_close_timer",
        "_denial_head",
        "_denial_started",
        "_drain_waiter",
        "_early",
        "_eof_sent",
        "_handshake",
        "_handshake_timer",
        "_max_queue",
        "_max_queued_bytes",
        "_ping_handle",
        "_ping_payload",
        "_pings",
        "_pong_owed",
        "_read_paused",
        "_sent",
        "_shutdown_requested",
        "_started_at",
        "answer",
        "closed",
        "ctx",
        "info",
        "loop",
        "request",
        "session",
        "settings",
        "transport",
        "write_paused",
        "ws",
    )

    def __init__(
        self, ctx: ServerContext, settings: WSSettings, *, request: Request,
        info: ConnectionInfo, answer: HandshakeAnswer,
    ) -> None:
        self.ctx = ctx
        self.answer = answer
        self.loop = ctx.loop
        self.settings = settings
        self.request = request
        self.info = info
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.session: WebSocketSession | None = None
        self.ws: proto.WSConnection | None = None
        self.closed = False
        self.write_paused = False
        self._handshake: proto.ServerHandshake | None = None
        self._drain_waiter: asyncio.Future[None] | None = None
        self._early = bytearray()
        self._eof_sent = False
        self._read_paused = False
        self._app_done = False
        self._shutdown_requested = False
        # Part of a denial response is on the wire.
        self._denial_started = False
        self._sent = 0
        self._started_at = perf_counter()
        self._handshake_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._ping_handle: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._pings = 0
        self._pong_owed: bytes | None = None
        self._denial_head: tuple[int, Any] | None = None
        # Queued incoming messages that pause reading (rule 3), by count and by size.
        self._max_queue = settings.max_queue
        self._max_queued_bytes = settings.max_size or 1 << 62

    def deadline_passed(self) -> None:
        """Never due: the sweep passes this connection by (see `deadline`)."""

    # Taking over from HTTP/1.1 ------------------------------------------------------------

    def take_over(self, transport: asyncio.BaseTransport, data: bytes) -> None:
        """Check the handshake and start the app, or refuse with an HTTP answer."""
        self.transport = transport = cast(asyncio.Transport, transport)
        ctx = self.ctx
        ctx.connections.add(self)
        ctx.total_requests += 1
        if transport.is_closing():
            self.closed = True
            ctx.connections.discard(self)
            return
        try:
            handshake = proto.negotiate(
                self.request, per_message_deflate=self.settings.per_message_deflate
            )
        except proto.HandshakeRefused as exc:
            logger.info(
                "Refused a WebSocket handshake from %s: %s (HTTP %d)",
                self.info.peer, exc.reason, exc.status,
            )
            self._refuse(exc.status, exc.reason, exc.headers)
            return
        if ctx.shutting_down:
            self._refuse(503, "Service Unavailable: the server is shutting down")
            return
        if ctx.over_capacity():
            ctx.warn_over_capacity()
            self._refuse(503, "Service Unavailable: too many concurrent connections")
            return
        self._handshake = handshake
        scope = websocket_scope(self.request, self.info, ctx.lifespan_state,
                                handshake.subprotocols)
        if ctx.proxy is not None:
            from pier.asgi.proxy import apply_proxy_headers

            apply_proxy_headers(scope, ctx.proxy)
        session = self.session = WebSocketSession(scope, self)
        if data:
            self._early += data
            if len(self._early) > _EARLY_DATA:
                self._pause_reading()
        self._handshake_timer = self.loop.call_later(
            self.settings.handshake_timeout, self._on_handshake_timeout
        )
        task = ctx.start_task(run_websocket_app(ctx.app, session, self, app_name=ctx.app_name))
        if not task.done():
            ctx.tasks.add(task)

    def _refuse(self, status: int, reason: str,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
        size = 0 if self.closed else self.answer.refuse(status, reason, headers or [])
        self._log_access(status, size)
        self._close_transport()

    # asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Never called: the transport is handed over (take_over), not newly made.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        ctx = self.ctx
        ctx.connections.discard(self)
        for timer in (self._handshake_timer, self._close_timer, self._ping_handle):
            if timer is not None:
                timer.cancel()
        self._handshake_timer = self._close_timer = self._ping_handle = None
        if self.session is not None:
            self.session.feed_disconnect(
                proto.CLOSE_ABNORMAL, "the connection was lost without a closing handshake"
            )
        self.release_writers()
        if ctx.on_idle is not None:
            ctx.on_idle()

    def resume_writing(self) -> None:
        super().resume_writing()
        # A pong held back while the client was not reading can go out now.
        owed = self._pong_owed
        if owed is not None and self.ws is not None:
            self._pong_owed = None
            self.ws.send_pong(owed)
            self._flush()

    def data_received(self, data: bytes) -> None:
        metrics = self.ctx.metrics
        if metrics is not None:  # issue 12
            metrics.received += len(data)
        ws = self.ws
        if ws is None:
            # The app has not accepted yet: keep the bytes for when it does.
            self._early += data
            if len(self._early) > _EARLY_DATA:
                self._pause_reading()
            return
        message = ws.read_message(data)
        if message is None:
            self._handle(ws.receive_frames(data))
            self._flush()
        else:
            self._on_message(message)  # nothing to write: no _flush()

    def eof_received(self) -> bool | None:
        ws = self.ws
        if ws is None:
            if self.session is not None:
                self.session.feed_disconnect(
                    proto.CLOSE_ABNORMAL, "the client closed the connection during the handshake"
                )
            return None
        self._handle(ws.receive_eof())
        self._flush()
        # Both directions are done once the peer's FIN is in: let the transport close.
        return None

    # Protocol events ---------------------------------------------------------------------

    def _handle(self, events: list[proto.WSEvent]) -> None:
        session = self.session
        assert session is not None
        for event in events:
            kind = type(event)
            if kind is proto.Message:
                self._on_message(cast(proto.Message, event).data)
            elif kind is proto.Ping:
                payload = cast(proto.Ping, event).data
                if self.write_paused:
                    self._pong_owed = payload
                else:
                    assert self.ws is not None
                    self.ws.send_pong(payload)
            elif kind is proto.Pong:
                if cast(proto.Pong, event).data == self._ping_payload:
                    self._ping_payload = None
                    self._schedule_ping()
            elif kind is proto.CloseReceived:
                close = cast(proto.CloseReceived, event)
                session.feed_disconnect(close.code, close.reason)
                self._arm_close_timer()
            else:
                failed = cast(proto.Failed, event)
                if failed.code != proto.CLOSE_ABNORMAL:
                    logger.info(
                        "Closed a WebSocket from %s with code %d: %s",
                        self.info.peer, failed.code, failed.reason,
                    )
                session.feed_disconnect(failed.code, failed.reason)
                self._arm_close_timer()

    def _on_message(self, data: str | bytes) -> None:
        session = self.session
        assert session is not None
        if session.phase is PHASE_CLOSED or self._app_done:
            return  # nobody will receive it; keep reading to see the close
        if (
            session.feed_message(data) >= self._max_queue
            or session.queued_bytes >= self._max_queued_bytes
        ):
            session.backlogged = True
            self._pause_reading()

    def _flush(self) -> None:
        ws = self.ws
        if ws is None or self.closed:
            return
        data, eof = ws.data_to_send()
        if self._eof_sent:
            return
        if data:
            self.transport.write(data)
            metrics = self.ctx.metrics
            if metrics is not None:  # issue 12
                metrics.sent += len(data)
        if eof:
            self._eof_sent = True
            self._cancel_ping()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            else:
                self.transport.close()
            self._arm_close_timer()

    # WebSocketStream (called by WebSocketSession) -----------------------------------------

    def accept(self, session: WebSocketSession, subprotocol: str | None, headers: Any) -> int:
        handshake = self._handshake
        assert handshake is not None
        fields = proto.accept_headers(handshake, subprotocol=subprotocol, headers=headers)
        if self.closed:
            raise WebSocketDisconnected("the client closed the connection during the handshake")
        self._cancel_handshake_timer()
        status = self.answer.accept(handshake, fields)
        self._log_access(status, 0)
        ws = self.ws = proto.WSConnection(handshake, max_size=self.settings.max_size)
        self._schedule_ping()
        early, self._early = bytes(self._early), bytearray()
        if self._read_paused:
            self._resume_reading()
        if early:
            self._handle(ws.receive_data(early))
        if self._shutdown_requested or self.ctx.shutting_down:
            ws.close(CLOSE_SHUTDOWN, "server shutting down")
        self._flush()
        return status

    def deny_start(self, session: WebSocketSession, status: int, headers: Any) -> None:
        self._cancel_handshake_timer()
        self._denial_head = (status, headers)

    def deny_body(self, session: WebSocketSession, body: bytes, more_body: bool) -> None:
        if self.closed:
            raise WebSocketDisconnected("the client closed the connection during the handshake")
        try:
            if not self._denial_started:
                head = self._denial_head
                assert head is not None
                self.answer.deny_head(head[0], head[1], body, more_body)
                self._denial_started = True
            else:
                self.answer.deny_body(body, more_body)
        except AppResponseError as exc:
            raise ValueError(str(exc)) from None
        self._sent += len(body)
        if not more_body:
            self._log_access(session.status, self._sent)
            self._close_transport()

    def send_data(self, session: WebSocketSession, data: str | bytes) -> None:
        ws = self.ws
        if ws is None or not ws.open or self.closed:
            raise WebSocketDisconnected("the WebSocket is closing")
        try:
            frame = ws.message_frame(data)
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"websocket.send 'text' is not encodable as UTF-8 ({exc.reason} at"
                f" index {exc.start})"
            ) from None
        self.transport.write(frame)
        metrics = self.ctx.metrics
        if metrics is not None:  # issue 12
            metrics.sent += len(frame)

    def close(self, session: WebSocketSession, code: int, reason: str) -> None:
        ws = self.ws
        if ws is None or self.closed:
            return
        ws.close(code, reason)
        self._flush()
        self._arm_close_timer()

    def check_close(self, code: object, reason: object) -> str | None:
        return proto.check_close(code, reason)

    def want_messages(self, session: WebSocketSession) -> None:
        if (
            self.ws is not None
            and session.queued < self._max_queue
            and session.queued_bytes < self._max_queued_bytes
        ):
            session.backlogged = False
            self._resume_reading()

    # SessionSink (called by run_websocket_app) -------------------------------------------

    def app_finished(self, session: WebSocketSession, *, failed: bool) -> None:
        self._app_done = True
        ctx = self.ctx
        task = asyncio.current_task()
        if task is not None:
            ctx.tasks.discard(task)
        if not self.closed:
            ws = self.ws
            if ws is not None and ws.open and not failed:
                ws.close(proto.CLOSE_NORMAL, "")
                self._flush()
                self._arm_close_timer()
            elif ws is not None and not ws.open:
                if self._read_paused:
                    self._resume_reading()  # queued messages are dropped; see the close
            else:
                self.fail(session)  # an unanswered handshake or a cut denial, too
        if ctx.on_idle is not None:
            ctx.on_idle()

    def fail(self, session: WebSocketSession) -> None:
        if self.closed:
            return
        ws = self.ws
        if ws is not None:
            if ws.open:
                ws.close(proto.CLOSE_INTERNAL_ERROR, "internal server error")
                self._flush()
                self._arm_close_timer()
        elif self._denial_started:
            self._close_transport()  # part of a denial is on the wire: cut it
        else:
            self._cancel_handshake_timer()
            self._refuse(500, "Internal Server Error")

    # Timers ------------------------------------------------------------------------------

    def _on_handshake_timeout(self) -> None:
        self._handshake_timer = None
        session = self.session
        if self.closed or session is None or session.phase is not PHASE_HANDSHAKE:
            return
        logger.warning(
            "The ASGI app did not answer the WebSocket handshake for %s within %ss"
            " (--timeout-ws-handshake); answered 500 and closed the connection",
            session.scope["path"],
            self.settings.handshake_timeout,
        )
        session.feed_disconnect(proto.CLOSE_ABNORMAL, "the handshake timed out")
        self._refuse(500, "Internal Server Error: the app did not answer the handshake in time")

    def _arm_close_timer(self) -> None:
        if self._close_timer is None and not self.closed:
            self._close_timer = self.loop.call_later(
                self.settings.handshake_timeout, self._on_close_timeout
            )

    def _on_close_timeout(self) -> None:
        self._close_timer = None
        if not self.closed:
            logger.info(
                "Aborted a WebSocket from %s: the closing handshake did not finish within"
                " %ss (--timeout-ws-handshake)",
                self.info.peer,
                self.settings.handshake_timeout,
            )
            self.transport.abort()

    def _schedule_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval and not self.closed:
            if self._ping_handle is not None:
                self._ping_handle.cancel()
            self._ping_handle = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping_handle = None
        ws = self.ws
        if ws is None or not ws.open or self.closed:
            return
        self._pings += 1
        payload = self._ping_payload = struct.pack("!I", self._pings)
        ws.send_ping(payload)
        self._flush()
        timeout = self.settings.ping_timeout
        if timeout:
            self._ping_handle = self.loop.call_later(timeout, self._on_ping_timeout)

    def _on_ping_timeout(self) -> None:
        self._ping_handle = None
        ws = self.ws
        if ws is None or self.closed or self._ping_payload is None:
            return
        if self._read_paused:
            # The pong may be waiting behind messages the app has not taken; that is
            # the app's pace, not a dead peer.
            self._ping_handle = self.loop.call_later(
                self.settings.ping_timeout or 1.0, self._on_ping_timeout
            )
            return
        logger.info(
            "Closed a WebSocket from %s: no pong within %ss of a ping (--ws-ping-timeout)",
            self.info.peer,
            self.settings.ping_timeout,
        )
        reason = "keepalive ping timeout"
        ws.fail(proto.CLOSE_INTERNAL_ERROR, reason)
        if self.session is not None:
            self.session.feed_disconnect(proto.CLOSE_INTERNAL_ERROR, reason)
        self._flush()
        self._arm_close_timer()

    def _cancel_ping(self) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()
            self._ping_handle = None

    def _cancel_handshake_timer(self) -> None:
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
            self._handshake_timer = None

    # Internals ---------------------------------------------------------------------------

    def _log_access(self, status: int, size: int) -> None:
        access = self.ctx.access_log
        if access is None:
            return
        request = self.request
        scope = self.session.scope if self.session is not None else None
        access.record(
            client=scope["client"] if scope is not None else self.info.client,
            method=request.method,
            path=scope["raw_path"] if scope is not None else request.raw_path,
            request_headers=scope["headers"] if scope is not None else (),
            query_string=request.query_string,
            http_version=request.http_version,
            status=status,
            size=size,
            duration=perf_counter() - self._started_at,
        )

    def _close_transport(self) -> None:
        if not self.closed:
            self.closed = True
            self._cancel_ping()
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close with 1001 (going away); the app gets websocket.disconnect."""
        ws = self.ws
        if ws is None:
            # The app is still deciding on the handshake; close right after it accepts.
            self._shutdown_requested = True
            return
        if ws.open and not self.closed:
            ws.close(CLOSE_SHUTDOWN, "server shutting down")
            self._flush()
            self._arm_close_timer()


def handler_from_config(ctx: ServerContext, config: Config) -> Callable[..., None]:
    """The ws_handler for a Config's --ws-* options (called by Server._context)."""
    return make_ws_handler(
        ctx,
        WSSettings(
            max_size=config.ws_max_size,
            max_queue=config.ws_max_queue,
            ping_interval=config.ws_ping_interval,
            ping_timeout=config.ws_ping_timeout,
            per_message_deflate=config.ws_per_message_deflate,
            handshake_timeout=config.timeout_ws_handshake,
        ),
    )
