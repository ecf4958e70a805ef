"""pier.logging: the access line, escaping of untrusted text, and logger set-up.

Pins:
- the access line `client - "METHOD target HTTP/version" status sizeB durationms`,
  whose quoted part mirrors the request-line of RFC 9112 section 3;
- CVE-2020-7694 (uvicorn log injection): control characters, CR/LF and ANSI escape
  sequences a client sends in the method, path or query never reach the log verbatim;
- access_log off / log_level above info: AccessLog.enabled is False, nothing is written;
- "trace" is a real level 5 named TRACE.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pier.config import Config
from pier.logging import ACCESS_LOGGER, TRACE, AccessLog, configure, escape

_TOUCHED = ("", "pier", "pier.error", ACCESS_LOGGER)


@contextmanager
def restored_logging() -> Iterator[None]:
    """Put back the loggers configure()/fileConfig changes, so tests stay independent."""
    saved = []
    for name in _TOUCHED:
        logger = logging.getLogger(name)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate,
                      logger.disabled))
    try:
        yield
    finally:
        for logger, handlers, level, propagate, disabled in saved:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


@pytest.fixture(autouse=True)
def _isolated_logging() -> Iterator[None]:
    with restored_logging():
        yield


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access() -> Iterator[tuple[AccessLog, Records]]:
    logger = logging.getLogger("tests.access")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = Records()
    logger.addHandler(handler)
    try:
        yield AccessLog(logger), handler
    finally:
        logger.removeHandler(handler)


def _record(log: AccessLog, **fields: object) -> None:
    values: dict[str, object] = {
        "client": ("127.0.0.1", 51234),
        "method": "GET",
        "path": "/a",
        "query_string": b"b=1",
        "http_version": "1.1",
        "status": 200,
        "size": 13,
        "duration": 0.00042,
    }
    values.update(fields)
    log.record(**values)  # type: ignore[arg-type]


# --- the access line -------------------------------------------------------------------


def test_access_line_format(access: tuple[AccessLog, Records]) -> None:
    log, handler = access
    _record(log)
    [record] = handler.records
    assert record.getMessage() == '127.0.0.1:51234 - "GET /a?b=1 HTTP/1.1" 200 13B 0.42ms'
    assert record.levelno == logging.INFO


def test_access_line_without_query_or_client(access: tuple[AccessLog, Records]) -> None:
    log, handler = access
    _record(log, client=None, query_string=b"", method="POST", path="/", status=404,
            size=0, duration=1.5)
    assert handler.records[0].getMessage() == '- - "POST / HTTP/1.1" 404 0B 1500.00ms'


def test_access_line_brackets_ipv6_client(access: tuple[AccessLog, Records]) -> None:
    log, handler = access
    _record(log, client=("::1", 8080))
    assert handler.records[0].getMessage().startswith("[::1]:8080 - ")


def test_every_access_record_carries_how_it_ended(access: tuple[AccessLog, Records]) -> None:
    """A --log-config formatter that names %(ended)s works on completed lines too."""
    log, handler = access
    _record(log)
    _record(log, ended="client gone")
    formatter = logging.Formatter("%(status_code)s %(ended)s")
    assert [formatter.format(r) for r in handler.records] == [
        "200 completed", "200 client gone"]
    assert handler.records[1].getMessage().endswith(" client gone")


def test_access_fields_on_record(access: tuple[AccessLog, Records]) -> None:
    log, handler = access
    _record(log, path="/x\n", status=201)
    record = handler.records[0]
    fields = record.__dict__
    assert fields["client_addr"] == "127.0.0.1:51234"
    assert fields["method"] == "GET"
    assert fields["path"] == "/x\\n"  # escaped, like the message
    assert fields["query_string"] == "b=1"
    assert fields["http_version"] == "1.1"
    assert fields["status_code"] == 201
    assert fields["size"] == 13
    assert fields["duration"] == pytest.approx(0.00042)


def test_custom_formatter_can_use_fields(access: tuple[AccessLog, Records]) -> None:
    log, handler = access
    _record(log)
    formatter = logging.Formatter("%(status_code)d %(method)s %(path)s %(duration).5f")
    assert formatter.format(handler.records[0]) == "200 GET /a 0.00042"


# --- escaping (CVE-2020-7694 class) ----------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [
        ("path", "/\x1b[31mred\x1b[0m", "/\\x1b[31mred\\x1b[0m"),
        ("path", "/a\r\nINFO:  forged line", "/a\\r\\nINFO:  forged line"),
        ("method", "GE\nT", "GE\\nT"),
        ("query_string", b"q=\x1b[2J", "q=\\x1b[2J"),
        ("query_string", b"q=\xff\xfe", "q=\\xff\\xfe"),
        ("path", '/a" 200 1B', '/a\\" 200 1B'),
        ("path", "/\u202egnp.exe", "/\\u202egnp.exe"),
    ],
)
def test_untrusted_text_is_escaped(
    access: tuple[AccessLog, Records], field: str, value: str | bytes, shown: str
) -> None:
    log, handler = access
    _record(log, **{field: value})
    message = handler.records[0].getMessage()
    assert shown in message
    assert "\x1b" not in message
    assert "\n" not in message
    assert "\r" not in message


def test_escape_keeps_printable_text() -> None:
    assert escape("/café/ä?x=1&y=%20") == "/café/ä?x=1&y=%20"
    assert escape(b"caf\xc3\xa9") == "café"


def test_escape_is_unambiguous() -> None:
    # A literal backslash sequence must not look like an escaped control character.
    assert escape("\\x1b") == "\\\\x1b"
    assert escape("\x1b") == "\\x1b"
    assert escape("\x00\x7f\x85") == "\\x00\\x7f\\x85"
    assert escape("\U000e0001") == "\\U000e0001"


# --- configure -------------------------------------------------------------------------


def test_default_handlers_write_access_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    configure(Config("main:app", use_colors=False))
    log = AccessLog()
    assert log.enabled
    _record(log)
    logging.getLogger("pier.error").info("Listening on http://127.0.0.1:8000")
    out, err = capsys.readouterr()
    assert out == 'INFO:     127.0.0.1:51234 - "GET /a?b=1 HTTP/1.1" 200 13B 0.42ms\n'
    assert err == "INFO:     Listening on http://127.0.0.1:8000\n"


def test_module_loggers_under_pier_share_the_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(Config("main:app", use_colors=False, log_level="debug"))
    logging.getLogger("pier.io.connection").debug("closing %s", "conn-1")
    assert capsys.readouterr().err == "DEBUG:    closing conn-1\n"


def test_access_log_off(capsys: pytest.CaptureFixture[str]) -> None:
    configure(Config("main:app", access_log=False, use_colors=False))
    log = AccessLog()
    assert not log.enabled
    _record(log)
    logging.getLogger("pier.error").info("still here")
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "INFO:     still here\n"


def test_access_log_back_on_after_reconfigure(capsys: pytest.CaptureFixture[str]) -> None:
    configure(Config("main:app", access_log=False))
    configure(Config("main:app", access_log=True, use_colors=False))
    assert AccessLog().enabled
    _record(AccessLog())
    assert capsys.readouterr().out.count("\n") == 1  # no duplicated handlers either


def test_log_level_warning_silences_info_and_access(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure(Config("main:app", log_level="warning", use_colors=False))
    assert not AccessLog().enabled
    logging.getLogger("pier.error").info("hidden")
    logging.getLogger("pier.error").warning("shown")
    assert capsys.readouterr().err == "WARNING:  shown\n"


def test_trace_level(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config("main:app", log_level="trace", use_colors=False)
    assert config.log_level_number == TRACE == 5
    configure(config)
    logging.getLogger("pier.error").log(TRACE, "bytes in: %r", b"GET")
    assert capsys.readouterr().err == "TRACE:    bytes in: b'GET'\n"
    assert logging.getLevelName(TRACE) == "TRACE"


def test_colours_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    configure(Config("main:app", use_colors=True))
    logging.getLogger("pier.error").info("hello")
    assert capsys.readouterr().err == "\x1b[32mINFO:    \x1b[0m hello\n"
    configure(Config("main:app"))  # captured output is not a terminal
    logging.getLogger("pier.error").info("hello")
    assert capsys.readouterr().err == "INFO:     hello\n"


def test_no_color_environment_variable(capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # https://no-color.org: honoured when --use-colors is not given, overridden when it is.
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    configure(Config("main:app"))
    logging.getLogger("pier.error").info("plain")
    assert capsys.readouterr().err == "INFO:     plain\n"
    configure(Config("main:app", use_colors=True))
    logging.getLogger("pier.error").info("coloured")
    assert "\x1b[32m" in capsys.readouterr().err


def test_terminal_gets_colour_by_default(capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    configure(Config("main:app"))
    logging.getLogger("pier.error").warning("careful")
    assert capsys.readouterr().err == "\x1b[33mWARNING: \x1b[0m careful\n"


def test_root_only_log_config_after_default_setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A file that configures only the root logger must still receive pier's messages,
    # even if an earlier configure() had detached pier's loggers from the root.
    configure(Config("main:app", log_level="error", access_log=False))
    path = tmp_path / "root.json"
    path.write_text(
        '{"version": 1, "formatters": {"f": {"format": "root|%(name)s|%(message)s"}},'
        ' "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f",'
        ' "stream": "ext://sys.stderr"}},'
        ' "root": {"handlers": ["h"], "level": "INFO"}}'
    )
    configure(Config("main:app", log_config=str(path)))
    logging.getLogger("pier.error").info("started")
    _record(AccessLog())
    assert capsys.readouterr().err.splitlines() == [
        "root|pier.error|started",
        'root|pier.access|127.0.0.1:51234 - "GET /a?b=1 HTTP/1.1" 200 13B 0.42ms',
    ]
