"""The HTTP/1.1 parser's invariants under any input, checked the same way by the
hypothesis properties (tests/proto/test_h1_properties.py) and the atheris target
(fuzz/h1.py). Each broken invariant is an AssertionError.

1. Nothing escapes `receive_data`: every problem becomes a `BadRequest`.
2. The events are the same whole, byte by byte, and cut at the given points (bodies
   joined; a refusal compared by its status, since which of two faults llhttp meets
   first may depend on where a read ends).
3. A refusal is final: the parser is dead after it and says nothing more.
4. No request is read after one that closes the connection.

And `check_native_agrees`, for the native head fast path (proto/h1.py rule 6): a head
`parse_head` accepts is the request llhttp alone reads from it, and an H1Parser that
uses the fast path tells its handler exactly what one without it tells, whole and cut.
"""

from __future__ import annotations

from itertools import pairwise

from pier.proto import h1
from pier.proto.events import BadRequest, Body, EventRecorder, Request, Upgrade
from pier.proto.h1 import H1Parser, ParseHead
from pier.proto.limits import Limits

LIMITS = Limits(head_size=4096, fields=20, field_size=1024, request_line=1024, body=65536)
UPGRADES = frozenset({b"websocket"})


def parse(pieces: list[bytes]) -> tuple[list[object], H1Parser]:
    """The events of an H1Parser fed `pieces` (native fast path as h1.parse_head says)."""
    return recorded(pieces, h1.parse_head)


def recorded(pieces: list[bytes], native: ParseHead | None, limits: Limits = LIMITS
             ) -> tuple[list[object], H1Parser]:
    """parse(), with the native fast path `native` (None: llhttp alone)."""
    recorder = EventRecorder(UPGRADES)
    saved = h1.parse_head
    h1.parse_head = native
    try:
        parser = H1Parser(limits, recorder)
    finally:
        h1.parse_head = saved
    for index, piece in enumerate(pieces):
        parser.receive_data(piece)  # invariant 1: nothing may escape
        events = recorder.events
        if events and isinstance(events[-1], Upgrade):
            # A connection hands the rest over with the upgrade: so does this one.
            events[-1] = Upgrade(events[-1].data + b"".join(pieces[index + 1 :]))
            break
    return recorder.events, parser


def merged(events: list[object]) -> list[object]:
    out: list[object] = []
    for event in events:
        if isinstance(event, Body) and out and isinstance(out[-1], Body):
            out[-1] = Body(out[-1].data + event.data)
        elif isinstance(event, BadRequest):
            out.append(("refused", event.status))
        else:
            out.append(event)
    return out


def cut(data: bytes, points: list[int]) -> list[bytes]:
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in pairwise(marks) if b > a]


def check_invariants(data: bytes, points: list[int]) -> list[object]:
    """Check every invariant on `data`; return its events as `merged` gives them."""
    whole, parser = parse([data])
    expected = merged(whole)
    assert merged(parse(cut(data, points))[0]) == expected, (data, points)  # 2
    assert merged(parse([data[i : i + 1] for i in range(len(data))])[0]) == expected, data
    for index, event in enumerate(whole):
        if isinstance(event, BadRequest):  # 3
            assert index == len(whole) - 1 and parser.dead, whole
            parser.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert len(whole) == index + 1, whole
        if isinstance(event, Request) and not event.keep_alive:  # 4
            assert not any(isinstance(e, Request) for e in whole[index + 1 :]), whole
    return expected


def native_limits(limits: Limits) -> tuple[int, int, int, int, int]:
    """parse_head's limit arguments, as H1Parser passes them."""
    body = -1 if limits.body is None else limits.body
    return limits.request_line, limits.fields, limits.field_size, limits.head_size, body


def check_native_agrees(native: ParseHead, data: bytes, points: list[int]) -> None:
    head = native(data, 0, *native_limits(LIMITS))
    llhttp = recorded([data], None)[0]
    if head is not None:
        end, *values = head
        length = values[7]
        alone = recorded([data[:end]], None)[0]
        assert not any(isinstance(e, BadRequest) for e in alone), (data, alone)
        assert alone[0] == Request(*values[:7], None, length, bool(length), values[8]), data
        assert llhttp[0] == alone[0], data
    assert recorded([data], native)[0] == llhttp, data
    assert merged(recorded(cut(data, points), native)[0]) == merged(llhttp), (data, points)
