"""A WSGI app (PEP 3333) presented to pier as an ASGI3 app.

Rules:
1. The WSGI app runs in a pool thread (pool.py); the event loop never waits for it.
   What the app produces crosses to the loop as ASGI messages, and pier's one request
   lifecycle (asgi/http.py) does the rest: every protocol, limit, log line and failure
   policy of ASGI apps applies unchanged.
2. Thread -> loop: messages go into the exchange's outbox and at most one wake-up is in
   flight (`call_soon_threadsafe`), so a whole small response costs one hop each way.
   The thread counts what it queued (bytes + one per message), the loop what send()
   took; past HIGH_WATER the thread waits. send() itself waits for the transport to
   drain, so a slow client holds the app's thread back and memory stays bounded.
3. Loop -> thread: request body chunks are pulled by wsgi.input (environ.py) with one
   receive() per chunk, only when the app reads.
4. Every path ends with the iterable's close() (PEP 3333): a finished response, an app
   error, a client that left (the next write raises ClientGone in the app's thread),
   and a server that stops waiting (the task is cancelled; the same).
5. start_response follows PEP 3333: headers go out with the first non-empty body chunk
   (or at the end), so a second start_response with exc_info can still replace them;
   after they went out, exc_info is re-raised.

What does not live here: the environ and wsgi.input (environ.py), threads (pool.py),
deciding that an app is WSGI (app/interface.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from threading import get_ident
from types import TracebackType
from typing import Any, cast

from pier.types import Message, Receive, Scope, Send
from pier.wsgi.environ import ClientGone, EnvironBuilder, default_errors
from pier.wsgi.pool import ThreadPool

__all__ = ["DEFAULT_THREADS", "FileWrapper", "WSGIAdapter"]

logger = logging.getLogger("pier.error")

DEFAULT_THREADS = 10
# Bytes (plus one per message) the app's thread may have queued for the loop beyond
# what send() has taken, before it waits. With the transport's own 256 KiB buffer this
# bounds what one slow client can make a response hold in memory to ~512 KiB plus the
# chunk being written.
HIGH_WATER = 256 * 1024
FILE_BLOCK = 64 * 1024

_DONE = object()  # outbox marker: the app's thread is finished (close() was called)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


class FileWrapper:
    """wsgi.file_wrapper: a file the app hands back as its body.

    When it wraps a regular file read from its start, pier sends it by path through
    `http.response.pathsend` (no pass through the app's thread per block); otherwise it
    is iterated block by block like any other body.
    """

    __slots__ = ("block_size", "filelike")

    def __init__(self, filelike: Any, block_size: int = FILE_BLOCK) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while block := read(self.block_size):
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def sendable_path(self) -> str | None:
        """The file's path when sending that path sends exactly what iterating would."""
        filelike = self.filelike
        name = getattr(filelike, "name", None)
        if not isinstance(name, str):
            return None
        try:
            if filelike.tell() != 0:
                return None
            opened = os.fstat(filelike.fileno())
            named = os.stat(name)
        except (AttributeError, OSError, ValueError):
            return None
        same = (opened.st_dev, opened.st_ino) == (named.st_dev, named.st_ino)
        return os.path.abspath(name) if same and stat.S_ISREG(opened.st_mode) else None


# Statuses and header pairs already checked and encoded: apps repeat the same few, and
# checking one costs more than looking it up. Bounded (endless distinct Set-Cookie
# values must not grow them); shared by the pool's threads (dict get/set are atomic).
_CACHE_LIMIT = 1024
_STATUS_CODES: dict[str, int] = {}
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {}
# Looks a pair up with no Python frame, for map(): KeyError for one not seen yet.
_encoded_pair = _ENCODED.__getitem__


def _check_status(status: object) -> int:
    if not isinstance(status, str):
        raise TypeError(f"start_response() status must be a str like '200 OK', got {status!r}")
    digits = status[:3]
    if len(status) < 4 or not digits.isdigit() or status[3] != " ":
        raise ValueError(f"start_response() status must look like '200 OK', got {status!r}")
    code = int(digits)
    if len(_STATUS_CODES) < _CACHE_LIMIT:
        _STATUS_CODES[status] = code
    return code


def _encode_headers(headers: object) -> list[tuple[bytes, bytes]]:
    if type(headers) is not list:
        raise TypeError(
            f"start_response() headers must be a list of (name, value) tuples,"
            f" got {type(headers).__name__}"
        )
    encoded = []
    cache = _ENCODED
    for item in headers:
        try:
            pair = cache.get(item)
        except TypeError:  # unhashable: not a pair of str, said below
            pair = None
        if pair is None:
            pair = _encode_header(item)
            if len(cache) < _CACHE_LIMIT:
                cache[item] = pair
        encoded.append(pair)
    return encoded


def _encode_header(item: object) -> tuple[bytes, bytes]:
    if type(item) is not tuple or len(item) != 2:
        raise TypeError(f"start_response() header must be a (name, value) tuple, got {item!r}")
    name, value = item
    if type(name) is not str or type(value) is not str:
        raise TypeError(f"start_response() header names and values must be str, got {item!r}")
    try:
        return name.lower().encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(
            f"start_response() header {item!r} is not latin-1 (PEP 3333 headers are"
            " latin-1 strings; encode other text, e.g. RFC 8187 for filenames)"
        ) from None


class _Exchange:
    """One request between the loop (serve) and the app's thread (run)."""

    __slots__ = (
        "_waiter",
        "aborted",
        "adapter",
        "headers",
        "headers_sent",
        "loop",
        "outbox",
        "queued",
        "receive",
        "room",
        "scope",
        "sent",
        "status",
        "waiting",
        "wake_pending",
    )

    def __init__(
        self,
        adapter: WSGIAdapter,
        scope: Scope,
        receive: Receive,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.adapter = adapter
        self.scope = scope
        self.receive = receive
        self.loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self.outbox: deque[Any] = deque()
        self.wake_pending = False
        # Written by the app's thread only / by the loop only (no lock needed).
        self.queued = 0
        self.sent = 0
        self.waiting = False
        self.room: threading.Event | None = None
        self.aborted = False
        # `headers` is set with `status` by start_response, and read only after it.
        self.status: int | None = None
        self.headers_sent = False

    # The loop's side --------------------------------------------------------------------

    async def serve(self, send: Send) -> None:
        self.adapter.pool.submit(self.run)
        outbox = self.outbox
        failure: BaseException | None = None
        try:
            while True:
                while outbox:
                    item = outbox.popleft()
                    if type(item) is dict:
                        if failure is None:
                            try:
                                await send(item)
                            except Exception as exc:  # client gone, headers refused...
                                failure = exc
                                self._abort()
                        body = item.get("body")
                        self.sent += len(body) + 1 if body else 1
                        if self.waiting:
                            self.room.set()  # type: ignore[union-attr]
                    elif item is _DONE:
                        if failure is not None:
                            raise failure
                        return
                    elif failure is None:
                        raise item
                    # else: the app's thread failed because we stopped it; the first
                    # failure is the one to report.
                # Where the thread's wake-up lands (what asgi.wakeup does, inlined: one
                # coroutine fewer per wait; the loop is the exchange's own, as
                # asyncio.get_running_loop() is a getpid() syscall per call on 3.11).
                waiter = self._waiter
                if waiter is None:
                    waiter = self._waiter = self.loop.create_future()
                await waiter
        except asyncio.CancelledError:
            self._abort()
            raise

    def _abort(self) -> None:
        self.aborted = True
        room = self.room
        if room is not None:
            room.set()

    def _wake_from_thread(self) -> None:
        # Reset here, not where the outbox is drained: a wake-up that lands while
        # serve() is inside send() finds no waiter, and the next push must schedule
        # another one or serve() would sleep on a full outbox.
        self.wake_pending = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # The app's thread's side ------------------------------------------------------------

    def run(self) -> None:
        try:
            adapter = self.adapter
            scope = self.scope
            environ = adapter.environ.build(scope, self._fetch)
            result: Iterable[bytes] = adapter.app(environ, self._start_response)
            tail = b""
            by_path = False
            try:
                if type(result) is list and len(result) == 1:
                    # The usual small response: all of it goes in one message, so pier
                    # frames it with a Content-Length and writes head and body at once.
                    tail = result[0]
                elif (
                    type(result) is FileWrapper
                    and not self.headers_sent
                    and self.status is not None
                    and "http.response.pathsend" in scope.get("extensions", {})
                    and (path := result.sendable_path()) is not None
                ):
                    self._send_path(path)
                    by_path = True
                else:
                    for chunk in result:
                        if chunk:
                            self._write(chunk)
            finally:
                if type(result) is not list:  # a list has no close(): no lookup
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
            if by_path:
                # Sent by path, done only now: the request's task (which graceful
                # shutdown waits for) outlives close(), as for every other response.
                self._hand_over((_DONE,))
                return
            # The response's end (inline: a call per request less).
            if type(tail) is not bytes:
                _check_chunk(tail)
            last = {"type": "http.response.body", "body": tail, "more_body": False}
            if self.headers_sent:
                self._hand_over((last, _DONE))
            else:
                self._hand_over((self._start_message(), last, _DONE))
        except Exception as exc:
            self._hand_over((exc, _DONE))
        except BaseException as exc:
            # SystemExit or KeyboardInterrupt raised by app code in a pool thread ends
            # that request, not the server: pier's failure policy re-raises these
            # from an ASGI task, which would stop the worker.
            error = RuntimeError(f"the WSGI app raised {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            self._hand_over((error, _DONE))

    def _fetch(self) -> Message:
        """receive() run on the loop, waited for in the app's thread (wsgi.input)."""
        receiving = cast(Coroutine[Any, Any, Message], self.receive())
        return asyncio.run_coroutine_threadsafe(receiving, self.loop).result()

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: too late to replace them; the error goes back to the app.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame -> traceback cycle
        elif self.status is not None:
            raise RuntimeError(
                "start_response() was called a second time without exc_info (PEP 3333"
                " allows that only to replace the headers after an error)"
            )
        try:
            code = _STATUS_CODES[status]
        except (KeyError, TypeError):  # not seen yet, or not a str at all
            code = _check_status(status)
        if type(headers) is list:
            try:
                # Every pair seen before (the usual response): looked up in C.
                self.headers = list(map(_encoded_pair, headers))
            except (KeyError, TypeError):
                self.headers = _encode_headers(headers)
        else:
            self.headers = _encode_headers(headers)  # says what is wrong
        self.status = code
        return self._write_callable

    def _write_callable(self, data: bytes) -> None:
        if self.status is None:
            raise RuntimeError("write() was called before start_response()")
        if data:
            self._write(data)

    def _start_message(self) -> Message:
        if self.status is None:
            raise RuntimeError(
                "the WSGI app returned its body without calling start_response()"
            )
        self.headers_sent = True
        return {"type": "http.response.start", "status": self.status, "headers": self.headers}

    def _write(self, chunk: bytes) -> None:
        if type(chunk) is not bytes:
            _check_chunk(chunk)
        message = {"type": "http.response.body", "body": chunk, "more_body": True}
        if self.headers_sent:
            self._push((message,), len(chunk) + 1)
        else:
            self._push((self._start_message(), message), len(chunk) + 2)

    def _send_path(self, path: str) -> None:
        start = self._start_message()
        self._push((start, {"type": "http.response.pathsend", "path": path}), 2)
        # The app's close() (which may delete a temporary file) waits for the send.
        self._wait_room(0)
        if self.aborted:
            raise ClientGone("the client closed the connection")

    def _push(self, items: tuple[Any, ...], size: int) -> None:
        if self.aborted:
            raise ClientGone("the client closed the connection")
        self.queued += size
        if not self._hand_over(items):
            raise ClientGone("the server stopped")
        if self.queued - self.sent > HIGH_WATER:
            self._wait_room(HIGH_WATER)
            if self.aborted:
                raise ClientGone("the client closed the connection")

    def _hand_over(self, items: tuple[Any, ...]) -> bool:
        """Queue items for the loop, a wake-up on its way; False if the loop is closed."""
        self.outbox.extend(items)
        if not self.wake_pending:
            self.wake_pending = True
            try:
                self.loop.call_soon_threadsafe(self._wake_from_thread)
            except RuntimeError:  # the loop is closed: nobody will take this
                self.aborted = True
                return False
        return True

    def _wait_room(self, limit: int) -> None:
        room = self.room
        if room is None:
            room = self.room = threading.Event()
        self.waiting = True
        try:
            while True:
                room.clear()
                if self.queued - self.sent <= limit or self.aborted:
                    return
                room.wait()
        finally:
            self.waiting = False


def _check_chunk(chunk: object) -> None:
    if not isinstance(chunk, bytes):
        raise TypeError(
            f"WSGI response body chunks must be bytes, got {type(chunk).__name__}"
            " (PEP 3333: encode text before returning or writing it)"
        )


class WSGIAdapter:
    """Serves a WSGI app through pier's ASGI request lifecycle."""

    __slots__ = ("_loop", "_loop_thread", "app", "environ", "pool")
    interface = "WSGI"  # how pier's error lines name the app's kind

    def __init__(self, app: Any, *, threads: int = DEFAULT_THREADS, multiprocess: bool = False):
        self.app = app
        # The loop serving this adapter and its thread, remembered: on 3.11
        # asyncio.get_running_loop() makes a getpid() syscall per call.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.pool = ThreadPool(threads)
        self.environ = EnvironBuilder(
            errors=default_errors(), file_wrapper=FileWrapper, multiprocess=multiprocess
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            loop = self._loop
            if loop is None or self._loop_thread != get_ident() or not loop.is_running():
                # A loop running in this thread is the running loop (one at a time).
                loop = self._loop = asyncio.get_running_loop()
                self._loop_thread = get_ident()
            await _Exchange(self, scope, receive, loop).serve(send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.pool.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif kind == "websocket":
            # WSGI has no WebSocket: closing before accepting refuses the handshake (403).
            await send({"type": "websocket.close", "code": 1000})

    def __repr__(self) -> str:
        return f"WSGIAdapter({self.app!r}, threads={self.pool.size})"
