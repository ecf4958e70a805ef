"""atheris target: pier's WebSocket frame layer (proto/ws.py), fast path against parser.

Run through scripts/fuzz. A connection after a valid handshake (no extension, so the
fast path of `WSConnection.receive_data` is in play) is fed arbitrary bytes whole, which
takes the fast path when they are exactly one small data frame, and cut after the
first byte, which sends everything through websockets' own parser. Invariants:
1. Nothing escapes `receive_data`; a broken frame is a `Failed` event with a close code.
2. The fast path and the parser agree: the same messages, the same failure code.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from pier.proto import ws
    from pier.proto.events import Request

REQUEST = Request(
    "GET", b"/", b"",
    [(b"host", b"h"), (b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
     (b"sec-websocket-version", b"13"), (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")],
    "1.1", True, False, b"websocket", None, False, False,
)


def events(pieces: list[bytes], max_size: int) -> list[object]:
    connection = ws.WSConnection(ws.negotiate(REQUEST), max_size=max_size)
    out: list[object] = []
    for piece in pieces:
        out += connection.receive_data(piece)
    return [
        (type(e).__name__, getattr(e, "data", None), getattr(e, "code", None)) for e in out
    ]


def test_one_input(raw: bytes) -> None:
    provider = atheris.FuzzedDataProvider(raw)
    max_size = provider.ConsumeIntInRange(1, 1 << 20)
    data = provider.ConsumeBytes(provider.remaining_bytes())
    fast = events([data], max_size)
    slow = events([data[:1], data[1:]], max_size) if data else []
    assert fast == slow, (data, fast, slow)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
