"""The request lifecycle's contract (io/lifecycle.py, asgi/stream.py), for every glue.

One table of apps, each with the outcome a client must see (ASGI HTTP spec 2.4; the
failure policy of issue 15: 500 if nothing was sent, else the stream is aborted), run
through each glue: `fake`, an in-memory `ResponseStream` that does exactly what the
interface's docstring says and nothing more, `h1`, the real H1Connection over an
in-memory transport, and `h2`, the real HTTP/2 connection (io/h2.py) read by an h2
client. A new glue adds a runner to GLUES and must pass the same table. Below the
table, interface-level checks on the fake pin the rules a glue relies on: the phase
advances only after the stream accepted the head, flow control, 100
Continue, one failure answer per response.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pier.asgi.http import WHOLE_CHUNK, ASGIProtocolError, HTTPCycle
from pier.asgi.scope import ConnectionInfo, http_scope
from pier.io.connection import H1Connection
from pier.io.context import ServerContext
from pier.io.lifecycle import start_request
from pier.proto.headers import AppResponseError, check_status, validate_headers
from pier.proto.limits import Limits
from pier.types import Message, Receive, Scope, Send

App = Callable[[Scope, Receive, Send], Awaitable[None]]
INFO = ConnectionInfo(
    client=("127.0.0.1", 40000),
    server=("127.0.0.1", 8000),
    scheme="http",
    root_path="",
    raw_root_path=b"",
)


@dataclass
class Outcome:
    """What the client saw of one response."""

    status: int | None = None  # None: no head reached the client
    body: bytes = b""
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    # "done": the response ended normally; "error": the server answered it itself
    # (500, 503); "aborted": it was cut off (connection closed / stream reset).
    ended: str = ""


# --- the fake glue --------------------------------------------------------------------


class FakeStream:
    """An in-memory ResponseStream: validates before it "writes", records what it sent."""

    def __init__(self) -> None:
        self.outcome = Outcome()
        self.calls: list[str] = []
        self.interim: list[int] = []
        self.write_paused = False
        self.drains = 0
        self.wanted = 0
        self._remaining: int | None = None

    def send_head(  # noqa: PLR0917 - positional, as the interface says
        self, cycle: HTTPCycle, status: int, headers: Any, body: bytes, more_body: bool,
        length: int | None, /,
    ) -> bool:
        check_status(status)
        fields = validate_headers(headers)
        declared = [int(value) for name, value in fields if name == b"content-length"]
        remaining = declared[0] if declared else length
        self._remaining = remaining
        self._take(body, more_body)
        self.calls.append("send_head")
        self.outcome.status = status
        return True

    def send_data(self, cycle: HTTPCycle, body: bytes, more_body: bool, /) -> None:
        self._take(body, more_body)
        self.calls.append("send_data")

    def _take(self, body: bytes, more_body: bool) -> None:
        """Accept a body piece, or refuse it (before "writing") if it breaks the length."""
        remaining = self._remaining
        if remaining is not None:
            if len(body) > remaining or (not more_body and len(body) != remaining):
                raise AppResponseError("the body does not match its Content-Length")
            self._remaining = remaining - len(body)
        self.outcome.body += bytes(body)

    def send_trailers(self, cycle: HTTPCycle, headers: list[Any], /) -> None:
        fields = validate_headers(headers, "http.response.trailers")
        self.calls.append("send_trailers")
        self.outcome.trailers = fields

    def send_interim(self, cycle: HTTPCycle, status: int, headers: Any, /) -> None:
        self.calls.append("send_interim")
        self.interim.append(status)

    def send_error(self, cycle: HTTPCycle, status: int, text: str, /) -> None:
        assert self.outcome.status is None, "send_error after a head was sent"
        self.calls.append("send_error")
        self.outcome = Outcome(status=status, body=text.encode() + b"\n", ended="error")
        cycle.feed_disconnect()

    def abort(self, cycle: HTTPCycle, /) -> None:
        self.calls.append("abort")
        self.outcome.ended = "aborted"
        cycle.feed_disconnect()

    def want_body(self, cycle: HTTPCycle, /) -> None:
        self.wanted += 1

    def response_done(self, cycle: HTTPCycle, /) -> None:
        self.calls.append("response_done")
        self.outcome.ended = "done"

    async def drain(self) -> None:
        self.drains += 1
        self.write_paused = False


def fake_cycle(app: App, body: list[bytes] | None = None) -> tuple[HTTPCycle, FakeStream]:
    scope = http_scope(INFO, {}, "GET", "1.1", b"/", b"", [(b"host", b"x"), (b"te", b"trailers")])
    stream = FakeStream()
    cycle = HTTPCycle(scope, stream)
    if body is not None:
        cycle.expect_body(False)
    return cycle, stream


async def finish(ctx: ServerContext) -> None:
    while ctx.tasks:
        await asyncio.gather(*ctx.tasks, return_exceptions=True)


async def run_fake(app: App) -> Outcome:
    ctx = ServerContext(app=app, loop=asyncio.get_running_loop(), limits=Limits())
    cycle, stream = fake_cycle(app)
    start_request(ctx, cycle)
    await finish(ctx)
    return stream.outcome


# --- the HTTP/1.1 glue, over an in-memory transport -------------------------------------


class MemoryTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "write after close"
        self.data += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def parse_h1(data: bytes, closed: bool) -> Outcome:
    if not data:
        return Outcome(ended="aborted" if closed else "")
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    outcome = Outcome(status=status)
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        outcome.body = rest[:length]
        complete = len(rest) >= length
    elif headers.get(b"transfer-encoding") == b"chunked":
        complete = False
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                trailer_block, _, _ = rest.partition(b"\r\n\r\n")
                outcome.trailers = [
                    (name.strip().lower(), value.strip())
                    for name, _, value in (
                        line.partition(b":") for line in trailer_block.split(b"\r\n") if line
                    )
                ]
                complete = rest.endswith(b"\r\n")
                break
            outcome.body += rest[:size]
            rest = rest[size + 2 :]
    else:
        outcome.body = rest
        complete = closed
    server_answer = headers.get(b"connection") == b"close" and outcome.body in (
        b"Internal Server Error\n",
        b"Service Unavailable: too many concurrent requests\n",
    )
    if server_answer:
        outcome.ended = "error"
    elif complete:
        outcome.ended = "done"
    else:
        outcome.ended = "aborted" if closed else ""
    return outcome


async def run_h1(app: App) -> Outcome:
    ctx = ServerContext(app=app, loop=asyncio.get_running_loop(), limits=Limits())
    connection = H1Connection(ctx)
    transport = MemoryTransport()
    connection.connection_made(transport)
    connection.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
    await finish(ctx)
    return parse_h1(transport.data, transport.closed)


# --- the HTTP/2 glue (io/h2.py), over the same in-memory transport, read by an h2 client ---


async def run_h2(app: App) -> Outcome:
    import h2.config
    import h2.connection
    import h2.events

    from pier.io.h2 import H2Connection
    from pier.proto.limits import H2Limits

    ctx = ServerContext(app=app, loop=asyncio.get_running_loop(), limits=Limits())
    connection = H2Connection(ctx, H2Limits())
    transport = MemoryTransport()
    connection.connection_made(transport)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", "x"),
                            (":path", "/"), ("te", "trailers")], end_stream=True)
    connection.data_received(client.data_to_send())
    await finish(ctx)
    await asyncio.sleep(0)  # the connection writes once per loop turn
    outcome = Outcome()
    for event in client.receive_data(transport.data):
        if isinstance(event, h2.events.ResponseReceived):
            outcome.status = int(dict(event.headers)[b":status"])
        elif isinstance(event, h2.events.DataReceived):
            outcome.body += event.data
        elif isinstance(event, h2.events.TrailersReceived):
            outcome.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            outcome.ended = "done"
        elif isinstance(event, h2.events.StreamReset):
            outcome.ended = "aborted"
    if outcome.ended == "done" and outcome.status in (500, 503) and outcome.body in (
        b"Internal Server Error\n",
        b"Service Unavailable: too many concurrent requests\n",
    ):
        outcome.ended = "error"
    return outcome


GLUES: dict[str, Callable[[App], Awaitable[Outcome]]] = {
    "fake": run_fake, "h1": run_h1, "h2": run_h2,
}


# --- the table -------------------------------------------------------------------------

START: Message = {"type": "http.response.start", "status": 200, "headers": []}


def start(*headers: tuple[Any, Any], trailers: bool = False) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": list(headers),
            "trailers": trailers}


def body(data: bytes = b"", more: bool = False) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": more}


def sends(*messages: Message, catch: bool = False, then: Exception | None = None) -> App:
    """An app that sends `messages` in order (catching send() errors if `catch`)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            try:
                await send(message)
            except ASGIProtocolError:
                if not catch:
                    raise
        if then is not None:
            raise then

    return app


@pytest.fixture(scope="module")
def a_file() -> Any:
    with tempfile.NamedTemporaryFile(delete=False) as file:
        file.write(b"file body")
    yield file.name
    os.unlink(file.name)


def cases(path: str) -> list[tuple[str, App, Outcome]]:
    return [
        ("hello", sends(START, body(b"hello")), Outcome(200, b"hello", ended="done")),
        ("streamed", sends(START, body(b"he", True), body(b"llo")),
         Outcome(200, b"hello", ended="done")),
        ("trailers", sends(start(trailers=True), body(b"x"),
                           {"type": "http.response.trailers", "headers": [(b"a", b"1")],
                            "more_trailers": True},
                           {"type": "http.response.trailers", "headers": [(b"b", b"2")]}),
         Outcome(200, b"x", [(b"a", b"1"), (b"b", b"2")], ended="done")),
        ("pathsend", sends(START, {"type": "http.response.pathsend", "path": path}),
         Outcome(200, b"file body", ended="done")),
        ("no response", sends(), Outcome(500, b"Internal Server Error\n", ended="error")),
        ("start only", sends(START), Outcome(500, b"Internal Server Error\n", ended="error")),
        ("raises before start", sends(then=RuntimeError("boom")),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("raises mid-body", sends(START, body(b"he", True), then=RuntimeError("boom")),
         Outcome(200, b"he", ended="aborted")),
        ("str header name, caught", sends(start(("foo", b"bar")), body(b"x"), catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("str header value, caught", sends(start((b"foo", "bar")), body(b"x"), catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("bool header value, propagated", sends(start((b"foo", True)), body(b"x")),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("no status, caught", sends({"type": "http.response.start"}, body(b"x"), catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("second start, caught", sends(START, START, body(b"x"), catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("unknown type, caught", sends(START, {"type": "http.response.bogus"}, catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("body after the last, caught", sends(START, body(b"ok"), body(b"more"), catch=True),
         Outcome(200, b"ok", ended="done")),
        ("body over Content-Length in the first piece, caught",
         sends(start((b"content-length", b"2")), body(b"hello"), catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("body over Content-Length later, caught",
         sends(start((b"content-length", b"3")), body(b"he", True), body(b"llo"), catch=True),
         Outcome(200, b"he", ended="aborted")),
        ("str body, caught", sends(START, body("text"), catch=True),  # type: ignore[arg-type]
         Outcome(500, b"Internal Server Error\n", ended="error")),
        ("missing file, caught",
         sends(START, {"type": "http.response.pathsend", "path": "/nonexistent/x"}, catch=True),
         Outcome(500, b"Internal Server Error\n", ended="error")),
    ]


CASE_NAMES = [name for name, _, _ in cases("")]


@pytest.mark.parametrize("glue", GLUES)
@pytest.mark.parametrize("case", CASE_NAMES)
def test_every_glue_gives_the_client_the_same_outcome(glue: str, case: str, a_file: str) -> None:
    _, app, expected = next(item for item in cases(a_file) if item[0] == case)
    outcome = asyncio.run(GLUES[glue](app))
    assert outcome == expected


# --- interface rules, on the fake -------------------------------------------------------


def test_a_refused_head_leaves_the_response_unsent_and_answers_500() -> None:
    async def main() -> tuple[HTTPCycle, FakeStream, str]:
        cycle, stream = fake_cycle(sends())
        await cycle.send(start(("foo", b"bar")))
        with pytest.raises(ASGIProtocolError) as raised:
            await cycle.send(body(b"x"))
        return cycle, stream, str(raised.value)

    cycle, stream, message = asyncio.run(main())
    assert "foo" in message and "ASGI requires bytes" in message
    assert stream.calls == ["send_error"]
    assert stream.outcome.status == 500
    assert cycle.error is not None


def test_sends_after_a_failure_raise_and_send_nothing() -> None:
    async def main() -> tuple[FakeStream, str, Message]:
        cycle, stream = fake_cycle(sends())
        with pytest.raises(ASGIProtocolError):
            await cycle.send({"type": "nonsense"})
        with pytest.raises(ASGIProtocolError) as raised:
            await cycle.send(START)
        return stream, str(raised.value), await cycle.receive()

    stream, message, received = asyncio.run(main())
    assert "earlier error" in message and "nonsense" in message
    assert stream.calls == ["send_error"]
    # The app is not left waiting for a request that will never be answered.
    assert received == {"type": "http.request", "body": b"", "more_body": False}


def test_write_pause_makes_send_wait_for_drain() -> None:
    async def main() -> FakeStream:
        cycle, stream = fake_cycle(sends())
        await cycle.send(START)
        stream.write_paused = True
        await cycle.send(body(b"a", True))
        await cycle.send(body(b"b"))
        return stream

    stream = asyncio.run(main())
    assert stream.drains == 1
    assert stream.outcome == Outcome(200, b"ab", ended="done")


def test_100_continue_is_an_interim_response_sent_when_the_app_first_waits() -> None:
    async def main() -> tuple[list[int], Message]:
        cycle, stream = fake_cycle(sends(), body=[])
        cycle.expect_body(True)
        assert cycle.continue_pending
        waiting = asyncio.ensure_future(cycle.receive())
        await asyncio.sleep(0)
        interim = list(stream.interim)
        cycle.feed_body(b"data")
        cycle.feed_end()
        return interim, await waiting

    interim, message = asyncio.run(main())
    assert interim == [100]
    assert message == {"type": "http.request", "body": b"data", "more_body": False}


def test_the_failure_answer_is_given_once() -> None:
    async def main() -> FakeStream:
        cycle, stream = fake_cycle(sends())
        cycle.fail()
        cycle.fail()
        return stream

    stream = asyncio.run(main())
    assert stream.calls == ["send_error"]


def test_the_contract_is_the_interface() -> None:
    """The fake implements exactly the methods ResponseStream declares."""
    from pier.asgi.stream import ResponseStream

    declared = {name for name in vars(ResponseStream) if not name.startswith("_")}
    public = {
        name for name in vars(FakeStream)
        if not name.startswith("_") and callable(getattr(FakeStream, name))
    }
    assert public == declared - {"write_paused"}


# Request body delivery (asgi/http.py rule 4): small chunks that piled up while the app
# was busy come as one message; a large chunk comes alone, the very bytes object the
# glue fed (no copy of an upload); more is asked for only once all was taken.


def body_cycle(chunks: list[bytes], *, ended: bool) -> tuple[HTTPCycle, FakeStream]:
    cycle, stream = fake_cycle(sends(), body=[])
    for chunk in chunks:
        cycle.feed_body(chunk)
    if ended:
        cycle.feed_end()
    return cycle, stream


def receive_all(cycle: HTTPCycle, count: int) -> list[Message]:
    async def main() -> list[Message]:
        return [await cycle.receive() for _ in range(count)]

    return asyncio.run(main())


def test_small_body_chunks_buffered_together_come_as_one_message() -> None:
    cycle, _ = body_cycle([b"ab", b"cd", b"ef"], ended=True)
    [message] = receive_all(cycle, 1)
    assert message == {"type": "http.request", "body": b"abcdef", "more_body": False}


def test_large_body_chunks_come_one_per_message_uncopied_and_in_order() -> None:
    first = b"a" * WHOLE_CHUNK
    second = b"b" * (WHOLE_CHUNK * 2)
    third = b"c" * 10
    cycle, stream = body_cycle([first, second, third], ended=True)
    messages = receive_all(cycle, 3)
    assert [m["more_body"] for m in messages] == [True, True, False]
    assert messages[0]["body"] is first
    assert messages[1]["body"] is second
    assert messages[2]["body"] == third
    # Everything was buffered and the body had ended: nothing more to read.
    assert stream.wanted == 0


def test_more_body_is_asked_for_only_once_the_buffer_is_drained() -> None:
    chunks = [b"a" * WHOLE_CHUNK, b"b" * WHOLE_CHUNK]
    cycle, stream = body_cycle(chunks, ended=False)
    first, second = receive_all(cycle, 2)
    assert first["more_body"] and second["more_body"]
    assert stream.wanted == 1  # after the second message, not the first
    assert first["body"] + second["body"] == b"".join(chunks)
