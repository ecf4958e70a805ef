"""pier.asgi.websocket: the ASGI WebSocket session, against a recording stream.

Pins the ASGI WebSocket spec 2.4: the message order (websocket.connect first; accept,
close or a denial answers the handshake; websocket.send/receive; websocket.disconnect
last), "close before accept -> HTTP 403", the websocket.http.response extension (a
denial response with any status, headers and a streamed body), "exactly one of bytes
or text", close code and reason, and "send() on a closed connection raises a
server-specific subclass of OSError". Errors must name what was expected and what came.
The stream here is a plain recorder (a fake, not a Mock): the real glue is covered by
tests/e2e/test_websocket*.py.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from pier.asgi.http import ASGIProtocolError
from pier.asgi.websocket import (
    Phase,
    WebSocketDisconnected,
    WebSocketSession,
    run_websocket_app,
)
from pier.proto.ws import check_close
from pier.types import Receive, Scope, Send


class Stream:
    """Records what the session asks the glue to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.write_paused = False
        self.drained = 0
        self.wanted = 0
        self.failed = 0
        self.refuse_headers = False

    def accept(self, session: WebSocketSession, subprotocol: str | None, headers: Any) -> int:
        if self.refuse_headers:
            raise ValueError("websocket.accept header name 'x' is not a bytes HTTP token")
        self.calls.append(("accept", subprotocol, list(headers)))
        return 101

    def deny_start(self, session: WebSocketSession, status: int, headers: Any) -> None:
        self.calls.append(("deny_start", status, list(headers)))

    def deny_body(self, session: WebSocketSession, body: bytes, more_body: bool) -> None:
        self.calls.append(("deny_body", body, more_body))

    def send_data(self, session: WebSocketSession, data: str | bytes) -> None:
        self.calls.append(("send", data))

    def close(self, session: WebSocketSession, code: int, reason: str) -> None:
        self.calls.append(("close", code, reason))

    def check_close(self, code: object, reason: object) -> str | None:
        return check_close(code, reason)

    def want_messages(self, session: WebSocketSession) -> None:
        self.wanted += 1

    def fail(self, session: WebSocketSession) -> None:
        self.failed += 1

    async def drain(self) -> None:
        self.drained += 1
        self.write_paused = False


def session(subprotocols: list[str] | None = None) -> tuple[WebSocketSession, Stream]:
    stream = Stream()
    scope = {"type": "websocket", "path": "/ws", "subprotocols": subprotocols or []}
    return WebSocketSession(scope, stream), stream


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --- order ---------------------------------------------------------------------------


def test_first_receive_is_connect_then_messages_then_disconnect() -> None:
    async def main() -> list[Any]:
        ws, _ = session()
        got = [await ws.receive()]
        await ws.send({"type": "websocket.accept"})
        ws.feed_message("hi")
        ws.feed_message(b"\x00")
        got += [await ws.receive(), await ws.receive()]
        ws.feed_disconnect(1001, "bye")
        got += [await ws.receive()]
        return got

    assert run(main()) == [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "hi"},
        {"type": "websocket.receive", "bytes": b"\x00"},
        {"type": "websocket.disconnect", "code": 1001, "reason": "bye"},
    ]


def test_receive_after_the_disconnect_raises_instead_of_repeating_it() -> None:
    """issue 15: the first websocket.disconnect is the last message; an app that loops on
    receive() without looking at the type stops instead of spinning."""

    async def main() -> str:
        ws, _ = session()
        await ws.receive()
        await ws.send({"type": "websocket.accept"})
        ws.feed_disconnect(1001, "bye")
        assert (await ws.receive())["type"] == "websocket.disconnect"
        with pytest.raises(ASGIProtocolError) as raised:
            await ws.receive()
        return str(raised.value)

    message = run(main())
    assert "after it returned 'websocket.disconnect'" in message
    assert "stop receiving" in message


def test_receive_waits_for_a_message() -> None:
    async def main() -> Any:
        ws, _ = session()
        await ws.receive()
        await ws.send({"type": "websocket.accept"})
        waiting = asyncio.ensure_future(ws.receive())
        await asyncio.sleep(0)
        assert not waiting.done()
        ws.feed_message("late")
        return await waiting

    assert run(main()) == {"type": "websocket.receive", "text": "late"}


def test_messages_queued_before_disconnect_are_delivered_first() -> None:
    async def main() -> list[Any]:
        ws, _ = session()
        await ws.receive()
        await ws.send({"type": "websocket.accept"})
        ws.feed_message("last words")
        ws.feed_disconnect(1000)
        return [await ws.receive(), await ws.receive()]

    assert [m["type"] for m in run(main())] == ["websocket.receive", "websocket.disconnect"]


def test_app_that_accepts_without_receiving_connect_first_gets_data_next() -> None:
    # Lenient: several frameworks accept before reading websocket.connect.
    async def main() -> Any:
        ws, _ = session()
        await ws.send({"type": "websocket.accept"})
        ws.feed_message("x")
        return await ws.receive()

    assert run(main()) == {"type": "websocket.receive", "text": "x"}


def test_a_taken_message_asks_the_glue_for_more_only_while_it_stopped_reading() -> None:
    async def main() -> tuple[int, int]:
        ws, stream = session()
        await ws.send({"type": "websocket.accept"})
        for _ in range(3):
            ws.feed_message(b"m")
        assert ws.queued == 3 and ws.queued_bytes == 3
        await ws.receive()
        while_reading = stream.wanted
        ws.backlogged = True  # what the glue sets when a full queue pauses reading
        for _ in range(2):
            await ws.receive()
        assert ws.queued == 0 and ws.queued_bytes == 0
        return while_reading, stream.wanted

    assert run(main()) == (0, 2)


def test_disconnect_before_accept_has_code_1006_by_default() -> None:
    async def main() -> Any:
        ws, _ = session()
        await ws.receive()
        ws.feed_disconnect(1006)
        return await ws.receive()

    assert run(main()) == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


# --- answering the handshake ---------------------------------------------------------


def test_accept_with_subprotocol_and_headers() -> None:
    async def main() -> Stream:
        ws, stream = session(["chat", "superchat"])
        await ws.receive()
        await ws.send({"type": "websocket.accept", "subprotocol": "superchat",
                       "headers": [(b"x-a", b"1")]})
        assert ws.phase is Phase.OPEN and ws.status == 101
        return stream

    assert run(main()).calls == [("accept", "superchat", [(b"x-a", b"1")])]


def test_subprotocol_not_offered_by_the_client_is_an_error_naming_the_offer() -> None:
    async def main() -> None:
        ws, _ = session(["chat"])
        await ws.send({"type": "websocket.accept", "subprotocol": "mqtt"})

    with pytest.raises(ASGIProtocolError, match=r"'mqtt'.*did not offer.*\['chat'\]"):
        run(main())


def test_subprotocol_must_be_a_string() -> None:
    with pytest.raises(ASGIProtocolError, match="must be a str or None"):
        run(session(["chat"])[0].send({"type": "websocket.accept", "subprotocol": b"chat"}))


def test_bad_accept_headers_become_a_protocol_error_with_the_reason() -> None:
    async def main() -> None:
        ws, stream = session()
        stream.refuse_headers = True
        await ws.send({"type": "websocket.accept", "headers": [("x", "1")]})

    with pytest.raises(ASGIProtocolError, match="not a bytes HTTP token"):
        run(main())


def test_close_before_accept_is_a_403_denial() -> None:
    async def main() -> tuple[WebSocketSession, Stream]:
        ws, stream = session()
        await ws.receive()
        await ws.send({"type": "websocket.close", "code": 1008, "reason": "no token"})
        return ws, stream

    ws, stream = run(main())
    assert stream.calls == [
        ("deny_start", 403, [(b"content-type", b"text/plain; charset=utf-8")]),
        ("deny_body", b"no token", False),
    ]
    assert ws.phase is Phase.CLOSED and ws.status == 403


def test_denial_response_with_a_streamed_body() -> None:
    async def main() -> tuple[WebSocketSession, Stream]:
        ws, stream = session()
        await ws.receive()
        await ws.send({"type": "websocket.http.response.start", "status": 401,
                       "headers": [(b"www-authenticate", b"Bearer")]})
        assert ws.phase is Phase.DENIAL_BODY
        stream.write_paused = True
        await ws.send({"type": "websocket.http.response.body", "body": b"log ",
                       "more_body": True})
        await ws.send({"type": "websocket.http.response.body", "body": b"in"})
        return ws, stream

    ws, stream = run(main())
    assert stream.calls == [
        ("deny_start", 401, [(b"www-authenticate", b"Bearer")]),
        ("deny_body", b"log ", True),
        ("deny_body", b"in", False),
    ]
    assert stream.drained == 1  # a streamed denial waits for the client to read
    assert ws.phase is Phase.CLOSED and ws.status == 401


@pytest.mark.parametrize("status", [101, "403", None, True])
def test_denial_status_must_be_an_int_other_than_101(status: object) -> None:
    with pytest.raises(ASGIProtocolError, match="'status' int other than 101"):
        run(session()[0].send({"type": "websocket.http.response.start", "status": status}))


def test_denial_body_must_be_bytes() -> None:
    async def main() -> None:
        ws, _ = session()
        await ws.send({"type": "websocket.http.response.start", "status": 400})
        await ws.send({"type": "websocket.http.response.body", "body": "text"})

    with pytest.raises(ASGIProtocolError, match="'body' must be bytes, got str"):
        run(main())


# --- messages in the wrong phase -----------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "message", "words"),
    [
        ([], {"type": "websocket.send", "text": "x"},
         "'websocket.send' sent; the WebSocket expects 'websocket.accept', 'websocket.close'"
         " or 'websocket.http.response.start'"),
        ([{"type": "websocket.accept"}], {"type": "websocket.accept"},
         "expects 'websocket.send' or 'websocket.close'"),
        ([{"type": "websocket.accept"}], {"type": "websocket.http.response.start",
                                          "status": 403},
         "expects 'websocket.send' or 'websocket.close'"),
        ([{"type": "websocket.http.response.start", "status": 403}],
         {"type": "websocket.accept"}, "expects 'websocket.http.response.body'"),
        ([{"type": "websocket.accept"}, {"type": "websocket.close"}],
         {"type": "websocket.send", "text": "x"}, "already closed"),
        ([], {"type": "websocket.http.response.body", "body": b""},
         "the handshake is not answered yet"),
        ([], {"type": "http.response.start", "status": 200},
         "did you mean 'websocket.http.response.start'?"),
        ([{"type": "websocket.accept"}], {"type": "websocket.receive", "text": "x"},
         "did you mean 'websocket.send'?"),
        ([], {"type": "websocket.bogus"}, "unexpected ASGI message 'websocket.bogus'"),
    ],
)
def test_out_of_order_messages_name_what_the_phase_expects(
    setup: list[dict[str, Any]], message: dict[str, Any], words: str
) -> None:
    async def main() -> None:
        ws, _ = session()
        for earlier in setup:
            await ws.send(earlier)
        await ws.send(message)

    with pytest.raises(ASGIProtocolError) as info:
        run(main())
    assert words in str(info.value)


@pytest.mark.parametrize("message", [None, {}, "websocket.accept", {"text": "x"}])
def test_send_needs_a_dict_with_a_type(message: Any) -> None:
    with pytest.raises(ASGIProtocolError, match="message dict with a 'type' key"):
        run(session()[0].send(message))


# --- websocket.send and websocket.close ----------------------------------------------


async def accepted() -> tuple[WebSocketSession, Stream]:
    ws, stream = session()
    await ws.send({"type": "websocket.accept"})
    stream.calls.clear()
    return ws, stream


def test_send_text_or_bytes() -> None:
    async def main() -> Stream:
        ws, stream = await accepted()
        await ws.send({"type": "websocket.send", "text": "t"})
        await ws.send({"type": "websocket.send", "bytes": b"b", "text": None})
        await ws.send({"type": "websocket.send", "bytes": bytearray(b"ba")})
        return stream

    assert run(main()).calls == [("send", "t"), ("send", b"b"), ("send", b"ba")]


@pytest.mark.parametrize(
    ("message", "words"),
    [
        ({"type": "websocket.send"}, "needs 'bytes' or 'text'"),
        ({"type": "websocket.send", "bytes": None, "text": None}, "needs 'bytes' or 'text'"),
        ({"type": "websocket.send", "bytes": b"b", "text": "t"}, "has both"),
        ({"type": "websocket.send", "text": b"t"}, "'text' must be a str, got bytes"),
        ({"type": "websocket.send", "bytes": "b"}, "'bytes' must be bytes, got str"),
        ({"type": "websocket.close", "code": 1006}, "close code 1006 cannot be sent"),
        ({"type": "websocket.close", "code": "1000"}, "must be an int"),
        ({"type": "websocket.close", "reason": "r" * 200}, "at most 123"),
    ],
)
def test_bad_send_and_close_messages(message: dict[str, Any], words: str) -> None:
    async def main() -> None:
        ws, _ = await accepted()
        await ws.send(message)

    with pytest.raises(ASGIProtocolError) as info:
        run(main())
    assert words in str(info.value)


def test_close_with_code_and_reason_defaults() -> None:
    async def main() -> Stream:
        ws, stream = await accepted()
        await ws.send({"type": "websocket.close", "reason": None})
        assert ws.phase is Phase.CLOSED
        return stream

    assert run(main()).calls == [("close", 1000, "")]


def test_send_waits_for_drain_when_the_write_buffer_is_full() -> None:
    async def main() -> int:
        ws, stream = await accepted()
        stream.write_paused = True
        await ws.send({"type": "websocket.send", "bytes": b"x"})
        return stream.drained

    assert run(main()) == 1


def test_send_after_disconnect_raises_an_oserror_with_the_code() -> None:
    async def main() -> None:
        ws, _ = await accepted()
        ws.feed_disconnect(1001, "gone")
        await ws.send({"type": "websocket.send", "text": "x"})

    with pytest.raises(WebSocketDisconnected, match="code 1001, 'gone'") as info:
        run(main())
    assert isinstance(info.value, OSError)


def test_close_after_disconnect_is_quietly_accepted() -> None:
    async def main() -> Stream:
        ws, stream = await accepted()
        ws.feed_disconnect(1000)
        await ws.send({"type": "websocket.close"})
        return stream

    assert run(main()).calls == []


def test_accept_after_the_client_left_raises_oserror() -> None:
    async def main() -> None:
        ws, _ = session()
        await ws.receive()
        ws.feed_disconnect(1006)
        await ws.send({"type": "websocket.accept"})

    with pytest.raises(WebSocketDisconnected):
        run(main())


# --- run_websocket_app -----------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.finished: list[bool] = []

    def app_finished(self, session: WebSocketSession, *, failed: bool) -> None:
        self.finished.append(failed)


def run_app(app: Any, ws: WebSocketSession | None = None) -> tuple[list[bool], WebSocketSession]:
    ws = ws or session()[0]
    sink = Sink()
    asyncio.run(run_websocket_app(app, ws, sink))
    return sink.finished, ws


async def accepts_and_returns(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})


async def raises_before_accept(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("boom")


async def returns_silently(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()


async def stops_mid_denial(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.http.response.start", "status": 400})
    await send({"type": "websocket.http.response.body", "body": b"x", "more_body": True})


async def sends_after_accept_wrongly(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send"})


def test_app_that_accepts_and_returns_did_not_fail(caplog: pytest.LogCaptureFixture) -> None:
    assert run_app(accepts_and_returns)[0] == [False]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("app", "words"),
    [
        (raises_before_accept, "Exception in ASGI application for WebSocket /ws"),
        (returns_silently, "returned without answering the WebSocket handshake for /ws"
                           " (expected 'websocket.accept'"),
        (stops_mid_denial, "before finishing its denial response"),
        (sends_after_accept_wrongly, "ASGI protocol error in WebSocket /ws:"
                                     " websocket.send needs 'bytes' or 'text'"),
    ],
)
def test_app_failures_are_logged_once_and_reported(
    app: Any, words: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="pier.error"):
        assert run_app(app)[0] == [True]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and words in errors[0], errors


def test_app_that_is_not_async_is_explained(caplog: pytest.LogCaptureFixture) -> None:
    def sync_app(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    with caplog.at_level(logging.ERROR, logger="pier.error"):
        assert run_app(sync_app)[0] == [True]
    assert "instead of an awaitable" in caplog.text
    assert "async def app(scope, receive, send)" in caplog.text


def test_app_stopped_by_a_disconnect_oserror_is_not_a_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})
        ws.feed_disconnect(1006)
        await send({"type": "websocket.send", "text": "into the void"})

    ws = session()[0]
    assert run_app(app, ws)[0] == [False]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_app_returning_a_value_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> Any:
        await send({"type": "websocket.accept"})
        return 42

    assert run_app(app)[0] == [False]
    assert "returned 42 for WebSocket /ws; ASGI apps should return None" in caplog.text


def test_cancelled_app_is_reported_failed_and_cancellation_propagates() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})
        await asyncio.Event().wait()

    async def main() -> list[bool]:
        sink = Sink()
        task = asyncio.ensure_future(run_websocket_app(app, session()[0], sink))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return sink.finished

    assert run(main()) == [True]
