"""Properties of the sans-I/O HTTP/1.1 parser under random and mutated input (hypothesis).

Random bytes and mutated requests keep every invariant of tests/proto/h1_invariants.py
(nothing escapes, the same events however the bytes arrive, a refusal is final, nothing
read after a request that closes the connection). And no request comes from bytes that
were a body: a pipeline of valid requests whose bodies look like requests (any framing,
upgrades pier does not perform included) yields exactly those requests, each with
exactly its body.

Pins RFC 9112 sections 6 and 7 (message framing) and RFC 9110 section 7.8 (Upgrade).
`scripts/fuzz` runs the same invariants coverage-guided (atheris) for longer. Every
property holds with the native request-head fast path (proto/h1.py rule 6) and without.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pier.proto.events import BadRequest, Body, EndOfMessage, Request
from tests.proto.h1_invariants import check_invariants

pytestmark = pytest.mark.usefixtures("h1_path")
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --- structured requests ---------------------------------------------------------------

LOOKS_LIKE_A_REQUEST = st.sampled_from([
    b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n",
    b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n\r\n",
])
BODIES = st.one_of(st.binary(max_size=64), LOOKS_LIKE_A_REQUEST,
                   st.lists(LOOKS_LIKE_A_REQUEST, max_size=3).map(b"".join))


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """(wire bytes, path, body) of one valid HTTP/1.1 request that keeps the connection."""
    path = b"/r%d" % draw(st.integers(0, 999))
    body = draw(BODIES)
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    if not body:
        framing = draw(st.sampled_from(["none", "length"]))
    fields = [b"Host: h"]
    if draw(st.booleans()):  # an upgrade pier does not perform: an ordinary request
        token = draw(st.sampled_from([b"h2c", b"foo/1", b"TLS/1.2"]))
        fields += [b"Connection: Upgrade", b"Upgrade: " + token]
    if framing == "length":
        fields.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 16), max_size=6))
        chunks, rest = [], body
        for size in sizes:
            if rest:
                chunks.append(rest[:size])
                rest = rest[size:]
        if rest:
            chunks.append(rest)
        trailer = draw(st.sampled_from([b"", b"X-Sum: 1\r\n"]))
        payload = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in chunks) + b"0\r\n" + trailer
        payload += b"\r\n"
    else:
        body = b""
        payload = b""
    method = b"POST" if framing != "none" else draw(st.sampled_from([b"GET", b"POST"]))
    fields = [fields[0], *draw(st.permutations(fields[1:]))]  # any order
    wire = b"%b %b HTTP/1.1\r\n%b\r\n\r\n%b" % (method, path, b"\r\n".join(fields), payload)
    return wire, path, body


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=4), st.lists(st.integers(0, 10_000)))
def test_a_pipeline_yields_exactly_its_requests_and_bodies(
    pipeline: list[tuple[bytes, bytes, bytes]], points: list[int]
) -> None:
    data = b"".join(wire for wire, _, _ in pipeline)
    events = check_invariants(data, points)
    got: list[tuple[bytes, bytes]] = []
    for event in events:
        assert not isinstance(event, BadRequest), event
        if isinstance(event, Request):
            got.append((event.raw_path, b""))
        elif isinstance(event, Body):
            got[-1] = (got[-1][0], got[-1][1] + event.data)
        else:
            assert isinstance(event, EndOfMessage)
    assert got == [(path, body) for _, path, body in pipeline]


# --- mutated requests ------------------------------------------------------------------

INTERESTING = st.sampled_from(list(b"\r\n\x00 \t:;,0123456789abcdefxX-+\"\x0b\x7f\xffG"))
MUTATION = st.tuples(st.sampled_from(["insert", "delete", "replace"]), st.integers(0, 10_000),
                     INTERESTING)


def mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    buffer = bytearray(data)
    for kind, where, byte in mutations:
        index = where % (len(buffer) + 1)
        if kind == "insert":
            buffer.insert(index, byte)
        elif buffer and index < len(buffer):
            if kind == "delete":
                del buffer[index]
            else:
                buffer[index] = byte
    return bytes(buffer)


@SETTINGS
@given(st.lists(requests(), min_size=1, max_size=3), st.lists(MUTATION, min_size=1,
       max_size=6), st.lists(st.integers(0, 10_000), max_size=8))
def test_mutated_requests_keep_every_invariant(
    pipeline: list[tuple[bytes, bytes, bytes]], mutations: list[tuple[str, int, int]],
    points: list[int],
) -> None:
    data = mutate(b"".join(wire for wire, _, _ in pipeline), mutations)
    check_invariants(data, points)


@SETTINGS
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=8))
def test_random_bytes_keep_every_invariant(data: bytes, points: list[int]) -> None:
    check_invariants(data, points)
