"""pier's configuration: ONE option table, and the Config object built from it.

Rules:
1. Every option is one row in `_OPTIONS` (name, default, parser, help, group, flag, env).
   The CLI flags (pier.cli), the PIER_* environment variables, `pier --help`, the
   docs (`options()`) and the keyword arguments of `Config` are all generated from
   that row; nothing else may list option names. Adding an option = one new row,
   plus its type line in `Config`'s declarations (a test checks the two agree, so
   mypy can type `config.port` for the server code).
2. Values are validated and normalised once, in `Config.__init__`; the server reads
   plain attributes and never re-checks them. An unusable value is a `ConfigError`
   naming the option (as the user spelled it: `--port`, `PIER_PORT`, `port=`), the
   value and what is accepted. An unknown name gets a did-you-mean.
3. Precedence: command line > PIER_* environment > config file > table default
   (`Config.from_env`; the file is pier.configfile's). A plain `Config(app, ...)` reads
   no environment, and a file only when `config_file=` names one: programmatic use is
   reproducible. `Config.sources` says where each value came from (--print-config).
4. No I/O here except what an option itself means at start-up: reading `env_file`
   into os.environ (before the app is imported) and checking that `log_config`
   exists. Loading the log config is pier.logging's job; binding is pier.io's.
5. A Config whose app is an import string is picklable (worker processes).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pier.addresses import BIND_FORMATS, parse_bind
from pier.errors import ConfigError

__all__ = ["LOG_LEVELS", "Config", "Option", "bool_word", "load_env_file", "options"]

LOG_LEVELS: dict[str, int] = {
    "critical": 50,
    "error": 40,
    "warning": 30,
    "info": 20,
    "debug": 10,
    "trace": 5,
}
"""log_level names and their numeric levels ("trace" is pier's level 5, below DEBUG)."""

LOG_CONFIG_SUFFIXES = (".json", ".yaml", ".yml", ".ini")


class _Invalid(ValueError):
    """Raised by a parser; `accepted` completes the sentence "expected ..."."""

    _WHOLE: Any = object()

    def __init__(self, accepted: str, *, item: object = _WHOLE) -> None:
        super().__init__(accepted)
        self.accepted = accepted
        self.item = item
        """The offending element of a list value, so the message quotes just that."""


# --- parsers -------------------------------------------------------------------------
# Each takes either a string (command line, environment) or a Python value (Config
# keyword) and returns the normalised value, or raises _Invalid.

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def bool_word(text: str) -> bool | None:
    """True or False for a yes/no word (true, 0, off...), None for anything else."""
    word = text.strip().lower()
    return True if word in _TRUE else False if word in _FALSE else None


def _parse_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise _Invalid("true or false (1/0, yes/no, on/off also work)")


def _int_parser(low: int, high: int | None = None, note: str = "") -> Callable[[object], int]:
    bounds = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    accepted = bounds + note

    def parse(value: object) -> int:
        if isinstance(value, bool):  # bool is an int subclass; True is not a port
            raise _Invalid(accepted)
        if isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                raise _Invalid(accepted) from None
        elif isinstance(value, int):
            number = value
        else:
            raise _Invalid(accepted)
        if number < low or (high is not None and number > high):
            raise _Invalid(accepted)
        return number

    return parse


def _seconds_parser(*, positive: bool) -> Callable[[object], float]:
    accepted = "a number of seconds " + ("> 0" if positive else ">= 0")

    def parse(value: object) -> float:
        if isinstance(value, bool):
            raise _Invalid(accepted)
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _Invalid(accepted) from None
        elif isinstance(value, int | float):
            number = float(value)
        else:
            raise _Invalid(accepted)
        # NaN fails both comparisons, so it is rejected here too.
        if not (number > 0 if positive else number >= 0) or number == float("inf"):
            raise _Invalid(accepted)
        return number

    return parse


def _optional(parse: Callable[[object], Any]) -> Callable[[object], Any]:
    """None stays None; on the command line or in the environment, "" or "none" too."""

    def parse_optional(value: object) -> Any:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return parse(value)

    return parse_optional


def _parse_str(value: object) -> str:
    if isinstance(value, str):
        return value
    raise _Invalid("a string")


def _parse_host(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise _Invalid("a host name or IP address, e.g. 127.0.0.1 or 0.0.0.0")


def _parse_path(value: object) -> str:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and value:
        return value
    raise _Invalid("a file system path")


def _parse_app(value: object) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise _Invalid('an import string "module:attr", e.g. main:app')
        return value.strip()
    if callable(value):
        return value
    raise _Invalid('an import string "module:attr" (e.g. main:app) or an ASGI callable')


def _parse_root_path(value: object) -> str:
    if isinstance(value, str) and (value == "" or value.startswith("/")):
        return value
    raise _Invalid('"" or a path starting with "/", e.g. /api')


def _parse_forwarded_allow_ips(value: object) -> str:
    # Kept as given (the proxy layer parses it); a list is joined for convenience.
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return ",".join(item.strip() for item in value)
    raise _Invalid('comma-separated IPs or networks, e.g. "127.0.0.1,10.0.0.0/8", or "*"')


# RFC 9110 section 5.6.2: field-name = token; tchar = "!" / "#" / ... / ALPHA / DIGIT.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEADER_ACCEPTED = 'NAME:VALUE, e.g. "X-Frame-Options: DENY"'


def _parse_header(item: object) -> tuple[str, str]:
    if isinstance(item, str):
        if ":" not in item:
            raise _Invalid(_HEADER_ACCEPTED + " (no ':' found)")
        name, _, value = item.partition(":")
    elif (
        isinstance(item, tuple | list)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
    ):
        name, value = item
    else:
        raise _Invalid(_HEADER_ACCEPTED + " or a (name, value) pair of strings")
    name, value = name.strip(), value.strip()
    if not _TOKEN.match(name):
        raise _Invalid(_HEADER_ACCEPTED + " where NAME is a token (letters, digits, -)")
    # RFC 9110 section 5.5: CR, LF and NUL in a field value would split the response.
    if any(ch in value for ch in "\r\n\x00"):
        raise _Invalid(_HEADER_ACCEPTED + " without CR, LF or NUL in VALUE")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise _Invalid(_HEADER_ACCEPTED + " where VALUE is Latin-1 text") from None
    return name, value


def _parse_headers(value: object) -> list[tuple[str, str]]:
    # From the environment: one NAME:VALUE per line (a value may contain "," or ";").
    if isinstance(value, str):
        items: Iterable[object] = [line for line in value.splitlines() if line.strip()]
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise _Invalid("a list of " + _HEADER_ACCEPTED)
    parsed = []
    for item in items:
        try:
            parsed.append(_parse_header(item))
        except _Invalid as exc:
            raise _Invalid(exc.accepted, item=item) from None
    return parsed


def _parse_log_config(value: object) -> str | dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return value  # a dictConfig dictionary, used as is
    path = _parse_path(value)
    if not path.lower().endswith(LOG_CONFIG_SUFFIXES):
        raise _Invalid(
            "a .json, .yaml or .yml file (logging dictConfig) or an .ini file (fileConfig)"
        )
    return path


# --- issue 5 (workers, sockets, reload, TLS) parsers ------------------------------------


def _parse_workers(value: object) -> int:
    """A worker count; 0 or "auto" is one per CPU this process may run on."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        value = 0
    number = _int_parser(0, note=' or "auto" (0 and auto mean one per CPU)')(value)
    if number == 0:
        try:
            return len(os.sched_getaffinity(0))  # honours CPU pinning and cgroups cpusets
        except AttributeError:  # not on Linux
            return os.cpu_count() or 1
    return number


def _string_list(value: object, accepted: str) -> list[str]:
    # From the environment: comma-separated (no --bind or glob form needs a comma).
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise _Invalid(accepted)


def _parse_bind(value: object) -> list[str]:
    items = _string_list(value, f"a list of addresses: {BIND_FORMATS}")
    for item in items:
        try:
            parse_bind(item)
        except ValueError as exc:
            raise _Invalid(str(exc), item=item) from None
    return items


def _parse_globs(value: object) -> list[str]:
    return _string_list(value, 'a list of glob patterns, e.g. "*.py,templates/*.html"')


def _parse_paths(value: object) -> list[str]:
    if isinstance(value, list | tuple):
        value = [os.fspath(item) if isinstance(item, os.PathLike) else item for item in value]
    return _string_list(value, "a list of directories")


def _parse_admin_bind(value: object) -> str:
    text = _parse_str(value).strip()
    try:
        address = parse_bind(text)
    except ValueError as exc:
        raise _Invalid(f"HOST:PORT or unix:PATH ({exc})") from None
    if address.kind == "fd":
        raise _Invalid("HOST:PORT or unix:PATH (an inherited fd is for the app's listeners)")
    return text


_CERT_REQS = ("none", "optional", "required")  # ssl.CERT_NONE, CERT_OPTIONAL, CERT_REQUIRED


def _parse_cert_reqs(value: object) -> str:
    # uvicorn takes the ssl module's numbers (0, 1, 2); the names say what they do.
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 3:
        return _CERT_REQS[value]
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _CERT_REQS:
            return word
        if word in ("0", "1", "2"):
            return _CERT_REQS[int(word)]
    raise _Invalid("one of none, optional, required (or 0, 1, 2 as in the ssl module)")


# ssl.PROTOCOL_TLS (2) and PROTOCOL_TLS_SERVER (17) negotiate the highest version both
# sides have; PROTOCOL_TLSv1_2 (5) pins TLS 1.2. TLS 1.0 (3) and 1.1 (4) are refused:
# RFC 8996 deprecates them, and OpenSSL 3 no longer offers them at its default level.
SSL_VERSIONS = {2: "TLS 1.2 and 1.3", 17: "TLS 1.2 and 1.3", 5: "TLS 1.2 only"}


def _parse_ssl_version(value: object) -> int:
    accepted = "2 or 17 (TLS 1.2 and 1.3) or 5 (TLS 1.2 only); pier does not serve TLS 1.0/1.1"
    try:
        number = _int_parser(0)(value)
    except _Invalid:
        raise _Invalid(accepted) from None
    if number not in SSL_VERSIONS:
        raise _Invalid(accepted)
    return number


# --access-log-format's fields (pier.logging.AccessLog fills them). {request_header:NAME}
# and {response_header:NAME} take any header; other fields take a format spec
# ({duration_ms:.1f}).
ACCESS_LOG_FIELDS = (
    "client", "method", "target", "protocol", "status", "bytes", "duration_ms",
    "duration_us", "request_id", "user_agent", "referer", "ended",
)
ACCESS_LOG_HEADER_FIELDS = ("request_header", "response_header")


def _parse_access_log_format(value: object) -> str:
    import string

    if not isinstance(value, str):
        raise _Invalid("a format string with {fields}")
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise _Invalid(
            f"a format string with {{fields}} ({exc}; write {{{{ for a brace)"
        ) from None
    for _, field, spec, _ in parts:
        if field is None:
            continue
        if field in ACCESS_LOG_HEADER_FIELDS:
            if not spec or not _TOKEN.match(spec):
                raise _Invalid(f"{{{field}:NAME}} with a header name, e.g. {{{field}:x-trace}}")
        elif field not in ACCESS_LOG_FIELDS:
            hint = _suggest(field, (*ACCESS_LOG_FIELDS, *ACCESS_LOG_HEADER_FIELDS))
            raise _Invalid(
                f"fields from {', '.join(ACCESS_LOG_FIELDS)}, request_header:NAME,"
                f" response_header:NAME (not {{{field}}}{hint})"
            )
    return value


OptionKind = Literal["positional", "value", "flag", "append"]


@dataclass(frozen=True, slots=True)
class Option:
    """One row of the option table; everything user-facing is derived from it."""

    name: str
    """Python attribute and Config keyword."""
    default: Any
    parse: Callable[[object], Any]
    """Turns a string (CLI, env) or a Python value into the normalised value."""
    help: str
    """One line: what it does and its unit. The default is appended by `help_text`."""
    group: str
    """Heading in `pier --help` and the docs."""
    kind: OptionKind = "value"
    """"flag" is a boolean with a --name/--no-name pair; "append" is repeatable."""
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    flag: str | None = None
    """CLI flag if not derived from the name (--root-path from root_path)."""
    env_fallbacks: tuple[str, ...] = ()
    """Other environment variables read when PIER_<NAME> is unset (uvicorn compat)."""
    default_text: str | None = None
    """How --help shows the default, when str(default) would mislead."""
    secret: bool = False
    """Never shown in repr(Config) (a password)."""

    @property
    def env(self) -> str:
        """The environment variable: PIER_<NAME>."""
        return "PIER_" + self.name.upper()

    @property
    def cli_flags(self) -> tuple[str, ...]:
        """Command-line spellings: ("--proxy-headers", "--no-proxy-headers") for a flag."""
        if self.kind == "positional":
            return ()
        flag = self.flag or "--" + self.name.replace("_", "-")
        if self.kind == "flag":
            return (flag, "--no-" + flag[2:])
        return (flag,)

    @property
    def help_text(self) -> str:
        """Help line with the default, as shown by `pier --help`."""
        default = self.default
        if self.kind == "positional":
            return self.help
        if self.default_text is not None:
            shown = self.default_text
        elif default is None or default == []:
            shown = "none"
        elif isinstance(default, bool):
            shown = "on" if default else "off"
        elif default == "":
            shown = '""'
        else:
            shown = str(default)
        return f"{self.help} [default: {shown}]"

    def convert(self, value: object) -> Any:
        """Validate and normalise `value`; raises _Invalid naming what is accepted."""
        if self.choices:
            if isinstance(value, str) and value.strip().lower() in self.choices:
                return value.strip().lower()
            raise _Invalid("one of " + ", ".join(self.choices))
        return self.parse(value)


def _row(name: str, default: Any, parse: Callable[[object], Any], help: str, group: str,
         **extra: Any) -> Option:
    return Option(name=name, default=default, parse=parse, help=help, group=group, **extra)


SERVER, APP, LIMITS, PROXY, LOGGING = "Server", "App", "HTTP limits", "Proxy", "Logging"
WORKERS, RELOAD, TLS = "Workers", "Reload", "TLS"  # issue 5
OPERATIONS = "Operations"  # issue 12
HTTP2 = "HTTP/2"  # issue 9

# The table. Order is the order of `pier --help` (groups appear in first-seen order).
_OPTIONS: tuple[Option, ...] = (
    # --- App ---------------------------------------------------------------------------
    _row("app", None, _parse_app, 'the ASGI app as "module:attr", e.g. main:app', APP,
         kind="positional", metavar="module:attr"),
    # issue 12: the config file (pier.configfile); read by Config.from_env
    _row("config_file", None, _optional(_parse_path),
         "TOML file of options (same names as the flags); without it, [tool.pier] in"
         " ./pyproject.toml is read when there is one", APP, flag="--config",
         metavar="FILE"),
    # --- Server ------------------------------------------------------------------------
    _row("host", "127.0.0.1", _parse_host,
         "address to bind; 0.0.0.0 for every IPv4 interface, :: for IPv6", SERVER),
    _row("port", 8000, _int_parser(0, 65535, " (0 picks a free port)"),
         "TCP port to bind; 0 picks a free one", SERVER, metavar="INT"),
    _row("uds", None, _optional(_parse_path),
         "bind a Unix domain socket at this path instead of host/port", SERVER,
         metavar="PATH"),
    _row("fd", None, _optional(_int_parser(0)),
         "serve on this already-open socket file descriptor (systemd, supervisors)",
         SERVER, metavar="INT"),
    # issue 5: several addresses; per-worker listeners
    _row("bind", [], _parse_bind,
         "listen here; repeatable: HOST:PORT, [IPV6]:PORT, unix:PATH, fd://N "
         "(replaces --host/--port/--uds/--fd; in PIER_BIND: comma-separated)", SERVER,
         kind="append", metavar="ADDRESS"),
    _row("reuse_port", False, _parse_bool,
         "each worker opens its own SO_REUSEPORT listener and the kernel spreads "
         "connections, instead of all workers sharing one socket", SERVER, kind="flag"),
    _row("backlog", 2048, _int_parser(1),
         "listen() backlog: connections queued before accept", SERVER, metavar="INT"),
    # issue 13: at 1,024 connections the requests in flight trip the collector's young
    # generation over and over (docs/performance.md, "How cost grows: traced").
    _row("gc_threshold", 2000, _optional(_int_parser(1)),
         "young-generation threshold of Python's cyclic garbage collector, set in each"
         " serving process before the app is imported (Python 3.11 and 3.12 use 700,"
         " 3.13 uses 2000); none leaves the interpreter's own", SERVER, metavar="INT"),
    _row("gc_threshold_per_connection", 32, _int_parser(0),
         "raise the young-generation threshold, once a second, to this many objects per"
         " open connection (never above 100,000 from this; --gc-threshold stays the"
         " floor), so that the requests in flight do not trip collections; 0 keeps"
         " --gc-threshold fixed", SERVER, metavar="INT"),
    _row("gc_freeze", True, _parse_bool,
         "after lifespan start-up, move every object then alive into the collector's"
         " permanent generation (gc.freeze), so later collections stop walking the app's"
         " start-up heap", SERVER, kind="flag"),
    _row("loop", "auto", _parse_str,
         "event loop; auto uses uvloop when installed (uvicorn's none and zuvloop are"
         " taken as asyncio and auto, with a log line)", SERVER,
         choices=("auto", "asyncio", "uvloop", "none", "zuvloop")),
    # issue 9 (HTTP/2, docs/http2.md); h11/httptools/zttp are uvicorn's parser names.
    _row("http", "auto", _parse_str,
         "HTTP versions: auto (HTTP/2 to clients that ask for it: ALPN h2 on TLS, the"
         " HTTP/2 preface or Upgrade: h2c on cleartext; HTTP/1.1 to the rest), 1 (HTTP/1.1"
         " only), 2 (HTTP/2 only); uvicorn's h11, httptools and zttp mean 1, since pier"
         " always parses HTTP/1.1 with llhttp", SERVER,
         choices=("auto", "1", "2", "h11", "httptools", "zttp")),
    _row("http2", False, _parse_bool,
         "uvicorn's --http2: serve HTTP/2 besides HTTP/1.1 (pier's --http auto)", SERVER,
         kind="flag"),
    _row("timeout_keep_alive", 5.0, _seconds_parser(positive=False),
         "seconds an idle keep-alive connection stays open (closed up to 0.25 s later)",
         SERVER, metavar="SECONDS"),
    _row("timeout_graceful_shutdown", 30.0, _seconds_parser(positive=False),
         "seconds to let in-flight requests finish on shutdown before cancelling them",
         SERVER, metavar="SECONDS"),
    _row("timeout_request_header", 10.0, _seconds_parser(positive=True),
         "seconds a client gets to send a complete request head (slowloris defence; "
         "cut up to 0.25 s later)",
         SERVER, metavar="SECONDS"),
    _row("timeout_send", 60.0, _optional(_seconds_parser(positive=True)),
         "seconds a client may leave the response unread while the app waits to send "
         "more; then the connection is closed and the app's send() raises "
         "(none: wait forever)", SERVER, metavar="SECONDS"),
    _row("timeout_response_start", None, _optional(_seconds_parser(positive=True)),
         "seconds the app gets to start its response (http.response.start) before the "
         "client gets 504 and the app task is cancelled; none: no limit", SERVER,
         metavar="SECONDS"),
    _row("limit_concurrency", None, _optional(_int_parser(1)),
         "connections + tasks beyond this number get 503 Service Unavailable", SERVER,
         metavar="INT"),
    _row("server_header", True, _parse_bool, 'send "Server: pier" in responses', SERVER,
         kind="flag"),
    _row("date_header", True, _parse_bool, "send a Date header in responses", SERVER,
         kind="flag"),
    _row("headers", [], _parse_headers,
         "extra response header; repeatable (in PIER_HEADERS: one per line)", SERVER,
         kind="append", flag="--header", metavar="NAME:VALUE"),
    # --- App loading -------------------------------------------------------------------
    _row("factory", False, _parse_bool,
         "treat module:attr as a zero-argument function returning the app", APP,
         kind="flag"),
    _row("interface", "auto", _parse_str,
         "app calling convention; auto detects it from the callable's signature", APP,
         choices=("auto", "asgi3", "asgi2", "wsgi")),
    _row("wsgi_threads", 10, _int_parser(1),
         "threads per worker that run a WSGI app; requests beyond them queue", APP,
         metavar="INT"),
    _row("lifespan", "auto", _parse_str,
         "lifespan events: on requires them, off skips them, auto tolerates apps "
         "without support", APP, choices=("auto", "on", "off")),
    _row("app_dir", ".", _parse_path, "directory put first on sys.path to import the app",
         APP, metavar="DIR"),
    _row("root_path", "", _parse_root_path,
         "ASGI root_path: the prefix under which a proxy mounts the app, e.g. /api", APP,
         metavar="PATH"),
    _row("reset_contextvars", False, _parse_bool,
         "run each request's app task in a fresh contextvars.Context, so context variables"
         " set at import or start-up are not seen by requests", APP, kind="flag"),
    _row("env_file", None, _optional(_parse_path),
         "KEY=VALUE file loaded into the environment before the app is imported "
         "(variables already set win)", APP, metavar="PATH"),
    # --- HTTP limits (each answers with the status in parentheses) ---------------------
    _row("limit_request_head_size", 65536, _int_parser(1),
         "bytes in the request line plus all headers (431)", LIMITS, metavar="BYTES"),
    _row("h11_max_incomplete_event_size", None, _optional(_int_parser(1)),
         "uvicorn's name for --limit-request-head-size", LIMITS, metavar="BYTES"),
    _row("limit_request_fields", 100, _int_parser(1), "number of request headers (431)",
         LIMITS, metavar="INT"),
    _row("limit_request_field_size", 8190, _int_parser(1),
         "bytes in one request header line (431)", LIMITS, metavar="BYTES"),
    _row("limit_request_line", 8190, _int_parser(1),
         "bytes in the request line; a longer target gets 414", LIMITS, metavar="BYTES"),
    _row("limit_request_body", None, _optional(_int_parser(0)),
         "bytes in a request body (413); none means unlimited", LIMITS, metavar="BYTES"),
    # --- Proxy -------------------------------------------------------------------------
    _row("proxy_headers", True, _parse_bool,
         "trust X-Forwarded-For/-Proto from --forwarded-allow-ips for client address "
         "and scheme", PROXY, kind="flag"),
    _row("forwarded_allow_ips", "127.0.0.1", _parse_forwarded_allow_ips,
         'comma-separated proxy IPs/networks to trust, or "*" (also read from '
         "FORWARDED_ALLOW_IPS)", PROXY, metavar="IPS",
         env_fallbacks=("FORWARDED_ALLOW_IPS",)),
    # issue 12 (pier.io.proxy_protocol)
    _row("proxy_protocol", "off", _parse_str,
         "expect a PROXY protocol header (HAProxy, AWS NLB) of this version on every"
         " connection, from --forwarded-allow-ips only; it sets the client and server"
         " addresses; a connection without a valid one is closed", PROXY,
         choices=("off", "v1", "v2")),
    # --- Logging -----------------------------------------------------------------------
    _row("log_level", "info", _parse_str,
         "least severe message logged; access lines are info", LOGGING,
         choices=tuple(LOG_LEVELS)),
    _row("access_log", True, _parse_bool, "log one line per request to pier.access",
         LOGGING, kind="flag"),
    _row("log_config", None, _parse_log_config,
         "logging config file: .json/.yaml/.yml (dictConfig) or .ini (fileConfig)",
         LOGGING, metavar="PATH"),
    _row("access_log_format", None, _optional(_parse_access_log_format),
         "access line with named fields in braces: " + ", ".join(ACCESS_LOG_FIELDS)
         + ", {request_header:NAME}, {response_header:NAME}; e.g. '{client}"
         ' "{method} {target} {protocol}" {status} {bytes} {duration_ms}'
         "'", LOGGING, metavar="FORMAT",
         default_text='\'{client} - "{method} {target} {protocol}" {status} {bytes}B'
         " {duration_ms:.2f}ms'"),
    _row("log_format", "text", _parse_str,
         "text lines, or json: one JSON object per line for the server and access logs",
         LOGGING, choices=("text", "json")),
    _row("use_colors", None, _parse_bool,
         "colour the level names in pier's log lines", LOGGING, kind="flag",
         default_text="only on a terminal, unless NO_COLOR is set"),
    # --- Workers (issue 5; pier.supervisor) -------------------------------------------
    _row("workers", 1, _parse_workers,
         "worker processes; 0 or auto = one per CPU (also read from WEB_CONCURRENCY)",
         WORKERS, metavar="INT", env_fallbacks=("WEB_CONCURRENCY",)),
    _row("limit_max_requests", None, _optional(_int_parser(1)),
         "a worker is replaced, gracefully, after about this many requests", WORKERS,
         metavar="INT"),
    _row("limit_max_requests_jitter", 0, _int_parser(0),
         "add 0..N to each worker's --limit-max-requests, so workers do not all "
         "restart at once", WORKERS, metavar="INT"),
    _row("timeout_worker_healthcheck", 5.0, _seconds_parser(positive=True),
         "seconds a worker may leave its supervisor's health check unanswered (a blocked "
         "event loop) before it is killed and replaced", WORKERS, metavar="SECONDS"),
    _row("timeout_notify", None, _optional(_seconds_parser(positive=True)),
         "uvicorn's older name for --timeout-worker-healthcheck", WORKERS,
         metavar="SECONDS"),
    # issue 12: recycling beyond max-requests (pier.supervisor)
    _row("limit_max_memory", None, _optional(_int_parser(1)),
         "a worker whose resident memory passes this many MiB is replaced, gracefully"
         " (its replacement is ready first)", WORKERS, metavar="MIB"),
    _row("limit_max_lifetime", None, _optional(_seconds_parser(positive=True)),
         "a worker is replaced, gracefully, after serving this many seconds", WORKERS,
         metavar="SECONDS"),
    _row("limit_max_lifetime_jitter", 0.0, _seconds_parser(positive=False),
         "add 0..N seconds to each worker's --limit-max-lifetime, so workers do not all"
         " restart at once", WORKERS, metavar="SECONDS"),
    # --- Operations (issue 12: admin listener, drain) --------------------------------
    _row("metrics_bind", None, _optional(_parse_admin_bind),
         "serve /metrics (Prometheus), /livez and /readyz on this separate address"
         " (HOST:PORT or unix:PATH), never on the app's listeners", OPERATIONS,
         metavar="ADDRESS"),
    _row("shutdown_delay", 0.0, _seconds_parser(positive=False),
         "on SIGTERM, fail /readyz and keep serving this many seconds before draining"
         " (lets a load balancer stop sending traffic first)", OPERATIONS,
         metavar="SECONDS"),
    # --- Reload (issue 5; pier.supervisor.reload) -------------------------------------
    _row("reload", False, _parse_bool,
         "restart the server when a watched file changes (development)", RELOAD,
         kind="flag"),
    _row("reload_delay", None, _optional(_seconds_parser(positive=True)),
         "seconds of quiet after a change before the restart (changes in between are one"
         " restart)", RELOAD, metavar="SECONDS", default_text="0.05"),
    _row("reload_dirs", [], _parse_paths, "directory to watch; repeatable", RELOAD,
         kind="append", flag="--reload-dir", metavar="DIR",
         default_text="the current directory"),
    _row("reload_includes", [], _parse_globs,
         "glob of files whose change reloads, besides *.py; repeatable", RELOAD,
         kind="append", flag="--reload-include", metavar="GLOB"),
    _row("reload_excludes", [], _parse_globs,
         "glob of files or directories to ignore, besides .*, *.py[cod], *~ and "
         "__pycache__; repeatable", RELOAD, kind="append", flag="--reload-exclude",
         metavar="GLOB"),
    # --- TLS (issue 5; pier.io.tls) ---------------------------------------------------
    _row("ssl_certfile", None, _optional(_parse_path),
         "PEM certificate (chain) file; turns TLS on", TLS, metavar="PATH"),
    _row("ssl_keyfile", None, _optional(_parse_path),
         "PEM private key file (when not in --ssl-certfile)", TLS, metavar="PATH"),
    _row("ssl_keyfile_password", None, _optional(_parse_str),
         "password of an encrypted --ssl-keyfile", TLS, metavar="PASSWORD", secret=True),
    _row("ssl_ca_certs", None, _optional(_parse_path),
         "PEM file of CA certificates that client certificates are verified against", TLS,
         metavar="PATH"),
    _row("ssl_cert_reqs", "none", _parse_cert_reqs,
         "client certificates: none, optional (verified when sent) or required", TLS,
         metavar="{none,optional,required}"),
    _row("ssl_version", None, _optional(_parse_ssl_version),
         "TLS versions, as the ssl module's PROTOCOL_ number uvicorn takes: 2 or 17 (TLS"
         " 1.2 and 1.3), 5 (TLS 1.2 only); 3 and 4 (TLS 1.0, 1.1) are refused", TLS,
         metavar="INT", default_text="TLS 1.2 and 1.3"),
    _row("ssl_ciphers", None, _optional(_parse_str),
         "OpenSSL cipher list for TLS 1.2 and older", TLS, metavar="CIPHERS",
         default_text="OpenSSL's defaults"),
    # --- WebSocket (issue 3; pier.io.websocket) ----------------------------------------
    _row("ws", "auto", _parse_str,
         "WebSocket support: auto and websockets use the websockets library's protocol"
         " core; none answers upgrade requests as plain HTTP", "WebSocket",
         choices=("auto", "none", "websockets", "websockets-sansio", "wsproto")),
    _row("ws_max_size", 16 * 1024 * 1024, _int_parser(1),
         "largest incoming WebSocket message in bytes, after decompression; a larger"
         " one closes the connection with 1009", "WebSocket", metavar="BYTES",
         default_text="16777216 (16 MiB)"),
    _row("ws_max_queue", 32, _int_parser(1),
         "incoming WebSocket messages held for the app before reading pauses",
         "WebSocket", metavar="INT"),
    _row("ws_ping_interval", 20.0, _optional(_seconds_parser(positive=True)),
         "seconds between keepalive pings; none sends no pings", "WebSocket",
         metavar="SECONDS"),
    _row("ws_ping_timeout", 20.0, _optional(_seconds_parser(positive=True)),
         "seconds to wait for the pong before closing the connection; none waits"
         " forever", "WebSocket", metavar="SECONDS"),
    _row("ws_per_message_deflate", True, _parse_bool,
         "offer permessage-deflate compression (RFC 7692)", "WebSocket", kind="flag"),
    _row("timeout_ws_handshake", 10.0, _seconds_parser(positive=True),
         "seconds the app gets to accept or deny a WebSocket, and a peer gets to answer"
         " a close frame", "WebSocket", metavar="SECONDS"),
    # --- HTTP/2 (issue 9; pier.proto.h2, docs/http2.md) --------------------------------
    _row("h2_max_concurrent_streams", 100, _int_parser(1, 2**31 - 1),
         "HTTP/2 streams a connection may have in flight (SETTINGS_MAX_CONCURRENT_STREAMS);"
         " a stream counts until its app finishes, so resets free nothing (REFUSED_STREAM)",
         HTTP2, metavar="INT"),
    _row("h2_initial_window_size", 65535, _int_parser(65535, 2**31 - 1),
         "request body bytes an HTTP/2 stream may send before the app reads them"
         " (SETTINGS_INITIAL_WINDOW_SIZE)", HTTP2, metavar="BYTES"),
    _row("h2_max_header_list_size", 65536, _int_parser(1024, 2**31 - 1),
         "bytes of HTTP/2 request headers, decoded (SETTINGS_MAX_HEADER_LIST_SIZE) and"
         " encoded across CONTINUATION frames; HPACK bombs and CONTINUATION floods end"
         " with GOAWAY ENHANCE_YOUR_CALM", HTTP2, metavar="BYTES"),
    _row("h2_max_frame_size", 16384, _int_parser(16384, 2**24 - 1),
         "largest HTTP/2 frame payload read (SETTINGS_MAX_FRAME_SIZE); a longer one ends"
         " the connection with FRAME_SIZE_ERROR before it is buffered", HTTP2,
         metavar="BYTES"),
    _row("h2_max_reset_streams", 200, _int_parser(1),
         "HTTP/2 streams a client may reset before their response (less responses"
         " completed) before GOAWAY ENHANCE_YOUR_CALM: the rapid reset bound", HTTP2,
         metavar="INT"),
    _row("h2_max_control_frames", 1000, _int_parser(1),
         "HTTP/2 frames in a row without a request or data (PING, SETTINGS,"
         " WINDOW_UPDATE, PRIORITY, RST_STREAM, empty DATA) before GOAWAY"
         " ENHANCE_YOUR_CALM: the flood bound", HTTP2, metavar="INT"),
)

_BY_NAME: dict[str, Option] = {option.name: option for option in _OPTIONS}
FILE_KEYS: dict[str, str] = {
    **{option.cli_flags[0][2:].replace("-", "_"): option.name for option in _OPTIONS
       if option.cli_flags},
    **{option.name: option.name for option in _OPTIONS},
}
"""Config file keys (underscored) to option names: each name and its flag (`header`)."""


def options() -> tuple[Option, ...]:
    """The option table, in --help order (for docs and tooling)."""
    return _OPTIONS


def _suggest(name: str, candidates: Iterable[str]) -> str:
    """'; did you mean X?' for the closest candidate, or ''."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def _invalid(label: str, value: object, accepted: str) -> ConfigError:
    return ConfigError(f"invalid {label} {value!r}: expected {accepted}")


# --- env files ---------------------------------------------------------------------

_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_DQ_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a dotenv-style file: KEY=VALUE lines, # comments, quotes, `export `.

    Single-quoted values are literal; double-quoted ones understand \\n \\t \\r \\" \\\\
    and may span lines; an unquoted value ends at a " #" comment. A malformed line is
    a ConfigError naming the file and line, because a silently skipped secret is
    worse than a refusal to start.
    """
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(
            f"env file {name!r} does not exist; fix the --env-file path or create the file"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read env file {name!r}: {exc}") from None

    values: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        lineno = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith("export ") or line.startswith("export\t"):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _ENV_KEY.match(key):
            raise ConfigError(
                f"env file {name!r} line {lineno}: expected KEY=VALUE, got {line!r}"
            )
        rest = rest.strip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            # A quoted value may continue on following lines until its closing quote.
            while True:
                end = _closing_quote(body, quote)
                if end >= 0 or index >= len(lines):
                    break
                body += "\n" + lines[index]
                index += 1
            if end < 0:
                raise ConfigError(
                    f"env file {name!r} line {lineno}: {key} has no closing {quote}"
                )
            trailer = body[end + 1 :].strip()
            if trailer and not trailer.startswith("#"):
                raise ConfigError(
                    f"env file {name!r} line {lineno}: unexpected {trailer!r} after the "
                    f"quoted value of {key}"
                )
            value = body[:end]
            if quote == '"':
                value = re.sub(
                    r"\\(.)", lambda m: _DQ_ESCAPES.get(m.group(1), m.group(0)), value
                )
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        values[key] = value
    return values


def _closing_quote(body: str, quote: str) -> int:
    """Index of the unescaped closing quote in `body`, or -1."""
    position = 0
    while position < len(body):
        char = body[position]
        if char == "\\" and quote == '"':
            position += 2
            continue
        if char == quote:
            return position
        position += 1
    return -1


# --- Config ------------------------------------------------------------------------


class Config:
    """Every option as a validated attribute: `Config(app, port=0, log_level="debug")`.

    Unknown keywords and unusable values raise ConfigError. `from_env` adds the PIER_*
    environment under the given keywords.
    """

    # Type declarations only (values come from the table); keep in step with _OPTIONS.
    app: Any
    host: str
    port: int
    uds: str | None
    fd: int | None
    backlog: int
    gc_threshold: int | None
    gc_threshold_per_connection: int
    gc_freeze: bool
    loop: str
    http: str
    http2: bool
    timeout_keep_alive: float
    timeout_graceful_shutdown: float
    timeout_request_header: float
    timeout_send: float | None
    timeout_response_start: float | None
    limit_concurrency: int | None
    server_header: bool
    date_header: bool
    headers: list[tuple[str, str]]
    factory: bool
    reset_contextvars: bool
    interface: str
    wsgi_threads: int
    lifespan: str
    app_dir: str
    root_path: str
    env_file: str | None
    limit_request_head_size: int
    h11_max_incomplete_event_size: int | None
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_line: int
    limit_request_body: int | None
    # issue 9: HTTP/2
    h2_max_concurrent_streams: int
    h2_initial_window_size: int
    h2_max_header_list_size: int
    h2_max_frame_size: int
    h2_max_reset_streams: int
    h2_max_control_frames: int
    proxy_headers: bool
    forwarded_allow_ips: str
    log_level: str
    access_log: bool
    log_config: str | dict[str, Any] | None
    access_log_format: str | None
    log_format: str
    use_colors: bool | None
    # issue 5: workers, sockets, reload, TLS
    bind: list[str]
    reuse_port: bool
    workers: int
    limit_max_requests: int | None
    limit_max_requests_jitter: int
    timeout_worker_healthcheck: float
    timeout_notify: float | None
    reload: bool
    reload_delay: float | None
    reload_dirs: list[str]
    reload_includes: list[str]
    reload_excludes: list[str]
    ssl_certfile: str | None
    ssl_keyfile: str | None
    ssl_keyfile_password: str | None
    ssl_ca_certs: str | None
    ssl_cert_reqs: str
    ssl_version: int | None
    ssl_ciphers: str | None
    # issue 12: operating in production
    config_file: str | None
    proxy_protocol: str
    limit_max_memory: int | None
    limit_max_lifetime: float | None
    limit_max_lifetime_jitter: float
    metrics_bind: str | None
    shutdown_delay: float
    # issue 3: WebSocket
    ws: str
    ws_max_size: int
    ws_max_queue: int
    ws_ping_interval: float | None
    ws_ping_timeout: float | None
    ws_per_message_deflate: bool
    timeout_ws_handshake: float

    notes: list[tuple[int, str]]
    """(log level, line) the server logs at start-up: how an option from another server
    is taken here (uvicorn's --http h11 ...), and ignored service-link variables."""
    given: frozenset[str]
    """Names of the options set explicitly (keyword, CLI, environment or file)."""
    sources: dict[str, str]
    """Where each given option's value came from ("--port", "PIER_PORT", "pier.toml",
    "keyword"); an option not in it has its default."""

    def __init__(self, app: Any, **options: Any) -> None:
        values: dict[str, Any] = {"app": app, **options}
        self._check_unknown(values, "option")
        labels: dict[str, str] = {}
        sources = dict.fromkeys(values, "keyword")
        if options.get("config_file") is not None:  # keywords > file > defaults
            values = _under_file(values, labels, sources, options["config_file"], None)
        self._setup(values, labels=labels, sources=sources)

    @classmethod
    def from_env(
        cls,
        app: Any = None,
        *,
        environ: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        search_dir: str | os.PathLike[str] | None = None,
        require_app: bool = True,
        **options: Any,
    ) -> Config:
        """Config from keywords over PIER_* variables over a config file over defaults.

        `app=None` falls back to PIER_APP, then to the file's `app`. `labels` maps option
        names to how the caller's values were spelled (the CLI passes "--port") for
        error messages. The file is `config_file` (keyword or PIER_CONFIG_FILE), else
        pyproject.toml in `search_dir` if it has a [tool.pier] table (the CLI passes
        the current directory). `require_app=False` lets --print-config show a config
        without an app.
        """
        env = os.environ if environ is None else environ
        cls._check_unknown(options, "option")
        _reject_misspelled_env(env)
        merged: dict[str, Any] = {}
        all_labels: dict[str, str] = dict(labels or {})
        sources: dict[str, str] = {}
        notes: list[tuple[int, str]] = []
        for option in _OPTIONS:
            for variable in (option.env, *option.env_fallbacks):
                if variable in env:
                    if _SERVICE_LINK.match(env[variable]):
                        notes.append((LOG_LEVELS["warning"], _service_link_note(variable, env)))
                        continue
                    merged[option.name] = env[variable]
                    all_labels[option.name] = variable
                    sources[option.name] = variable
                    break
        for name, value in options.items():
            merged[name] = value
            all_labels[name] = sources[name] = (labels or {}).get(name, name)
        if app is not None:
            merged["app"] = app
            all_labels["app"] = sources["app"] = (labels or {}).get("app", "app")
        merged = _under_file(
            merged, all_labels, sources, merged.get("config_file"), search_dir
        )
        if merged.get("app") is None and require_app:
            raise ConfigError(
                'no app given; name it as "module:attr", e.g. pier main:app (or set PIER_APP,'
                " or app in the config file)"
            )
        config = cls.__new__(cls)
        config._setup(merged, labels=all_labels, sources=sources, notes=notes)
        return config

    @staticmethod
    def _check_unknown(values: Mapping[str, Any], what: str) -> None:
        for name in values:
            if name not in _BY_NAME:
                hint = _suggest(name, _BY_NAME) or "; see `pier --help` for the options"
                raise ConfigError(f"unknown {what} {name!r}{hint}")

    def _setup(
        self,
        values: Mapping[str, Any],
        *,
        labels: Mapping[str, str],
        sources: Mapping[str, str],
        notes: Iterable[tuple[int, str]] = (),
    ) -> None:
        self._check_unknown(values, "option")
        for option in _OPTIONS:
            if option.name in values:
                raw = values[option.name]
                try:
                    value = option.convert(raw)
                except _Invalid as exc:
                    label = labels.get(option.name, option.name)
                    shown = raw if exc.item is _Invalid._WHOLE else exc.item
                    raise _invalid(label, shown, exc.accepted) from None
            else:
                default = option.default
                value = list(default) if isinstance(default, list) else default
            setattr(self, option.name, value)
        self.given = frozenset(values)
        self.sources = {name: sources.get(name, "keyword") for name in values}
        if self.uds is not None and self.fd is not None:
            raise ConfigError("--uds and --fd both given; choose one place to listen")
        self._check_listen_and_tls(labels)  # issue 5
        self.notes = list(notes)
        self._take_other_servers_options(labels)  # issue 11
        if isinstance(self.log_config, str) and not os.path.isfile(self.log_config):
            raise ConfigError(
                f"log config file {self.log_config!r} does not exist; fix the --log-config path"
            )
        if self.env_file is not None:
            for key, value in load_env_file(self.env_file).items():
                os.environ.setdefault(key, value)

    def _take_other_servers_options(self, labels: Mapping[str, str]) -> None:
        """uvicorn's spellings, done the pier way, each with one line saying how.

        An implementation choice that does not apply here (a parser, a loop, a
        WebSocket library) is taken as pier's own with an info line; an older name of a
        pier option sets it; a setting pier cannot honour yet is refused, never dropped.
        """

        def name(option: str) -> str:
            return labels.get(option) or _BY_NAME[option].cli_flags[0]

        info = LOG_LEVELS["info"]
        if self.http2 and self.http in ("1", "h11", "httptools", "zttp"):
            raise ConfigError(
                f"{name('http2')} asks for HTTP/2 but {name('http')} {self.http} serves"
                f" HTTP/1.1 only; keep one of them ({name('http')} auto serves both)"
            )
        if self.http in ("h11", "httptools", "zttp"):
            self.notes.append((info, (
                f"{name('http')} {self.http}: pier always parses HTTP/1.1 with llhttp"
                " (httptools' parser); serving HTTP/1.1 only, as uvicorn would")))
            self.http = "1"
        if self.loop == "none":
            self.notes.append((info, (
                f"{name('loop')} none: pier uses asyncio's default event loop"
                " (asyncio.new_event_loop, which honours an installed loop policy)")))
            self.loop = "asyncio"
        elif self.loop == "zuvloop":
            self.notes.append((info, (
                f"{name('loop')} zuvloop: pier has no zuvloop support; using uvloop"
                " when installed, else asyncio (as --loop auto)")))
            self.loop = "auto"
        if self.ws in ("websockets-sansio", "wsproto"):
            self.notes.append((info, (
                f"{name('ws')} {self.ws}: pier always uses the websockets library's"
                " sans-I/O protocol core; same protocol, same limits")))
            self.ws = "websockets"
        for old, new in (("h11_max_incomplete_event_size", "limit_request_head_size"),
                         ("timeout_notify", "timeout_worker_healthcheck")):
            value = getattr(self, old)
            if value is None:
                continue
            if new in self.given and getattr(self, new) != value:
                raise ConfigError(
                    f"{name(old)} {value} and {name(new)} {getattr(self, new)} both given;"
                    f" they are one setting in pier: keep {name(new)}"
                )
            setattr(self, new, value)
            self.notes.append((info, f"{name(old)} {value}: pier's {_BY_NAME[new].cli_flags[0]}"))

    def _check_listen_and_tls(self, labels: Mapping[str, str]) -> None:
        """Combinations of the issue-5 options that cannot work, refused up front."""

        def name(option: str) -> str:
            return labels.get(option) or _BY_NAME[option].cli_flags[0]

        if self.bind:
            for other in ("host", "port", "uds", "fd"):
                if other in self.given:
                    raise ConfigError(
                        f"{name('bind')} and {name(other)} both given; list every address"
                        f" with {name('bind')} (e.g. --bind 127.0.0.1:8000)"
                    )
        if self.reuse_port and (self.uds is not None or self.fd is not None):
            raise ConfigError(
                f"{name('reuse_port')} needs TCP addresses; leave it off with --uds or --fd"
            )
        if self.proxy_protocol != "off" and self.ssl_certfile is not None:
            raise ConfigError(
                f"{name('proxy_protocol')} with --ssl-certfile is not supported yet (the"
                " header comes before the TLS handshake); terminate TLS at the proxy"
            )
        if self.ssl_certfile is None:
            for option in ("ssl_keyfile", "ssl_keyfile_password", "ssl_ca_certs", "ssl_version"):
                if getattr(self, option) is not None:
                    raise ConfigError(
                        f"{name(option)} given without --ssl-certfile; TLS needs a"
                        " certificate: add --ssl-certfile PATH"
                    )
        elif self.ssl_cert_reqs == "required" and self.ssl_ca_certs is None:
            raise ConfigError(
                f"{name('ssl_cert_reqs')} required needs --ssl-ca-certs, the CA file that"
                " client certificates are verified against"
            )

    @property
    def log_level_number(self) -> int:
        """log_level as a logging level number ("trace" is 5)."""
        return LOG_LEVELS[self.log_level]

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{option.name}={'***' if option.secret else repr(getattr(self, option.name))}"
            for option in _OPTIONS
            if option.name in self.given and option.name != "app"
        )
        return f"Config({self.app!r}{', ' if shown else ''}{shown})"


def _under_file(
    values: dict[str, Any],
    labels: dict[str, str],
    sources: dict[str, str],
    path: object,
    search_dir: str | os.PathLike[str] | None,
) -> dict[str, Any]:
    """`values` over the config file's (precedence rule 3); labels and sources follow."""
    from pier.configfile import find_config_file

    if path is not None and not isinstance(path, str | os.PathLike):
        raise ConfigError(f"invalid config_file {path!r}: expected a file system path")
    given = os.fspath(path) if path else None  # "" (PIER_CONFIG_FILE=) is unset
    found = find_config_file(given, search_dir, FILE_KEYS)
    if found is None:
        return values
    if "config_file" in found.values:
        raise ConfigError(f"{found.label} sets config_file; a config file cannot name another")
    merged = dict(found.values)
    for name in found.values:
        if name not in values:
            labels[name] = f"{name} (in {found.label})"
            sources[name] = found.label
    merged.update(values)
    if "config_file" not in values:  # found in search_dir: --print-config says so
        merged["config_file"] = found.path
        sources["config_file"] = "found in the current directory"
    return merged


# Docker links and Kubernetes services set <NAME>_PORT=tcp://10.0.0.1:80 (and more) in
# every container, so a Service named "pier" would otherwise stop pier with "invalid port".
_SERVICE_LINK = re.compile(r"(tcp|udp|sctp)://[^\s/]+:\d+/?\Z")


def _service_link_note(variable: str, environ: Mapping[str, str]) -> str:
    return (
        f"ignoring {variable}={environ[variable]}: that is a service link, which Kubernetes"
        f" (for a Service named {variable.rsplit('_', 1)[0].lower()!r})"
        " or Docker links put in the environment, not a pier setting; set"
        " enableServiceLinks: false in the pod spec, or give pier's option on the"
        " command line"
    )


def _reject_misspelled_env(environ: Mapping[str, str]) -> None:
    """A PIER_* variable close to a real one is a typo; far from all, it is not ours."""
    known = {option.env for option in _OPTIONS}
    for variable in environ:
        if variable.startswith("PIER_") and variable not in known:
            suggestion = difflib.get_close_matches(variable, known, n=1, cutoff=0.8)
            if suggestion:
                raise ConfigError(
                    f"unknown environment variable {variable}; did you mean {suggestion[0]}?"
                )
