"""WebSocket (RFC 6455) over HTTP/1.1, sans I/O: the opening handshake, frames, messages.

Rules:
1. No asyncio, no sockets, no clocks here. `negotiate()` checks an upgrade request and
   agrees the extensions; `WSConnection.receive_data(bytes)` returns the events the bytes
   completed (the glue asks `read_message()` first: the one whole message of a plain
   read, or None, then `receive_frames()`); `message_frame()` returns the bytes of an
   outgoing message to write now; control frames (`send_ping()`, `send_pong()`,
   `close()`, `fail()`) are queued and `data_to_send()` hands them out.
2. The frame layer is the `websockets` library's sans-I/O core (`ServerProtocol`), not
   wsproto. Why: its masking runs in C, it counts the size of a fragmented message across
   frames and bounds permessage-deflate decompression by what is left of that size (a
   zip bomb stops at --ws-max-size, closing with 1009), it checks close codes and close
   reasons, and it is the one core all of websockets' own servers run on. wsproto
   decompresses without a bound, has no message size limit, and would re-parse the
   request head with h11 although llhttp has already read it.
3. What this module adds to that core: the handshake checks with pier's own answers
   (status + one-line cause and fix), whole messages instead of frames, UTF-8 checked
   frame by frame so invalid text fails fast with 1007 (RFC 6455 section 8.1), and
   pings handed to the glue as events instead of answered at once, so a peer that pings
   while never reading cannot make the server queue pongs without limit (the glue
   answers the latest ping when the peer reads again; section 5.5.3 allows that).
4. Nothing above this module imports `websockets`: the glue (io/websocket.py) sees only
   the events below and the `WSConnection` methods.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
import logging
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from websockets.datastructures import Headers
from websockets.exceptions import InvalidHandshake, PayloadTooBig, ProtocolError
from websockets.extensions.base import Extension, ServerExtensionFactory
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.protocol import OPEN, State
from websockets.server import ServerProtocol

from pier.proto.events import Request
from pier.proto.headers import AppResponseError, validate_headers

try:
    from websockets.speedups import apply_mask
except ImportError:  # websockets built without its C extension
    from websockets.utils import apply_mask

__all__ = [
    "CLOSE_GOING_AWAY",
    "CloseReceived",
    "Failed",
    "HandshakeRefused",
    "Message",
    "Ping",
    "Pong",
    "ServerHandshake",
    "WSConnection",
    "WSEvent",
    "accept_headers",
    "check_close",
    "negotiate",
]

# RFC 6455 section 1.3: the GUID every server appends to the client's key.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_NO_STATUS = 1005
CLOSE_ABNORMAL = 1006
CLOSE_INVALID_DATA = 1007
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011

# RFC 6455 section 7.4 and the IANA registry: codes an endpoint may put in a close frame.
_SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012,
                             1013, 1014})
# A close frame is a control frame (at most 125 payload bytes) holding a 2-byte code.
MAX_CLOSE_REASON = 123


# Events ------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """A whole data message: str for a text message, bytes for a binary one."""

    data: str | bytes


@dataclass(slots=True)
class Ping:
    """The peer pinged; the glue owes it a pong with this payload (see rule 3)."""

    data: bytes


@dataclass(slots=True)
class Pong:
    data: bytes


@dataclass(slots=True)
class CloseReceived:
    """The peer sent a close frame; the echo (if one is owed) is already queued."""

    code: int
    reason: str


@dataclass(slots=True)
class Failed:
    """The connection failed (RFC 6455 section 7.1.7): bad input, too large, or EOF.

    `code` is what a close frame we sent says (1002, 1007, 1009...), or 1006 when the
    peer went away without one; `reason` says what happened, for the log and the app.
    """

    code: int
    reason: str


WSEvent = Message | Ping | Pong | CloseReceived | Failed


# The opening handshake -----------------------------------------------------------------


class HandshakeRefused(Exception):
    """The upgrade request is not a valid WebSocket handshake: answer `status` and close."""

    def __init__(
        self, status: int, reason: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = list(headers)


@dataclass(slots=True)
class ServerHandshake:
    """A valid opening handshake, before the app accepts or denies it."""

    accept_key: bytes
    subprotocols: list[str]
    extensions_header: bytes | None
    extensions: list[Extension]


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


def _tokens(values: list[bytes]) -> list[str]:
    """The comma-separated list elements of repeated header lines (RFC 9110 5.6.1)."""
    out = []
    for value in values:
        for raw in value.decode("latin-1").split(","):
            item = raw.strip(" \t")
            if item:
                out.append(item)
    return out


def negotiate(
    request: Request, *, per_message_deflate: bool = True
) -> ServerHandshake:
    """Check an upgrade request against RFC 6455 section 4.2.1 and agree the extensions.

    Raises HandshakeRefused (400, or 426 for a version or upgrade the server does not
    speak, with the header that tells the client what it does speak).
    """
    fields: dict[bytes, list[bytes]] = {}
    for name, value in request.headers:
        fields.setdefault(name, []).append(value)
    # RFC 8441: over HTTP/2 the handshake is an extended CONNECT with :protocol
    # websocket (proto/h2.py sets `upgrade` from it); no Upgrade, Connection or key.
    if request.http_version == "2" and request.method == "CONNECT":
        if request.upgrade != b"websocket":
            raise HandshakeRefused(400, "extended CONNECT for a protocol other than websocket")
        _check_version(fields)
        return _agree(fields, b"", per_message_deflate=per_message_deflate)
    if request.method != "GET":
        raise HandshakeRefused(
            400, f"a WebSocket handshake must be a GET request, not {request.method}"
        )
    if request.http_version != "1.1":
        raise HandshakeRefused(
            400,
            f"a WebSocket handshake needs HTTP/1.1, not HTTP/{request.http_version}",
        )
    upgrade = _tokens(fields.get(b"upgrade", []))
    if [u.lower() for u in upgrade] != ["websocket"]:
        raise HandshakeRefused(
            426,
            f"the Upgrade header must be 'websocket', got {', '.join(upgrade)!r}",
            [(b"upgrade", b"websocket")],
        )
    if not any(t.lower() == "upgrade" for t in _tokens(fields.get(b"connection", []))):
        raise HandshakeRefused(
            400, "a WebSocket handshake needs 'Connection: Upgrade'", []
        )
    if b"host" not in fields:
        raise HandshakeRefused(400, "a WebSocket handshake needs a Host header")
    _check_version(fields)
    keys = fields.get(b"sec-websocket-key", [])
    if len(keys) != 1:
        raise HandshakeRefused(
            400,
            "a WebSocket handshake needs exactly one Sec-WebSocket-Key header,"
            f" got {len(keys)}",
        )
    key = keys[0].strip()
    try:
        raw_key = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeRefused(
            400,
            f"Sec-WebSocket-Key {key[:64]!r} is not 16 random bytes in base64"
            " (RFC 6455 section 4.1)",
        )
    accept_key = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    return _agree(fields, accept_key, per_message_deflate=per_message_deflate)


def _check_version(fields: dict[bytes, list[bytes]]) -> None:
    versions = fields.get(b"sec-websocket-version", [])
    if versions != [b"13"]:
        got = b", ".join(versions).decode("latin-1") if versions else "none"
        raise HandshakeRefused(
            426,
            f"unsupported Sec-WebSocket-Version {got!r}; this server speaks version 13"
            " (RFC 6455)",
            [(b"sec-websocket-version", b"13")],
        )


def _agree(
    fields: dict[bytes, list[bytes]], accept_key: bytes, *, per_message_deflate: bool
) -> ServerHandshake:
    """Subprotocols and extensions, the same over HTTP/1.1 and HTTP/2."""
    subprotocols = _tokens(fields.get(b"sec-websocket-protocol", []))
    for subprotocol in subprotocols:
        if not _TOKEN.match(subprotocol):
            raise HandshakeRefused(
                400, f"Sec-WebSocket-Protocol {subprotocol[:64]!r} is not a token"
            )
    extensions_header: bytes | None = None
    extensions: list[Extension] = []
    offers = fields.get(b"sec-websocket-extensions")
    if offers and per_message_deflate:
        extensions_header, extensions = _negotiate_extensions(offers)
    return ServerHandshake(
        accept_key=accept_key,
        subprotocols=subprotocols,
        extensions_header=extensions_header,
        extensions=extensions,
    )


class _PerMessageDeflate(PerMessageDeflate):
    """permessage-deflate that may leave outgoing messages uncompressed.

    zlib cannot compress with a 256-byte window (wbits 8), so when a client asks for
    server_max_window_bits=8 the server accepts and sends its messages uncompressed,
    which RFC 7692 section 6 allows (RSV1 is per message), instead of declining.
    """

    def __init__(self, *args: Any, compress: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._compress = compress

    def encode(self, frame: Frame) -> Frame:
        if self._compress:
            return super().encode(frame)
        return frame


class _DeflateFactory(ServerPerMessageDeflateFactory):
    def process_request_params(
        self, params: Any, accepted_extensions: Any
    ) -> tuple[list[Any], PerMessageDeflate]:
        window_8 = any(name == "server_max_window_bits" and value == "8"
                       for name, value in params)
        if window_8:
            params = [(n, "9" if n == "server_max_window_bits" else v) for n, v in params]
        response, ext = super().process_request_params(params, accepted_extensions)
        if window_8:
            response = [(n, "8" if n == "server_max_window_bits" else v) for n, v in response]
        wrapped = _PerMessageDeflate(
            ext.remote_no_context_takeover,
            ext.local_no_context_takeover,
            ext.remote_max_window_bits,
            ext.local_max_window_bits,
            ext.compress_settings,
            compress=not window_8,
        )
        return response, wrapped


# Memory per compressed connection: a 4 KiB window each way and memLevel 5 (about 64
# KiB for the compressor instead of 256 KiB) is what websockets' own servers default
# to; the compression ratio on chat-sized JSON barely changes.
_DEFLATE: list[ServerExtensionFactory] = [
    _DeflateFactory(
        server_max_window_bits=12,
        client_max_window_bits=12,
        compress_settings={"memLevel": 5},
    )
]


def _negotiate_extensions(offers: list[bytes]) -> tuple[bytes | None, list[Extension]]:
    headers = Headers()
    for value in offers:
        headers["Sec-WebSocket-Extensions"] = value.decode("latin-1")
    probe = ServerProtocol(extensions=_DEFLATE, state=OPEN, logger=_QUIET)
    try:
        header, extensions = probe.process_extensions(headers)
    except InvalidHandshake as exc:
        raise HandshakeRefused(
            400, f"malformed Sec-WebSocket-Extensions header ({exc})"
        ) from None
    return (header.encode("latin-1") if header else None), extensions


# Handshake fields the server computes; an app's copy would contradict them.
_RESERVED = frozenset({b"upgrade", b"connection", b"sec-websocket-accept",
                       b"sec-websocket-extensions", b"sec-websocket-protocol",
                       b"content-length", b"transfer-encoding"})


class AcceptError(ValueError):
    """The app's websocket.accept cannot be sent; the message says why and how to fix."""


def accept_headers(
    handshake: ServerHandshake, *, subprotocol: str | None, headers: Iterable[Any]
) -> list[tuple[bytes, bytes]]:
    """The fields of the handshake's success answer (RFC 6455 section 4.2.2) that do not
    depend on the HTTP version: the negotiated extensions and subprotocol, then the app's
    headers, checked as any response header is (proto/headers.py). The HTTP/1.1 glue adds
    Upgrade, Connection and Sec-WebSocket-Accept to make its 101 (proto/h1.py)."""
    fields: list[tuple[bytes, bytes]] = []
    if handshake.extensions_header is not None:
        fields.append((b"sec-websocket-extensions", handshake.extensions_header))
    if subprotocol is not None:
        fields.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    try:
        checked = validate_headers(headers, "websocket.accept")
    except AppResponseError as exc:
        raise AcceptError(f"websocket.accept: {exc}") from None
    # The server's own handshake fields win.
    fields += [(name, value) for name, value in checked if name not in _RESERVED]
    return fields


def check_close(code: object, reason: object) -> str | None:
    """Why (code, reason) cannot go in a close frame, or None if it can."""
    if not isinstance(code, int) or isinstance(code, bool):
        return f"close 'code' must be an int, got {code!r}"
    if code not in _SENDABLE_CODES and not 3000 <= code <= 4999:
        return (
            f"close code {code} cannot be sent in a close frame; use 1000 (normal),"
            " another code RFC 6455 section 7.4.1 defines, or 3000-4999"
        )
    if not isinstance(reason, str):
        return f"close 'reason' must be a str, got {type(reason).__name__}"
    try:
        size = len(reason.encode("utf-8"))
    except UnicodeEncodeError:
        return f"close 'reason' {reason[:40]!r} is not encodable as UTF-8"
    if size > MAX_CLOSE_REASON:
        return (
            f"close 'reason' is {size} bytes of UTF-8; a close frame holds at most"
            f" {MAX_CLOSE_REASON}"
        )
    return None


# The connection ------------------------------------------------------------------------


class _QuietLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """websockets logs every open and close at INFO, and at DEBUG every frame with a
    preview of its payload (a message may hold anything: passwords, personal data);
    pier's glue logs what matters, and --log-level trace gives types and sizes only."""

    def info(self, *args: Any, **kwargs: Any) -> None:
        pass

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_QUIET = _QuietLogger(logging.getLogger("pier.error"), {})

_TEXT, _BINARY, _CONT = Opcode.TEXT, Opcode.BINARY, Opcode.CONT
_CLOSE, _PING, _PONG = Opcode.CLOSE, Opcode.PING, Opcode.PONG
_utf8_decoder = codecs.getincrementaldecoder("utf-8")
_utf8_decode = codecs.utf_8_decode

_FAILURE_CODES: dict[type[BaseException], int] = {
    ProtocolError: CLOSE_PROTOCOL_ERROR,
    UnicodeDecodeError: CLOSE_INVALID_DATA,
    PayloadTooBig: CLOSE_TOO_BIG,
    EOFError: CLOSE_ABNORMAL,
}


class _Core(ServerProtocol):
    """websockets' server protocol, reassembling messages and checking UTF-8 as frames come.

    It overrides `recv_frame`, websockets' per-frame hook: an exception raised there is
    turned by websockets' parser into the right close frame (UnicodeDecodeError -> 1007).
    """

    def __init__(self, *, extensions: list[Extension], max_size: int | None) -> None:
        super().__init__(state=OPEN, max_size=max_size, logger=_QUIET)
        self.extensions = extensions
        self.out: list[WSEvent] = []
        self._parts: list[Any] = []
        self._text = False
        # Is websockets' parser at the start of a frame with nothing buffered? Only
        # then may WSConnection read a frame itself (see WSConnection.read_message).
        self.at_frame_start = True
        # Only for a text message in several frames: carries a split character over.
        self._decoder: Any = None

    def recv_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is _TEXT or opcode is _BINARY:
            # A new message, unless one is in progress (then super() refuses the frame).
            if self.current_size is None:
                self._parts = []
                self._text = opcode is _TEXT
                self._decoder = _utf8_decoder() if self._text and not frame.fin else None
                self._collect(frame)
        elif opcode is _CONT:
            if self.current_size is not None:
                self._collect(frame)
        elif opcode is _PING:
            self.out.append(Ping(bytes(frame.data)))
            return  # answered by the glue (rule 3), so not by super()
        elif opcode is _PONG:
            self.out.append(Pong(bytes(frame.data)))
        elif opcode is _CLOSE and self.current_size is not None:
            # A close frame may come between the fragments of a message (control
            # frames interleave, RFC 6455 section 5.4): the unfinished message is
            # dropped and the close is a normal one, which websockets would refuse.
            self.current_size = None
            self._parts = []
            self._decoder = None
        super().recv_frame(frame)
        # The parser goes on to the next frame: with nothing left over, that is the
        # start of the next read.
        self.at_frame_start = not self.reader.buffer
        if opcode is _CLOSE:
            close = self.close_rcvd
            assert close is not None
            self.out.append(CloseReceived(int(close.code), close.reason))
        elif frame.fin and opcode is not _PONG:
            parts, self._parts = self._parts, []
            if self._text:
                self._decoder = None
                self.out.append(Message(parts[0] if len(parts) == 1 else "".join(parts)))
            else:
                self.out.append(Message(parts[0] if len(parts) == 1 else b"".join(parts)))

    def _collect(self, frame: Frame) -> None:
        data = frame.data
        if self._decoder is not None:
            # Raises UnicodeDecodeError at the first invalid byte: fail fast (rule 3).
            self._parts.append(self._decoder.decode(data, frame.fin))
        elif self._text:
            # A whole message in one frame: one C call, no decoder object to build.
            self._parts.append(_utf8_decode(data, "strict", True)[0])
        else:
            self._parts.append(data if type(data) is bytes else bytes(data))


class WSConnection:
    """One accepted WebSocket connection, server side.

    With no extension negotiated, the commonest read (one whole data frame) and every
    outgoing message bypass websockets' core (`read_message`, `message_frame`); the
    core stays the one authority for everything else, and `open` and the fast-read flag
    are re-read from it after every call into it, which is the only way its state
    changes.
    """

    __slots__ = ("_core", "_failure_reported", "_max_size", "_plain", "_read_plain", "open")

    def __init__(self, handshake: ServerHandshake, *, max_size: int | None) -> None:
        self._core = _Core(extensions=handshake.extensions, max_size=max_size)
        self._failure_reported = False
        self._max_size = max_size
        self._plain = not handshake.extensions
        # Data may still be sent (no close frame sent or received).
        self.open = True
        # May read_message() read the next frame itself? (see _sync)
        self._read_plain = self._plain

    def _sync(self) -> None:
        """Re-read what the fast paths depend on after a call into the core."""
        core = self._core
        self.open = core.state is OPEN
        self._read_plain = (
            self._plain
            and self.open
            and core.at_frame_start
            and core.current_size is None
            and not core.reader.eof
        )

    # Input -----------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[WSEvent]:
        """The events `data` completes."""
        message = self.read_message(data)
        if message is not None:
            return [Message(message)]
        return self.receive_frames(data)

    def read_message(self, data: bytes) -> str | bytes | None:
        """The message in `data` if it is exactly one whole, valid data frame, else None
        (then give `data` to receive_frames).

        The common read on an open connection with no extension: one small masked final
        text or binary frame. Reading it here skips websockets' generator-driven parser (a
        Frame object, three reads from its buffer, an Opcode enum call, the state checks),
        which cost ~30k instructions of an ~80k echo. Anything else returns None and goes
        to that parser, which also owns every error: a missing mask, RSV bits, a control
        or continuation frame, an oversize or invalid UTF-8 message, a partial or second
        frame. Only asked at a frame boundary with nothing buffered (`_read_plain`).
        """
        if not self._read_plain:
            return None
        size = len(data)
        if size < 6:
            return None
        head = data[0]
        if head not in (0x81, 0x82):  # FIN, no RSV bits, text or binary
            return None
        length = data[1] ^ 0x80  # the mask bit must be set: a client frame
        if length < 126:
            start = 6
        elif length == 126 and size >= 8:
            length = (data[2] << 8) | data[3]
            start = 8
        else:
            return None  # no mask, or a 64-bit length: the parser's case
        max_size = self._max_size
        if size != start + length or (max_size is not None and length > max_size):
            return None
        payload = apply_mask(data[start:], data[start - 4 : start])
        if head == 0x82:
            return payload
        try:
            return payload.decode()
        except UnicodeDecodeError:
            return None  # the parser closes with 1007 and says why

    def receive_frames(self, data: bytes) -> list[WSEvent]:
        """The events `data` completes, read by websockets' parser."""
        core = self._core
        if core.reader.eof:
            return []
        core.at_frame_start = False
        core.receive_data(data)
        return self._events()

    def receive_eof(self) -> list[WSEvent]:
        self._core.receive_eof()
        return self._events()

    def _events(self) -> list[WSEvent]:
        core = self._core
        self._sync()
        core.events.clear()  # websockets' own frame events; ours are in core.out
        events, core.out = core.out, []
        exc = core.parser_exc
        if exc is not None and not self._failure_reported:
            self._failure_reported = True
            code = CLOSE_INTERNAL_ERROR
            for kind, value in _FAILURE_CODES.items():
                if isinstance(exc, kind):
                    code = value
                    break
            events.append(Failed(code, _describe(exc)))
        return events

    # Output ----------------------------------------------------------------------------

    def message_frame(self, data: str | bytes) -> bytes:
        """What to write now for one outgoing message: whatever was queued, then the
        message, whole (one final frame). The connection must be open. Raises
        UnicodeEncodeError for text that UTF-8 cannot encode (lone surrogates)."""
        if isinstance(data, bytes):
            payload, head, heads = data, 0x82, _BINARY_HEADS
        else:
            payload, head, heads = data.encode(), 0x81, _TEXT_HEADS
        core = self._core
        if self._plain and not core.writes:
            length = len(payload)
            if length < 126:
                return heads[length] + payload
            return _unmasked_frame(head, payload)
        if head == 0x81:
            core.send_text(payload)
        else:
            core.send_binary(payload)
        return b"".join(core.data_to_send())

    def send_ping(self, data: bytes) -> None:
        self._core.send_ping(data)

    def send_pong(self, data: bytes) -> None:
        if self._core.state is OPEN:
            self._core.send_pong(data)

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; a no-op once it has started."""
        if self._core.state is OPEN:
            self._core.send_close(code, reason)
            self._sync()

    def fail(self, code: int, reason: str = "") -> None:
        """Fail the connection: a close frame if none was sent yet, then end of stream."""
        core = self._core
        if core.state is State.CLOSED or core.eof_sent:
            return
        core.fail(code, reason)
        self._sync()

    def data_to_send(self) -> tuple[bytes, bool]:
        """(bytes to write, whether to end the stream after them)."""
        writes = self._core.data_to_send()
        if not writes:
            return b"", False
        eof = writes[-1] == b""
        return b"".join(writes), eof

    # State -----------------------------------------------------------------------------

    @property
    def close_sent(self) -> tuple[int, str] | None:
        close = self._core.close_sent
        return None if close is None else (int(close.code), close.reason)


def _unmasked_frame(head: int, data: bytes) -> bytes:
    """A final server frame with no extension in play (RFC 6455 section 5.2).

    websockets' Frame.serialize() builds the same bytes through a Frame object, a check
    pass and a BytesIO; for the common message (no compression, connection open) this
    is a fifth of the cost. Messages are always sent whole (one final frame), so no
    continuation state is involved. With an extension or in any other state, the
    library's own path runs (it compresses, or raises).
    """
    length = len(data)
    if length < 126:
        return bytes((head, length)) + data
    if length < 65536:
        return _HEAD_16.pack(head, 126, length) + data
    return _HEAD_64.pack(head, 127, length) + data


_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")
# The two header bytes of every short final frame, by payload length: an index
# instead of building them (~1,200 instructions a message).
_TEXT_HEADS = [bytes((0x81, length)) for length in range(126)]
_BINARY_HEADS = [bytes((0x82, length)) for length in range(126)]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, PayloadTooBig):
        return f"message too big: {exc}; raise --ws-max-size to allow larger messages"
    if isinstance(exc, UnicodeDecodeError):
        return f"invalid UTF-8 in a text message or close reason ({exc.reason} at byte {exc.start})"
    if isinstance(exc, EOFError):
        return "the peer closed the TCP connection without a closing handshake"
    return str(exc) or type(exc).__name__
