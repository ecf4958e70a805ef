"""Response header validation shared by every HTTP version, sans I/O.

Rules:
1. What an ASGI app may put in a response head is the same whatever protocol carries
   it: an int status of three digits (not 1xx: interim answers have their own
   message), header names that are bytes HTTP tokens (RFC 9110 section 5.1), values
   that are bytes without CR, LF or NUL (RFC 9110 section 5.5: they would split the
   response on HTTP/1.1 and are malformed on HTTP/2), and a Content-Length of digits.
   Every framer (proto/h1.py, an HTTP/2 one) checks the app's head here and nowhere
   else, so the rules and their error messages cannot drift apart.
2. A violation raises `AppResponseError` whose message says what is wrong and what ASGI
   requires; the ASGI adapter turns it into an `ASGIProtocolError` for the app.
3. Validating is cached: apps send the same names and pairs response after response,
   and a dict hit is far cheaper than a regex per header (see docs/performance.md).
   The caches are bounded so that an app echoing client input cannot grow them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "CONNECTION",
    "CONTENT_LENGTH",
    "DEFAULT_OVERRIDE",
    "PAIRS",
    "PLAIN",
    "PLAIN_TEXT_TYPE",
    "TRANSFER_ENCODING",
    "AppResponseError",
    "body_length_error",
    "check_status",
    "check_value",
    "classify",
    "lower_name",
    "parse_length",
    "plain_body",
    "two_lengths_error",
    "validate_headers",
]


class AppResponseError(Exception):
    """The app's response cannot be sent as it is; the message says why and how to fix."""


# The server's own short answers (400, 500, 503...): one body and type for every protocol,
# so the access log's size is the same whichever version carried it.
PLAIN_TEXT_TYPE = (b"content-type", b"text/plain; charset=utf-8")


def plain_body(text: str) -> bytes:
    """The body of a server-made text/plain answer: `text` and a newline, UTF-8."""
    return (text + "\n").encode("utf-8", "replace")


def body_length_error(sent: int, declared: int, *, ended: bool) -> AppResponseError:
    """The app's body contradicts its Content-Length (`sent` bytes so far, this piece
    included): one message for every HTTP version. Raised before the piece is written."""
    if ended:
        return AppResponseError(
            f"the response ended after {sent} body bytes but declared Content-Length:"
            f" {declared}"
        )
    return AppResponseError(
        f"the app sent {sent} body bytes but declared Content-Length: {declared}"
    )


def check_status(status: Any) -> None:
    """Refuse what http.response.start may not carry as 'status'."""
    if not isinstance(status, int) or isinstance(status, bool):
        raise AppResponseError(f"http.response.start 'status' must be an int, got {status!r}")
    if not 100 <= status <= 999:
        raise AppResponseError(f"status {status!r} is not a 3-digit HTTP status code")
    if status < 200:
        raise AppResponseError(
            f"status {status} is an interim response; ASGI apps cannot send 1xx"
            " with http.response.start"
        )


_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# Header names an app sent before, mapped to their lower-cased form.
_NAMES: dict[bytes, bytes] = {}
_NAME_CACHE_SIZE = 4096
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")


def lower_name(name: Any) -> bytes:
    """The lower-cased form of a valid header name; AppResponseError for any other."""
    lowered = _NAMES.get(name)
    if lowered is not None:
        return lowered
    if not isinstance(name, bytes):
        raise AppResponseError(
            f"response header name {name!r} is {type(name).__name__}; ASGI requires bytes"
        )
    if not _TOKEN.match(name):
        raise AppResponseError(f"response header name {name!r} is not a valid HTTP token")
    lowered = name.lower()
    if len(_NAMES) < _NAME_CACHE_SIZE:
        _NAMES[name] = lowered
    return lowered


def check_value(name: bytes, value: Any) -> None:
    if not isinstance(value, bytes):
        raise AppResponseError(
            f"response header {name!r} has a {type(value).__name__} value {value!r};"
            " ASGI requires bytes"
        )
    if _FORBIDDEN_IN_VALUE.search(value):
        raise AppResponseError(
            f"response header {name!r} value {value!r} contains CR, LF or NUL,"
            " which would split the response"
        )


def two_lengths_error(first: int, second: int) -> AppResponseError:
    # Two lengths would frame the response two ways for whoever reads it next (a proxy,
    # a cache): RFC 9110 section 8.6. The same value twice is sent once.
    return AppResponseError(
        "http.response.start 'headers' has two different Content-Length values"
        f" ({first} and {second})"
    )


def parse_length(value: bytes) -> int:
    if not value.isdigit():
        raise AppResponseError(f"response Content-Length {value!r} is not a non-negative integer")
    return int(value)


# What a response header pair means to a framer. A pair is validated once (`classify`)
# and remembered in PAIRS, which framers read directly on their hot path.
PLAIN = "plain"
CONTENT_LENGTH = "content-length"
TRANSFER_ENCODING = "transfer-encoding"
CONNECTION = "connection"
DEFAULT_OVERRIDE = "default-override"  # Server or Date: replaces the server's own
_KINDS = {
    b"content-length": CONTENT_LENGTH,
    b"transfer-encoding": TRANSFER_ENCODING,
    b"connection": CONNECTION,
    b"server": DEFAULT_OVERRIDE,
    b"date": DEFAULT_OVERRIDE,
}
PAIRS: dict[tuple[bytes, bytes], str] = {}
_PAIR_CACHE_SIZE = 4096


def classify(pair: Any) -> str:
    """Validate one (name, value) header pair from the app; say what it means."""
    try:
        name, value = pair
    except (TypeError, ValueError):
        raise AppResponseError(
            f"response header {pair!r} is not a [name, value] pair of bytes"
        ) from None
    lowered = lower_name(name)
    check_value(name, value)
    kind = _KINDS.get(lowered, PLAIN)
    if kind is CONTENT_LENGTH:
        parse_length(value)
    if type(pair) is tuple and len(PAIRS) < _PAIR_CACHE_SIZE:
        PAIRS[pair] = kind
    return kind


def validate_headers(headers: Iterable[Any], what: str = "http.response.start") -> list[
    tuple[bytes, bytes]
]:
    """Every pair checked, names lower-cased (what a framer that is not fused needs)."""
    result: list[tuple[bytes, bytes]] = []
    try:
        for pair in headers:
            if type(pair) is not tuple or pair not in PAIRS:
                classify(pair)
            name, value = pair
            result.append((lower_name(name), value))
    except (TypeError, ValueError) as exc:
        raise AppResponseError(
            f"{what} 'headers' must be an iterable of [name, value] byte pairs ({exc})"
        ) from None
    return result
