"""Shared pieces of the end-to-end suite: a strict HTTP/1.1 response reader, tiny ASGI apps,
cross-thread gates and a capture of pier's log records.

Rules: nothing here starts a server (tests/helpers.py does); everything here is a real
part (raw sockets, real logging handlers), never a mock. The response reader follows the
message-length rules of RFC 9112 section 6.3 exactly, so a server that frames a response
wrongly makes a test fail instead of being silently tolerated.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import re
import select
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pier.types import Message, Receive, Scope, Send
from tests.helpers import PierProcess, RunningServer

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]

DEADLINE = 5.0

# Transport behaviour (buffers, pause_reading, sendfile) differs between the two loops
# pier runs on, so the tests that pin flow control and framing run on both.
LOOPS = [
    pytest.param("asyncio", id="asyncio"),
    pytest.param("uvloop", id="uvloop", marks=pytest.mark.skipif(
        importlib.util.find_spec("uvloop") is None,
        reason="uvloop is not installed (not available on this platform)")),
]


# --- reading responses -------------------------------------------------------------------


class ConnectionClosedEarly(AssertionError):
    """The server closed the connection before a complete response arrived."""

    def __init__(self, message: str, received: bytes) -> None:
        super().__init__(f"{message}; received {received[:300]!r}")
        self.received = received


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    raw_head: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[0] if values else None

    def header_list(self, name: str) -> list[str]:
        name = name.lower()
        return [value for key, value in self.headers if key == name]

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def keeps_alive(self) -> bool:
        tokens = {t.strip().lower() for v in self.header_list("connection") for t in v.split(",")}
        if "close" in tokens:
            return False
        return self.version == "HTTP/1.1" or "keep-alive" in tokens


class Conn:
    """A client connection with its own buffer, so several responses can be read in order."""

    def __init__(self, sock: socket.socket, timeout: float = DEADLINE) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buffer = bytearray()
        self.eof = False

    @classmethod
    def open(cls, server: RunningServer, timeout: float = DEADLINE) -> Conn:
        return cls(server.connect(timeout), timeout)

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(262144)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def _take(self, count: int) -> bytes:
        data = bytes(self.buffer[:count])
        del self.buffer[:count]
        return data

    def read_line(self, what: str = "a line") -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionClosedEarly(
                    f"connection closed while reading {what}", bytes(self.buffer)
                )
        end = self.buffer.find(b"\r\n")
        line = self._take(end)
        del self.buffer[:2]
        return line

    def read_head(self) -> Response:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionClosedEarly(
                    "connection closed before a response head", bytes(self.buffer)
                )
        raw = self._take(self.buffer.find(b"\r\n\r\n"))
        del self.buffer[:4]
        lines = raw.split(b"\r\n")
        match = re.fullmatch(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)", lines[0])
        assert match, f"malformed status line {lines[0]!r}"
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            assert sep and name and name == name.strip(), f"malformed header line {line!r}"
            headers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        return Response(
            version=match.group(1).decode(), status=int(match.group(2)),
            reason=match.group(3).decode("latin-1"), headers=headers, raw_head=raw,
        )

    def read_body(self, response: Response, *, method: str = "GET") -> Response:
        """Read the body following `response`'s head, by RFC 9112 section 6.3."""
        if method == "HEAD" or response.status in (204, 304) or response.status < 200:
            return response
        encoding = ",".join(response.header_list("transfer-encoding")).lower()
        if encoding:
            assert encoding.replace(" ", "").split(",")[-1] == "chunked", encoding
            response.chunked = True
            response.body, response.trailers = self._read_chunked()
            return response
        lengths = response.header_list("content-length")
        if lengths:
            assert len(set(lengths)) == 1, f"conflicting Content-Length {lengths}"
            need = int(lengths[0])
            while len(self.buffer) < need:
                if not self._fill():
                    raise ConnectionClosedEarly(
                        f"connection closed after {len(self.buffer)} of {need} body bytes",
                        bytes(self.buffer),
                    )
            response.body = self._take(need)
            return response
        # No framing: the body runs until the server closes the connection.
        while self._fill():
            pass
        response.body = self._take(len(self.buffer))
        return response

    def _read_chunked(self) -> tuple[bytes, list[tuple[str, str]]]:
        body = bytearray()
        while True:
            size_line = self.read_line("a chunk size")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            while len(self.buffer) < size + 2:
                if not self._fill():
                    raise ConnectionClosedEarly(
                        "connection closed inside a chunk", bytes(body + self.buffer)
                    )
            chunk = self._take(size + 2)
            assert chunk.endswith(b"\r\n"), f"chunk not followed by CRLF: {chunk[-10:]!r}"
            body += chunk[:-2]
        trailers = []
        while True:
            line = self.read_line("the trailer section")
            if not line:
                break
            name, _, value = line.partition(b":")
            trailers.append((name.decode("latin-1").lower(), value.strip().decode("latin-1")))
        return bytes(body), trailers

    def read_chunk(self) -> bytes:
        """The next chunk of a chunked body whose head was read (b"" for the last one)."""
        size = int(self.read_line("a chunk size").split(b";")[0].strip(), 16)
        if size == 0:
            return b""
        while len(self.buffer) < size + 2:
            if not self._fill():
                raise ConnectionClosedEarly("connection closed inside a chunk", bytes(self.buffer))
        return self._take(size + 2)[:-2]

    def read_response(self, *, method: str = "GET", interim: bool = False) -> Response:
        """One response; 1xx interim responses are skipped unless `interim`."""
        while True:
            response = self.read_head()
            if response.status >= 200 or interim:
                return self.read_body(response, method=method)

    def request(self, method: str = "GET", target: str = "/", *,
                headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> Response:
        self.send(build_request(method, target, headers=headers, body=body))
        return self.read_response(method=method)

    def wait_closed(self, timeout: float = DEADLINE) -> bytes:
        """Wait until the server closes; return whatever it sent first (fails on timeout)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"server kept the connection open for {timeout} s"
            self.sock.settimeout(remaining)
            try:
                self._fill()
            except TimeoutError:
                raise AssertionError(f"server kept the connection open for {timeout} s") from None
        return self._take(len(self.buffer))

    def nothing_arrives_within(self, seconds: float) -> bool:
        """True when the server sent nothing (and did not close) for `seconds`."""
        if self.buffer or self.eof:
            return False
        readable, _, _ = select.select([self.sock], [], [], seconds)
        return not readable


def build_request(method: str = "GET", target: str = "/", *,
                  headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                  version: str = "HTTP/1.1") -> bytes:
    """A well-formed request; Host and Content-Length are added when missing."""
    fields = list(headers or [])
    names = {name.lower() for name, _ in fields}
    if "host" not in names:
        fields.insert(0, ("Host", "pier.test"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        fields.append(("Content-Length", str(len(body))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in fields)
    return head.encode("latin-1") + b"\r\n" + body


def parse_all(data: bytes) -> list[Response]:
    """Every response in a byte string read until the server closed."""
    reader = Conn.__new__(Conn)
    reader.buffer = bytearray(data)
    reader.eof = True
    responses = []
    while reader.buffer:
        responses.append(reader.read_response())
    return responses


def status_of(data: bytes) -> int:
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    assert match, f"no status line in {data[:200]!r}"
    return int(match.group(1))


def connect_to(proc: PierProcess, timeout: float = DEADLINE) -> socket.socket:
    """A client socket to a `python -m pier` subprocess that is listening."""
    assert proc.host and proc.port, "call wait_listening() first"
    return socket.create_connection((proc.host, proc.port), timeout=timeout)


def assert_serves(server: RunningServer, path: str = "/") -> Response:
    """A fresh connection gets a normal 200 answer (the server survived what came before)."""
    with Conn.open(server) as conn:
        response = conn.request("GET", path)
    assert response.status == 200, response
    return response


def chunked(*parts: bytes, trailers: bytes = b"") -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in parts if part)
    return framed + b"0\r\n" + trailers + b"\r\n"


# --- apps --------------------------------------------------------------------------------


async def serve_lifespan(receive: Receive, send: Send) -> None:
    """A minimal, correct lifespan: acknowledge startup and shutdown."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def http_app(handler: Handler) -> Handler:
    """Wrap an http-only handler into an app that also speaks lifespan correctly."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send)
            return
        assert scope["type"] == "http", scope["type"]
        await handler(scope, receive, send)

    return app


async def read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole request body and the http.request messages it came in."""
    messages = []
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            messages.append(message)
            return body, messages
        messages.append(message)
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body, messages


async def respond(send: Send, status: int = 200, body: bytes = b"", *,
                  headers: list[tuple[bytes, bytes]] | None = None) -> None:
    if headers is None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def broken_app(handler: Handler) -> Handler:
    """An app whose `handler` misbehaves at /broken only; every other path answers 200 "ok",
    so a test can show the server keeps serving after the failure."""

    async def dispatch(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/broken":
            await handler(scope, receive, send)
        else:
            await read_body(receive)
            await respond(send, 200, b"ok")

    return http_app(dispatch)


def ok_app(body: bytes = b"ok") -> Handler:
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        await respond(send, 200, body)

    return http_app(handler)


class Recorder:
    """An app that records every http scope and body it serves, and answers 200 'ok'.

    Requests whose path is in `paths` are what a smuggling test must never see served.
    """

    def __init__(self) -> None:
        self.scopes: list[Scope] = []
        self.bodies: list[bytes] = []
        self.app = http_app(self._handle)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        body, _ = await read_body(receive)
        self.bodies.append(body)
        await respond(send, 200, b"ok")

    @property
    def paths(self) -> list[str]:
        return [scope["path"] for scope in self.scopes]


class Gate:
    """A one-shot gate the test thread opens and an app on the server's loop awaits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._opened = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def open(self) -> None:
        with self._lock:
            self._opened = True
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._opened:
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE,
               message: str = "condition") -> None:
    """Poll `predicate` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{message} not reached within {timeout} s"
        time.sleep(0.005)


# --- logs --------------------------------------------------------------------------------


class LogCapture(logging.Handler):
    """Every record pier logs, whatever handlers and propagation pier configured.

    Attached directly to pier's named loggers (and the root), after the server started,
    so a dictConfig run at start-up cannot detach it; records seen twice through
    propagation are kept once.
    """

    NAMES = ("", "pier", "pier.error", "pier.access")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self._seen: set[int] = set()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._guard:
            if id(record) not in self._seen:
                self._seen.add(id(record))
                self.records.append(record)

    def messages(self, level: int = logging.DEBUG) -> list[str]:
        with self._guard:
            records = list(self.records)
        return [self._render(r) for r in records if r.levelno >= level and _from_pier(r)]

    @staticmethod
    def _render(record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        return text

    def errors(self) -> list[str]:
        return self.messages(logging.ERROR)

    def wait_for(self, *needles: str | tuple[str, ...], level: int = logging.ERROR,
                 timeout: float = DEADLINE) -> str:
        """The first message at `level` or above containing every needle (case-insensitive).

        A tuple needle matches when any of its strings is present.
        """
        found: list[str] = []
        wanted = [(n,) if isinstance(n, str) else n for n in needles]

        def check() -> bool:
            for text in self.messages(level):
                lower = text.lower()
                if all(any(alt.lower() in lower for alt in group) for group in wanted):
                    found.append(text)
                    return True
            return False

        try:
            wait_until(check, timeout, f"a log message containing {needles}")
        except AssertionError:
            raise AssertionError(
                f"no log message at level >= {logging.getLevelName(level)} containing "
                f"{needles}; pier logged: {self.messages()}"
            ) from None
        return found[0]


def _from_pier(record: logging.LogRecord) -> bool:
    return record.name == "pier" or record.name.startswith("pier.")


@contextlib.contextmanager
def capture_logs() -> Iterator[LogCapture]:
    capture = LogCapture()
    loggers = [logging.getLogger(name) for name in LogCapture.NAMES]
    for logger in loggers:
        logger.addHandler(capture)
    try:
        yield capture
    finally:
        for logger in loggers:
            logger.removeHandler(capture)
