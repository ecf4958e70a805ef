"""Prior knowledge on cleartext (RFC 9113 section 3.3): the HTTP/1.1 connection tells the
HTTP/2 preface from an HTTP/1.1 request by its first bytes, however the reads split them."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pier.io.connection import H1Connection
from pier.io.context import ServerContext
from pier.io.h2 import H2Connection
from pier.proto.h2 import PREFACE
from pier.proto.limits import H2Limits, Limits
from tests.asgi.test_lifecycle_contract import MemoryTransport, finish

SETTINGS = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # an empty SETTINGS frame


class SwitchableTransport(MemoryTransport):
    def __init__(self) -> None:
        super().__init__()
        self.protocol: Any = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol


async def app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"h1"})


def feed(pieces: list[bytes]) -> tuple[H1Connection, SwitchableTransport]:
    async def run() -> tuple[H1Connection, SwitchableTransport]:
        ctx = ServerContext(app=app, loop=asyncio.get_running_loop(), limits=Limits(),
                            h2_limits=H2Limits())
        connection = H1Connection(ctx)
        transport = SwitchableTransport()
        transport.protocol = connection
        connection.connection_made(transport)
        for piece in pieces:
            transport.protocol.data_received(piece)
        await finish(ctx)  # an HTTP/1.1 request's app runs to its end
        return connection, transport

    return asyncio.run(run())


@pytest.mark.parametrize("split", ["whole", "byte by byte", "first byte alone"])
def test_the_preface_is_http2_however_it_is_split(split: str) -> None:
    data = PREFACE + SETTINGS
    pieces = {
        "whole": [data],
        "byte by byte": [bytes([b]) for b in data],
        "first byte alone": [data[:1], data[1:]],
    }[split]
    _, transport = feed(pieces)
    assert isinstance(transport.protocol, H2Connection)
    assert transport.data[3] == 0x4, "the server's first frame is its SETTINGS"


@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1", b"POST / HTTP/1.1",
                                          b"PUT / HTTP/1.1"])
def test_an_http1_request_is_served_as_http1(request_line: bytes) -> None:
    """Including methods that start with the preface's first byte, "P"."""
    body = b"" if request_line.startswith(b"GET") else b"Content-Length: 0\r\n"
    _, transport = feed([request_line + b"\r\nHost: x\r\n" + body + b"\r\n"])
    assert isinstance(transport.protocol, H1Connection)
    assert transport.data.startswith(b"HTTP/1.1 200 OK\r\n")
