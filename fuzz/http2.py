"""atheris target: pier's sans-I/O HTTP/2 core (proto/h2.py) on arbitrary bytes.

Run through scripts/fuzz. After the client preface, the fuzzer's bytes are fed whole
and cut where the fuzzer says. Invariants, each an AssertionError when broken:
1. Nothing escapes `receive_data`: a protocol error is a `ConnectionEnded` event (its
   GOAWAY queued), never an exception.
2. After `ConnectionEnded` the protocol says nothing more.
3. The events are the same however the bytes arrive (a connection's end compared without
   its code and reason: h2 reports a client's GOAWAY followed by more frames in the same
   read as a protocol error, and the same GOAWAY read alone as the client's GOAWAY).
"""

from __future__ import annotations

import sys
from itertools import pairwise

import atheris

with atheris.instrument_imports():
    from pier.proto.h2 import PREFACE, ConnectionEnded, H2Protocol
    from pier.proto.limits import H2Limits

LIMITS = H2Limits()


def events(pieces: list[bytes]) -> list[str]:
    protocol = H2Protocol(LIMITS, body_limit=65536)
    protocol.initiate()
    out: list[str] = []
    ended = False
    for piece in pieces:
        got = protocol.receive_data(piece)  # invariant 1: nothing may escape
        protocol.data_to_send()
        if ended:
            assert not got, got  # invariant 2
        ended = ended or any(isinstance(e, ConnectionEnded) for e in got)
        out += ["ConnectionEnded" if isinstance(e, ConnectionEnded) else repr(e) for e in got]
    return out


def test_one_input(raw: bytes) -> None:
    provider = atheris.FuzzedDataProvider(raw)
    points = provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 6), 0, 4096)
    data = PREFACE + provider.ConsumeBytes(provider.remaining_bytes())
    marks = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    whole = events([data])
    assert events([data[a:b] for a, b in pairwise(marks) if b > a]) == whole, data  # 3


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
