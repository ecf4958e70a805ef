"""One HTTP/1.1 connection on asyncio: socket bytes -> H1Parser -> HTTPCycle -> bytes.

Rules:
1. This is the only place where an HTTP/1.1 connection meets asyncio. Parsing and
   framing live in proto/h1.py; ASGI semantics in asgi/http.py; what every protocol
   does with a request (start the app, 503, the failure policy, the access log) in
   io/lifecycle.py. The class here routes events, owns the transport, applies flow
   control and timeouts, and is the `ResponseStream` (asgi/stream.py) of the request
   being answered.
2. Requests are answered in order (RFC 9112 section 9.3.2): one cycle is active at a
   time; pipelined requests wait in `_queue` with their bodies buffered, and reading
   pauses when the queue or a body buffer grows past its mark.
3. Timeouts cost nothing per request or connection: the connection only records its
   deadline; the server's sweep (io/deadlines.py) calls deadline_passed() once it is
   behind.
4. Anything the client does wrong ends with a status (400/408/413/414/431) and a
   closed connection; anything the app does wrong, with a 500 or a closed connection
   (io/lifecycle.py run_app). Neither stops the server.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pier.asgi.http import HTTPCycle
from pier.asgi.proxy import TrustedHosts, apply_proxy_headers, has_proxy_headers, trusts_peer
from pier.asgi.scope import ConnectionInfo, http_scope, peer_text
from pier.io.context import ServerContext
from pier.io.deadlines import NEVER
from pier.io.flow import FlowControl
from pier.io.lifecycle import log_response, start_request
from pier.io.tls import tls_extension
from pier.logging import escape
from pier.proto.events import BadRequest, Request
from pier.proto.h1 import (
    H1Parser,
    ResponseFramer,
    frame_response,
    plain_response,
    status_line,
    switching_protocols,
)
from pier.proto.h2 import h2c_settings, sniff
from pier.proto.headers import plain_body, validate_headers

if TYPE_CHECKING:
    # Only a type: the websockets library stays unimported with --ws none.
    from pier.proto.ws import ServerHandshake

logger = logging.getLogger("pier.error")

# Request body bytes buffered for an app before reading from the socket pauses.
BODY_HIGH_WATER = 256 * 1024
# Pipelined requests parsed ahead of the one being answered before reading pauses.
PIPELINE_DEPTH = 16
# Write buffer marks for the transport: send() waits above the high mark. Set once a
# response streams or is large (H1Connection._raise_write_limits): until then the
# transport's own default (64 KiB in asyncio and uvloop) holds, which only small,
# complete responses meet, and which costs nothing to keep.
WRITE_HIGH_WATER = 256 * 1024
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A response body piece this large is written with its framing as separate pieces
# (transport.writelines: one writev) instead of joined into one bytes object, which
# copies it (~1 instruction per byte); below it the join is cheaper than writelines.
UNJOINED_WRITE = 16 * 1024
# Bytes of a streamed response held to be written in one go (H1Connection._hold).
HOLD_LIMIT = WRITE_HIGH_WATER
SWITCHING_TO_H2C = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)


class Wait(enum.IntEnum):
    """What the connection's single deadline is for."""

    NOTHING = 0  # a request is being answered: no deadline
    IDLE = 1  # keep-alive: waiting for the first byte of the next request
    HEAD = 2  # a request head has started arriving and must complete in time


# Members bound to module names: `Wait.X` costs ~1,100 instructions on Python 3.11 (an
# enum lookup), a global ~50, and the hot path made three per request.
_NOTHING = Wait.NOTHING
_IDLE = Wait.IDLE
_HEAD = Wait.HEAD


# What the framing needs of a request, kept from its head until its response is done:
# (method, http_version, keep_alive, accepts_trailers, has_body). A tuple, because it
# is built per request (a slotted record costs ~2k instructions more, see
# docs/performance.md).
_Head = tuple[str, str, bool, bool, bool]


class H1Connection(ResponseFramer, FlowControl, asyncio.Protocol):
    """One HTTP/1.1 connection, and the framer of its responses (one at a time, rule 2).

    Its own `ResponseFramer` by inheritance rather than holding one, and its own
    connection facts (asgi/scope.py `ConnectionFacts`: client, server, scheme, root
    paths, extensions) rather than a `ConnectionInfo`: an object made per connection
    cost ~1.5k (the framer) and ~2.5k (the info) instructions in a
    connection-per-request load (issue 13).
    """

    __slots__ = (
        "_active",
        "_active_head",
        "_close_reason",
        "_drain_waiter",
        "_h2c",
        "_head_sent",
        "_metrics",
        "_pending_refusal",
        "_proxy",
        "_queue",
        "_read_paused",
        "_reading",
        "_sniff",
        "_sniffed",
        "_unsent",
        "_unsent_size",
        "_upgrade_request",
        "_wait",
        "_write_limits_raised",
        "client",
        "closed",
        "ctx",
        "deadline",
        "extensions",
        "loop",
        "parser",
        "raw_root_path",
        "root_path",
        "scheme",
        "server",
        "transport",
        "write_paused",
    )

    # Once per connection, so only what is read before connection_made or before the
    # first request is set here (issue 13, docs/performance.md): each store costs a
    # connection-per-request load. transport, the facts, _sniff and the deadline are set by
    # connection_made; _active_head and _head_sent by _start; the framer's fields by
    # the first response's head.
    transport: asyncio.Transport
    # The connection's facts for its scopes (asgi/scope.py ConnectionFacts).
    client: tuple[str, int] | None
    server: tuple[str, int | None] | None
    scheme: str
    root_path: str
    raw_root_path: bytes
    extensions: dict[str, Any] | None
    # Loop time by which the client must act (NEVER while the app has the floor);
    # read by the server's DeadlineSweep.
    deadline: float
    _wait: Wait
    # What the framing needs to know of the active request (see _Head); None between
    # requests.
    _active_head: _Head | None
    _head_sent: bool
    # issue 9: on cleartext with HTTP/2 on, the first bytes may be the HTTP/2 preface
    # (prior knowledge); _sniffed holds a preface's first bytes until it is told from
    # HTTP/1.1 (set when _sniff is).
    _sniff: bool
    _sniffed: bytes

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.parser = H1Parser(ctx.limits, self)
        self.closed = False
        self.write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._read_paused = False
        self._active: HTTPCycle | None = None
        self._reading: HTTPCycle | None = None
        # A list, not a deque: at most PIPELINE_DEPTH long, and a deque costs ~750
        # instructions more to make per connection (issue 13).
        self._queue: list[tuple[HTTPCycle, _Head]] = []
        self._pending_refusal: BadRequest | None = None
        # Pieces of a streamed response held to be written together (_hold); None when
        # no write of them is scheduled.
        self._unsent: list[bytes] | None = None
        # ctx.proxy when this connection's peer is a trusted proxy, else None: the
        # peer does not change, so trust is decided once (connection_made).
        self._proxy: TrustedHosts | None = None
        self._upgrade_request: Request | None = None
        # An Upgrade: h2c request, held until its head ends.
        self._h2c: tuple[bytes, Request] | None = None
        # issue 12, --metrics-bind: bytes in and out are counted here (a None check when
        # off: ~0.1% of a hello request, below bench/instructions' noise).
        self._metrics = ctx.metrics
        self._write_limits_raised = False

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Once per connection, so spelled for a connection-per-request load (issue 13,
        # docs/performance.md): no typing.cast call (a Python function), the write
        # limit positional, the trust cache and the deadline inline.
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport  # type: ignore[assignment]
        ctx = self.ctx
        ctx.connections.add(self)
        ctx.total_connections += 1
        peer = transport.get_extra_info("peername")
        server = ctx.server_address
        client: tuple[str, int] | None
        if type(peer) is tuple and len(peer) == 2 and server is not None and not ctx.tls:
            # connection_info()'s common case, with no object made.
            self.client = client = peer
            self.server = server
            self.scheme = scheme = "http"
            self.extensions = None
        else:
            info = connection_info(transport, ctx, peer)
            self.client = client = info.client
            self.server = info.server
            self.scheme = scheme = info.scheme
            self.extensions = info.extensions
        self.root_path = ctx.root_path
        self.raw_root_path = ctx.raw_root_path
        if ctx.h2_limits is not None and scheme == "http":
            self._sniff = True
            self._sniffed = b""
        else:
            self._sniff = False
        proxy = ctx.proxy
        if proxy is not None:
            # trusts_peer() with TrustedHosts' cache read inline (as apply_proxy_headers
            # does): two Python calls fewer per connection.
            trusted = proxy._cache.get(client[0] if client else None)
            if trusted if trusted is not None else trusts_peer(proxy, client):
                self._proxy = proxy
        # A connection accepted just as shutdown began is still served: its request
        # is answered with "Connection: close" (keep-alive is off while shutting down).
        self._wait = _IDLE
        self.deadline = self.loop.time() + ctx.first_wait

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.parser.close()
        ctx = self.ctx
        ctx.connections.discard(self)
        if self._active is not None:
            self._active.feed_disconnect()
        if self._queue:
            for cycle, _ in self._queue:
                cycle.feed_disconnect()
            self._queue.clear()
        if self._drain_waiter is not None:
            self.release_writers()
        if ctx.on_idle is not None:
            ctx.on_idle()

    def eof_received(self) -> bool | None:
        # A client that half-closes after its request still gets the answer; the
        # transport closes once the response is written (we return None).
        return None

    def data_received(self, data: bytes) -> None:
        # The parser calls back on_request/on_body/on_end/... (the RequestHandler
        # below) while it reads; after a request that closes the connection it reads
        # nothing more.
        metrics = self._metrics
        if metrics is not None:
            metrics.received += len(data)
        if self._sniff:
            if data[0] != 0x50 and not self._sniffed:  # no b"P": not the HTTP/2 preface
                self._sniff = False
            else:
                data = self._sniff_preface(data)
                if not data:
                    return
        self.parser.receive_data(data)
        if self._wait is _IDLE and self.parser.reading_head and not self.closed:
            # Bytes of a request head arrived; the whole head now has a deadline.
            self._set_deadline(_HEAD, self.ctx.timeout_request_header)

    # RequestHandler (called by H1Parser) ----------------------------------------------
    # Fused on purpose (design.md): the parser hands plain values, no event objects.
    # Measured with bench/instructions: see docs/performance.md.

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
    ) -> bool | None:
        ctx = self.ctx
        # Returns True for an upgrade it takes over (on_upgrade follows); any other is
        # served as an ordinary request, body included (proto/h1.py rule 3).
        # `is not None` first: comparing None with bytes costs a failed rich comparison
        # per request, and upgrades are rare.
        if (
            upgrade is not None
            and upgrade == b"h2c"
            and ctx.h2_limits is not None
            and self.scheme == "http"
            and self._h2c_upgrade(
                Request(
                    method, raw_path, query_string, headers, http_version, keep_alive,
                    expect_continue, upgrade, content_length, has_body, accepts_trailers,
                )
            )
        ):
            return True
        if upgrade is not None and upgrade == b"websocket" and ctx.ws_handler is not None:
            # Handed over when on_upgrade brings the bytes after the head.
            self._upgrade_request = Request(
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
            return True
        scope = http_scope(
            self, ctx.lifespan_state, method, http_version, raw_path, query_string, headers
        )
        proxy = self._proxy
        if proxy is not None and has_proxy_headers(headers):
            apply_proxy_headers(scope, proxy)
        cycle = HTTPCycle(scope, self)
        if has_body:
            cycle.expect_body(expect_continue)
            # Only a request with a body is fed (on_body, on_end): a bodyless cycle is
            # complete as made, so its on_end finds nothing to do (a call fewer each).
            self._reading = cycle
        head = (method, http_version, keep_alive, accepts_trailers, has_body)
        if self._active is None:
            self._start(cycle, head)
        else:
            self._queue.append((cycle, head))
            if len(self._queue) >= PIPELINE_DEPTH and not self._read_paused:
                self._pause_reading()
        return None

    def on_body(self, data: bytes) -> None:
        cycle = self._reading
        if (
            cycle is not None
            and cycle.feed_body(data) > BODY_HIGH_WATER
            and not self._read_paused
        ):
            self._pause_reading()

    def on_end(self) -> None:
        cycle = self._reading
        if cycle is not None:
            self._reading = None
            cycle.feed_end()

    def _start(self, cycle: HTTPCycle, head: _Head) -> None:
        self._active = cycle
        self._active_head = head
        self._wait = _NOTHING
        self.deadline = NEVER
        self._head_sent = False
        start_request(self.ctx, cycle)

    def on_upgrade(self, data: bytes) -> None:
        h2c = self._h2c
        if h2c is not None:
            self._h2c = None
            if self._active is None and not self._queue:
                self.transport.write(SWITCHING_TO_H2C)
                self._hand_over_h2(data, h2c)
                return
            self.on_bad_request(BadRequest(400, "h2c upgrade pipelined behind other requests"))
            return
        request = self._upgrade_request
        if request is not None:
            self._upgrade_request = None
            if self._active is None and not self._queue:
                self._hand_over(request, data)
                return
            # Pipelined behind unanswered requests: refuse rather than reorder.
            self.on_bad_request(
                BadRequest(400, "WebSocket upgrade pipelined behind other requests")
            )
            return
        # Only an upgrade on_request took comes here (proto/h1.py rule 3); were it
        # otherwise, the bytes after the head are not known to be a request: close.
        self._close("an upgrade was followed by bytes that are not a request")

    def _h2c_upgrade(self, request: Request) -> bool:
        """Keep a usable Upgrade: h2c request for on_upgrade (RFC 7540 3.2)."""
        settings = h2c_settings(request)
        if settings is None:
            return False  # answered as HTTP/1.1, the upgrade ignored
        self._h2c = (settings, request)
        return True

    def _sniff_preface(self, data: bytes) -> bytes:
        """The bytes for the HTTP/1.1 parser; b"" if the connection is (maybe) HTTP/2."""
        data = self._sniffed + data if self._sniffed else data
        kind = sniff(data)
        if kind is None:  # a preface cut short: wait for the rest
            self._sniffed = data
            return b""
        self._sniff = False
        self._sniffed = b""
        if kind == "h1":
            return data
        self._hand_over_h2(data, None)
        return b""

    def _hand_over_h2(self, data: bytes, upgrade: tuple[bytes, Request] | None) -> None:
        """The connection speaks HTTP/2 from here (io/h2.py becomes its protocol)."""
        from pier.io.h2 import H2Connection

        limits = self.ctx.h2_limits
        assert limits is not None
        self._wait = _NOTHING
        self.deadline = NEVER
        self.ctx.connections.discard(self)
        self.closed = True
        self.parser.close()
        connection = H2Connection(self.ctx, limits, upgrade=upgrade)
        self.transport.set_protocol(connection)
        connection.take_over(self.transport, data)

    def _hand_over(self, request: Request, data: bytes) -> None:
        """Give the transport to the WebSocket glue (ctx.ws_handler), which becomes its protocol."""
        handler = self.ctx.ws_handler
        assert handler is not None
        self._wait = _NOTHING
        self.deadline = NEVER
        # The HTTP/1.1 side forgets the connection; the WebSocket side counts it now.
        self.ctx.connections.discard(self)
        # The WebSocket session writes with the marks a streamed response has.
        self._raise_write_limits()
        self.closed = True
        self.parser.close()
        if self.ctx.debug:
            logger.debug(
                "Connection from %s upgraded to WebSocket for %s",
                self.peer,
                escape(request.raw_path),
            )
        handler(
            transport=self.transport,
            request=request,
            info=ConnectionInfo(
                self.client, self.server, self.scheme, self.root_path, self.raw_root_path,
                self.extensions,
            ),
            data=data,
            answer=H1Handshake(self.ctx, self.transport, request),
        )

    @property
    def peer(self) -> str:
        """Who is on the other end, for log lines."""
        return peer_text(self.client)

    def on_bad_request(self, refusal: BadRequest) -> None:
        logger.info(
            "Refused a request from %s: %s (HTTP %d)",
            self.peer,
            refusal.reason,
            refusal.status,
        )
        active = self._active
        if active is not None and self._reading is active:
            # The bad bytes are in the body the app is reading: that request is broken.
            # The app sees a disconnect; the client gets the refusal if nothing of the
            # response was sent yet.
            self._reading = None
            active.abort(0 if self._head_sent else refusal.status)
            self._active = None
            if self._head_sent:
                self._close(f"the request's body was refused ({refusal.reason})")
            else:
                self._write_refusal(refusal)
            return
        if active is not None:
            # Answer the requests before it first, in order; then refuse and close.
            self._pending_refusal = refusal
            self._pause_reading()
            return
        self._write_refusal(refusal)

    def _write_refusal(self, refusal: BadRequest) -> None:
        self.transport.write(
            plain_response(refusal.status, refusal.reason, self.ctx.default_headers)
        )
        self._close(f"the request was refused with {refusal.status} ({refusal.reason})")

    # Timeouts --------------------------------------------------------------------------

    def _set_deadline(self, wait: Wait, timeout: float) -> None:
        self._wait = wait
        self.deadline = self.loop.time() + timeout

    def reading_head_too_long(self) -> bool:
        """At deadline_passed: is it a request head that is late (408), not idleness?"""
        return self._wait is _HEAD and not self.closed

    def deadline_passed(self) -> None:
        """The client took too long (called by the server's DeadlineSweep)."""
        self.deadline = NEVER
        if self._wait is _NOTHING or self.closed:
            return
        if self._wait is _HEAD:
            logger.info(
                "Closed a connection from %s: the request head did not arrive within %ss"
                " (--timeout-request-header)",
                self.peer,
                self.ctx.timeout_request_header,
            )
            self.transport.write(plain_response(408, "Request Timeout", self.ctx.default_headers))
            self._close("408: the request head did not arrive in time")
            return
        self._close(
            "idle past --timeout-keep-alive" if self._wait is _IDLE else "the client stalled"
        )

    # ResponseStream (asgi/stream.py; called by HTTPCycle) -----------------------------

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
        head = self._active_head
        assert head is not None and cycle is self._active
        method, http_version, keep_alive, accepts_trailers, _ = head
        # The connection is the framer (see the class docstring); head() or the C framer
        # below set its fields for this response.
        framer = self
        ctx = self.ctx
        trailers = cycle.trailers and accepts_trailers
        keep_alive = keep_alive and not ctx.shutting_down
        large = len(body) >= UNJOINED_WRITE
        out = None
        if frame_response is not None and not trailers:
            # The C framer (proto/_h1head.c): head and body in one call, ~8k instructions
            # fewer per hello response. A large body is framed as an empty first piece
            # that more follows (the head alone) and goes beside it unjoined, below.
            # None leaves the response to the Python framer.
            out = frame_response(
                framer, status, headers, ctx.default_headers, method, http_version,
                keep_alive, length, b"" if large else body, large or more_body,
            )
        if out is not None and not large:
            self._head_sent = True
        else:
            head_bytes = out if out is not None else framer.head(
                status,
                headers,
                method=method,
                http_version=http_version,
                keep_alive=keep_alive,
                default_headers=ctx.default_headers,
                # Trailers need chunked framing, even for a body sent whole.
                body_length=None if trailers else length,
                trailers=trailers,
            )
            self._head_sent = True
            if large:
                if not self._write_limits_raised:
                    self._raise_write_limits()
                # The body not copied into a joined buffer: written as pieces.
                pieces = (head_bytes, *framer.body_pieces(body, more_body))
                if more_body:
                    self._hold(pieces, len(body))
                else:
                    self._write(pieces)
                return not framer.no_body
            data = framer.body(body, more_body)
            out = head_bytes + data if data else head_bytes
        if more_body:
            if not self._write_limits_raised:
                self._raise_write_limits()
            self._hold((out,), len(out))
        elif not self.closed:
            # Head and body in one write: one syscall, one TCP segment.
            self.transport.write(out)
            metrics = self._metrics
            if metrics is not None:
                metrics.sent += len(out)
        return not framer.no_body

    def send_data(self, cycle: HTTPCycle, body: bytes, more_body: bool, /) -> None:
        framer = self
        assert self._head_sent and cycle is self._active
        if len(body) >= UNJOINED_WRITE:
            pieces = framer.body_pieces(body, more_body)
        else:
            data = framer.body(body, more_body)
            pieces = (data,) if data else ()
        if more_body and not self.write_paused:
            if pieces:
                self._hold(pieces, len(body))
        elif pieces or self._unsent:
            self._write(pieces)

    def send_trailers(self, cycle: HTTPCycle, headers: list[Any], /) -> None:
        framer = self
        assert self._head_sent and cycle is self._active
        if framer.chunked and framer.trailers:
            self._write((framer.trailer_block(headers),))
        elif self._unsent:
            self._write(())

    def send_interim(self, cycle: HTTPCycle, status: int, headers: Any, /) -> None:
        if cycle is not self._active or self._head_sent or self.closed:
            return
        head = self._active_head
        if head is not None and head[1] == "1.0":
            return  # RFC 9110 section 15.2: no 1xx to an HTTP/1.0 client
        if status == 100 and not headers:
            self.transport.write(CONTINUE)
            return
        lines = [status_line(status)]
        lines += [name + b": " + value + b"\r\n" for name, value in validate_headers(headers)]
        self.transport.write(b"".join(lines) + b"\r\n")

    def send_error(self, cycle: HTTPCycle, status: int, text: str, /) -> None:
        if cycle is not self._active:
            return
        if not self.closed:
            self.transport.write(plain_response(status, text, self.ctx.default_headers))
            cycle.plain_answer_sent(len(plain_body(text)))
        self._head_sent = True
        if self.ctx.access_log is not None:
            log_response(self.ctx, cycle)
        self._finish_active(keep_alive=False)

    def abort(self, cycle: HTTPCycle, /) -> None:
        if cycle is self._active:
            if self.write_paused and not self.closed:
                # The peer is not reading: a graceful close would wait on it for as long
                # as it likes, holding the buffered response (--timeout-send). Drop it.
                self.closed = True
                self.transport.abort()
            # Part of the response is on the wire: closing is the only honest signal.
            self._finish_active(keep_alive=False)

    def want_body(self, cycle: HTTPCycle, /) -> None:
        if (
            self._read_paused
            and self._pending_refusal is None
            and (len(self._queue) < PIPELINE_DEPTH)
        ):
            self._resume_reading()

    def response_done(self, cycle: HTTPCycle, /) -> None:
        framer = self
        head = self._active_head
        assert self._head_sent and head is not None
        ctx = self.ctx
        if ctx.access_log is not None:
            log_response(ctx, cycle)
        keep_alive = framer.keep_alive and not ctx.shutting_down and not self.closed
        if head[4] and cycle.continue_pending:
            # The client waits for "100 Continue" before sending its body, and the app
            # answered without asking for it: we cannot know what comes next.
            keep_alive = False
        self._finish_active(keep_alive)

    # Internals -------------------------------------------------------------------------

    def _raise_write_limits(self) -> None:
        """Give the transport pier's write marks, at the first response that streams or
        is large (send_head): ~700 instructions a connection that only small, complete
        responses never pay (issue 13; a WebSocket or HTTP/2 handover sets its own)."""
        self._write_limits_raised = True
        if not self.closed:
            self.transport.set_write_buffer_limits(WRITE_HIGH_WATER)

    def _hold(self, pieces: tuple[bytes, ...], size: int) -> None:
        """Queue a streamed response's pieces to be written together, at the end of this
        turn of the event loop or once HOLD_LIMIT bytes are held (whichever is first).

        An app streams its body in a loop of send() calls that return without yielding
        while the transport takes the data; written one send() at a time, a 64 KiB piece
        with its chunk framing is one writev and two TCP segments on loopback (a full
        one and the framing's few bytes past the MSS). Held, four such pieces go in one
        writev (docs/performance.md: 16 writevs per 1 MiB response -> 4, data segments
        31 -> 23). Nothing waits longer than the loop's turn, and no more is held than
        the transport's own high-water mark, so backpressure is what it was.
        """
        unsent = self._unsent
        if unsent is None:
            self._unsent = unsent = []
            self._unsent_size = 0
            self.loop.call_soon(self._write_unsent)
        unsent += pieces
        size += self._unsent_size
        if size < HOLD_LIMIT:
            self._unsent_size = size
            return
        # The scheduled write stays scheduled, and finds nothing or what comes next.
        self._unsent = []
        self._unsent_size = 0
        self._write(unsent)

    def _write_unsent(self) -> None:
        unsent = self._unsent
        self._unsent = None
        if unsent:
            self._write(unsent)

    def _write(self, pieces: Sequence[bytes]) -> None:
        """Write pieces in one writev (transport.writelines), after any held ones."""
        unsent = self._unsent
        if unsent:
            unsent += pieces
            pieces = unsent
            self._unsent = []
            self._unsent_size = 0
        if not self.closed:
            if len(pieces) == 1:
                self.transport.write(pieces[0])  # cheaper than writelines for one
            else:
                self.write_pieces(pieces)  # writelines, and the pause it owes (FlowControl)
            metrics = self._metrics
            if metrics is not None:
                metrics.sent += sum(map(len, pieces))

    def _finish_active(self, keep_alive: bool) -> None:
        active = self._active
        self._active = None
        self._active_head = None
        if active is not None and not keep_alive:
            active.feed_disconnect()
        if self.closed:
            return
        if self._pending_refusal is not None and not self._queue:
            self._write_refusal(self._pending_refusal)
            return
        if not keep_alive:
            self._close("the response ended it (Connection: close, HTTP/1.0, shutdown or error)")
            return
        if self._queue:
            cycle, head = self._queue.pop(0)
            self._start(cycle, head)
            return
        # _set_deadline inline: a call fewer per keep-alive response.
        self._wait = _IDLE
        self.deadline = self.loop.time() + self.ctx.timeout_keep_alive
        if self._read_paused:
            self._resume_reading()

    def _close(self, reason: str) -> None:
        """Close the connection; `reason` is for --log-level debug (DebugH1Connection)."""
        if not self.closed:
            if self._unsent:
                self._write(())
            self.closed = True
            self.transport.close()

    def shutdown(self) -> None:
        """Graceful stop: close now if idle, else after the response in flight."""
        if self._active is None and not self._queue:
            self._close("idle at shutdown")


class DebugH1Connection(H1Connection):
    """H1Connection at --log-level debug: says when a connection opens, is kept alive
    for its next request, and closes, with the peer and the reason. A subclass chosen
    once (io/server.py connection_factory), so that no request pays for the check."""

    __slots__ = ("_close_reason",)  # why pier closed it, for the line when it is gone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        logger.debug("Connection from %s opened", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        logger.debug(
            "Connection from %s closed: %s",
            self.peer,
            getattr(self, "_close_reason", None)
            or ("by the client" if exc is None else f"lost ({exc or type(exc).__name__})"),
        )
        super().connection_lost(exc)

    def _close(self, reason: str) -> None:
        if not self.closed:
            self._close_reason = reason
        super()._close(reason)

    def _finish_active(self, keep_alive: bool) -> None:
        if keep_alive and not self.closed and not self.ctx.shutting_down:
            logger.debug("Connection from %s kept alive for its next request", self.peer)
        super()._finish_active(keep_alive)


class H1Handshake:
    """A WebSocket handshake answered in HTTP/1.1 (io/websocket.py HandshakeAnswer)."""

    __slots__ = ("_ctx", "_framer", "_request", "_transport")

    def __init__(self, ctx: ServerContext, transport: asyncio.Transport, request: Request) -> None:
        self._ctx = ctx
        self._transport = transport
        self._request = request
        self._framer = ResponseFramer()

    def accept(self, handshake: ServerHandshake, fields: list[tuple[bytes, bytes]]) -> int:
        self._transport.write(
            switching_protocols(handshake.accept_key, fields, self._ctx.default_headers)
        )
        return 101

    def deny_head(self, status: int, headers: Any, body: bytes, more_body: bool) -> None:
        framer = self._framer
        request = self._request
        head = framer.head(
            status,
            headers,
            method=request.method,
            http_version=request.http_version,
            keep_alive=False,
            default_headers=self._ctx.default_headers,
            body_length=None if more_body else len(body),
        )
        self._transport.write(head + framer.body(body, more_body))

    def deny_body(self, body: bytes, more_body: bool) -> None:
        self._transport.write(self._framer.body(body, more_body))

    def refuse(self, status: int, reason: str, headers: list[tuple[bytes, bytes]]) -> int:
        response = plain_response(status, reason, self._ctx.default_headers)
        if headers:
            # After the status line, before the rest of the head.
            line_end = response.index(b"\r\n") + 2
            extra = b"".join(name + b": " + value + b"\r\n" for name, value in headers)
            response = response[:line_end] + extra + response[line_end:]
        self._transport.write(response)
        return len(plain_body(reason))


def connection_info(
    transport: asyncio.BaseTransport, ctx: ServerContext, peer: Any
) -> ConnectionInfo:
    """What the scopes of every request on this connection share (once per connection),
    given the transport's "peername"."""
    if type(peer) is tuple and len(peer) == 2:  # IPv4: (host, port) as the scope wants it
        client: tuple[str, int] | None = peer
    elif isinstance(peer, tuple) and peer:  # IPv6: (host, port, flowinfo, scope_id)
        client = (str(peer[0]), int(peer[1]))
    else:  # a Unix socket's peer has no address
        client = None
    server: tuple[str, int | None] | None = ctx.server_address
    if server is None:
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple) and sock:
            server = (str(sock[0]), int(sock[1]))
        elif isinstance(sock, str) and sock:
            server = (sock, None)
    if not ctx.tls:
        # Positional: keyword arguments to a dataclass cost ~2.5k instructions more.
        return ConnectionInfo(client, server, "http", ctx.root_path, ctx.raw_root_path, None)
    # issue 5: TLS sets the scheme and the ASGI "tls" extension, once per connection.
    ssl_object = transport.get_extra_info("ssl_object")
    extensions = None if ssl_object is None else {"tls": tls_extension(ssl_object)}
    return ConnectionInfo(
        client,
        server,
        "http" if ssl_object is None else "https",
        ctx.root_path,
        ctx.raw_root_path,
        extensions,
    )
