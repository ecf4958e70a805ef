"""WSGI apps served by pier (PEP 3333), over real sockets.

Pins PEP 3333: "environ Variables" (SCRIPT_NAME, PATH_INFO as latin-1, SERVER_*,
wsgi.*), "Input and Error Streams" (wsgi.input honouring CONTENT_LENGTH), "The
start_response() Callable" (headers go out with the first non-empty body, exc_info
rules), "The write() Callable", "Buffering and Streaming" (a slow client throttles the
app's thread), close() "upon completion of the request, whether normally or due to an
error", and "Optional Platform-Specific File Handling" (wsgi.file_wrapper).
Hand-written apps are wrapped in wsgiref.validate, so any PEP 3333 violation by the
server fails the test that met it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from tests.e2e._support import (
    LOOPS,
    Conn,
    build_request,
    capture_logs,
    chunked,
    connect_to,
    wait_until,
)
from tests.helpers import PierProcess, running_server

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

REPO = Path(__file__).resolve().parents[2]


def serve(app: WSGIApp, **options: Any) -> Any:
    """A running pier serving a validator-wrapped app (the wrapper's *args shape hides
    the WSGI signature, so the interface is named)."""
    options.setdefault("interface", "wsgi")
    return running_server(validator(app), **options)


def text(status: str, body: bytes, start_response: StartResponse) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


# --- environ ------------------------------------------------------------------------------


def environ_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, int))}
    shown["wsgi.version"] = list(environ["wsgi.version"])
    shown["body"] = body.decode()
    payload = json.dumps(shown).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [payload]


def test_environ_is_complete_and_paths_are_latin1_as_pep_3333_requires() -> None:
    with serve(environ_app, root_path="/api") as server, Conn.open(server) as conn:
        response = conn.request(
            "POST",
            "/caf%C3%A9/a%2Fb?q=1&r=%C3%A9",
            headers=[
                ("X-Forwarded-For", "203.0.113.7"),
                ("X-Forwarded-Proto", "https"),
                ("X_Forwarded_For", "198.51.100.1"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("Accept", "text/plain"),
                ("Accept", "text/html"),
                ("Content-Type", "text/plain"),
            ],
            body=b"hello",
        )
    assert response.status == 200, response
    env = response.json()
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == "/api"
    # The percent-decoded bytes, each read as one latin-1 character.
    assert env["PATH_INFO"] == "/café/a/b".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "q=1&r=%C3%A9"
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] == "127.0.0.1"
    assert env["SERVER_PORT"] == str(server.port)
    # The client as the trusted proxy (127.0.0.1) reported it.
    assert env["REMOTE_ADDR"] == "203.0.113.7"
    assert env["wsgi.url_scheme"] == "https"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["CONTENT_LENGTH"] == "5"
    assert env["body"] == "hello"
    assert env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["HTTP_ACCEPT"] == "text/plain,text/html"
    # A header spelled with underscores cannot pose as the proxy's X-Forwarded-For.
    assert env["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.multithread"] is True
    assert env["wsgi.multiprocess"] is False
    assert env["wsgi.run_once"] is False
    assert env["wsgi.input_terminated"] is True


# --- bodies both ways ---------------------------------------------------------------------


def read_digest(stream: Any) -> tuple[int, str]:
    """(size, sha256) of wsgi.input read to its end in 64 KiB reads."""
    digest = hashlib.sha256()
    size = 0
    while chunk := stream.read(65536):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def digest_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    size, sha256 = read_digest(environ["wsgi.input"])
    return text("200 OK", f"{size} {sha256}".encode(), start_response)


def big_response_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    block = bytes(range(256)) * 256  # 64 KiB
    for _ in range(int(environ["QUERY_STRING"])):
        yield block


@pytest.mark.parametrize("loop", LOOPS)
def test_large_bodies_both_ways(loop: str) -> None:
    upload = os.urandom(8 * 1024 * 1024)
    with serve(digest_app, loop=loop) as server:
        response = httpx.post(server.url + "/", content=upload, timeout=30)
        assert response.text == f"{len(upload)} {hashlib.sha256(upload).hexdigest()}"
    with serve(big_response_app, loop=loop) as server:
        response = httpx.get(server.url + "/?160", timeout=30)
        assert response.status_code == 200
        assert response.headers["transfer-encoding"] == "chunked"
        assert response.content == (bytes(range(256)) * 256) * 160


def test_chunked_request_body_is_read_to_its_end() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        assert "CONTENT_LENGTH" not in environ
        lines = list(environ["wsgi.input"])
        return text("200 OK", json.dumps([x.decode() for x in lines]).encode(), start_response)

    with serve(app) as server, Conn.open(server) as conn:
        conn.send(build_request("POST", "/", headers=[("Transfer-Encoding", "chunked")])
                  + chunked(b"one\ntw", b"o\nthree"))
        response = conn.read_response()
    assert response.json() == ["one\n", "two\n", "three"]


def test_input_stops_at_content_length_and_readline_honours_its_limit() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline(3)
        rest = stream.readline()
        after = stream.read(100)
        return text("200 OK", b"|".join([first, rest, after]), start_response)

    with serve(app) as server, Conn.open(server) as conn:
        assert conn.request("POST", "/", body=b"abcdef\nxyz").body == b"abc|def\n|xyz"
        # The connection is still in step: the next request on it is answered.
        assert conn.request("POST", "/", body=b"1\n2").body == b"1\n|2|"


# --- flow control -------------------------------------------------------------------------


def test_slow_reader_throttles_the_apps_thread() -> None:
    produced = [0]
    block = b"x" * 65536
    total_blocks = 1024  # 64 MiB

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(total_blocks):
            produced[0] += len(block)
            yield block

    with serve(app) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect((server.host, server.port))
        with Conn(sock, timeout=30) as conn:
            conn.send(build_request("GET", "/"))
            conn.read_head()
            # The client reads nothing more: the app's thread must stall, not fill memory.
            last, still_since = -1, time.monotonic()
            deadline = time.monotonic() + 15
            while time.monotonic() - still_since < 0.5:
                assert time.monotonic() < deadline, "the app's thread never stalled"
                if produced[0] != last:
                    last, still_since = produced[0], time.monotonic()
                time.sleep(0.01)
            stalled_at = produced[0]
            assert stalled_at < 16 * 1024 * 1024, f"{stalled_at} bytes made for a stalled client"
            # Reading resumes the thread, and every byte arrives.
            received = 0
            while True:
                chunk = conn.read_chunk()
                if not chunk:
                    break
                received += len(chunk)
    assert received == total_blocks * len(block)


def test_upload_is_not_read_ahead_of_the_app() -> None:
    release = threading.Event()
    read = [0]

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        release.wait(10)
        while chunk := environ["wsgi.input"].read(65536):
            read[0] += len(chunk)
        return text("200 OK", str(read[0]).encode(), start_response)

    size = 32 * 1024 * 1024
    with serve(app) as server, Conn.open(server, timeout=30) as conn:
        conn.send(build_request("POST", "/", headers=[("Content-Length", str(size))]))
        conn.sock.setblocking(False)
        sent = 0
        payload = b"u" * 65536
        deadline = time.monotonic() + 10
        stalled_since = time.monotonic()
        # Send until the server stops taking bytes: reading paused while the app waits.
        while time.monotonic() - stalled_since < 0.5 and sent < size:
            assert time.monotonic() < deadline
            try:
                sent += conn.sock.send(payload[: min(len(payload), size - sent)])
                stalled_since = time.monotonic()
            except BlockingIOError:
                time.sleep(0.01)
        assert sent < size, "the server buffered the whole upload for an app that did not read"
        release.set()
        conn.sock.setblocking(True)
        while sent < size:
            sent += conn.sock.send(payload[: min(len(payload), size - sent)])
        response = conn.read_response()
    assert response.body == str(size).encode()


# --- start_response, write(), errors, close() ---------------------------------------------


class Closing:
    """A response iterable that records close() (PEP 3333: called on every path)."""

    def __init__(self, blocks: Iterable[bytes], closed: threading.Event) -> None:
        self._blocks = iter(blocks)
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._blocks)

    def close(self) -> None:
        self.closed.set()


def endless_app(closed: threading.Event, block: bytes) -> WSGIApp:
    """An app streaming `block` forever; its iterable's close() sets `closed`."""

    def endless() -> Iterator[bytes]:
        while True:
            yield block

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Closing(endless(), closed)

    return app


def test_close_is_called_when_the_client_leaves_mid_stream() -> None:
    closed = threading.Event()
    app = endless_app(closed, b"y" * 16384)
    with running_server(app, interface="wsgi") as server:
        with Conn.open(server) as conn:
            conn.send(build_request("GET", "/"))
            conn.read_head()
            conn.read_chunk()
        assert closed.wait(10), "close() was not called after the client left"
        assert conn.eof is False  # the server did not hang up first


def test_app_raising_before_start_response_gets_a_500_and_a_traceback() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("broken before start_response")

    with serve(app) as server, capture_logs() as logs, Conn.open(server) as conn:
        response = conn.request("GET", "/x")
        assert response.status == 500
        logs.wait_for("Exception in WSGI application", "GET /x", "broken before start_response")


def test_app_calling_sys_exit_fails_its_request_not_the_server() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ["PATH_INFO"] == "/exit":
            sys.exit(3)
        return text("200 OK", b"alive", start_response)

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        assert conn.request("GET", "/exit").status == 500
        logs.wait_for("the WSGI app raised SystemExit: 3")
        with Conn.open(server) as again:
            assert again.request("GET", "/").body == b"alive"


def test_app_raising_after_start_response_before_any_body_still_gets_a_500() -> None:
    closed = threading.Event()

    def failing() -> Iterator[bytes]:
        raise KeyError("no body after all")
        yield b""  # pragma: no cover - makes this a generator

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(failing(), closed)

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        # The 200 was never sent (headers wait for the first body bytes): 500 is honest.
        assert conn.request("GET", "/").status == 500
        logs.wait_for("no body after all")
        assert closed.wait(5)


def test_app_raising_mid_body_aborts_the_response_and_closes() -> None:
    closed = threading.Event()

    def partial() -> Iterator[bytes]:
        yield b"first part"
        raise OSError("disk gone mid-body")

    def app(environ: Environ, start_response: StartResponse) -> Closing:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing(partial(), closed)

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        conn.send(build_request("GET", "/"))
        head = conn.read_head()
        assert head.status == 200
        assert conn.read_chunk() == b"first part"
        data = conn.wait_closed()
        assert not data.endswith(b"0\r\n\r\n"), "an aborted body must not look complete"
        logs.wait_for("disk gone mid-body")
        assert closed.wait(5)


def test_start_response_with_exc_info_replaces_unsent_headers() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Before", "1")])
        try:
            raise LookupError("found nothing")
        except LookupError:
            start_response("404 Not Found", [("Content-Type", "text/plain")], sys.exc_info())
            return [b"nothing here"]

    with serve(app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/")
    assert response.status == 404
    assert response.body == b"nothing here"
    assert response.header("x-before") is None


def test_start_response_with_exc_info_after_headers_went_out_reraises() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise LookupError("too late to change the status")
        except LookupError:
            start_response("500 Internal Server Error", [], sys.exc_info())
        yield b"never sent"  # pragma: no cover - start_response re-raised

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        conn.send(build_request("GET", "/"))
        assert conn.read_head().status == 200
        assert conn.read_chunk() == b"partial"
        assert b"never sent" not in conn.wait_closed()
        logs.wait_for("too late to change the status")


def test_second_start_response_without_exc_info_is_an_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("201 Created", [])
        return [b""]

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 500
        logs.wait_for("start_response() was called a second time without exc_info")


def test_write_callable_streams_before_the_iterable() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"")
        write(b"twice, ")
        return [b"then returned"]

    with serve(app) as server, Conn.open(server) as conn:
        assert conn.request("GET", "/").body == b"written twice, then returned"


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (["text, not bytes"], "must be bytes, got str"),
        ([None], "must be bytes, got NoneType"),
        (iter([3]), "must be bytes, got int"),
    ],
)
def test_bad_response_bodies_get_a_500_naming_the_rule(body: Any, needle: str) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])
        return body

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 500
        logs.wait_for(needle)


class ClosingList(list[bytes]):
    """A one-chunk body that is a list but has a close(), which PEP 3333 says to call."""

    def __init__(self, chunks: list[bytes], closed: threading.Event) -> None:
        super().__init__(chunks)
        self.closed = closed

    def close(self) -> None:
        self.closed.set()


def test_repeated_responses_keep_their_head_and_a_closing_list_is_closed() -> None:
    closed = threading.Event()
    headers = [("Content-Type", "text/plain"), ("X-Mode", "r\u00e9p\u00e9t\u00e9")]

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ["PATH_INFO"] == "/closing":
            start_response("201 Created", list(headers))
            return ClosingList([b"closing"], closed)
        start_response("201 Created", list(headers))
        return [b"plain"]

    with running_server(app, interface="wsgi") as server, Conn.open(server) as conn:
        # The first response checks and encodes the status and headers; the later ones
        # find them remembered: the head on the wire is the same every time.
        for _ in range(3):
            response = conn.request("GET", "/")
            assert (response.status, response.body) == (201, b"plain")
            assert response.header("x-mode") == "r\u00e9p\u00e9t\u00e9"  # latin-1 both ways
        response = conn.request("GET", "/closing")
        assert (response.status, response.body) == (201, b"closing")
    assert closed.wait(10), "close() of a list subclass was not called"


@pytest.mark.parametrize(
    ("status", "headers", "needle"),
    [
        (b"200 OK", [], "status must be a str"),
        ("200 OK", [["X-A", "b"]], "must be a (name, value) tuple"),
        ("200 OK", (("X-A", "b"),), "headers must be a list"),
    ],
)
def test_start_response_arguments_are_checked_on_every_response(
    status: Any, headers: Any, needle: str
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if environ["PATH_INFO"] == "/bad":
            start_response(status, headers)
        else:
            start_response("200 OK", [("X-A", "b")])
        return [b"body"]

    with running_server(app, interface="wsgi") as server, capture_logs() as logs:
        with Conn.open(server) as conn:
            assert conn.request("GET", "/").status == 200  # "200 OK" and ("X-A", "b") known
            assert conn.request("GET", "/bad").status == 500
        logs.wait_for(needle)
        with Conn.open(server) as conn:
            assert conn.request("GET", "/").status == 200


def test_bad_headers_are_refused_as_for_asgi() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("X-Bad", "line\r\nInjected: yes")])
        return [b"body"]

    with running_server(app, interface="wsgi") as server, capture_logs() as logs, \
            Conn.open(server) as conn:
        response = conn.request("GET", "/")
        assert response.status == 500
        assert response.header("injected") is None
        logs.wait_for("header")


# --- wsgi.file_wrapper --------------------------------------------------------------------


class WatchedFile(io.FileIO):
    reads = 0

    def read(self, size: int = -1) -> bytes:
        WatchedFile.reads += 1
        return super().read(size)

    def readinto(self, buffer: Any) -> int:
        WatchedFile.reads += 1
        return super().readinto(buffer)


def test_file_wrapper_of_a_real_file_is_sent_by_path(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    target = tmp_path / "big.bin"
    target.write_bytes(data)
    WatchedFile.reads = 0
    closed = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        file = WatchedFile(str(target), "rb")
        original_close = file.close

        def close() -> None:
            original_close()
            closed.set()

        file.close = close  # type: ignore[method-assign]
        return environ["wsgi.file_wrapper"](file, 8192)

    with running_server(app, interface="wsgi") as server:
        response = httpx.get(server.url + "/", timeout=30)
        assert response.content == data
        assert response.headers["content-length"] == str(len(data))
        assert closed.wait(5), "the app's file was not closed"
    # Sent by path (http.response.pathsend): the app's file object was never read.
    assert WatchedFile.reads == 0


def test_file_wrapper_of_a_non_file_is_iterated() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"0123456789" * 1000), 333)

    with running_server(app, interface="wsgi") as server:
        assert httpx.get(server.url + "/").content == b"0123456789" * 1000


# --- threads, limits, shutdown ------------------------------------------------------------


def test_blocked_app_threads_do_not_stall_the_event_loop() -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        entered.release()
        release.wait(10)
        return text("200 OK", b"done", start_response)

    with running_server(app, interface="wsgi", wsgi_threads=1,
                        limit_concurrency=2) as server:
        first, second, third = Conn.open(server), Conn.open(server), Conn.open(server)
        try:
            first.send(build_request("GET", "/1"))
            assert entered.acquire(timeout=5)
            second.send(build_request("GET", "/2"))  # queued behind the one thread
            wait_until(lambda: len(server.server.ctx.tasks) == 2, message="two requests in")
            # --wsgi-threads 1: the second request waits for the thread, it does not run.
            assert not entered.acquire(timeout=0.3), "a second thread ran the app"
            # The loop still answers: over the limit gets 503, bad input gets 400.
            third.send(build_request("GET", "/3"))
            assert third.read_response().status == 503
            with Conn.open(server) as bad:
                bad.send(b"GARBAGE\r\n\r\n")
                assert b" 400 " in bad.wait_closed()[:20]
        finally:
            release.set()
        assert first.read_response().body == b"done"
        assert second.read_response().body == b"done"
        for conn in (first, second, third):
            conn.sock.close()


def test_graceful_shutdown_waits_for_a_running_wsgi_request() -> None:
    release = threading.Event()
    entered = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        entered.set()
        release.wait(10)
        return text("200 OK", b"finished", start_response)

    with running_server(app, interface="wsgi") as server, Conn.open(server) as conn:
        conn.send(build_request("GET", "/"))
        assert entered.wait(5)
        server.server.should_exit = True
        server.server.wake()
        # Shutdown has begun and waits: the request is still in flight.
        wait_until(lambda: server.server.ctx.shutting_down, message="shutdown to begin")
        assert conn.nothing_arrives_within(0.2)
        release.set()
        response = conn.read_response()
        assert response.status == 200 and response.body == b"finished"
        assert not response.keeps_alive


def test_close_is_called_when_graceful_shutdown_gives_up_on_a_stream() -> None:
    closed = threading.Event()
    app = endless_app(closed, b"z" * 65536)
    with running_server(app, interface="wsgi", timeout_graceful_shutdown=0.5) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.connect((server.host, server.port))
        with Conn(sock) as conn:
            conn.send(build_request("GET", "/"))
            conn.read_head()  # then reads nothing: the app's thread blocks on backpressure
            server.server.should_exit = True
            server.server.wake()
            assert closed.wait(10), "close() was not called when shutdown gave up"


# --- real frameworks ----------------------------------------------------------------------


@pytest.fixture
def download_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    data = os.urandom(1024 * 1024 + 3)
    path = tmp_path / "download.bin"
    path.write_bytes(data)
    monkeypatch.setenv("WSGI_TEST_DOWNLOAD", str(path))
    return data


def _exercise_framework(base: str, download: bytes, *, framework: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        hello = client.get("/hello")
        assert hello.status_code == 200 and f"Hello from {framework}" in hello.text
        form = client.post("/form", data={"name": "Zoë", "tag": ["a", "b"]})
        assert form.json() == {"name": "Zoë", "tags": ["a", "b"]}
        upload = os.urandom(2 * 1024 * 1024)
        uploaded = client.post("/upload", files={"file": ("data.bin", upload)},
                               data={"note": "n"})
        assert uploaded.status_code == 200, uploaded.text
        assert uploaded.json()["size"] == len(upload)
        assert uploaded.json()["sha256"] == hashlib.sha256(upload).hexdigest()
        with client.stream("GET", "/stream") as streamed:
            assert streamed.headers.get("transfer-encoding") == "chunked"
            assert streamed.read() == "".join(f"line {i}\n" for i in range(100)).encode()
        downloaded = client.get("/download")
        assert downloaded.status_code == 200
        assert downloaded.content == download
        assert "attachment" in downloaded.headers["content-disposition"]
        assert client.get("/boom").status_code == 500
        assert client.get("/missing").status_code == 404
        # Still serving after the error.
        assert client.get("/hello").status_code == 200


def test_flask_app_is_detected_and_served(download_file: bytes) -> None:
    from tests.e2e.apps.flask_app import app

    with running_server(app) as server:
        _exercise_framework(server.url, download_file, framework="Flask")
        upload = os.urandom(3 * 1024 * 1024)
        echoed = httpx.post(server.url + "/echo-stream", content=upload, timeout=30)
        assert echoed.content == upload


def test_django_wsgi_app_is_detected_and_served_by_the_cli(download_file: bytes) -> None:
    proc = PierProcess("tests.e2e.apps.django_wsgi:application", "--port", "0",
                       "--root-path", "/site", cwd=REPO,
                       env={"WSGI_TEST_DOWNLOAD": os.environ["WSGI_TEST_DOWNLOAD"]})
    try:
        proc.wait_listening(timeout=20)
        _exercise_framework(proc.url, download_file, framework="Django")
        sock = connect_to(proc)
        with Conn(sock) as conn:
            hello = conn.request("GET", "/hello")
        assert hello.body == b"Hello from Django at /site/hello (script '/site')"
    finally:
        proc.signal()
        code, output = proc.wait()
    assert code == 0, output
    assert "as WSGI (detected: instance of WSGIHandler" in output
    assert "django view failed on purpose" in output


def test_falcon_app_is_detected_and_served() -> None:
    import falcon

    class Items:
        def on_get(self, req: Any, resp: Any, name: str) -> None:
            resp.media = {"name": name, "q": req.get_param("q")}

        def on_post(self, req: Any, resp: Any, name: str) -> None:
            resp.status = falcon.HTTP_201
            resp.media = {"name": name, "got": req.get_media()}

    app = falcon.App()
    app.add_route("/items/{name}", Items())
    with running_server(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/items/é?q=1").json() == {"name": "é", "q": "1"}
        created = client.post("/items/x", json={"n": [1, 2]})
        assert created.status_code == 201
        assert created.json() == {"name": "x", "got": {"n": [1, 2]}}
        assert client.get("/nothing").status_code == 404


def test_http2_streams_to_a_wsgi_app() -> None:
    """RFC 9113 over cleartext (prior knowledge): the same bridge serves each stream."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        if environ["PATH_INFO"] == "/stream":
            start_response("200 OK", [("Content-Type", "application/octet-stream")])
            for _ in range(32):
                yield b"s" * 65536
            return
        size, sha256 = read_digest(environ["wsgi.input"])
        answer = {"protocol": environ["SERVER_PROTOCOL"], "path": environ["PATH_INFO"],
                  "length": environ.get("CONTENT_LENGTH"), "size": size, "sha256": sha256}
        start_response("200 OK", [("Content-Type", "application/json")])
        yield json.dumps(answer).encode()

    upload = os.urandom(3 * 1024 * 1024)

    def pieces() -> Iterator[bytes]:
        for start in range(0, len(upload), 100_000):
            yield upload[start : start + 100_000]

    with running_server(validator(app), interface="wsgi") as server, \
            httpx.Client(base_url=server.url, http1=False, http2=True, timeout=30) as client:
        sized = client.post("/sized", content=upload)
        assert sized.http_version == "HTTP/2"
        assert sized.json() == {"protocol": "HTTP/2", "path": "/sized",
                                "length": str(len(upload)), "size": len(upload),
                                "sha256": hashlib.sha256(upload).hexdigest()}
        # A streamed upload has no Content-Length on HTTP/2: read to the stream's end.
        unsized = client.post("/unsized", content=pieces())
        assert unsized.json()["length"] is None
        assert unsized.json()["size"] == len(upload)
        streamed = client.get("/stream")
        assert streamed.http_version == "HTTP/2"
        assert streamed.content == b"s" * 65536 * 32


def test_wsgi_app_refuses_websocket_upgrades() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return text("200 OK", b"plain", start_response)

    with running_server(app) as server, Conn.open(server) as conn:
        response = conn.request("GET", "/", headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"),
        ])
    assert response.status == 403


def test_wsgi_errors_reaches_stderr() -> None:
    proc = PierProcess("--app-dir", str(REPO / "tests" / "e2e" / "apps"),
                       "wsgi_errors:app", "--port", "0", cwd=REPO)
    try:
        proc.wait_listening()
        assert httpx.get(proc.url + "/").status_code == 200
    finally:
        proc.signal()
        _, output = proc.wait()
    assert "written to wsgi.errors" in output
    logging.getLogger(__name__).debug(output)
