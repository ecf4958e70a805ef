"""The WSGI side of one request: its environ and its wsgi.input (PEP 3333).

Rules:
1. Everything here runs in the app's thread, never on the event loop: building the
   environ is per-request work the loop should not pay for.
2. Strings in the environ are "bytes as latin-1" (PEP 3333, "Unicode Issues"): PATH_INFO
   is the percent-decoded raw path read as latin-1, so an app (or Werkzeug, Django)
   recovers the exact bytes the client sent and decodes them itself.
3. wsgi.input pulls body chunks from the loop one receive() at a time, only when the
   app reads: the ASGI cycle's flow control then pauses the socket while the app has
   not taken what was read, so an upload never piles up in memory. It stops at
   CONTENT_LENGTH even if more were to come.

What does not live here: running the app, start_response and the response (bridge.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from pier.proto import native
from pier.types import Message, Scope

__all__ = ["EnvironBuilder", "InputStream"]

_DEFAULT_PORTS = {"http": "80", "https": "443"}

# Header names whose repeated lines join with something other than ", " (RFC 9113
# section 8.2.3 splits Cookie into one field per cookie; joining them with a comma
# would hand the app one cookie with a comma in it).
_JOIN = {"HTTP_COOKIE": "; "}


class ClientGone(OSError):
    """The client went away while the app was reading the request body."""


class InputStream:
    """wsgi.input: the request body, read from the ASGI receive() on demand."""

    __slots__ = ("_buf", "_eof", "_fetch", "_left", "_pos")

    def __init__(self, fetch: Callable[[], Message] | None, content_length: int | None) -> None:
        # fetch() runs receive() on the loop and waits for its answer; None: no body.
        self._fetch = fetch
        self._buf = b""
        self._pos = 0
        # Bytes the app may still read (None: up to the end of a chunked body).
        self._left = content_length
        self._eof = fetch is None or content_length == 0

    def _more(self) -> bool:
        """Pull the next chunk into the buffer; False at the end of the body."""
        while not self._eof:
            assert self._fetch is not None
            message = self._fetch()
            if message["type"] != "http.request":
                self._eof = True
                raise ClientGone("the client closed the connection before sending its whole body")
            chunk: bytes = message.get("body", b"")
            if not message.get("more_body", False):
                self._eof = True
            left = self._left
            if left is not None:
                if len(chunk) >= left:
                    chunk = chunk[:left]
                    self._eof = True
                self._left = left - len(chunk)
            if chunk:
                self._buf = chunk
                self._pos = 0
                return True
        return False

    def _take(self, size: int) -> bytes:
        buf, pos = self._buf, self._pos
        end = pos + size
        if pos == 0 and end >= len(buf):
            # The common case (read() or read(big)): the chunk itself, not a copy.
            self._buf = b""
            return buf
        self._pos = end
        return buf[pos:end]

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._take(len(self._buf))] if self._pos < len(self._buf) else []
            while self._more():
                parts.append(self._take(len(self._buf)))
            return parts[0] if len(parts) == 1 else b"".join(parts)
        parts = []
        want = size
        while want > 0:
            if self._pos >= len(self._buf) and not self._more():
                break
            piece = self._take(min(want, len(self._buf) - self._pos))
            parts.append(piece)
            want -= len(piece)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        parts: list[bytes] = []
        got = 0
        while limit < 0 or got < limit:
            if self._pos >= len(self._buf) and not self._more():
                break
            buf, pos = self._buf, self._pos
            end = buf.find(b"\n", pos) + 1 or len(buf)
            if limit >= 0:
                end = min(end, pos + limit - got)
            piece = self._take(end - pos)
            parts.append(piece)
            got += len(piece)
            if piece.endswith(b"\n"):
                break
        return b"".join(parts)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


def _server(scope: Scope, host: str | None) -> tuple[str, str]:
    server = scope.get("server")
    if server and server[1] is not None:
        return str(server[0]), str(server[1])
    # A Unix socket (or no server in the scope): the Host header names the site.
    scheme = scope.get("scheme", "http")
    if host:
        name, sep, port = host.rpartition(":")
        # "[::1]:8000" has a port, "[::1]" and "::1" do not.
        if sep and port.isdigit() and (name.endswith("]") or ":" not in name):
            return name, port
        return host, _DEFAULT_PORTS.get(scheme, "80")
    return "localhost", _DEFAULT_PORTS.get(scheme, "80")


# Header-name translations and environ templates kept per adapter: clients repeat the
# same few names. Bounded, so a client sending endless distinct names cannot grow them.
_CACHE_LIMIT = 512
_DROPPED = ""  # cached translation of a header name that never reaches the environ
# An int, not b"%": `in` tries a bytes operand as an int first and pays for the
# TypeError (~1.5k instructions); find() parses its arguments (~0.4k).
_PERCENT = ord("%")
# What an ASGI http scope may leave out, as the spec defaults it.
_SCOPE_DEFAULTS: dict[str, Any] = {
    "server": None,
    "client": None,
    "scheme": "http",
    "http_version": "1.1",
    "raw_path": None,
    "root_path": "",
    "query_string": b"",
}


class EnvironBuilder:
    """Builds the PEP 3333 environ for each ASGI http scope of one app.

    What is the same for every request (wsgi.version, wsgi.errors, ...) is a template
    copied per request; header names are translated once (`accept-encoding` ->
    `HTTP_ACCEPT_ENCODING`) and remembered.
    """

    __slots__ = ("_base", "_last", "_names", "_templates")

    def __init__(self, *, errors: Any, file_wrapper: Any, multiprocess: bool) -> None:
        self._base: dict[str, Any] = {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            # Read by Werkzeug and Django: the body ends where the server says (chunked
            # requests have no CONTENT_LENGTH), not at CONTENT_LENGTH only.
            "wsgi.input_terminated": True,
            "wsgi.errors": errors,
            "wsgi.multithread": True,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": file_wrapper,
        }
        self._names: dict[bytes, str] = {}
        # The base plus what one listening address, scheme and HTTP version fix
        # (SERVER_NAME, SERVER_PORT, SERVER_PROTOCOL, wsgi.url_scheme): one copy per
        # request instead of a lookup and a store for each.
        self._templates: dict[tuple[Any, str, str], dict[str, Any]] = {}
        # The last template used and the (server, scheme, version) objects it was for:
        # pier hands every request of a listener the same objects, and three identity
        # checks cost less than hashing a key tuple (one tuple, read and replaced whole,
        # so the pool's threads may share it).
        self._last: tuple[Any, Any, Any, dict[str, Any]] = (None, None, None, {})

    def _template(self, scope: Scope, server: Any, scheme: str, version: str) -> dict[str, Any]:
        try:
            template = self._templates.get((server, scheme, version))
        except TypeError:  # an unhashable server (a list): not remembered
            template = None
        if template is not None:
            self._last = (server, scheme, version, template)
            return template
        template = self._base.copy()
        template["SERVER_PROTOCOL"] = "HTTP/" + version
        template["wsgi.url_scheme"] = scheme
        if server and server[1] is not None:
            template["SERVER_NAME"], template["SERVER_PORT"] = _server(scope, None)
            if len(self._templates) < _CACHE_LIMIT and type(server) is tuple:
                # (A list, as another server may send, is not hashable: not remembered.)
                self._templates[(server, scheme, version)] = template
                self._last = (server, scheme, version, template)
        return template

    def build(self, scope: Scope, fetch: Callable[[], Message]) -> dict[str, Any]:
        """The environ for scope; wsgi.input reads through fetch()."""
        try:
            # Subscripts, not get(): pier's scopes have every key (a get() call costs
            # ~100 instructions more); another server's may leave optional ones out.
            server = scope["server"]
            scheme: str = scope["scheme"]
            version: str = scope["http_version"]
            raw_path: bytes | None = scope["raw_path"]
            root_path: str = scope["root_path"]
            query_string: bytes = scope["query_string"]
            client = scope["client"]
        except KeyError:
            return self.build({**_SCOPE_DEFAULTS, **scope}, fetch)
        last = self._last
        if last[0] is server and last[1] is scheme and last[2] is version:
            template = last[3]
        else:
            template = self._template(scope, server, scheme, version)
        headers = scope["headers"]
        environ = template.copy()
        if not _known_fields(environ, self._names, headers):
            # A new name, a dropped one or a repeated one: one at a time.
            environ = template.copy()
            self._add_headers(environ, headers)
        if raw_path is None:
            raw_path = scope["path"].encode("utf-8")
        if root_path:
            raw_root = root_path.encode("utf-8")
            environ["SCRIPT_NAME"] = raw_root.decode("latin-1")
            if raw_path.startswith(raw_root):
                raw_path = raw_path[len(raw_root) :]
        if _PERCENT in raw_path:
            raw_path = unquote_to_bytes(raw_path)
        environ["REQUEST_METHOD"] = scope["method"]
        environ["PATH_INFO"] = raw_path.decode("latin-1")
        environ["QUERY_STRING"] = query_string.decode("latin-1")
        if "SERVER_NAME" not in environ:
            # A Unix socket (or no server in the scope): the Host header names the site.
            environ["SERVER_NAME"], environ["SERVER_PORT"] = _server(
                scope, environ.get("HTTP_HOST")
            )
        if client:
            environ["REMOTE_ADDR"] = client[0]
            environ["REMOTE_PORT"] = str(client[1])
        # wsgi.input, inline (a call per request less).
        length = environ.get("CONTENT_LENGTH")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                size = 0
            environ["wsgi.input"] = InputStream(fetch, size) if size > 0 else _NO_BODY
        elif "HTTP_TRANSFER_ENCODING" in environ or version not in ("1.0", "1.1"):
            # Chunked, or HTTP/2 and later, where a body needs no Content-Length.
            environ["wsgi.input"] = InputStream(fetch, None)
        else:
            # HTTP/1.x without either header has no body (RFC 9112 section 6.3): no hop.
            environ["wsgi.input"] = _NO_BODY
        return environ

    def _add_headers(self, environ: dict[str, Any], headers: Any) -> None:
        """The header fields, one at a time: repeated names join, dropped names go."""
        names = self._names
        for raw_name, raw_value in headers:
            key = names.get(raw_name)
            if key is None:
                key = _environ_key(raw_name)
                if key and len(names) < _CACHE_LIMIT:
                    names[raw_name] = key
            if not key:  # _DROPPED
                continue
            value = raw_value.decode("latin-1")
            if key in environ:
                value = environ[key] + _JOIN.get(key, ",") + value
            environ[key] = value


def _python_known_fields(
    environ: dict[str, Any], names: dict[bytes, str], headers: list[tuple[bytes, bytes]]
) -> bool:
    """The usual request's fields: every name translated before, none repeated (else
    False, `environ` partly filled). What the C module's environ_fields does."""
    try:
        for raw_name, raw_value in headers:
            key = names[raw_name]
            if key in environ:
                return False
            environ[key] = raw_value.decode("latin-1")
    except (KeyError, TypeError, ValueError, AttributeError):  # a shape _add_headers names
        return False
    return True


_native = native.load()
# C when built (~0.4k instructions per field instead of ~1.7k), else the same in Python.
_known_fields: Callable[[dict[str, Any], dict[bytes, str], list[tuple[bytes, bytes]]], bool] = (
    _python_known_fields if _native is None else _native.environ_fields
)


def _environ_key(raw_name: bytes) -> str:
    name = raw_name.decode("latin-1").upper()
    if "_" in name:
        # X_Forwarded_For and X-Forwarded-For would both become HTTP_X_FORWARDED_FOR:
        # drop the underscore form so a client cannot shadow a header a proxy set
        # (gunicorn and nginx do the same).
        return _DROPPED
    if name == "CONTENT-LENGTH":
        return "CONTENT_LENGTH"
    if name == "CONTENT-TYPE":
        return "CONTENT_TYPE"
    return "HTTP_" + name.replace("-", "_")


# wsgi.input of every request without a body: nothing to read, no state to share.
_NO_BODY = InputStream(None, 0)


def default_errors() -> Any:
    """wsgi.errors: the process's stderr, where pier's own log goes by default."""
    return sys.stderr
