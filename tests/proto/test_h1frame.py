"""The C response framer (`pier.proto._h1head.frame_response`) against the Python one.

ResponseFramer.head() followed by .body() is the reference. frame_response may decline
(None, the framer untouched: the connection then calls the Python framer, which raises
what it raises); whenever it answers, the bytes must be exactly head() + body()'s and
the framer's state exactly what those two calls leave, so the response's later body
pieces and its keep-alive decision cannot tell which path framed the head. Pinned on
generated responses (hypothesis, over a corpus of good, odd and broken header pairs,
statuses, bodies and framings) and on the responses the bench apps and common
frameworks send, which must take the C path or its gain is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pier.proto import native
from pier.proto.h1 import FrameResponse, ResponseFramer
from pier.proto.headers import AppResponseError
from tests.helpers import NOT_BUILT

_module = native.load(honour_switch=False)
FRAME: FrameResponse | None = None if _module is None else _module.frame_response
pytestmark = pytest.mark.skipif(FRAME is None, reason=NOT_BUILT)

DEFAULTS = b"date: Sun, 29 Nov 2026 00:00:00 GMT\r\nserver: pier\r\n"
STATE = ResponseFramer.__slots__


def state(framer: ResponseFramer) -> tuple[object, ...]:
    return tuple(getattr(framer, name) for name in STATE)


def reference(
    status: Any, headers: Any, *, method: str, version: str, keep_alive: bool,
    body_length: int | None, body: Any, more: bool,
) -> tuple[bytes | None, tuple[object, ...]]:
    """What the connection's Python path writes (None: it raised) and the framer after."""
    framer = ResponseFramer()
    try:
        head = framer.head(status, headers, method=method, http_version=version,
                           keep_alive=keep_alive, default_headers=DEFAULTS,
                           body_length=body_length)
        data = framer.body(body, more)
    except AppResponseError:
        return None, state(framer)
    return (head + data if data else head), state(framer)


def check(
    status: Any, make_headers: Callable[[], Any], *, method: str, version: str,
    keep_alive: bool, body_length: int | None, body: Any, more: bool,
) -> bool:
    """Assert the contract on one response; True when the C framer took it."""
    assert FRAME is not None
    # The Python framer first: it validates the app's pairs and remembers them (PAIRS),
    # as it does for the first response of a kind in a real server.
    expected, expected_state = reference(
        status, make_headers(), method=method, version=version, keep_alive=keep_alive,
        body_length=body_length, body=body, more=more,
    )
    framer = ResponseFramer()
    untouched = state(framer)
    out = FRAME(framer, status, make_headers(), DEFAULTS, method, version, keep_alive,
                body_length, body, more)
    if out is None:
        assert state(framer) == untouched
        return False
    assert expected is not None, "the C framer framed what the Python framer refuses"
    assert out == expected
    assert state(framer) == expected_state
    return True


# --- what the apps people run send takes the C path ---------------------------------------

COMMON: dict[str, tuple[Any, ...]] = {
    # name: status, headers, body, more_body
    "bench hello": (200, [(b"content-type", b"text/plain; charset=utf-8"),
                          (b"content-length", b"13")], b"Hello, world!", False),
    "no headers": (200, [], b"ok", False),
    "starlette json": (200, [(b"content-length", b"27"),
                             (b"content-type", b"application/json")],
                       b'{"message":"Hello, world!"}', False),
    "streamed first piece": (200, [(b"content-type", b"application/octet-stream")],
                             b"x" * 100, True),
    "streamed, empty first piece": (200, [(b"content-type", b"text/event-stream")], b"", True),
    "not found": (404, [(b"content-type", b"text/plain")], b"Not Found", False),
    "redirect": (307, [(b"location", b"/elsewhere"), (b"content-length", b"0")], b"", False),
    "a tuple of headers": (201, ((b"x-id", b"7"),), b"", False),
}


@pytest.mark.parametrize("name", COMMON)
@pytest.mark.parametrize("version", ["1.1", "1.0"])
@pytest.mark.parametrize("keep_alive", [True, False])
def test_common_responses_take_the_c_path(name: str, version: str, keep_alive: bool) -> None:
    status, headers, body, more = COMMON[name]
    length = None if more else len(body)
    assert check(status, lambda: list(headers) if isinstance(headers, list) else headers,
                 method="GET", version=version, keep_alive=keep_alive, body_length=length,
                 body=body, more=more)


def test_later_pieces_of_a_stream_frame_alike() -> None:
    # The state the C call leaves drives body() for the rest of the response.
    assert FRAME is not None
    headers = [(b"content-type", b"text/plain")]
    python, c = ResponseFramer(), ResponseFramer()
    first = python.head(200, headers, method="GET", http_version="1.1", keep_alive=True,
                        default_headers=DEFAULTS, body_length=None) + python.body(b"a", True)
    assert FRAME(c, 200, headers, DEFAULTS, "GET", "1.1", True, None, b"a", True) == first
    for piece, more in ((b"bb", True), (b"", True), (b"ccc", False)):
        assert c.body(piece, more) == python.body(piece, more)
    assert state(c) == state(python)


def test_a_pair_not_yet_validated_is_left_to_the_python_framer() -> None:
    assert FRAME is not None
    fresh = (b"x-never-seen-before-" + str(id(object())).encode(), b"1")
    framer = ResponseFramer()
    assert FRAME(framer, 200, [fresh], DEFAULTS, "GET", "1.1", True, 0, b"", False) is None
    assert check(200, lambda: [fresh], method="GET", version="1.1", keep_alive=True,
                 body_length=0, body=b"", more=False)


@pytest.mark.parametrize("size", [9, 10, 15, 16, 255, 256, 4095, 10000, 16383])
@pytest.mark.parametrize("more", [True, False])
def test_lengths_and_chunk_sizes_are_written_in_full(size: int, more: bool) -> None:
    # The C framer writes the Content-Length line and a chunk's size line by hand:
    # every digit (decimal, and lower-case hex for chunks) as the Python framer does.
    headers = [(b"content-type", b"application/octet-stream")]
    assert check(200, lambda: list(headers), method="GET", version="1.1", keep_alive=True,
                 body_length=None if more else size, body=b"x" * size, more=more)


class WatchedFramer(ResponseFramer):
    """A framer whose attribute stores are seen: the C framer must not bypass them."""

    __slots__ = ("stores",)

    def __setattr__(self, name: str, value: object) -> None:
        if name != "stores":
            self.stores = getattr(self, "stores", 0) + 1
        super().__setattr__(name, value)


def test_a_framer_class_with_its_own_setattr_is_set_through_it() -> None:
    # The C framer stores the framer's fields at their slots only for a class without
    # a __setattr__ of its own; any other goes through setattr, as Python would.
    assert FRAME is not None
    framer = WatchedFramer()
    framer.stores = 0
    headers = [(b"content-type", b"text/plain")]
    ResponseFramer().head(200, headers, method="GET", http_version="1.1", keep_alive=True,
                          default_headers=DEFAULTS, body_length=2)  # validates the pair
    out = FRAME(framer, 200, headers, DEFAULTS, "GET", "1.1", True, 2, b"ok", False)
    assert out is not None and out.endswith(b"content-length: 2\r\n\r\nok")
    assert framer.stores == len(STATE)
    assert (framer.remaining, framer.sent, framer.keep_alive) == (0, 2, True)


# --- the differential property ------------------------------------------------------------

GOOD_PAIRS: list[Any] = [
    (b"content-type", b"text/plain"),
    (b"Content-Type", b"application/json"),
    (b"x-request-id", b"abc-123"),
    (b"set-cookie", b"a=1; Path=/"),
    (b"vary", b""),
    (b"content-length", b"0"),
    (b"content-length", b"5"),
    (b"Content-Length", b"0005"),
    (b"content-length", b"13"),
]
ODD_PAIRS: list[Any] = [
    (b"content-length", b"99999999999999999999999"),
    (b"content-length", b"-1"),
    (b"content-length", b"five"),
    (b"transfer-encoding", b"chunked"),
    (b"connection", b"close"),
    (b"connection", b"keep-alive"),
    (b"server", b"mine"),
    (b"Date", b"yesterday"),
    (b"bad name", b"x"),
    (b"x-split", b"a\r\nb"),
    (b"x-nul", b"a\x00b"),
    ("x-str", b"text name"),
    (b"x-str-value", "text value"),
    [b"x-list", b"a list pair"],
    (bytearray(b"x-bytearray"), b"1"),
    (b"x-three", b"a", b"b"),
    (b"x-one",),
    None,
    b"x-not-a-pair",
]
GOOD_STATUSES: list[Any] = [200, 201, 206, 301, 404, 418, 500, 599]
ODD_STATUSES: list[Any] = [204, 304, 100, 101, 199, 600, 999, 1000, -1, 2**70, True, 200.0, "200",
                           HTTPStatus.OK]
# What HTTPCycle.send() lets through to the framer: bytes-like only.
GOOD_BODIES: list[Any] = [b"", b"hello", b"x" * 300]
ODD_BODIES: list[Any] = [bytearray(b"hello"), memoryview(b"hello")]


def mostly(good: list[Any], odd: list[Any]) -> st.SearchStrategy[Any]:
    """Draws from `odd` about one time in eight, so most responses are ones the C path
    takes and the property compares real output, not two refusals. (Mid-range: hypothesis
    draws an integer range's ends more often than its middle.)"""
    return st.integers(min_value=0, max_value=7).flatmap(
        lambda pick: st.sampled_from(odd if pick == 4 else good)
    )


@st.composite
def responses(draw: st.DrawFn) -> tuple[Any, ...]:
    status = draw(mostly(GOOD_STATUSES, ODD_STATUSES))
    pairs = draw(st.lists(mostly(GOOD_PAIRS, ODD_PAIRS), max_size=5))
    container = draw(mostly(["list"], ["tuple", "generator", "dict-items"]))
    body = draw(mostly(GOOD_BODIES, ODD_BODIES))
    more = draw(st.booleans())
    length_kind = draw(mostly(["as-sent"], ["none", "other"]))
    if length_kind == "as-sent":
        body_length = None if more else len(body)
    elif length_kind == "none":
        body_length = None
    else:
        body_length = draw(st.integers(min_value=0, max_value=400))
    return (status, pairs, container, draw(mostly(["GET", "POST"], ["HEAD"])),
            draw(st.sampled_from(["1.1", "1.0"])), draw(st.booleans()), body_length, body,
            more)


def container_of(pairs: list[Any], kind: str) -> Callable[[], Any]:
    if kind == "tuple":
        return lambda: tuple(pairs)
    if kind == "generator":
        return lambda: (pair for pair in pairs)
    if kind == "dict-items":
        return lambda: {id(pair): pair for pair in pairs}.values()
    return lambda: list(pairs)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(responses())
@example((200, [(b"content-type", b"text/plain"), (b"content-length", b"5")], "list", "GET",
          "1.1", True, 5, b"hello", False))
@example((200, [(b"content-length", b"5")], "list", "GET", "1.1", True, 3, b"abc", False))
@example((200, [(b"content-length", b"0005"), (b"content-length", b"5")], "list", "GET",
          "1.0", False, None, b"hel", True))
@example((200, [], "list", "GET", "1.0", True, None, b"hello", True))
@example((200, [], "list", "GET", "1.1", True, None, b"", False))
def test_the_c_framer_frames_exactly_as_the_python_framer(response: tuple[Any, ...]) -> None:
    status, pairs, container, method, version, keep_alive, body_length, body, more = response
    check(status, container_of(pairs, container), method=method, version=version,
          keep_alive=keep_alive, body_length=body_length, body=body, more=more)
