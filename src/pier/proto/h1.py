"""HTTP/1.1 on httptools (llhttp), sans I/O: bytes in, events out; responses in, bytes out.

Rules:
1. No asyncio, no sockets, no clocks here. `H1Parser.receive_data(bytes)` tells a
   `RequestHandler` (proto/events.py) what the bytes completed, by plain calls with
   plain values; `ResponseFramer` turns a response into bytes.
2. llhttp does the framing and is strict by default (RFC 9112): Content-Length with
   Transfer-Encoding, duplicate Content-Length, bad chunk sizes, bare LF, NUL and obs-fold
   in headers are all parse errors. This module adds what llhttp lacks (size and count
   limits, RFC 9112 section 2.3) and turns every parser error into one `BadRequest`
   carrying the status to answer. After a `BadRequest` the parser is dead: a
   connection that sent garbage is never read again, so no smuggled request is served.
3. The response side checks the app's head with proto/headers.py (shared with every
   HTTP version: names, values, status) and decides the framing: Content-Length when
   the length is known, chunked for HTTP/1.1 streams, close-delimited for HTTP/1.0
   streams, and no body for HEAD, 1xx, 204 and 304 (RFC 9112 section 6.3).
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus
from typing import Any

import httptools

from pier.proto.events import BadRequest, RequestHandler
from pier.proto.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    PAIRS,
    PLAIN,
    TRANSFER_ENCODING,
    AppResponseError,
    check_value,
    classify,
    lower_name,
)
from pier.proto.limits import Limits

__all__ = [
    "H1Parser",
    "ResponseFramer",
    "plain_response",
    "status_line",
    "switching_protocols",
]


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing; the reason is on the parser."""


# While the head is incomplete llhttp buffers a partial header line itself, so the
# per-field accounting in the callbacks cannot see one endless line. This backstop
# counts raw bytes fed while no head is complete; one read's worth of slack keeps
# the tail of a previous pipelined body from causing a false 431.
_READ_SLACK = 65536


class H1Parser:
    """The request side of one HTTP/1.1 connection; tells a `RequestHandler` what it read.

    The handler is called from inside llhttp's callbacks, in wire order, while
    `receive_data` runs (no event objects: see proto/events.py). An exception a handler
    raises stops this parser for good and propagates out of `receive_data` as itself.
    """

    __slots__ = (
        "_body_size",
        "_dead",
        "_framing",
        "_head_fed",
        "_headers",
        "_in_message",
        "_keep_alive",
        "_line_hint",
        "_on_bad_request",
        "_on_body",
        "_on_end",
        "_on_request",
        "_on_upgrade",
        "_parser",
        "_refusal",
        "_url",
        "limits",
        "reading_head",
    )

    def __init__(self, limits: Limits, handler: RequestHandler) -> None:
        self.limits = limits
        self._parser = httptools.HttpRequestParser(self)
        # Bound once: these run per request and per body chunk.
        self._on_request = handler.on_request
        self._on_body = handler.on_body
        self._on_end = handler.on_end
        self._on_upgrade = handler.on_upgrade
        self._on_bad_request = handler.on_bad_request
        self._dead = False
        # Is a request head partly read (begun, not complete)?
        self.reading_head = False
        self._head_fed = 0
        self._refusal: BadRequest | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing: list[tuple[bytes, bytes]] = []
        self._body_size = 0
        self._line_hint: bytes | None = None
        self._in_message = False
        self._keep_alive = True

    @property
    def dead(self) -> bool:
        """Nothing more is read: after a refusal, or after a request that closes the connection."""
        return self._dead

    def close(self) -> None:
        """Read nothing more, and let go of llhttp and the handler.

        The parser and llhttp hold each other (its callbacks are this object's methods),
        and this object holds the handler's methods while the handler holds it: without
        this, every closed connection is left for the cyclic garbage collector, which
        cost ~22k instructions per connection in a connection-per-request load.
        """
        self._dead = True
        self.reading_head = False
        if not hasattr(self, "_parser"):
            return  # closed already
        del self._parser
        del self._on_request, self._on_body, self._on_end, self._on_upgrade
        del self._on_bad_request

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; the handler hears what they completed."""
        if self._dead:
            return
        # A chunk that starts at a message boundary and is no longer than one header
        # line may hold can hold no oversize field or head: the first request in it
        # needs no size checks, and its request line is at the chunk's start.
        if not self._in_message and len(data) <= self.limits.field_size:
            self._line_hint = data
        else:
            self._line_hint = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            # The head asked to switch protocols. The handler either takes the
            # connection over, or feeds the rest back in as HTTP/1.1, which a fresh
            # parser reads as the next request.
            offset = exc.args[0]
            self._parser = httptools.HttpRequestParser(self)
            self._on_upgrade(data[offset:])
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refuse):
                self._die(self._refusal or BadRequest(400, "the request could not be parsed"))
            else:
                self._dead = True
                if cause is None:
                    self._die(BadRequest(400, "the request could not be parsed"))
                    return
                # The handler failed: that is a bug to see, not a client to blame.
                raise cause from None
        except httptools.HttpParserError as exc:
            # Once a request that closes the connection is complete, llhttp refuses any
            # byte after it ("Data after `Connection: close`"): those bytes are ignored,
            # not answered.
            if not self._dead:
                if isinstance(exc, httptools.HttpParserInvalidMethodError):
                    self._die(BadRequest(400, f"invalid HTTP method ({exc})"))
                else:
                    self._die(BadRequest(400, f"malformed request: {exc}"))
        else:
            if self.reading_head:
                self._head_fed += len(data)
                if self._head_fed > self.limits.head_size + _READ_SLACK:
                    self._die(self._too_large_head())

    def _die(self, refusal: BadRequest) -> None:
        self._dead = True
        self._on_bad_request(refusal)

    def _refuse(self, status: int, reason: str) -> None:
        self._refusal = BadRequest(status, reason)
        raise _Refuse

    def _too_large_head(self) -> BadRequest:
        return BadRequest(
            431,
            f"request head larger than {self.limits.head_size} bytes"
            " (raise --limit-request-head-size to allow it)",
        )

    # httptools callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._framing = []
        self._body_size = 0
        self.reading_head = True
        self._in_message = True
    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Called from C once per header, so the per-header work happens here rather
        # than in a second loop. Size limits are checked at headers-complete; until
        # then the bytes-fed backstop in receive_data bounds what a flood can hold.
        name = name.lower()
        if value and value[-1] in _OWS:
            # llhttp strips leading whitespace only; trailing OWS is not part of the
            # field value either (RFC 9110 section 5.5).
            value = value.rstrip(b" \t")
        self._headers.append((name, value))
        if name in _FRAMING_HEADERS:
            self._framing.append((name, value))

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._head_fed = 0
        limits = self.limits
        url = self._url
        if len(url) > limits.request_line:
            self._refuse(
                414,
                f"request target longer than {limits.request_line} bytes"
                " (raise --limit-request-line to allow it)",
            )
        headers = self._headers
        if len(headers) > limits.fields:
            self._refuse(431, f"more than {limits.fields} header fields (--limit-request-fields)")
        hint = self._line_hint
        self._line_hint = None
        if hint is None:
            # The head may be larger than what one read brought: measure it.
            self._check_sizes(url, headers)
        length: int | None = None
        chunked = expect_continue = trailers_ok = False
        upgrade: bytes | None = None
        hosts = 0
        for name, value in self._framing:
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                length = int(value)  # llhttp refused duplicates and non-digits
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"expect":
                expect_continue = value.lower() == b"100-continue"
            elif name == b"upgrade":
                upgrade = value.strip().lower()
            elif name == b"te":
                trailers_ok = b"trailers" in value.lower()
        body_limit = limits.body
        if body_limit is not None and length is not None and length > body_limit:
            self._refuse(413, self._body_too_large(body_limit))
        parser = self._parser
        version = None
        if hint is not None:
            # This head began the chunk just fed: its request line is the chunk's first
            # line, and reading the version there is cheaper than asking llhttp.
            line_end = hint.find(b"\r\n")
            version = _VERSION_TAILS.get(hint[line_end - 9 : line_end])
        if version is None:
            version = parser.get_http_version()
        if version != "1.1":
            if version == "0.9":
                self._refuse(400, "request line without an HTTP version (HTTP/0.9 is not served)")
            if version != "1.0":
                self._refuse(505, f"HTTP/{version} is not supported over this connection")
            # RFC 9110 section 10.1.1: ignore 100-continue from HTTP/1.0 clients.
            expect_continue = False
        elif hosts != 1:
            # RFC 9112 section 3.2: exactly one Host header in an HTTP/1.1 request.
            self._refuse(
                400,
                "missing Host header (required in HTTP/1.1)"
                if not hosts
                else "more than one Host header (only one is allowed)",
            )
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
            # find(), not `in`: bytes.__contains__ first tries its argument as an int
            # and builds a TypeError message on the way (~1-2k instructions a test).
            if query.find(b"#") >= 0:
                query = query.partition(b"#")[0]
            elif raw_path.find(b"#") >= 0:
                raw_path = raw_path.partition(b"#")[0]
        else:
            raw_path, query = _split_other_target(url)
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        keep_alive = self._keep_alive = parser.should_keep_alive()
        self._on_request(
            method,
            raw_path,
            query,
            headers,
            version,
            keep_alive,
            expect_continue,
            # Only an upgrade llhttp will act on (Connection: upgrade present).
            upgrade if upgrade is not None and parser.should_upgrade() else None,
            length,
            bool(length) or chunked,
            trailers_ok,
        )

    def _check_sizes(self, url: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        limits = self.limits
        field_size = limits.field_size
        size = len(url)
        for name, value in headers:
            field = len(name) + len(value)
            if field > field_size:
                self._refuse(
                    431,
                    f"header field {name[:64]!r} is {field} bytes, over the"
                    f" {field_size} byte limit (--limit-request-field-size)",
                )
            size += field + 4
        if size > limits.head_size:
            self._refusal = self._too_large_head()
            raise _Refuse

    def _body_too_large(self, limit: int) -> str:
        return f"request body larger than {limit} bytes (raise --limit-request-body to allow it)"

    def on_body(self, body: bytes) -> None:
        limit = self.limits.body
        if limit is not None:
            self._body_size += len(body)
            if self._body_size > limit:
                self._refuse(413, self._body_too_large(limit))
        self._on_body(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        self._on_end()
        if not self._keep_alive:
            # RFC 9112 section 9.6: after a request that closes the connection nothing
            # more is read, not even requests pipelined behind it in the same chunk.
            # llhttp stops there by itself (see receive_data); raising here to stop it
            # cost ~13k instructions per such request (an exception through httptools).
            self._dead = True


_OWS = (0x20, 0x09)
# " HTTP/1.1" at the end of a request line, mapped to the scope's http_version.
_VERSION_TAILS = {b" HTTP/1.1": "1.1", b" HTTP/1.0": "1.0"}
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
}
_VERSIONS = frozenset({"1.1", "1.0"})
_FRAMING_HEADERS = frozenset(
    {b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te", b"host"}
)


def _split_other_target(url: bytes) -> tuple[bytes, bytes]:
    """Absolute-form ("http://host/p?q"), authority-form (CONNECT) and "*" targets."""
    if url == b"*":
        return b"*", b""
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        return url, b""
    return (parsed.path or b"/"), (parsed.query or b"")


# Response side ------------------------------------------------------------------------


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise AppResponseError(f"status {status!r} is not a 3-digit HTTP status code")
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii"))
        if len(_STATUS_LINES) < 1024:
            _STATUS_LINES[status] = line
    return line


_NO_BODY_STATUS = frozenset({204, 304})
_DEFAULT_NAMES = frozenset({b"server", b"date"})


def _without(block: bytes, names: list[bytes]) -> bytes:
    """Header lines of `block` whose (lower-case) names are not in `names`."""
    lines = block.split(b"\r\n")
    kept = [line for line in lines if line and line.split(b":", 1)[0].lower() not in names]
    return b"".join(line + b"\r\n" for line in kept)


# "content-length: N\r\n" lines already formatted: bytes %-formatting costs ~1,000
# instructions, a dict hit ~100, and small responses repeat their sizes.
_LENGTH_LINES: dict[int, bytes] = {}
_LENGTH_CACHE_SIZE = 4096


def _length_line(length: int) -> bytes:
    line = _LENGTH_LINES.get(length)
    if line is None:
        line = b"content-length: %d\r\n" % length
        if len(_LENGTH_LINES) < _LENGTH_CACHE_SIZE:
            _LENGTH_LINES[length] = line
    return line


class ResponseFramer:
    """Frames one response: the head once, then body pieces, then the end.

    `head()` starts a new response, so a connection may reuse one framer for all of
    its responses (constructing one costs ~2,300 instructions per response).
    """

    __slots__ = ("chunked", "keep_alive", "no_body", "remaining", "sent", "trailers")

    def __init__(self) -> None:
        self.chunked = False
        self.keep_alive = True
        self.no_body = False
        # Bytes the app may still send under its own Content-Length, or None.
        self.remaining: int | None = None
        self.sent = 0
        self.trailers = False

    def head(
        self,
        status: int,
        headers: Iterable[Any],
        *,
        method: str,
        http_version: str,
        keep_alive: bool,
        default_headers: bytes,
        body_length: int | None,
        trailers: bool = False,
    ) -> bytes:
        """Encode the status line and headers.

        `body_length` is the whole body's length when the app already sent all of it
        with its first body message, else None (a stream).
        """
        if not isinstance(status, int) or isinstance(status, bool):
            raise AppResponseError(f"http.response.start 'status' must be an int, got {status!r}")
        self.chunked = self.trailers = False
        self.remaining = None
        self.sent = 0
        parts = [_STATUS_LINES.get(status) or status_line(status), default_headers]
        content_length: int | None = None
        te_chunked = False
        overrides: list[bytes] | None = None
        pairs = PAIRS
        try:
            for pair in headers:
                kind = pairs.get(pair) if type(pair) is tuple else None
                if kind is None:
                    kind = classify(pair)
                name, value = pair
                if kind is PLAIN:
                    parts += (name, b": ", value, b"\r\n")
                elif kind is CONTENT_LENGTH:
                    content_length = int(value)
                    parts += (name, b": ", value, b"\r\n")
                elif kind is TRANSFER_ENCODING:
                    # The app asked for chunked; we do the chunking ourselves.
                    te_chunked = b"chunked" in value.lower()
                elif kind is CONNECTION:
                    if b"close" in value.lower():
                        keep_alive = False
                else:
                    lowered = name.lower()
                    overrides = [lowered] if overrides is None else [*overrides, lowered]
                    parts += (name, b": ", value, b"\r\n")
        except (TypeError, ValueError) as exc:
            raise AppResponseError(
                "http.response.start 'headers' must be an iterable of [name, value]"
                f" byte pairs ({exc})"
            ) from None
        if overrides is not None:
            # The app's own Server or Date header replaces the server's default one.
            parts[1] = _without(default_headers, overrides)
        no_body = method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        if status < 200:
            raise AppResponseError(
                f"status {status} is an interim response; ASGI apps cannot send 1xx"
                " with http.response.start"
            )
        if content_length is not None:
            self.remaining = None if no_body else content_length
        elif not no_body:
            if body_length is not None and not te_chunked:
                parts.append(_LENGTH_LINES.get(body_length) or _length_line(body_length))
                self.remaining = body_length
            elif http_version == "1.1":
                parts.append(b"transfer-encoding: chunked\r\n")
                self.chunked = True
                self.trailers = trailers
            else:
                keep_alive = False
        elif method == "HEAD" and body_length:
            parts.append(_length_line(body_length))
        if not keep_alive:
            parts.append(b"connection: close\r\n")
        elif http_version == "1.0":
            parts.append(b"connection: keep-alive\r\n")
        parts.append(b"\r\n")
        self.keep_alive = keep_alive
        self.no_body = no_body
        return b"".join(parts)

    def body(self, data: bytes, more: bool) -> bytes:
        """Encode a body piece; `more=False` marks the last one."""
        if self.no_body:
            return b""
        size = len(data)
        remaining = self.remaining
        if remaining is not None:
            if size > remaining:
                raise AppResponseError(
                    f"the app sent {self.sent + size} body bytes but declared"
                    f" Content-Length: {self.sent + remaining}"
                )
            self.remaining = remaining - size
            self.sent += size
            if not more and remaining != size:
                raise AppResponseError(
                    f"the response ended after {self.sent} body bytes but declared"
                    f" Content-Length: {self.sent + remaining - size}"
                )
            return data
        self.sent += size
        if self.chunked:
            if more:
                return b"%x\r\n%b\r\n" % (size, data) if size else b""
            if self.trailers:
                # The terminating zero chunk comes with the trailers.
                return b"%x\r\n%b\r\n" % (size, data) if size else b""
            if size:
                return b"%x\r\n%b\r\n0\r\n\r\n" % (size, data)
            return b"0\r\n\r\n"
        return data

    def trailer_block(self, headers: Iterable[Any]) -> bytes:
        parts = [b"0\r\n"]
        try:
            for name, value in headers:
                lower_name(name)
                check_value(name, value)
                parts += (name, b": ", value, b"\r\n")
        except (TypeError, ValueError) as exc:
            raise AppResponseError(
                f"http.response.trailers 'headers' must be [name, value] byte pairs ({exc})"
            ) from None
        parts.append(b"\r\n")
        return b"".join(parts)


def switching_protocols(
    accept_key: bytes, fields: Iterable[tuple[bytes, bytes]], default_headers: bytes
) -> bytes:
    """The 101 answer to a WebSocket upgrade (RFC 6455 section 4.2.2), given the
    version-independent fields of the answer (proto/ws.py accept_headers, checked)."""
    parts = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        default_headers,
        b"upgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ",
        accept_key,
        b"\r\n",
    ]
    for name, value in fields:
        parts += (name, b": ", value, b"\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def plain_response(status: int, text: str, default_headers: bytes) -> bytes:
    """A complete short text/plain response that closes the connection (errors, 503)."""
    body = (text + "\n").encode("utf-8", "replace")
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
    return b"".join(
        (
            b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode("ascii")),
            default_headers,
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body),
            body,
        )
    )
