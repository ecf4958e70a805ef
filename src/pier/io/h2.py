"""One HTTP/2 connection on asyncio: socket bytes -> H2Protocol -> one HTTPCycle per stream.

Rules:
1. This is the only place where HTTP/2 meets asyncio. Framing, HPACK, flow-control
   accounting and every flood bound live in proto/h2.py; ASGI semantics in asgi/http.py.
   The connection routes stream events to cycles and writes what the protocol emits.
2. Each stream is a `_Stream`: the response stream (asgi/http.py ResponseStream) and the
   failure sink of its cycle. A stream's app waits (drain) while more than
   STREAM_HIGH_WATER of its response waits for the peer's window, or while the transport
   is paused, so a peer that never opens its window holds back the app, not memory.
3. A stream the peer resets gets http.disconnect and its app task is cancelled.
4. Timeouts: an HTTP/2 connection with no stream in flight for --timeout-keep-alive is
   closed with GOAWAY NO_ERROR (the server's deadline sweep calls deadline_passed()).
5. Graceful shutdown is the two-step GOAWAY (proto/h2.py); the connection closes when its
   last stream is done, or when the server's graceful timeout aborts it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, cast

from pier.asgi.http import HTTPCycle
from pier.asgi.proxy import apply_proxy_headers
from pier.asgi.scope import ConnectionInfo, http_scope
from pier.io.connection import connection_info
from pier.io.context import ServerContext
from pier.io.deadlines import NEVER
from pier.io.flow import FlowControl
from pier.io.lifecycle import log_response, start_request
from pier.io.throttle import WARNING_INTERVAL
from pier.proto.events import Request
from pier.proto.h2 import (
    ConnectionEnded,
    ErrorCode,
    H2Event,
    H2Protocol,
    ShutdownComplete,
    StreamBody,
    StreamEnd,
    StreamRefused,
    StreamRequest,
    StreamReset,
    StreamWritable,
)
from pier.proto.headers import (
    PLAIN_TEXT_TYPE,
    body_length_error,
    check_status,
    parse_length,
    plain_body,
    two_lengths_error,
    validate_headers,
)
from pier.proto.limits import H2Limits

if TYPE_CHECKING:
    from pier.config import Config

logger = logging.getLogger("pier.error")

# Response bytes of one stream waiting for the peer's window before its app waits.
STREAM_HIGH_WATER = 64 * 1024
WRITE_HIGH_WATER = 256 * 1024
# Seconds a connection ended by GOAWAY keeps reading (and dropping) before it closes.
LINGER = 1.0


def warn_limit(ctx: ServerContext, limit: str, peer: str, reason: str) -> None:
    """A rate-limited warning (per server) naming the limit an HTTP/2 peer ran into."""
    if ctx.warnings.allows(limit):
        logger.warning(
            "Ended an HTTP/2 connection from %s: %s (%s; further ones are not logged for"
            " %ds)", peer, reason, limit, WARNING_INTERVAL,
        )


def _default_fields(default_headers: bytes) -> list[tuple[bytes, bytes]]:
    fields = []
    for line in default_headers.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


class _Stream:
    """One HTTP/2 stream as its HTTPCycle sees it (asgi/stream.py ResponseStream)."""

    __slots__ = ("acked", "conn", "cycle", "declared", "fed", "head_sent", "no_body",
                 "remaining", "stream_id", "waiter")

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.cycle: HTTPCycle | None = None
        self.fed = 0  # request body bytes given to the cycle
        self.acked = 0  # of which the app has taken (their window reopened)
        self.head_sent = False
        self.no_body = False  # HEAD, 204, 304: DATA must not be sent
        self.remaining: int | None = None  # body bytes still owed to a Content-Length
        self.declared = 0  # the Content-Length the app declared, while `remaining` counts
        self.waiter: asyncio.Future[None] | None = None

    @property
    def write_paused(self) -> bool:
        conn = self.conn
        return conn.write_paused or conn.proto.pending(self.stream_id) > STREAM_HIGH_WATER

    def send_head(  # noqa: PLR0917 - positional, as the interface says
        self,
        cycle: HTTPCycle,
        status: int,
        headers: Any,
        body: bytes,
        more_body: bool,
        length: int | None,
        /,
    ) -> bool:
        check_status(status)
        fields = validate_headers(headers)
        conn = self.conn
        no_body = self.no_body = (
            status in (204, 304) or cycle.scope["method"] == "HEAD"
        )
        lengths = [value for name, value in fields if name == b"content-length"]
        declared = lengths[0] if lengths else None
        if len(lengths) > 1:
            fields = _one_length(fields, parse_length(lengths[0]))
        if declared is None:
            self.remaining = None
            if length is not None and not no_body:
                fields.append((b"content-length", b"%d" % length))
        else:
            # HTTP/2 frames the body itself, but a length the body contradicts is as
            # wrong as on HTTP/1.1 (RFC 9113 8.1.1): refused before anything is sent.
            if no_body:
                self.remaining = None
            else:
                self.remaining = self.declared = parse_length(declared)
            self._count(body, more_body)
        fields.extend(conn.default_fields(fields))
        end = not more_body and not cycle.trailers
        proto = conn.proto
        proto.send_headers(self.stream_id, status, fields, end_stream=end and (no_body or not body))
        self.head_sent = True
        if body and not no_body:
            proto.send_data(self.stream_id, bytes(body), end_stream=end)
        conn.write_soon()
        return not no_body

    def _count(self, body: bytes, more_body: bool) -> None:
        remaining = self.remaining
        if remaining is None:
            return
        size = len(body)
        if size > remaining or (not more_body and size != remaining):
            declared = self.declared
            sent = declared - remaining + size
            raise body_length_error(sent, declared, ended=size <= remaining)
        self.remaining = remaining - size

    def send_data(self, cycle: HTTPCycle, body: bytes, more_body: bool, /) -> None:
        self._count(body, more_body)
        end = not more_body and not cycle.trailers
        if self.no_body:
            body = b""
            if not end:
                return
        self.conn.proto.send_data(self.stream_id, bytes(body), end_stream=end)
        self.conn.write_soon()

    def send_trailers(self, cycle: HTTPCycle, headers: list[Any], /) -> None:
        fields = validate_headers(headers, "http.response.trailers")
        self.conn.proto.send_trailers(self.stream_id, fields)
        self.conn.write_soon()

    def send_interim(self, cycle: HTTPCycle, status: int, headers: Any, /) -> None:
        if self.head_sent:
            return
        fields = validate_headers(headers, "http.response.early_hint") if headers else []
        self.conn.proto.send_headers(self.stream_id, status, fields)
        self.conn.write_soon()

    def send_error(self, cycle: HTTPCycle, status: int, text: str, /) -> None:
        conn = self.conn
        if not self.head_sent:
            self.head_sent = True
            cycle.plain_answer_sent(conn.send_plain(self.stream_id, status, text))
        if conn.ctx.access_log is not None:
            log_response(conn.ctx, cycle)

    def abort(self, cycle: HTTPCycle, /) -> None:
        # Part of the response is out: a reset is the only honest signal.
        self.conn.proto.reset(self.stream_id, ErrorCode.INTERNAL_ERROR)
        self.conn.write_soon()

    def want_body(self, cycle: HTTPCycle, /) -> None:
        taken = self.fed - cycle.buffered
        if taken > self.acked:
            self.conn.proto.consumed(self.stream_id, taken - self.acked)
            self.acked = taken
            self.conn.write_soon()

    def response_done(self, cycle: HTTPCycle, /) -> None:
        if self.conn.ctx.access_log is not None:
            log_response(self.conn.ctx, cycle)

    async def drain(self) -> None:
        while self.write_paused and not self.conn.closed and not (
            self.cycle is not None and self.cycle.disconnected
        ):
            waiter = self.waiter = self.conn.loop.create_future()
            try:
                await waiter
            finally:
                self.waiter = None

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _WebSocketStream(asyncio.Transport):
    """One RFC 8441 WebSocket stream, as the WebSocket glue (io/websocket.py) sees it.

    To WSProtocol it is the transport (its bytes are the stream's DATA, its EOF the
    stream's END_STREAM, pausing reading holds back the stream's window) and the
    `HandshakeAnswer` (accept is a 200 HEADERS frame, denials and refusals are
    ordinary responses). So one WebSocket session runs over HTTP/1.1 and HTTP/2 alike.
    """

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__()
        self.conn = conn
        self.stream_id = stream_id
        self.protocol: asyncio.Protocol | None = None
        self.closing = False
        self.lost = False
        self._reading_paused = False
        self._unacked = 0  # DATA bytes not yet handed back to the client's window
        self._writing_paused = False
        self._local_ended = False
        self._remote_ended = False

    # From the connection -----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self.protocol is not None and not self.lost:
            self.protocol.data_received(data)
        if self._reading_paused:
            self._unacked += len(data)
        else:
            self.conn.proto.consumed(self.stream_id, len(data))

    def feed_eof(self) -> None:
        self._remote_ended = True
        if self.protocol is not None and not self.lost:
            self.protocol.eof_received()
        self._maybe_done()

    def _maybe_done(self) -> None:
        # Both sides sent END_STREAM: the stream is closed, as a TCP connection is
        # after both FINs (asyncio would call connection_lost then).
        if self._remote_ended and self._local_ended and not self.lost:
            self.conn.loop.call_soon(self.gone)

    def writable(self) -> None:
        if self._writing_paused and not self._over_mark() and self.protocol is not None:
            self._writing_paused = False
            self.protocol.resume_writing()

    def gone(self) -> None:
        """The stream or the connection ended: the WebSocket side learns of it once."""
        if not self.lost:
            self.lost = True
            self.closing = True
            if self.protocol is not None:
                self.protocol.connection_lost(None)
            self.conn.ws_stream_done(self)

    # asyncio.Transport, as WSProtocol uses it --------------------------------------------

    def _over_mark(self) -> bool:
        return self.conn.proto.pending(self.stream_id) > STREAM_HIGH_WATER

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            return
        self.conn.proto.send_data(self.stream_id, bytes(data))
        self.conn.write_soon()
        if not self._writing_paused and self._over_mark() and self.protocol is not None:
            self._writing_paused = True
            self.protocol.pause_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if not self._local_ended:
            self._local_ended = True
            self.conn.proto.send_data(self.stream_id, b"", end_stream=True)
            self.conn.write_soon()
            self._maybe_done()

    def close(self) -> None:
        if not self.lost:
            self.write_eof()
            self.closing = True
            self.conn.loop.call_soon(self.gone)

    def abort(self) -> None:
        self.conn.proto.reset(self.stream_id, ErrorCode.CANCEL)
        self.conn.write_soon()
        self.closing = True
        self.gone()

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.conn.transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False
        if self._unacked:
            self.conn.proto.consumed(self.stream_id, self._unacked)
            self._unacked = 0
            self.conn.write_soon()

    def is_reading(self) -> bool:
        return not self._reading_paused

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # the stream's mark is STREAM_HIGH_WATER

    def get_write_buffer_size(self) -> int:
        return self.conn.proto.pending(self.stream_id)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = cast(asyncio.Protocol, protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    # HandshakeAnswer (io/websocket.py) ------------------------------------------------

    def accept(self, handshake: Any, fields: list[tuple[bytes, bytes]]) -> int:
        # RFC 8441 section 5: a 2xx answers the CONNECT; no Sec-WebSocket-Accept.
        conn = self.conn
        conn.proto.send_headers(self.stream_id, 200, [*fields, *conn.default_fields(fields)])
        conn.write_soon()
        return 200

    def deny_head(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        check_status(status)
        fields = validate_headers(headers, "websocket.http.response.start")
        conn = self.conn
        fields.extend(conn.default_fields(fields))
        end = not more_body
        conn.proto.send_headers(self.stream_id, status, fields, end_stream=end and not body)
        if body:
            conn.proto.send_data(self.stream_id, bytes(body), end_stream=end)
        conn.write_soon()
        self._local_ended = end

    def deny_body(self, body: bytes, more_body: bool) -> None:
        self.conn.proto.send_data(self.stream_id, bytes(body), end_stream=not more_body)
        self.conn.write_soon()
        self._local_ended = not more_body

    def refuse(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> int:
        size = self.conn.send_plain(self.stream_id, status, reason, headers)
        self._local_ended = True
        return size


class H2Connection(FlowControl, asyncio.Protocol):
    """An HTTP/2 connection: TLS with ALPN h2, prior knowledge, or after Upgrade: h2c."""

    def __init__(
        self,
        ctx: ServerContext,
        limits: H2Limits,
        *,
        upgrade: tuple[bytes, Request] | None = None,
    ) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        # RFC 8441: WebSocket over HTTP/2 is offered when pier serves WebSockets.
        self.proto = H2Protocol(
            limits, body_limit=ctx.limits.body, connect_protocol=ctx.ws_handler is not None
        )
        self._upgrade = upgrade
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.info: ConnectionInfo = None  # type: ignore[assignment]
        self.closed = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self.streams: dict[int, _Stream] = {}
        self.ws_streams: dict[int, _WebSocketStream] = {}
        self.deadline = NEVER
        self._fields_for: bytes | None = None
        self._fields: list[tuple[bytes, bytes]] = []
        self._write_scheduled = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.ctx.total_connections += 1
        self.take_over(transport, b"", debug_line="opened (HTTP/2)")

    def take_over(
        self, transport: asyncio.BaseTransport, data: bytes, *,
        debug_line: str = "switched to HTTP/2",
    ) -> None:
        """Serve `transport` from here; `data` is what was read of it already."""
        self.transport = transport = cast(asyncio.Transport, transport)
        ctx = self.ctx
        ctx.connections.add(self)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.info = connection_info(transport, ctx, transport.get_extra_info("peername"))
        if ctx.debug:
            logger.debug("Connection from %s %s", self.info.peer, debug_line)
        if self._upgrade is not None:
            settings, request = self._upgrade
            self._upgrade = None
            self._handle(self.proto.initiate_upgrade(settings, request))
        else:
            self.proto.initiate()
        self.write_soon()
        if data:
            self.data_received(data)
        if ctx.shutting_down:
            self.shutdown()
        self._idle_check()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ctx.debug:
            logger.debug(
                "Connection from %s closed (HTTP/2): %s",
                self.info.peer,
                "cleanly" if exc is None else f"lost ({exc or type(exc).__name__})",
            )
        self.closed = True
        self.ctx.connections.discard(self)
        for ws in list(self.ws_streams.values()):
            ws.gone()
        for stream in list(self.streams.values()):
            if stream.cycle is not None:
                stream.cycle.feed_disconnect()
            stream.wake()
        self.release_writers()
        if self.ctx.on_idle is not None:
            self.ctx.on_idle()

    def data_received(self, data: bytes) -> None:
        metrics = self.ctx.metrics
        if metrics is not None:  # issue 12
            metrics.received += len(data)
        if self.closed:
            return  # lingering after a GOAWAY: read and dropped
        self._handle(self.proto.receive_data(data))
        self.write_soon()

    def eof_received(self) -> bool | None:
        if self.closed:
            self.transport.close()
        return None

    def resume_writing(self) -> None:
        super().resume_writing()
        for stream in list(self.streams.values()):
            stream.wake()
        for ws in list(self.ws_streams.values()):
            ws.writable()

    # Events -----------------------------------------------------------------------------

    def _handle(self, events: list[H2Event]) -> None:
        streams = self.streams
        for event in events:
            if isinstance(event, StreamBody):
                stream = streams.get(event.stream_id)
                if stream is not None and stream.cycle is not None:
                    stream.fed += len(event.data)
                    stream.cycle.feed_body(event.data)
                elif event.stream_id in self.ws_streams:
                    self.ws_streams[event.stream_id].feed(event.data)
            elif isinstance(event, StreamEnd):
                stream = streams.get(event.stream_id)
                if stream is not None and stream.cycle is not None:
                    stream.cycle.feed_end()
                elif event.stream_id in self.ws_streams:
                    self.ws_streams[event.stream_id].feed_eof()
            elif isinstance(event, StreamRequest):
                self._start(event)
            elif isinstance(event, StreamWritable):
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream.wake()
                elif event.stream_id in self.ws_streams:
                    self.ws_streams[event.stream_id].writable()
            elif isinstance(event, StreamReset):
                self._reset(event.stream_id)
            elif isinstance(event, StreamRefused):
                self._refused(event)
            elif isinstance(event, ConnectionEnded):
                metrics = self.ctx.metrics
                if metrics is not None and event.limit is not None:
                    # issue 12: a protection tripped, by its option (h2_max_reset_streams).
                    metrics.refused(event.limit.lstrip("-").replace("-", "_"))
                if event.limit is not None:
                    warn_limit(self.ctx, event.limit, self.info.peer, event.reason)
                elif event.error_code:
                    logger.info(
                        "Ended an HTTP/2 connection from %s: %s", self.info.peer, event.reason
                    )
                self._close(linger=True)
            elif isinstance(event, ShutdownComplete):
                self._close()

    def _start(self, event: StreamRequest) -> None:
        ctx = self.ctx
        request = event.request
        stream = self.streams[event.stream_id] = _Stream(self, event.stream_id)
        self.deadline = NEVER
        if request.upgrade is not None:
            self.streams.pop(event.stream_id)
            handler = ctx.ws_handler
            if request.upgrade != b"websocket" or handler is None:
                # An extended CONNECT for a protocol pier does not speak (h2 refuses
                # one that SETTINGS_ENABLE_CONNECT_PROTOCOL did not allow).
                self.proto.reset(event.stream_id, ErrorCode.REFUSED_STREAM)
                self._app_done(stream)
                return
            ws = self.ws_streams[event.stream_id] = _WebSocketStream(self, event.stream_id)
            handler(transport=ws, request=request, info=self.info, data=b"", answer=ws)
            return
        scope = http_scope(
            self.info, ctx.lifespan_state, request.method, "2", request.raw_path,
            request.query_string, request.headers,
        )
        if ctx.proxy is not None:
            apply_proxy_headers(scope, ctx.proxy)
        cycle = stream.cycle = HTTPCycle(scope, stream)
        if request.has_body:
            cycle.expect_body(request.expect_continue)
        start_request(ctx, cycle)
        task = cycle.task
        if task is None:
            self._app_done(stream)
        else:
            task.add_done_callback(lambda done: self._task_done(stream, done))

    def _reset(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is None:
            ws = self.ws_streams.get(stream_id)
            if ws is not None:
                ws.gone()
            return
        stream.wake()
        cycle = stream.cycle
        if cycle is not None:
            cycle.feed_disconnect()
            task = cycle.task
            if task is not None and not task.done():
                # The client gave up on this stream: so does its app (rule 3).
                task.cancel()

    def _refused(self, event: StreamRefused) -> None:
        if self.ctx.metrics is not None:
            self.ctx.metrics.refused(event.status)  # issue 12
        logger.info(
            "Refused an HTTP/2 request from %s: %s (HTTP %d)",
            self.info.peer, event.reason, event.status,
        )
        stream = self.streams.get(event.stream_id)
        if stream is None:
            # Refused from its head: answered here, no app runs.
            stream = self.streams[event.stream_id] = _Stream(self, event.stream_id)
            self.send_plain(stream.stream_id, event.status, event.reason)
            self._app_done(stream)
            return
        cycle = stream.cycle
        if cycle is None:
            return
        if not cycle.response_started and not cycle.response_complete:
            cycle.answer_plainly(event.status, event.reason)
        else:
            cycle.abort()
            self.proto.reset(event.stream_id, ErrorCode.CANCEL)
        cycle.feed_disconnect()
        self.write_soon()

    def send_plain(
        self, stream_id: int, status: int, text: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> int:
        """The server's own short text/plain answer on a stream (errors, refusals, 503);
        returns its body size, for the access log."""
        body = plain_body(text)
        fields = [*headers, PLAIN_TEXT_TYPE, (b"content-length", b"%d" % len(body))]
        fields.extend(self.default_fields(fields))
        self.proto.send_headers(stream_id, status, fields)
        self.proto.send_data(stream_id, body, end_stream=True)
        self.write_soon()
        return len(body)

    def _task_done(self, stream: _Stream, task: asyncio.Task[None]) -> None:
        # A task cancelled (its stream reset) before its first step never ran run_app's
        # finally (io/lifecycle.py rule 5): its bookkeeping is done here too.
        ctx = self.ctx
        if task in ctx.tasks:
            ctx.tasks.discard(task)
            if ctx.on_idle is not None:
                ctx.on_idle()
        self._app_done(stream)

    def ws_stream_done(self, ws: _WebSocketStream) -> None:
        if self.ws_streams.pop(ws.stream_id, None) is not None and not self.closed:
            self._handle(self.proto.stream_finished(ws.stream_id))
            self.write_soon()
            self._idle_check()

    def _app_done(self, stream: _Stream) -> None:
        """The stream's app finished (or never ran): its concurrency slot is free."""
        self.streams.pop(stream.stream_id, None)
        if self.closed:
            return
        self._handle(self.proto.stream_finished(stream.stream_id))
        self.write_soon()
        self._idle_check()

    # Output -----------------------------------------------------------------------------

    def write_soon(self) -> None:
        """Have what the protocol queued written at the end of this loop turn: the frames
        of every stream answered in this turn go out in one write (a syscall each cost more than the
        h2 work of a small request)."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self.loop.call_soon(self.write_now)

    def write_now(self) -> None:
        self._write_scheduled = False
        data = self.proto.data_to_send()
        if data and not self.closed:
            self.transport.write(data)
            metrics = self.ctx.metrics
            if metrics is not None:  # issue 12
                metrics.sent += len(data)

    def default_fields(self, fields: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """--header, server and date as HTTP/2 fields, less those the app set itself."""
        current = self.ctx.default_headers
        if current is not self._fields_for:
            self._fields_for = current
            self._fields = _default_fields(current)
        defaults = self._fields
        if any(name in {b"server", b"date"} for name, _ in fields):
            own = {name for name, _ in fields}
            return [pair for pair in defaults if pair[0] not in own]
        return defaults

    # Timeouts and shutdown ----------------------------------------------------------------

    def _idle_check(self) -> None:
        if not self.streams and not self.ws_streams and not self.closed:
            self.deadline = self.loop.time() + self.ctx.timeout_keep_alive

    def deadline_passed(self) -> None:
        self.deadline = NEVER
        if self.streams or self.ws_streams or self.closed:
            return
        self.proto.close(ErrorCode.NO_ERROR, "idle")
        self._close()

    def shutdown(self) -> None:
        """Graceful stop: GOAWAY in two steps; close once the open streams are done."""
        if self.closed:
            return
        self._handle(self.proto.announce_shutdown())
        self.write_soon()
        if not self.streams and not self.ws_streams:
            # Nothing in flight: no need to wait for the PING to come back.
            self.proto.close(ErrorCode.NO_ERROR, "shutdown")
            self._close()

    def _close(self, *, linger: bool = False) -> None:
        """Close after writing what is queued. With `linger`, the peer may still be
        sending (a flood): closing a socket with unread bytes resets it, and the reset
        can destroy the GOAWAY before the peer reads it. So send FIN first, discard
        what still arrives, and close at EOF or after LINGER seconds."""
        if not self.closed:
            self.write_now()
            self.closed = True
            transport = self.transport
            if linger and transport.can_write_eof():
                transport.write_eof()
                self.loop.call_later(LINGER, transport.close)
            else:
                transport.close()
            for stream in list(self.streams.values()):
                if stream.cycle is not None:
                    stream.cycle.feed_disconnect()
                stream.wake()


def h2_limits(config: Config) -> H2Limits | None:
    """The HTTP/2 settings from the --h2-* options; None when --http 1.

    (--http is "auto", "1" or "2" here: Config took uvicorn's parser names as 1.)"""
    if config.http == "1":
        return None
    return H2Limits(
        max_concurrent_streams=config.h2_max_concurrent_streams,
        initial_window_size=config.h2_initial_window_size,
        max_header_list_size=config.h2_max_header_list_size,
        max_frame_size=config.h2_max_frame_size,
        max_reset_streams=config.h2_max_reset_streams,
        max_control_frames=config.h2_max_control_frames,
    )


def alpn_protocols(config: Config) -> list[str]:
    """What TLS offers in ALPN (RFC 7301), in the server's order of preference."""
    return {"1": ["http/1.1"], "2": ["h2"]}.get(config.http, ["h2", "http/1.1"])


class ALPNSelector(asyncio.Protocol):
    """The first protocol of a TLS connection: hands it to HTTP/2 or HTTP/1.1 by ALPN.

    asyncio calls connection_made once the handshake is done, so the protocol the client
    chose is known here; a client that offered no ALPN gets HTTP/1.1 (HTTP/2 with --http 2).
    """

    def __init__(self, ctx: ServerContext, limits: H2Limits, *, only_h2: bool) -> None:
        self.ctx = ctx
        self.limits = limits
        self.only_h2 = only_h2

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        ssl_object = transport.get_extra_info("ssl_object")
        chosen = ssl_object.selected_alpn_protocol() if ssl_object is not None else None
        protocol: asyncio.Protocol
        if chosen == "h2" or (chosen is None and self.only_h2):
            protocol = H2Connection(self.ctx, self.limits)
        else:
            from pier.io.metered import h1_connection_class

            protocol = h1_connection_class(self.ctx)(self.ctx)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)


def _one_length(fields: list[tuple[bytes, bytes]], first: int) -> list[tuple[bytes, bytes]]:
    """The fields with one Content-Length, or the error of two different ones (as on
    HTTP/1.1, proto/h1.py ResponseFramer.head)."""
    kept = []
    seen = False
    for name, value in fields:
        if name == b"content-length":
            length = parse_length(value)
            if length != first:
                raise two_lengths_error(first, length)
            if seen:
                continue
            seen = True
        kept.append((name, value))
    return kept
