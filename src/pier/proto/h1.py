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
3. Bytes that were part of a body are never read as a request (docs/security.md). llhttp
   skips the body of any request that asks to switch protocols (Upgrade with
   Connection: upgrade, or CONNECT) and stops after its head. The handler's
   `on_request` returns True when it takes the connection over (WebSocket, h2c); an
   upgrade it does not take (or any on HTTP/1.0) is an ordinary request, whose body is
   read on by a fresh llhttp primed with a head of the same framing
   (`_resume_after_upgrade`). An upgrade taken with a body is refused. CONNECT is never
   tunnelled: refused with content, else served and nothing after its head is read.
4. A trailer section is held to the head's limits (fields and bytes, counted together
   with the head), never reaches the request's headers (the app's scope has them), and
   is refused when it names a field that frames, routes or manages the connection;
   the other trailer fields are read and dropped (ASGI has no message to carry them).
5. The response side checks the app's head with proto/headers.py (shared with every
   HTTP version: names, values, status) and decides the framing: Content-Length when
   the length is known, chunked for HTTP/1.1 streams, close-delimited for HTTP/1.0
   streams, and no body for HEAD, 1xx, 204 and 304 (RFC 9112 section 6.3).
6. The native fast path (`pier.proto._h1head.parse_head`, C, built when a compiler was
   there) reads a request head that begins at a message boundary in one call, and a
   Content-Length body is then counted here, without llhttp: a read that is all body
   reaches the handler as the read itself (no copy). It accepts a strict subset of
   what llhttp accepts, giving the same `on_request` values (tests/proto pin that
   differentially); anything else (incomplete heads, chunked bodies, upgrades, any
   odd byte) goes to llhttp as above, which stays in charge until a message ends.
   llhttp is created when a connection first needs it. `PIER_NATIVE=0` in the
   environment (read at import, proto/native.py) or `h1.parse_head = None` turns the
   fast path off.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any

import httptools

from pier.proto import native
from pier.proto.events import BadRequest, RequestHandler
from pier.proto.headers import (
    CONNECTION,
    CONTENT_LENGTH,
    PAIRS,
    PLAIN,
    TRANSFER_ENCODING,
    AppResponseError,
    body_length_error,
    check_value,
    classify,
    lower_name,
    plain_body,
    two_lengths_error,
)
from pier.proto.limits import Limits

__all__ = [
    "H1Parser",
    "ResponseFramer",
    "plain_response",
    "status_line",
    "switching_protocols",
]


# (end, method, raw_path, query_string, headers, http_version, keep_alive,
#  expect_continue, content_length, accepts_trailers): one accepted head (rule 6).
NativeHead = tuple[
    int, str, bytes, bytes, list[tuple[bytes, bytes]], str, bool, bool, int | None, bool
]
# parse_head(data, start, target, fields, field_size, head_size, body or -1).
ParseHead = Callable[[bytes, int, int, int, int, int, int], NativeHead | None]


# Read by H1Parser.receive_data on every read: tests and comparisons set it to None.
_native = native.load()
parse_head: ParseHead | None = None if _native is None else _native.parse_head
# frame_response(framer, status, headers, default_headers, method, http_version,
# keep_alive, body_length, body, more_body): ResponseFramer.head() then .body(), joined,
# or None where the Python framer must do it (see _h1head.c). Read by io/connection.py.
FrameResponse = Callable[
    ["ResponseFramer", int, Any, bytes, str, str, bool, "int | None", bytes, bool], "bytes | None"
]
frame_response: FrameResponse | None = None if _native is None else _native.frame_response


class _Refuse(Exception):
    """Raised inside a parser callback to stop parsing; the reason is on the parser."""


# While a head or a trailer section is incomplete llhttp buffers a partial field line
# itself, so the per-field accounting in the callbacks cannot see one endless line. This
# backstop counts raw bytes fed while no head (or trailer section) is complete; one
# read's worth of slack (asyncio reads up to 256 KiB, uvloop 250 kB) keeps what came
# before it in the same read (a pipelined body's tail) from causing a false 431.
_READ_SLACK = 262144


class H1Parser:
    """The request side of one HTTP/1.1 connection; tells a `RequestHandler` what it read.

    The handler is called from inside llhttp's callbacks, in wire order, while
    `receive_data` runs (no event objects: see proto/events.py). An exception a handler
    raises stops this parser for good and propagates out of `receive_data` as itself.
    """

    __slots__ = (
        "_body_left",
        "_body_size",
        "_chunk_mark",
        "_dead",
        "_framing",
        "_handler",
        "_head_fed",
        "_headers",
        "_host_ok",
        "_in_chunk",
        "_in_message",
        "_keep_alive",
        "_line_hint",
        "_parser",
        "_partial",
        "_partial_limit",
        "_priming",
        "_refusal",
        "_resume",
        "_trailer_fed",
        "_trailer_room",
        "_url",
        "limits",
        "reading_head",
    )

    def __init__(self, limits: Limits, handler: RequestHandler) -> None:
        # Once per connection, so only what the fast path (rule 6) reads is set here:
        # llhttp's own state is set with llhttp (_start_llhttp), which most connections
        # never make. The handler's methods are looked up per call, not bound here:
        # binding five cost more per connection than the lookups cost per request.
        self.limits = limits
        self._handler = handler
        # llhttp, made when the fast path first declines (rule 6); its type is Any.
        self._parser: Any = None
        # Bytes of a Content-Length body still to come, read without llhttp (rule 6).
        # While it is not 0, _keep_alive holds that request's keep-alive.
        self._body_left = 0
        self._dead = False
        # Is a request head partly read (begun, not complete)?
        self.reading_head = False
        # Is llhttp inside a message (the fast path reads only at message boundaries)?
        self._in_message = False

    def _start_llhttp(self) -> Any:
        """Make llhttp, with the state only its path reads (rule 6)."""
        self._keep_alive = True
        self._head_fed = 0
        self._refusal: BadRequest | None = None
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing: list[tuple[bytes, bytes]] = []
        self._body_size = 0
        self._line_hint: bytes | None = None
        # After an upgrade that is not performed: the head that primes a fresh llhttp
        # to read the request's body (b"" when it has none); else None.
        self._resume: bytes | None = None
        # Is llhttp reading such a priming head (which is no request)?
        self._priming = False
        # Chunked bodies: inside a chunk (its size line read, the chunk not complete),
        # the body size at its size line, and bytes read since while no body came:
        # a trailer section still being read, which llhttp buffers itself.
        self._in_chunk = False
        self._chunk_mark = 0
        self._trailer_fed = 0
        # (fields, bytes) a trailer section may still hold; None until its first field.
        self._trailer_room: tuple[int, int] | None = None
        # The last Host value found valid on this connection.
        self._host_ok = b""
        # Bytes read since llhttp last completed a field line, while a head or trailer
        # section is open: httptools joins a partial line's pieces read after read
        # (quadratic in its length when they come a byte at a time), so one line may
        # not grow past what the limits allow a request line, a field, and the next
        # field (httptools reports a field only when the next one starts).
        self._partial = 0
        self._partial_limit = self.limits.partial_line
        parser = self._parser = httptools.HttpRequestParser(self)
        return parser

    @property
    def dead(self) -> bool:
        """Nothing more is read: after a refusal, or after a request that closes the connection."""
        return self._dead

    def close(self) -> None:
        """Read nothing more, and let go of llhttp and the handler.

        The parser and llhttp hold each other (its callbacks are this object's methods),
        and this object holds the handler while the handler holds it: without
        this, every closed connection is left for the cyclic garbage collector, which
        cost ~22k instructions per connection in a connection-per-request load.
        """
        self._dead = True
        self.reading_head = False
        self._parser = None
        if hasattr(self, "_handler"):  # else closed already
            del self._handler

    def receive_data(self, data: bytes) -> None:
        """Feed bytes from the client; the handler hears what they completed."""
        if self._dead:
            return
        native = parse_head
        if native is not None and not self._in_message:
            # At a message boundary, or inside a body the fast path framed (rule 6).
            # Inline rather than a method: one Python call fewer per read.
            handler = self._handler
            try:
                pos = self._body_left
                if pos:
                    size = len(data)
                    if size <= pos:
                        # All body: the read itself goes to the app, not a copy of it.
                        self._body_left = pos - size
                        handler.on_body(data)
                        if size == pos:
                            self._end_message()
                        return
                    self._body_left = 0
                    handler.on_body(data[:pos])
                    if not self._end_message():
                        return
                limits = self.limits.native_args
                size = len(data)
                while pos < size:
                    head = native(data, pos, *limits)
                    if head is None:
                        break  # not for the fast path: llhttp reads from here
                    (end, method, raw_path, query, headers, version, keep_alive, expect,
                     length, trailers) = head
                    if length:
                        handler.on_request(
                            method, raw_path, query, headers, version, keep_alive, expect,
                            None, length, True, trailers,
                        )
                        if self._dead:
                            return  # the handler closed the connection
                        pos = end + length
                        if pos > size:
                            # The body goes on in later reads.
                            self._keep_alive = keep_alive
                            self._body_left = pos - size
                            if end < size:
                                handler.on_body(data[end:])
                            return
                        handler.on_body(data[end:pos])
                    else:
                        handler.on_request(
                            method, raw_path, query, headers, version, keep_alive, expect,
                            None, length, False, trailers,
                        )
                        pos = end
                    # As _end_message, inline: this runs once per request.
                    if self._dead:
                        return
                    handler.on_end()
                    if not keep_alive:
                        self._dead = True  # RFC 9112 section 9.6
                        return
                else:
                    return
            except BaseException:
                # A handler's exception: this parser stops for good (as under llhttp).
                self._dead = True
                raise
            if pos:
                data = data[pos:]
        parser = self._parser
        if parser is None:
            # llhttp is made when first needed (rule 6): most connections never need it.
            parser = self._start_llhttp()
        # A chunk that starts at a message boundary and is no longer than one header
        # line may hold can hold no oversize field or head: the first request in it
        # needs no size checks, and its request line is at the chunk's start.
        if not self._in_message and len(data) <= self.limits.field_size:
            self._line_hint = data
        else:
            self._line_hint = None
        if self.reading_head or (self._in_chunk and self._body_size == self._chunk_mark):
            self._partial += len(data)
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            rest = data[exc.args[0] :]
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refuse):
                self._die(self._refusal or BadRequest(400, "the request could not be parsed"))
            elif cause is None or isinstance(cause, httptools.HttpParserError):
                # llhttp's or httptools' own complaint from inside a callback.
                self._die(BadRequest(400, f"malformed request: {cause or exc}"))
            else:
                # The handler failed: that is a bug to see, not a client to blame.
                self._dead = True
                raise cause from None
            return
        except httptools.HttpParserError as exc:
            # Once a request that closes the connection is complete, llhttp refuses any
            # byte after it ("Data after `Connection: close`"): those bytes are ignored,
            # not answered.
            if not self._dead:
                if isinstance(exc, httptools.HttpParserInvalidMethodError):
                    self._die(BadRequest(400, f"invalid HTTP method ({exc})"))
                elif isinstance(exc, httptools.HttpParserInvalidURLError):
                    self._die(BadRequest(400, f"invalid request target ({exc}): {_URL_RULE}"))
                else:
                    self._die(BadRequest(400, f"malformed request: {exc}"))
            return
        else:
            if self.reading_head:
                self._head_fed += len(data)
                if self._head_fed > self.limits.head_size + _READ_SLACK:
                    self._die(self._too_large_head())
                elif self._partial > self._partial_limit:
                    self._die(self._endless_line())
            elif self._in_chunk and self._body_size == self._chunk_mark:
                # No body since the last chunk size line: the last chunk's trailer
                # section (or a chunk whose data has not come yet) is being read.
                self._trailer_fed += len(data)
                if self._trailer_fed > self.limits.head_size + _READ_SLACK:
                    self._die(self._too_large_trailers())
                elif self._partial > self._partial_limit:
                    self._die(self._endless_line())
            return
        # llhttp stopped after a head that asked to switch protocols (skipping any body).
        # Either the handler takes the connection over, or the request was an ordinary
        # one whose body is read on (rule 3). Out of the except clause on purpose: an
        # error raised while reading on must not carry the upgrade as its context.
        # llhttp is done with this connection's bytes: a fresh one reads on, if any.
        self._parser = None
        if self._resume is None:
            self._handler.on_upgrade(rest)
        else:
            self._resume_after_upgrade(rest)

    def _end_message(self) -> bool:
        """A message the fast path framed is complete; is the next one to be read?"""
        if self._dead:
            return False  # the handler closed the connection
        self._handler.on_end()
        if not self._keep_alive:
            # RFC 9112 section 9.6: as on_message_complete.
            self._dead = True
        return not self._dead

    def _resume_after_upgrade(self, rest: bytes) -> None:
        """Read on after an upgrade the handler does not perform (rule 3)."""
        prime, self._resume = self._resume, None
        if self._dead:
            return  # a request that closes the connection: nothing after it is read
        if prime:
            # The priming head is not a request: it only sets llhttp's framing.
            self._priming = True
            self._parser = httptools.HttpRequestParser(self)
            try:
                self._parser.feed_data(prime)
            finally:
                self._priming = False
        if rest:
            self.receive_data(rest)

    def _die(self, refusal: BadRequest) -> None:
        self._dead = True
        self._handler.on_bad_request(refusal)

    def _refuse(self, status: int, reason: str) -> None:
        self._refusal = BadRequest(status, reason)
        raise _Refuse

    def _endless_line(self) -> BadRequest:
        return BadRequest(
            431,
            f"a request line or header field still unfinished after {self._partial} bytes"
            " (--limit-request-line, --limit-request-field-size)",
        )

    def _too_large_trailers(self) -> BadRequest:
        return BadRequest(
            431,
            f"request head and trailer section larger than {self.limits.head_size} bytes"
            " (raise --limit-request-head-size to allow it)",
        )

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
        if not self.reading_head:
            self._on_trailer(name, value)
            return
        self._partial = 0
        name = name.lower()
        if value and value[-1] in _OWS:
            # llhttp strips leading whitespace only; trailing OWS is not part of the
            # field value either (RFC 9110 section 5.5).
            value = value.rstrip(b" \t")
        self._headers.append((name, value))
        if name in _FRAMING_HEADERS:
            self._framing.append((name, value))

    def _on_trailer(self, name: bytes, value: bytes) -> None:
        """One trailer field (rule 4): counted, checked, then dropped."""
        self._partial = 0
        name = name.lower()
        if name in _NOT_IN_TRAILERS:
            self._refuse(
                400,
                f"{name.decode('latin-1')!r} is not allowed in a trailer section"
                " (RFC 9110 section 6.5.1: it frames, routes or manages the message)",
            )
        limits = self.limits
        size = len(name) + len(value)
        if size > limits.field_size:
            self._refuse(
                431,
                f"trailer field {name[:64]!r} is {size} bytes, over the"
                f" {limits.field_size} byte limit (--limit-request-field-size)",
            )
        room = self._trailer_room
        if room is None:
            # The head's fields and bytes count first (its list is the app's now, so
            # it is measured, not kept).
            head = len(self._url) + sum(len(n) + len(v) + 4 for n, v in self._headers)
            room = (limits.fields - len(self._headers), limits.head_size - head)
        fields, size_left = room[0] - 1, room[1] - size - 4
        if fields < 0:
            self._refuse(
                431,
                f"more than {limits.fields} header fields, trailers included"
                " (--limit-request-fields)",
            )
        if size_left < 0:
            self._refusal = self._too_large_trailers()
            raise _Refuse
        self._trailer_room = (fields, size_left)

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self._head_fed = 0
        self._partial = 0
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
        host = b""
        singletons: list[bytes] | None = None
        for name, value in self._framing:
            if name == b"host":
                hosts += 1
                host = value
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
            elif singletons is None:
                singletons = [name]
            elif name in singletons:
                self._refuse(400, _duplicate(name))
            else:
                singletons.append(name)
        body_limit = limits.body
        if body_limit is not None and length is not None and length > body_limit:
            self._refuse(413, self._body_too_large(body_limit))
        parser = self._parser
        raw_method = parser.get_method()
        version = None
        if hint is not None:
            # This head began the chunk just fed: its request line is the chunk's first
            # line, and reading the version there is cheaper than asking llhttp. Only if
            # that line is exactly "METHOD SP target SP HTTP/1.x": llhttp also ends a
            # line at a bare LF, and "POST /\nX: HTTP/1.1\r\n" is no HTTP/1.1 request
            # line (found by scripts/fuzz).
            line_end = hint.find(b"\r\n")
            if line_end == len(raw_method) + len(url) + 10:
                version = _VERSION_TAILS.get(hint[line_end - 9 : line_end])
        if version is None:
            version = parser.get_http_version()
        if version != "1.1":
            if version == "0.9":
                self._refuse(400, "request line without an HTTP version (HTTP/0.9 is not served)")
            if version != "1.0":
                self._refuse(505, f"HTTP/{version} is not supported over this connection")
            if chunked:
                # RFC 9112 section 6.1: HTTP/1.0 has no transfer codings, so its framing
                # is faulty; refusing (the RFC's other choice is to serve, then close)
                # keeps a body of unknowable length from ever reaching the app.
                self._refuse(400, "Transfer-Encoding in an HTTP/1.0 request (faulty framing)")
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
        if hosts and host != self._host_ok:
            self._check_host(host)
        method = _METHODS.get(raw_method)
        if method is None:
            method = raw_method.decode("ascii")
            if method == "CONNECT":
                upgrade = _CONNECT  # llhttp treats it as an upgrade: decided below
        if url[:1] == b"/":
            raw_path, _, query = url.partition(b"?")
            # find(), not `in`: bytes.__contains__ first tries its argument as an int
            # and builds a TypeError message on the way (~1-2k instructions a test).
            if query.find(b"#") >= 0:
                query = query.partition(b"#")[0]
            elif raw_path.find(b"#") >= 0:
                raw_path = raw_path.partition(b"#")[0]
        else:
            raw_path, query = self._other_target(url, method, headers)
        keep_alive = self._keep_alive = parser.should_keep_alive()
        if upgrade is not None:
            upgrade, keep_alive = self._upgrade_asked(
                upgrade, method, version, length, chunked, keep_alive
            )
        if self._priming:
            return
        taken = self._handler.on_request(
            method,
            raw_path,
            query,
            headers,
            version,
            keep_alive,
            expect_continue,
            upgrade,
            length,
            bool(length) or chunked,
            trailers_ok,
        )
        if upgrade is not None:
            self._upgrade_answered(upgrade, taken, length, chunked, keep_alive)

    def _check_host(self, host: bytes) -> None:
        # RFC 9110 section 7.2, RFC 9112 section 3.2: a Host that is not
        # uri-host [":" port] gets 400; an app that builds links from it (or a proxy
        # that routed on another reading of it) must not see one.
        if host not in _HOSTS:
            if _HOST.match(host) is None:
                self._refuse(400, f"invalid Host header {host[:100]!r} (RFC 9110 section 7.2)")
            if len(_HOSTS) < _HOST_CACHE_SIZE:
                _HOSTS.add(host)
        # A connection's requests name the same host: comparing with the last one is
        # cheaper still than the set (measured: the set alone cost ~400 instructions).
        self._host_ok = host

    def _upgrade_asked(  # noqa: PLR0917 - one caller, next to it
        self,
        token: bytes,
        method: str,
        version: str,
        length: int | None,
        chunked: bool,
        keep_alive: bool,
    ) -> tuple[bytes | None, bool]:
        """The Upgrade token to offer the handler (None: none to offer), and keep-alive."""
        if not self._parser.should_upgrade():
            return None, keep_alive  # Upgrade without Connection: upgrade: plain HTTP
        if method == "CONNECT":
            if length or chunked:
                self._refuse(400, "a CONNECT request has no content (RFC 9110 section 9.3.6)")
            # pier tunnels nothing (rule 3): an ordinary request, after which nothing is
            # read, because what follows its head may be tunnel bytes.
            self._keep_alive = False
            self._resume = b""
            return None, False
        if version != "1.1":
            # RFC 9110 section 7.8: a server MUST ignore Upgrade in an HTTP/1.0 request.
            self._read_on(length, chunked, keep_alive)
            return None, keep_alive
        return token, keep_alive

    def _upgrade_answered(
        self, token: bytes, taken: bool | None, length: int | None, chunked: bool,
        keep_alive: bool,
    ) -> None:
        """After the handler heard an upgrade request: hand over, or read on (rule 3)."""
        has_body = bool(length) or chunked
        if taken:
            if has_body:
                # RFC 6455 section 4.1 (a handshake is a GET with no content), RFC 7540
                # section 3.2: bytes after the head would be read as the new protocol.
                self._refuse(400, f"a {token.decode('latin-1')} upgrade request with a body")
            self._resume = None
            return
        self._read_on(length, chunked, keep_alive)

    def _read_on(self, length: int | None, chunked: bool, keep_alive: bool) -> None:
        """An upgrade not performed (RFC 9110 section 7.8 lets a server ignore Upgrade):
        an ordinary request, whose body llhttp skipped and has to be read (rule 3)."""
        if length or chunked:
            # llhttp ends this message at its head: its end (on_message_complete skips
            # it while _resume holds a head) and its keep-alive come with the body,
            # from the primed parser.
            self._resume = _priming_head(length, chunked, keep_alive)
            self._keep_alive = True
        else:
            self._resume = b""

    def _other_target(
        self, url: bytes, method: str, headers: list[tuple[bytes, bytes]]
    ) -> tuple[bytes, bytes]:
        """Asterisk, absolute-form and authority-form targets (RFC 9112 section 3.2)."""
        if url == b"*":
            if method != "OPTIONS":
                self._refuse(400, "the request target * is only for OPTIONS (RFC 9112 3.2.4)")
            return b"*", b""
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return url, b""  # authority-form: CONNECT's host:port
        host = parsed.host
        if host:
            # RFC 9112 section 3.2.2: the target's authority replaces Host, so the app
            # reads the same host that routed the request.
            if b":" in host:
                host = b"[%b]" % host  # an IPv6 literal
            authority = host if parsed.port is None else b"%b:%d" % (host, parsed.port)
            for index, (name, _) in enumerate(headers):
                if name == b"host":
                    headers[index] = (b"host", authority)
        return (parsed.path or b"/"), (parsed.query or b"")

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
        size = self._body_size = self._body_size + len(body)
        limit = self.limits.body
        if limit is not None and size > limit:
            self._refuse(413, self._body_too_large(limit))
        self._handler.on_body(body)

    def on_chunk_header(self) -> None:
        # Per chunk, chunked bodies only. The size is llhttp's; a chunk that brings no
        # body before its end is the last one, whose trailer section follows.
        self._in_chunk = True
        self._chunk_mark = self._body_size
        self._trailer_fed = 0
        self._trailer_room = None
        self._partial = 0

    def on_chunk_complete(self) -> None:
        self._in_chunk = False

    def on_message_complete(self) -> None:
        self._in_message = False
        if not self._resume:
            # Else an upgrade not performed whose body a primed llhttp reads: the
            # message ends with that body (_read_on).
            self._handler.on_end()
        if not self._keep_alive:
            # RFC 9112 section 9.6: after a request that closes the connection nothing
            # more is read, not even requests pipelined behind it in the same chunk.
            # llhttp stops there by itself (see receive_data); raising here to stop it
            # cost ~13k instructions per such request (an exception through httptools).
            self._dead = True


_OWS = (0x20, 0x09)
# " HTTP/1.1" at the end of a request line, mapped to the scope's http_version.
_VERSION_TAILS = {b" HTTP/1.1": "1.1", b" HTTP/1.0": "1.0"}
# CONNECT is left out on purpose: the lookup's miss is where it is noticed, off the
# common path.
_METHODS = {
    name.encode(): name
    for name in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE")
}
_CONNECT = b"connect"
_VERSIONS = frozenset({"1.1", "1.0"})
# Fields on_headers_complete reads. The last two are singletons whose duplicates are
# refused (docs/security.md): a proxy that reads the first and an app that reads the
# last would disagree on how to parse the body, or on who is asking.
_FRAMING_HEADERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"expect",
        b"upgrade",
        b"te",
        b"host",
        b"content-type",
        b"authorization",
    }
)
# Trailer fields refused (RFC 9110 section 6.5.1): those that frame the message, route
# it or manage the connection, which llhttp or a proxy could act on. Any other trailer
# field is dropped unread.
_NOT_IN_TRAILERS = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"trailer",
        b"te",
        b"host",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"upgrade",
        b"expect",
    }
)
# uri-host [":" port] (RFC 3986 section 3.2.2): an IP literal, or a reg-name of
# unreserved, pct-encoded and sub-delims characters. Valid values seen are remembered
# (bounded): a request's Host repeats, and a set lookup is cheaper than the regex.
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]*)?\Z")
_HOSTS: set[bytes] = set()
_HOST_CACHE_SIZE = 1024
_URL_RULE = (
    "a request target is printable ASCII; other bytes must be percent-encoded"
    " (RFC 9112 section 3.2, RFC 3986 section 2.1)"
)


def _duplicate(name: bytes) -> str:
    return (
        f"more than one {name.decode('latin-1')!r} header (a proxy and the app could"
        " each read a different one)"
    )


def _priming_head(length: int | None, chunked: bool, keep_alive: bool) -> bytes:
    """A head with the framing of a request whose body is still to be read (rule 3)."""
    framing = b"transfer-encoding: chunked" if chunked else b"content-length: %d" % (length or 0)
    close = b"" if keep_alive else b"connection: close\r\n"
    return b"PUT / HTTP/1.1\r\nhost: resume\r\n%b\r\n%b\r\n" % (framing, close)


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
if _native is not None:
    # The C framer reads the pairs classify() validated and the status lines built here.
    _native.framer_tables(PAIRS, _STATUS_LINES, PLAIN, CONTENT_LENGTH)
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
                    length = int(value)
                    if content_length is not None:
                        if length != content_length:
                            raise two_lengths_error(content_length, length)
                        continue  # the same value again is sent once
                    content_length = length
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
                raise body_length_error(self.sent + size, self.sent + remaining, ended=False)
            self.remaining = remaining - size
            self.sent += size
            if not more and remaining != size:
                raise body_length_error(self.sent, self.sent + remaining - size, ended=True)
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

    def body_pieces(self, data: bytes, more: bool) -> tuple[bytes, ...]:
        """body() as pieces to write together (writelines): the data is not copied.

        Framing a chunk with body() copies the data into one bytes object; for a large
        piece that copy costs about an instruction per byte.
        """
        if self.no_body or not self.chunked or not data:
            framed = self.body(data, more)
            return (framed,) if framed else ()
        self.sent += len(data)
        # The terminating zero chunk comes with the trailers when there are any.
        tail = b"\r\n" if more or self.trailers else b"\r\n0\r\n\r\n"
        return (b"%x\r\n" % len(data), data, tail)

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
    body = plain_body(text)
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
