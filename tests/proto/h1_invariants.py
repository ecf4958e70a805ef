"""The HTTP/1.1 parser's invariants under any input, checked the same way by the
hypothesis properties (tests/proto/test_h1_properties.py) and the atheris target
(fuzz/h1.py). Each broken invariant is an AssertionError.

1. Nothing escapes `receive_data`: every problem becomes a `BadRequest`.
2. The events are the same whole, byte by byte, and cut at the given points (bodies
   joined; a refusal compared by its status, since which of two faults llhttp meets
   first may depend on where a read ends).
3. A refusal is final: the parser is dead after it and says nothing more.
4. No request is read after one that closes the connection.
"""

from __future__ import annotations

from itertools import pairwise

from pier.proto.events import BadRequest, Body, EventRecorder, Request, Upgrade
from pier.proto.h1 import H1Parser
from pier.proto.limits import Limits

LIMITS = Limits(head_size=4096, fields=20, field_size=1024, request_line=1024, body=65536)
UPGRADES = frozenset({b"websocket"})


def parse(pieces: list[bytes]) -> tuple[list[object], H1Parser]:
    recorder = EventRecorder(UPGRADES)
    parser = H1Parser(LIMITS, recorder)
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
