"""HTTP/2 (RFC 9113) on the h2 library, sans I/O: bytes in, stream events out.

Rules:
1. No asyncio, no sockets, no clocks here. `H2Protocol.receive_data(bytes)` returns
   events in pier's request vocabulary (a `Request` record per stream, body chunks,
   ends, resets); `send_*` queue response frames; `data_to_send()` hands out the bytes.
   Input can cause output (SETTINGS and PING acknowledgements), so the glue writes
   `data_to_send()` after every call.
2. The h2 library does the framing, HPACK and the stream state machines. This module
   adds what h2 leaves to its user and what an attacker would otherwise get for free
   (docs/http2.md lists each bound with its attack):
   - every frame is checked against SETTINGS_MAX_FRAME_SIZE from its 9-byte header,
     before its payload is buffered (h2 buffers the whole frame first);
   - a header block (HEADERS + CONTINUATION) is bounded by the header list size as it
     arrives, not only once it ends;
   - frames that make no progress are counted (`H2Limits.max_control_frames`);
   - resets of unanswered streams are counted (`H2Limits.max_reset_streams`), and a
     stream keeps its concurrency slot until its app has finished (`stream_finished`),
     not until the peer resets it;
   - request body windows reopen only as the app consumes (`consumed`), so a slow app
     throttles its client; the connection window is the sum of the stream windows.
3. Pseudo-headers never reach the app: `:authority` becomes the `host` field, `:path`
   is split into path and query, split `cookie` fields are joined (RFC 9113 8.2.3).
4. A connection error ends with `ConnectionEnded` (h2 or this module queued the GOAWAY
   with its code); after it the protocol reads nothing more.
5. Graceful shutdown is the two-step GOAWAY of RFC 9113 6.8: announce with the highest
   stream id and a PING, then, once the PING comes back, the real last stream id.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PushPromiseFrame,
)

from pier.proto.events import Request
from pier.proto.limits import H2Limits

__all__ = [
    "PREFACE",
    "ConnectionEnded",
    "ErrorCode",
    "H2Protocol",
    "ShutdownComplete",
    "StreamBody",
    "StreamEnd",
    "StreamRefused",
    "StreamRequest",
    "StreamReset",
    "StreamWritable",
    "h2c_settings",
    "sniff",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ErrorCode = h2.errors.ErrorCodes
_MAX_STREAM_ID = 2**31 - 1
_MAX_WINDOW = 2**31 - 1
_GOAWAY_PING = b"pier-bye"
# HTTP/1.1 connection-specific fields; RFC 9113 8.2.2 forbids them in HTTP/2, and apps
# written for HTTP/1.1 send them (Connection: close, Transfer-Encoding: chunked).
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


def sniff(data: bytes) -> str | None:
    """"h2" if `data` starts with the HTTP/2 preface, "h1" if it cannot, None: read more."""
    if data.startswith(PREFACE):
        return "h2"
    if PREFACE.startswith(data):
        return None
    return "h1"


def h2c_settings(request: Request) -> bytes | None:
    """The HTTP2-Settings value of a usable `Upgrade: h2c` request (RFC 7540 3.2), or None.

    Only a request without a body is upgraded: a body would have to be read as HTTP/1.1
    after the switch, and bytes after it must never be taken for a second request.
    """
    if request.upgrade != b"h2c" or request.has_body or request.method == "CONNECT":
        return None
    settings = [value for name, value in request.headers if name.lower() == b"http2-settings"]
    if len(settings) != 1:
        return None
    tokens: set[bytes] = set()
    for name, value in request.headers:
        if name.lower() == b"connection":
            tokens.update(token.strip().lower() for token in value.split(b","))
    if not {b"upgrade", b"http2-settings"} <= tokens:
        return None
    try:
        base64.urlsafe_b64decode(settings[0] + b"=" * (-len(settings[0]) % 4))
    except (binascii.Error, ValueError):
        return None
    return settings[0]


# --- events --------------------------------------------------------------------------


@dataclass(slots=True)
class StreamRequest:
    """A request head arrived on a new stream; the app may start."""

    stream_id: int
    request: Request


@dataclass(slots=True)
class StreamBody:
    stream_id: int
    data: bytes


@dataclass(slots=True)
class StreamEnd:
    """The request body is complete."""

    stream_id: int


@dataclass(slots=True)
class StreamReset:
    """The stream is gone (the peer reset it, or the connection ended): tell the app."""

    stream_id: int
    error_code: int


@dataclass(slots=True)
class StreamRefused:
    """Answer this stream with `status` if nothing was sent yet (413, 400, 501)."""

    stream_id: int
    status: int
    reason: str


@dataclass(slots=True)
class StreamWritable:
    """The peer opened its window: queued response bytes of this stream went out."""

    stream_id: int


@dataclass(slots=True)
class ConnectionEnded:
    """A GOAWAY was sent or received; write data_to_send() and close."""

    error_code: int
    reason: str
    # The limit that ended it, as the option a user would change (for the warning).
    limit: str | None = None


@dataclass(slots=True)
class ShutdownComplete:
    """After a graceful GOAWAY, the last stream is done: close the connection."""


H2Event = (
    StreamRequest
    | StreamBody
    | StreamEnd
    | StreamReset
    | StreamRefused
    | StreamWritable
    | ConnectionEnded
    | ShutdownComplete
)


class _Calm(h2.exceptions.DenialOfServiceError):
    """A bound of this module was exceeded; GOAWAY ENHANCE_YOUR_CALM naming it."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class _GuardedFrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame reader, with the frame-size, header-block and flood bounds."""

    def __init__(self, limits: H2Limits) -> None:
        super().__init__(server=True)
        self.max_header_block = limits.max_header_list_size
        self.max_control_frames = limits.max_control_frames
        self.idle_frames = 0
        self._block_size = 0

    def __next__(self) -> Frame:
        data = self._data
        if len(data) >= 9 and self.max_frame_size:
            length = int.from_bytes(data[:3], "big")
            if length > self.max_frame_size:
                # h2 itself checks only once the whole payload is buffered (16 MiB).
                raise h2.exceptions.FrameTooLargeError(
                    f"frame of {length} bytes over SETTINGS_MAX_FRAME_SIZE"
                    f" {self.max_frame_size} (--h2-max-frame-size)"
                )
        return super().__next__()

    def _update_header_buffer(self, f: Frame | None) -> Frame | None:
        if isinstance(f, HeadersFrame | PushPromiseFrame | ContinuationFrame):
            size = len(f.data)
            if isinstance(f, ContinuationFrame) and self._headers_buffer:
                self._block_size += size
            else:
                self._block_size = size
            if self._block_size > self.max_header_block:
                raise _Calm(
                    f"header block over {self.max_header_block} bytes",
                    "--h2-max-header-list-size",
                )
            if isinstance(f, HeadersFrame):
                self.idle_frames = 0
            elif size == 0:
                self._count_idle()
        elif isinstance(f, DataFrame):
            if f.data or "END_STREAM" in f.flags:
                self.idle_frames = 0
            else:
                self._count_idle()
        elif f is not None and not (isinstance(f, GoAwayFrame)):
            self._count_idle()
        return super()._update_header_buffer(f)

    def _count_idle(self) -> None:
        self.idle_frames += 1
        if self.idle_frames > self.max_control_frames:
            raise _Calm(
                f"{self.idle_frames} frames in a row without a request or data"
                " (a SETTINGS, PING, WINDOW_UPDATE, PRIORITY, RST_STREAM or empty DATA flood)",
                "--h2-max-control-frames",
            )


class _Stream:
    """What this module tracks of one stream beyond h2's state machine."""

    __slots__ = ("body_limit", "end", "finished", "out", "out_size", "received",
                 "refused", "trailers", "unacked")

    def __init__(self) -> None:
        self.out: deque[bytes] = deque()  # response bytes waiting for window
        self.out_size = 0
        self.end = False  # the app's last body chunk is queued
        self.trailers: list[tuple[bytes, bytes]] | None = None
        self.finished = False  # END_STREAM (or RST_STREAM) sent
        self.received = 0  # request body bytes
        self.unacked = 0  # flow-controlled bytes received, not yet consumed by the app
        self.refused = False  # body over the limit: further DATA is dropped
        self.body_limit: int | None = None


class H2Protocol:
    """The server side of one HTTP/2 connection."""

    def __init__(
        self, limits: H2Limits, *, body_limit: int | None = None, connect_protocol: bool = False
    ) -> None:
        self.limits = limits
        self.body_limit = body_limit
        # Responses are checked once, by proto/headers.py (the glue) and _response_fields
        # (lower-case names, no connection fields): h2's own outbound pass would repeat
        # that work per field (a tenth of a hello response's CPU under cProfile).
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_inbound_headers=True,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        conn = self._conn = h2.connection.H2Connection(config)
        self._buffer = _GuardedFrameBuffer(limits)
        conn.incoming_buffer = self._buffer
        settings: dict[h2.settings.SettingCodes, int] = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: limits.initial_window_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.max_header_list_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: limits.max_frame_size,
            h2.settings.SettingCodes.ENABLE_PUSH: 0,
        }
        if connect_protocol:
            settings[h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL] = 1
        conn.local_settings = h2.settings.Settings(client=False, initial_values=settings)
        # h2 applies these two only when the peer acknowledges our SETTINGS; a peer that
        # never does must not get the larger defaults meanwhile.
        conn.decoder.max_header_list_size = limits.max_header_list_size
        conn.max_inbound_frame_size = limits.max_frame_size
        self._streams: dict[int, _Stream] = {}
        # Streams whose app has neither finished nor completed its response (their
    # concurrency slots).
        self._running: set[int] = set()
        self._reset_debt = 0
        self._out = bytearray()
        self.closed = False
        # Graceful shutdown: None, then "announced" (first GOAWAY), then the last id.
        self._last_stream_id: int | None = None
        self._announced = False
        self._final_sent = False

    # --- starting -----------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the server preface (SETTINGS) and open the connection window."""
        self._conn.initiate_connection()
        self._open_connection_window()

    def initiate_upgrade(self, settings_header: bytes, request: Request) -> list[H2Event]:
        """Take over after `101 Switching Protocols` to h2c; the request is stream 1.

        Raises ValueError if the HTTP2-Settings value is unusable (answer as HTTP/1.1).
        """
        try:
            self._conn.initiate_upgrade_connection(settings_header)
        except (h2.exceptions.ProtocolError, ValueError, binascii.Error) as exc:
            raise ValueError(f"unusable HTTP2-Settings: {exc}") from None
        self._open_connection_window()
        request.http_version = "2"
        request.keep_alive = True
        request.upgrade = None
        self._streams[1] = _Stream()
        self._running.add(1)
        return [StreamRequest(1, request), StreamEnd(1)]

    def _open_connection_window(self) -> None:
        limits = self.limits
        total = min(limits.max_concurrent_streams * limits.initial_window_size, _MAX_WINDOW)
        if total > 65535:
            self._conn.increment_flow_control_window(total - 65535)

    # --- input --------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[H2Event]:
        if self.closed:
            return []
        try:
            h2_events = self._conn.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            return self._ended(exc)
        events: list[H2Event] = []
        for event in h2_events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data(event, events)  # type: ignore[arg-type]
            elif kind is h2.events.RequestReceived:
                self._on_request(event, events)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded or kind is h2.events.TrailersReceived:
                stream_id = event.stream_id  # type: ignore[attr-defined]
                stream = self._streams.get(stream_id)
                if stream is not None and not stream.refused and kind is h2.events.StreamEnded:
                    events.append(StreamEnd(stream_id))
                self._maybe_forget(stream_id)
            elif kind is h2.events.WindowUpdated or kind is h2.events.RemoteSettingsChanged:
                self._flush_all(events)
            elif kind is h2.events.StreamReset:
                self._on_reset(event.stream_id, event.error_code, events)  # type: ignore[attr-defined]
            elif kind is h2.events.PingAckReceived:
                if event.ping_data == _GOAWAY_PING and self._announced:  # type: ignore[attr-defined]
                    self._send_final_goaway(events)
            elif kind is h2.events.ConnectionTerminated:
                # The peer is going away. h2 accepts nothing more on this connection,
                # so the open streams end here too.
                events.extend(self._drop_all(ErrorCode.CANCEL))
                self.closed = True
                events.append(
                    ConnectionEnded(event.error_code or 0, "the client sent GOAWAY")  # type: ignore[attr-defined]
                )
                return events
        self._calm_check(events)
        return events

    def _calm_check(self, events: list[H2Event]) -> bool:
        if self._reset_debt > self.limits.max_reset_streams:
            events.extend(self._drop_all(ErrorCode.CANCEL))
            self._end(
                ErrorCode.ENHANCE_YOUR_CALM,
                f"{self._reset_debt} streams reset or refused before their response",
            )
            events.append(
                ConnectionEnded(
                    ErrorCode.ENHANCE_YOUR_CALM,
                    f"more than {self.limits.max_reset_streams} streams reset before their"
                    " response (rapid reset)",
                    "--h2-max-reset-streams",
                )
            )
            return True
        return False

    def _ended(self, exc: h2.exceptions.ProtocolError) -> list[H2Event]:
        """h2 (or our frame buffer) raised: it has queued GOAWAY with the error's code."""
        events = self._drop_all(ErrorCode.CANCEL)
        self.closed = True
        limit = getattr(exc, "limit", None)
        if limit is None and isinstance(exc, h2.exceptions.FrameTooLargeError):
            limit = "--h2-max-frame-size"
        elif limit is None and isinstance(exc, h2.exceptions.DenialOfServiceError):
            limit = "--h2-max-header-list-size"
        events.append(ConnectionEnded(int(exc.error_code), str(exc), limit))
        return events

    def _on_request(self, event: h2.events.RequestReceived, events: list[H2Event]) -> None:
        stream_id = event.stream_id
        assert event.headers is not None
        ended = event.stream_ended is not None
        if self._last_stream_id is not None and stream_id > self._last_stream_id:
            self._reset_quietly(stream_id, ErrorCode.REFUSED_STREAM)
            return
        if len(self._running) >= self.limits.max_concurrent_streams:
            # h2 no longer counts streams the peer reset; their apps may still run.
            self._reset_quietly(stream_id, ErrorCode.REFUSED_STREAM)
            self._reset_debt += 1
            return
        request = _request(event.headers, ended)
        stream = self._streams[stream_id] = _Stream()
        if isinstance(request, StreamRefused):
            request.stream_id = stream_id
            stream.refused = True
            self._running.add(stream_id)
            events.append(request)
            return
        limit = self.body_limit
        if limit is not None and request.content_length is not None and (
            request.content_length > limit
        ):
            stream.refused = True
            self._running.add(stream_id)
            events.append(
                StreamRefused(stream_id, 413, f"request body over {limit} bytes"
                              " (--limit-request-body)")
            )
            return
        # A WebSocket's DATA is its messages, not a request body (--ws-max-size bounds
        # those).
        stream.body_limit = limit if request.upgrade is None else None
        self._running.add(stream_id)
        events.append(StreamRequest(stream_id, request))  # h2 follows with StreamEnded

    def _on_data(self, event: h2.events.DataReceived, events: list[H2Event]) -> None:
        stream_id = event.stream_id
        data = event.data or b""
        flow = event.flow_controlled_length or 0
        stream = self._streams.get(stream_id)
        if stream is None or stream.refused:
            if flow:
                self._conn.acknowledge_received_data(flow, stream_id)
            return
        # Padding is never the app's to consume: hand it back now.
        padding = flow - len(data)
        if padding:
            self._conn.acknowledge_received_data(padding, stream_id)
        stream.unacked += len(data)
        stream.received += len(data)
        if stream.body_limit is not None and stream.received > stream.body_limit:
            stream.refused = True
            events.append(
                StreamRefused(stream_id, 413, f"request body over {stream.body_limit} bytes"
                              " (--limit-request-body)")
            )
            self._release(stream_id, stream)
            return
        if data:
            events.append(StreamBody(stream_id, data))

    def _on_reset(self, stream_id: int, code: int, events: list[H2Event]) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is None:
            return
        if not stream.finished:
            self._reset_debt += 1
        stream.finished = True
        self._release(stream_id, stream)
        events.append(StreamReset(stream_id, code))

    def _reset_quietly(self, stream_id: int, code: int) -> None:
        # h2 has already taken in the whole read: the peer may have reset this stream
        # in a later frame of it, and h2 then forgot the stream.
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self._conn.reset_stream(stream_id, code)

    def _drop_all(self, code: int) -> list[H2Event]:
        events: list[H2Event] = [StreamReset(stream_id, code) for stream_id in self._streams]
        self._streams.clear()
        return events

    def _release(self, stream_id: int, stream: _Stream) -> None:
        """Hand back the window of body bytes the app will now never read."""
        if stream.unacked and not self.closed:
            self._conn.acknowledge_received_data(stream.unacked, stream_id)
        stream.unacked = 0

    # --- the app's side -----------------------------------------------------------------

    def consumed(self, stream_id: int, size: int) -> None:
        """The app took `size` body bytes: reopen that much window (h2 batches updates)."""
        stream = self._streams.get(stream_id)
        if stream is None or self.closed or size <= 0:
            return
        size = min(size, stream.unacked)
        stream.unacked -= size
        if size:
            self._conn.acknowledge_received_data(size, stream_id)

    def send_headers(
        self,
        stream_id: int,
        status: int,
        headers: Iterable[tuple[bytes, bytes]],
        *,
        end_stream: bool = False,
    ) -> None:
        """The response head; 1xx heads (100, 103) may precede the final one."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.finished or self.closed:
            return
        fields = [(b":status", str(status).encode())]
        fields.extend(_response_fields(headers))
        try:
            self._conn.send_headers(stream_id, fields, end_stream=end_stream)
        except h2.exceptions.StreamClosedError:
            self._gone(stream_id, stream)
            return
        if end_stream:
            self._finish(stream_id, stream)

    def send_data(self, stream_id: int, data: bytes, *, end_stream: bool = False) -> None:
        """Queue response body bytes; they go out as the peer's windows allow."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.finished or stream.end or self.closed:
            return
        if data:
            stream.out.append(data)
            stream.out_size += len(data)
        stream.end = end_stream
        self._flush_guarded(stream_id, stream)

    def send_trailers(self, stream_id: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        """End the stream with a trailer block once the queued body is out."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.finished or stream.end or self.closed:
            return
        stream.trailers = list(_response_fields(headers))
        stream.end = True
        self._flush_guarded(stream_id, stream)

    def _flush_guarded(self, stream_id: int, stream: _Stream) -> None:
        try:
            self._flush(stream_id, stream)
        except h2.exceptions.StreamClosedError:
            self._gone(stream_id, stream)

    def _gone(self, stream_id: int, stream: _Stream) -> None:
        """h2 closed the stream (a reset in the read being processed): drop its output."""
        stream.finished = True
        stream.out.clear()
        stream.out_size = 0
        self._streams.pop(stream_id, None)

    def pending(self, stream_id: int) -> int:
        """Response bytes of this stream waiting for the peer's window (0 once gone)."""
        stream = self._streams.get(stream_id)
        return 0 if stream is None else stream.out_size

    def reset(self, stream_id: int, code: int = ErrorCode.INTERNAL_ERROR) -> None:
        """Abort a stream (the app failed mid-response, or was answered by the server)."""
        stream = self._streams.pop(stream_id, None)
        if stream is None or self.closed:
            return
        if not stream.finished:
            stream.finished = True
            self._reset_quietly(stream_id, code)
        self._release(stream_id, stream)

    def stream_finished(self, stream_id: int) -> list[H2Event]:
        """The stream's app task is done: its concurrency slot is free again."""
        self._running.discard(stream_id)
        self._maybe_forget(stream_id)
        if self._final_sent and not self._running and not self.closed:
            return [ShutdownComplete()]
        return []

    # --- output -------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        out = self._out
        if out:
            out += self._conn.data_to_send()
            data = bytes(out)
            out.clear()
            return data
        return self._conn.data_to_send()

    def _flush(self, stream_id: int, stream: _Stream) -> None:
        conn = self._conn
        out = stream.out
        if out:
            self._buffer.idle_frames = 0
        while out:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                return
            chunk = out[0]
            if len(chunk) > window:
                out[0] = chunk[window:]
                chunk = chunk[:window]
            else:
                out.popleft()
            stream.out_size -= len(chunk)
            last = not out and stream.end and stream.trailers is None
            conn.send_data(stream_id, chunk, end_stream=last)
            if last:
                self._finish(stream_id, stream)
                return
        if stream.end and not stream.finished:
            if stream.trailers is not None:
                conn.send_headers(stream_id, stream.trailers, end_stream=True)
            else:
                conn.end_stream(stream_id)
            self._finish(stream_id, stream)

    def _flush_all(self, events: list[H2Event]) -> None:
        for stream_id, stream in list(self._streams.items()):
            if stream.out:
                before = stream.out_size
                self._flush_guarded(stream_id, stream)
                if stream.out_size < before:
                    events.append(StreamWritable(stream_id))

    def _finish(self, stream_id: int, stream: _Stream) -> None:
        """END_STREAM sent. If the client is still sending, tell it to stop (RFC 9113 8.1)."""
        stream.finished = True
        # A complete response frees the slot even if its task has a step left to run:
        # the done-callback may come after the client's next request.
        self._running.discard(stream_id)
        if self._reset_debt:
            self._reset_debt -= 1
        h2_stream = self._conn.streams.get(stream_id)
        if h2_stream is not None and not h2_stream.closed:
            self._reset_quietly(stream_id, ErrorCode.NO_ERROR)
            self._release(stream_id, stream)
        self._maybe_forget(stream_id)

    def _maybe_forget(self, stream_id: int) -> None:
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        h2_stream = self._conn.streams.get(stream_id)
        if stream.finished and stream_id not in self._running and (
            h2_stream is None or h2_stream.closed
        ):
            del self._streams[stream_id]

    # --- ending -------------------------------------------------------------------------

    def announce_shutdown(self) -> list[H2Event]:
        """Graceful stop, step one: GOAWAY(2^31-1) and a PING (RFC 9113 6.8)."""
        if self.closed or self._announced:
            return []
        self._announced = True
        self._last_stream_id = _MAX_STREAM_ID
        self._goaway(_MAX_STREAM_ID, ErrorCode.NO_ERROR)
        self._conn.ping(_GOAWAY_PING)
        return []

    def _send_final_goaway(self, events: list[H2Event]) -> None:
        last = self._conn.highest_inbound_stream_id
        self._last_stream_id = last
        self._final_sent = True
        self._goaway(last, ErrorCode.NO_ERROR)
        if not self._running:
            events.append(ShutdownComplete())

    def _goaway(self, last_stream_id: int, code: int) -> None:
        # Not h2's close_connection(): after it h2 refuses every frame, and the streams
        # already open must still be answered.
        frame = GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code)
        self._out += self._conn.data_to_send()
        self._out += frame.serialize()

    def _end(self, code: int, reason: str) -> None:
        self.closed = True
        self._conn.close_connection(code, additional_data=reason.encode()[:256])

    def close(self, code: int = ErrorCode.NO_ERROR, reason: str = "") -> None:
        """End the connection now with GOAWAY (shutdown timeout, idle timeout)."""
        if not self.closed:
            self._drop_all(code)
            self._end(code, reason)


def _request(
    headers: Iterable[tuple[bytes, bytes]], ended: bool
) -> Request | StreamRefused:
    """A request record from a validated HTTP/2 header list (h2 checked the pseudo-headers)."""
    method = path = authority = protocol = None
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    content_length: int | None = None
    expect_continue = accepts_trailers = False
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
            elif name == b":protocol":
                protocol = value
            continue
        if name == b"cookie":
            cookies.append(value)
            continue
        if name == b"host":
            host = value
        elif name == b"content-length":
            content_length = int(value)  # h2 refused a non-numeric one
        elif name == b"expect":
            expect_continue = value.lower() == b"100-continue"
        elif name == b"te":
            accepts_trailers = True  # h2 allows only "trailers" here
        fields.append((name, value))
    if cookies:
        fields.append((b"cookie", b"; ".join(cookies)))
    if authority is not None and host is None:
        # h2 refuses a Host that differs from :authority (RFC 9113 8.3.1).
        fields.insert(0, (b"host", authority))
    assert method is not None
    upgrade = None
    if method == b"CONNECT":
        if protocol is None or path is None:
            return StreamRefused(0, 501, "CONNECT tunnels are not supported")
        upgrade = protocol.lower()
    assert path is not None
    raw_path, _, query = path.partition(b"?")
    return Request(
        method.decode("ascii", "replace"),
        raw_path,
        query,
        fields,
        "2",
        True,
        expect_continue and not ended,
        upgrade,
        content_length,
        not ended,
        accepts_trailers,
    )


def _response_fields(headers: Iterable[Any]) -> Iterable[tuple[bytes, bytes]]:
    """Response fields as HTTP/2 wants them: lower-case names, no connection fields."""
    for name, value in headers:
        lower = bytes(name).lower()
        if lower not in _HOP_BY_HOP:
            yield lower, bytes(value)
