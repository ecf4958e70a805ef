"""Every size and count limit on client input, with the threat it stops and a precedent.

Rules: limits are plain data (a frozen dataclass) built from Config by the server and
handed to the protocol layer; the protocol layer never reads Config itself. Each
limit's default sits between what real clients need and what an attacker can use.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Limits:
    # Request line + all header lines. Threat: memory held per connection before the
    # app sees anything. Precedent: node 16 KiB, nginx 4x8 KiB buffers, Apache ~800 KiB;
    # 64 KiB leaves room for cookie-heavy sites. Answer: 431.
    head_size: int = 65536
    # Header field count. Threat: hash-flooding and per-field overhead. Precedent:
    # Apache LimitRequestFields 100, gunicorn limit_request_fields 100. Answer: 431.
    fields: int = 100
    # One header line. Precedent: Apache LimitRequestFieldSize 8190, gunicorn 8190.
    # Answer: 431.
    field_size: int = 8190
    # Request target. Precedent: Apache LimitRequestLine 8190, gunicorn 4094. Answer: 414.
    request_line: int = 8190
    # Request body. Off by default (None) like uvicorn and gunicorn, since apps stream
    # uploads; nginx's client_max_body_size is 1 MiB. Answer: 413.
    body: int | None = None
    # Derived once per Limits, not per connection (issue 13): the arguments the native
    # head parser takes after (data, start), and the bound on one unfinished line
    # (a request line, a field and the next field) while llhttp reads a head.
    native_args: tuple[int, int, int, int, int] = field(init=False, repr=False, compare=False)
    partial_line: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        native_args = (
            self.request_line,
            self.fields,
            self.field_size,
            self.head_size,
            -1 if self.body is None else self.body,
        )
        object.__setattr__(self, "native_args", native_args)
        object.__setattr__(self, "partial_line", self.request_line + 2 * self.field_size + 1024)


@dataclass(frozen=True, slots=True)
class H2Limits:
    """HTTP/2 (RFC 9113) settings and the flood bounds; see docs/http2.md.

    Memory per connection is bounded by max_concurrent_streams x initial_window_size of
    request body (the connection window is their sum, so one stalled stream never starves
    the others) plus one frame and one header block being read.
    """

    # SETTINGS_MAX_CONCURRENT_STREAMS. Threat: per-stream app tasks and buffers. Streams
    # count until their app task has finished, not until the peer resets them, so a
    # rapid reset (CVE-2023-44487) cannot run more apps at once than this. Precedent:
    # nginx http2_max_concurrent_streams 128, h2 100, Go 250. Over it: RST_STREAM
    # REFUSED_STREAM.
    max_concurrent_streams: int = 100
    # SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may send before the app
    # reads them. Threat: memory held for slow apps. Precedent: RFC default 65535,
    # nginx 64 KiB preread. Over it: the peer's own FLOW_CONTROL_ERROR.
    initial_window_size: int = 65535
    # SETTINGS_MAX_HEADER_LIST_SIZE (decoded, 32 bytes per field counted, RFC 9113
    # 6.5.2), and the bound on an encoded header block (HEADERS + CONTINUATION).
    # Threats: HPACK bombs (a small block that decodes huge) and CONTINUATION floods
    # (CVE-2024-27316: a block that never ends). Precedent: h2 64 KiB, nginx 4x8 KiB,
    # pier's HTTP/1.1 head 64 KiB. Over it: GOAWAY ENHANCE_YOUR_CALM.
    max_header_list_size: int = 65536
    # SETTINGS_MAX_FRAME_SIZE: largest frame payload read. A longer frame is refused from
    # its 9-byte header, before its payload is buffered. Precedent: the RFC default and
    # minimum 16384 (nginx, Go). Over it: GOAWAY FRAME_SIZE_ERROR.
    max_frame_size: int = 16384
    # Streams the peer resets before their response is complete, less responses that
    # completed, before the connection is ended. Threat: rapid reset (CVE-2023-44487).
    # Precedent: nghttp2 allows bursts of 1000 resets, nginx ends after 2x its streams
    # limit per read. Over it: GOAWAY ENHANCE_YOUR_CALM.
    max_reset_streams: int = 200
    # Frames in a row that make no progress (SETTINGS, PING, PRIORITY, WINDOW_UPDATE,
    # RST_STREAM, empty DATA or CONTINUATION, unknown types); a new request, request body
    # bytes or response bytes sent start the count again. Threat: the SETTINGS/PING/empty
    # DATA/WINDOW_UPDATE floods (CVE-2019-9512/9515/9518). Precedent: Netty allows 2
    # empty DATA frames in a row, Go 10000 queued control frames. Over it: GOAWAY
    # ENHANCE_YOUR_CALM.
    max_control_frames: int = 1000
