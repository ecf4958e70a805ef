"""pier's loggers, their default set-up, the access log and log-safe escaping.

Rules:
1. Logger names are API: "pier.error" carries the server's own messages (start-up,
   shutdown, errors); "pier.access" carries one line per request. Module loggers
   under "pier." inherit the "pier" logger's handler and level.
2. `configure(config)` runs once, before the app is imported. With --log-config the
   file decides handlers and formats (and levels, unless --log-level was given);
   otherwise pier installs its own handlers: server messages on stderr, access lines
   on stdout (as uvicorn does, so existing log pipelines keep working).
3. Untrusted text (anything a client sent: method, path, query, headers, proxy
   addresses) goes through `escape()` before it is logged, so control characters,
   newlines and ANSI escapes never reach a terminal or log file verbatim
   (the CVE-2020-7694 class: forged log lines, terminal escape injection).
4. Hot path: `AccessLog.enabled` is decided once; the server tests it before building
   anything. `record()` formats lazily with %-style arguments. The request target is
   logged as received (`/a%20b`), so a line always splits on spaces.
5. --access-log-format names fields ({client} {status} {request_header:x-id}...); it is
   compiled once into getters. --log-format json makes both loggers write one JSON
   object per line (`JsonFormatter`), access lines with every field as a key.
6. A --log-config written for uvicorn (loggers "uvicorn", "uvicorn.error",
   "uvicorn.access") is applied to pier's loggers, with an info line saying so.
"""

from __future__ import annotations

import configparser
import json
import logging
import logging.config
import os
import string
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from pier.config import Config
from pier.errors import ConfigError

__all__ = [
    "ACCESS_LOGGER",
    "ERROR_LOGGER",
    "TRACE",
    "AccessLog",
    "DefaultFormatter",
    "JsonFormatter",
    "configure",
    "escape",
]

ERROR_LOGGER = "pier.error"
ACCESS_LOGGER = "pier.access"
TRACE = 5
"""Below DEBUG: per-event protocol chatter, off unless --log-level trace."""
logging.addLevelName(TRACE, "TRACE")

_DISABLED = logging.CRITICAL + 1
_INFO = logging.INFO
_ACCESS_FORMAT = '%s - "%s %s%s%s HTTP/%s" %d %dB %.2fms'
_OUR_HANDLER = "_pier_default"  # marks handlers configure() installed, so it can replace them


# --- escaping --------------------------------------------------------------------------


def escape(text: str | bytes) -> str:
    """`text` made safe for one log line: printable characters kept, the rest escaped.

    Non-printable characters (C0/C1 controls, DEL, newlines, Unicode format characters
    such as bidi overrides) become \\xNN / \\uNNNN; a quote and a backslash are
    backslashed so the quoted request line in the access log stays unambiguous.
    Bytes are read as UTF-8; bytes that are not UTF-8 are shown as \\xNN.
    """
    if not isinstance(text, str):  # bytes from the wire (a raw path, a header)
        text = bytes(text).decode("utf-8", "surrogateescape")
    # Fast path: almost every real path and query is printable ASCII or UTF-8 text.
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(_escape_char(char) for char in text)


_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


# --- formatting ------------------------------------------------------------------------

_COLOURS = {
    TRACE: "\x1b[34m",  # blue
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET = "\x1b[0m"
DEFAULT_FORMAT = "%(levelprefix)s %(message)s"


def _wants_colour(use_colors: bool | None, stream: TextIO) -> bool:
    if use_colors is not None:
        return use_colors
    # https://no-color.org: a set NO_COLOR means no colour unless asked for.
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class DefaultFormatter(logging.Formatter):
    """Adds %(levelprefix)s ("INFO:     ", coloured when wanted) to the record.

    `tag_process` (a worker of --workers N) puts "[PID] " before each message, so
    the lines of several workers can be told apart. Usable from a dictConfig:
    {"()": "pier.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s",
    "use_colors": false}.
    """

    def __init__(
        self,
        fmt: str | None = DEFAULT_FORMAT,
        datefmt: str | None = None,
        style: Any = "%",
        *,
        use_colors: bool | None = None,
        tag_process: bool = False,
    ) -> None:
        super().__init__(fmt, datefmt, style)
        self.use_colors = _wants_colour(use_colors, sys.stderr)
        self.tag_process = tag_process

    def formatMessage(self, record: logging.LogRecord) -> str:
        prefix = f"{record.levelname}:".ljust(9)
        if self.use_colors:
            colour = _COLOURS.get(record.levelno)
            if colour:
                prefix = f"{colour}{prefix}{_RESET}"
        if self.tag_process:
            prefix = f"{prefix} [{record.process}]"
        record.levelprefix = prefix
        return super().formatMessage(record)


# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "levelprefix", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, then the record's
    extra fields (an access line's client, method, target, status...) and, for an
    error, the traceback as "exception". Usable from a dictConfig:
    {"()": "pier.logging.JsonFormatter"}.
    """

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        fields = getattr(record, "access", None)
        if isinstance(fields, dict):
            data.update(fields)
        else:
            for key, value in vars(record).items():
                if key not in _RECORD_ATTRIBUTES and key not in data:
                    data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str, ensure_ascii=False)


# --- configure -------------------------------------------------------------------------


def configure(config: Config, *, worker: bool = False) -> None:
    """Set up pier's loggers from `config` (log_config, log_level, access_log, use_colors,
    log_format). `worker`: this is one of several worker processes (lines carry its pid).

    Safe to call more than once: handlers a previous call installed are replaced.
    Raises ConfigError naming the file if log_config cannot be loaded.
    """
    pier_logger = logging.getLogger("pier")
    error_logger = logging.getLogger(ERROR_LOGGER)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    for logger in (pier_logger, access_logger):
        for handler in list(logger.handlers):
            if getattr(handler, _OUR_HANDLER, False):
                logger.removeHandler(handler)

    if config.log_config is not None:
        # Start from logging's own defaults, so that what the file leaves unsaid (a
        # file that only configures the root logger) is not decided by an earlier call.
        for logger in (pier_logger, error_logger, access_logger):
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
            logger.disabled = False
        _load_log_config(config.log_config)
        adopted = _adopt_uvicorn_loggers()
        set_levels = "log_level" in config.given
    else:
        json_lines = config.log_format == "json"
        pier_logger.addHandler(_handler(sys.stderr, config.use_colors, json_lines, worker))
        pier_logger.propagate = False
        access_logger.addHandler(_handler(sys.stdout, config.use_colors, json_lines, False))
        access_logger.propagate = False
        set_levels = True
        adopted = []

    if set_levels:
        level = config.log_level_number
        for logger in (pier_logger, error_logger, access_logger):
            logger.setLevel(level)

    if config.access_log:
        access_logger.disabled = False
        if access_logger.level == _DISABLED:  # left by an earlier configure()
            access_logger.setLevel(logging.NOTSET)
    else:
        # Level above CRITICAL: isEnabledFor(INFO) is False, so AccessLog.enabled is
        # False and the server skips building access lines altogether.
        access_logger.setLevel(_DISABLED)
        access_logger.propagate = False
    for theirs, ours in adopted:
        error_logger.info(
            "--log-config configures uvicorn's logger %r; applied to pier's %r"
            " (pier's loggers: pier.error, pier.access)", theirs, ours)


def _handler(
    stream: TextIO, use_colors: bool | None, json_lines: bool, tag_process: bool
) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(DefaultFormatter(
            use_colors=_wants_colour(use_colors, stream), tag_process=tag_process))
    setattr(handler, _OUR_HANDLER, True)
    return handler


# uvicorn's logger names and pier's: a --log-config written for uvicorn works here too.
UVICORN_LOGGERS = {"uvicorn": "pier", "uvicorn.error": ERROR_LOGGER,
                   "uvicorn.access": ACCESS_LOGGER}


def _adopt_uvicorn_loggers() -> list[tuple[str, str]]:
    """Give pier's loggers what the config file gave uvicorn's; [(theirs, ours)]."""
    adopted = []
    known = logging.Logger.manager.loggerDict
    for theirs, ours in UVICORN_LOGGERS.items():
        source = known.get(theirs)
        if not isinstance(source, logging.Logger):
            continue
        if not source.handlers and source.level == logging.NOTSET:
            continue
        target = logging.getLogger(ours)
        target_configured = target.handlers or target.level != logging.NOTSET
        if target_configured:
            continue  # the file configures pier's logger itself: that wins
        target.handlers = list(source.handlers)
        target.setLevel(source.level)
        target.propagate = source.propagate
        adopted.append((theirs, ours))
    return adopted


def _load_log_config(log_config: str | dict[str, Any]) -> None:
    if isinstance(log_config, dict):
        _dict_config(dict(log_config), "the log_config dictionary")
        return
    path = log_config
    lowered = path.lower()
    if lowered.endswith(".ini"):
        try:
            logging.config.fileConfig(path, disable_existing_loggers=False)
        except (configparser.Error, KeyError, ValueError, TypeError, AttributeError,
                ImportError, RuntimeError, OSError) as exc:
            raise ConfigError(
                f"log config {path!r} was rejected by logging.config.fileConfig: "
                f"{_describe(exc)}; fix the file"
            ) from None
        return
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read log config {path!r}: {exc}") from None
    if lowered.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"log config {path!r} is not valid JSON: {exc}") from None
    else:
        try:
            import yaml  # optional dependency: pip install pier[yaml]
        except ImportError:
            raise ConfigError(
                f"log config {path!r} is YAML but PyYAML is not installed; "
                "run: pip install 'pier[yaml]'"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"log config {path!r} is not valid YAML: "
                + _one_line(exc).replace('in "<unicode string>", ', "")
            ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"log config {path!r} must hold a mapping (a logging dictConfig), "
            f"not {type(data).__name__}"
        )
    _dict_config(data, f"log config {path!r}")


def _dict_config(data: dict[str, Any], what: str) -> None:
    # The app's loggers do not exist yet, but pier's module loggers may: keep them.
    data.setdefault("disable_existing_loggers", False)
    data.setdefault("version", 1)
    try:
        logging.config.dictConfig(data)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError) as exc:
        raise ConfigError(
            f"{what} was rejected by logging.config.dictConfig: {_describe(exc)}; fix the file"
        ) from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):  # what fileConfig raises for a missing [section]
        return f"missing section or key {exc}"
    text = f"{type(exc).__name__}: {_one_line(exc)}"
    # dictConfig wraps the real reason ("No module named 'no'") as the cause.
    if exc.__cause__ is not None:
        text += f" ({type(exc.__cause__).__name__}: {_one_line(exc.__cause__)})"
    return text


def _one_line(exc: BaseException) -> str:
    # Parser messages span lines; a ConfigError is one line on stderr.
    return " ".join(str(exc).split())


# --- trace -------------------------------------------------------------------------------


def traced_app(app: Any) -> Any:
    """The app with its HTTP and WebSocket messages traced (see `traced`); the server
    wraps the app in it once, at --log-level trace, so no request pays for the check."""

    async def app_with_trace(scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] != "lifespan":
            receive, send = traced(scope, receive, send)
        return await app(scope, receive, send)

    return app_with_trace


def traced(scope: Any, receive: Any, send: Any) -> tuple[Any, Any]:
    """--log-level trace: receive/send that log each ASGI message's type and sizes on
    pier.error, never a body (a body may hold anything: passwords, personal data)."""
    client = scope.get("client")
    peer = f"{client[0]}:{client[1]}" if client else "-"
    where = f"{scope.get('method', 'WebSocket')} {escape(scope.get('raw_path', b''))} from {peer}"
    log = logging.getLogger(ERROR_LOGGER).log

    async def traced_receive() -> Any:
        message = await receive()
        log(TRACE, "ASGI receive %s: %s", where, describe_message(message))
        return message

    async def traced_send(message: Any) -> None:
        log(TRACE, "ASGI send %s: %s", where, describe_message(message))
        await send(message)

    return traced_receive, traced_send


def describe_message(message: Any) -> str:
    """An ASGI message for a trace line: its type and sizes, never its content."""
    if not isinstance(message, dict):
        return f"not a message dict ({type(message).__name__})"
    parts = [escape(str(message.get("type")))]
    if "status" in message:
        parts.append(f"status {message['status']}")
    if "headers" in message:
        try:
            parts.append(f"{len(message['headers'])} headers")
        except TypeError:
            parts.append("headers of no length")
    for key in ("body", "bytes", "text"):
        value = message.get(key)
        if isinstance(value, bytes | bytearray | memoryview | str):
            parts.append(f"{key} {len(value)} {'chars' if key == 'text' else 'bytes'}")
    if "more_body" in message:
        parts.append(f"more_body={bool(message['more_body'])}")
    if "code" in message:
        parts.append(f"code {message['code']}")
    return ", ".join(parts)


# --- access log ------------------------------------------------------------------------


class AccessLog:
    """One line per finished response on "pier.access"; create it after `configure`.

    The server checks `enabled` before gathering anything, then calls `record`.
    `fmt` is --access-log-format; `structured` (--log-format json) puts every field on
    the record as `record.access` for JsonFormatter.
    """

    __slots__ = ("_logger", "_parts", "_plain", "_structured", "enabled")

    def __init__(
        self,
        logger: logging.Logger | None = None,
        *,
        fmt: str | None = None,
        structured: bool = False,
    ) -> None:
        self._logger = logger if logger is not None else logging.getLogger(ACCESS_LOGGER)
        self.enabled: bool = self._logger.isEnabledFor(logging.INFO)
        self._parts = None if fmt is None else list(string.Formatter().parse(fmt))
        self._structured = structured
        self._plain = fmt is None and not structured

    def record(
        self,
        *,
        client: tuple[str, int] | None,
        method: str,
        path: str | bytes,
        query_string: bytes,
        http_version: str,
        status: int,
        size: int,
        duration: float,
        request_headers: Iterable[tuple[bytes, bytes]] = (),
        response_headers: Iterable[Any] = (),
        ended: str = "completed",
    ) -> None:
        """Log `127.0.0.1:51234 - "GET /a%20b?c=1 HTTP/1.1" 200 13B 0.42ms`.

        `path` is the target's path as received (raw, not percent-decoded), `size`
        the response body bytes sent, `duration` seconds, `ended` how the response
        ended when not "completed" (shown after the line). The escaped fields are
        also on the LogRecord (client_addr, method, path, query_string,
        http_version, status_code, size, duration, ended) for custom formatters.
        """
        logger = self._logger
        if not logger.isEnabledFor(_INFO):  # a level raised after start-up still counts
            return
        if client is None:
            client_addr = "-"
        else:
            host = escape(client[0])
            client_addr = f"[{host}]:{client[1]}" if ":" in host else f"{host}:{client[1]}"
        method = escape(method)
        path = escape(path)
        query = escape(query_string) if query_string else ""
        # One record shape for every line, so a --log-config formatter may name any of
        # these fields, `ended` included. The default line keeps to makeRecord + handle
        # (Logger.info minus findCaller's stack walk, a fifth of this method's cost).
        extra: dict[str, Any] = {
            "client_addr": client_addr,
            "method": method,
            "path": path,
            "query_string": query,
            "http_version": http_version,
            "status_code": status,
            "size": size,
            "duration": duration,
            "ended": ended,
        }
        args: tuple[Any, ...]
        if self._plain:
            msg = _ACCESS_FORMAT
            args = (client_addr, method, path, "?" if query else "", query, http_version,
                    status, size, duration * 1000.0)
            if ended != "completed":
                msg += " %s"
                args += (ended,)
        else:
            fields = _access_fields(extra, request_headers)
            msg = self._render(fields, request_headers, response_headers)
            args = ()
            if self._structured:
                extra["access"] = fields
        logger.handle(
            logger.makeRecord(
                logger.name, _INFO, __file__, 0, msg, args, None, "AccessLog.record", extra
            )
        )

    def _render(
        self,
        fields: dict[str, Any],
        request_headers: Iterable[tuple[bytes, bytes]],
        response_headers: Iterable[Any],
    ) -> str:
        if self._parts is None:  # the default line, for JSON's "message"
            line = (
                f'{fields["client"]} - "{fields["method"]} {fields["target"]}'
                f' {fields["protocol"]}" {fields["status"]} {fields["bytes"]}B'
                f' {fields["duration_ms"]:.2f}ms'
            )
            return line if fields["ended"] == "completed" else f"{line} {fields['ended']}"
        out = []
        for literal, name, spec, _ in self._parts:
            out.append(literal)
            if name is None:
                continue
            if name == "request_header":
                value: Any = _header(request_headers, spec or "")
            elif name == "response_header":
                value = _header(response_headers, spec or "")
            else:
                value = format(fields[name], spec or "")
            out.append(str(value))
        return "".join(out)


def _access_fields(
    extra: dict[str, Any], request_headers: Iterable[tuple[bytes, bytes]]
) -> dict[str, Any]:
    """--access-log-format's named fields (pier.config.ACCESS_LOG_FIELDS)."""
    query = extra["query_string"]
    duration = extra["duration"]
    headers = list(request_headers)
    return {
        "client": extra["client_addr"],
        "method": extra["method"],
        "target": extra["path"] + ("?" + query if query else ""),
        "protocol": "HTTP/" + extra["http_version"],
        "status": extra["status_code"],
        "bytes": extra["size"],
        "duration_ms": round(duration * 1000.0, 3),
        "duration_us": int(duration * 1_000_000),
        "request_id": _header(headers, "x-request-id"),
        "user_agent": _header(headers, "user-agent"),
        "referer": _header(headers, "referer"),
        "ended": extra["ended"],
    }


def _header(headers: Iterable[Any], name: str) -> str:
    """The first header `name` (any case) escaped for the log, or "-"."""
    wanted = name.lower().encode("latin-1")
    for key, value in headers:
        if bytes(key).lower() == wanted:
            return escape(bytes(value))
    return "-"
