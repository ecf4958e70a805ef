"""pier.config: the option table, Config validation, environment precedence, env files,
and loading log config files.

Pins:
- precedence command line > PIER_* environment > default (FORWARDED_ALLOW_IPS read like
  uvicorn when PIER_FORWARDED_ALLOW_IPS is unset);
- --header values are RFC 9110 section 5.1 field names (tokens, section 5.6.2) and
  section 5.5 field values: CR, LF or NUL would split the response, so they are refused;
- unknown or misspelled options are refused with a did-you-mean, never ignored;
- log config files: JSON/YAML via logging.config.dictConfig, .ini via fileConfig, and a
  broken file is one ConfigError naming the file and the parser's complaint.
"""

from __future__ import annotations

import logging
import os
import pickle
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pier import config as config_module
from pier.config import Config, load_env_file, options
from pier.errors import ConfigError
from pier.logging import configure
from tests.test_logging import restored_logging


@pytest.fixture(autouse=True)
def _restore_environ() -> Iterator[None]:
    # env_file writes into os.environ; give every test the environment it started with.
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


# --- the table -------------------------------------------------------------------------


def test_defaults_match_the_table() -> None:
    config = Config("main:app")
    assert config.app == "main:app"
    for option in options():
        if option.name != "app":
            assert getattr(config, option.name) == option.default, option.name
    assert (config.host, config.port, config.timeout_keep_alive) == ("127.0.0.1", 8000, 5.0)
    assert config.headers == []
    assert config.given == frozenset({"app"})


def test_every_option_is_declared_on_config_and_nothing_else() -> None:
    # mypy types config.<name> from Config's declarations; they must follow the table.
    hints = typing.get_type_hints(Config)
    declared = set(hints) - {"given", "sources", "notes"}
    assert declared == {option.name for option in options()}


def test_names_flags_and_env_are_derived_consistently() -> None:
    seen_flags: set[str] = set()
    for option in options():
        assert option.env == "PIER_" + option.name.upper()
        assert option.help and "\n" not in option.help
        assert "[default: " in option.help_text or option.kind == "positional"
        for flag in option.cli_flags:
            assert flag.startswith("--") and flag not in seen_flags
            seen_flags.add(flag)
    by_name = {option.name: option for option in options()}
    assert by_name["proxy_headers"].cli_flags == ("--proxy-headers", "--no-proxy-headers")
    assert by_name["headers"].cli_flags == ("--header",)
    assert by_name["timeout_keep_alive"].cli_flags == ("--timeout-keep-alive",)


def test_default_lists_are_not_shared() -> None:
    first = Config("main:app")
    first.headers.append(("X-A", "1"))
    assert Config("main:app").headers == []


# --- validation ------------------------------------------------------------------------


def test_unknown_option_suggests_the_closest() -> None:
    with pytest.raises(ConfigError) as info:
        Config("main:app", time_out_keep_alive=3)
    assert str(info.value) == (
        "unknown option 'time_out_keep_alive'; did you mean 'timeout_keep_alive'?"
    )


def test_unknown_option_without_a_close_match_points_to_help() -> None:
    with pytest.raises(ConfigError, match=r"unknown option 'zzz'; see `pier --help`"):
        Config("main:app", zzz=1)


@pytest.mark.parametrize(
    ("options_", "message"),
    [
        ({"port": 70000}, "invalid port 70000: expected an integer from 0 to 65535"),
        ({"port": "eighty"}, "invalid port 'eighty': expected an integer from 0 to 65535"),
        ({"port": True}, "invalid port True: expected an integer"),
        ({"backlog": 0}, "invalid backlog 0: expected an integer >= 1"),
        ({"timeout_keep_alive": -1}, "invalid timeout_keep_alive -1: expected a number of "
                                     "seconds >= 0"),
        ({"timeout_request_header": 0}, "expected a number of seconds > 0"),
        ({"timeout_graceful_shutdown": "nan"}, "invalid timeout_graceful_shutdown 'nan'"),
        ({"log_level": "loud"}, "invalid log_level 'loud': expected one of critical, error, "
                                "warning, info, debug, trace"),
        ({"loop": "trio"}, "invalid loop 'trio': expected one of auto, asyncio, uvloop"),
        ({"interface": "asgi4"}, "expected one of auto, asgi3, asgi2, wsgi"),
        ({"lifespan": True}, "invalid lifespan True: expected one of auto, on, off"),
        ({"access_log": "maybe"}, "invalid access_log 'maybe': expected true or false"),
        ({"root_path": "api"}, "invalid root_path 'api': expected \"\" or a path starting"),
        ({"limit_request_body": -1}, "invalid limit_request_body -1: expected an integer >= 0"),
        ({"headers": ["X-Frame-Options DENY"]}, "invalid headers 'X-Frame-Options DENY': "
                                                "expected NAME:VALUE"),
        ({"headers": ["X-A: b\r\nSet-Cookie: evil=1"]}, "without CR, LF or NUL"),
        ({"headers": ["Bad Name: v"]}, "where NAME is a token"),
        ({"headers": "X-A: 1"}, None),  # a string is one header per line: accepted
        ({"log_config": "logging.toml"}, "expected a .json, .yaml or .yml file"),
        ({"log_config": "/nonexistent/log.json"}, "log config file '/nonexistent/log.json' "
                                                   "does not exist"),
        ({"uds": "/tmp/p.sock", "fd": 3}, "--uds and --fd both given"),
    ],
)
def test_bad_values_name_option_value_and_what_is_accepted(
    options_: dict[str, Any], message: str | None
) -> None:
    if message is None:
        Config("main:app", **options_)
        return
    with pytest.raises(ConfigError) as info:
        Config("main:app", **options_)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_app_must_be_an_import_string_or_callable() -> None:
    with pytest.raises(ConfigError, match="module:attr"):
        Config(42)
    with pytest.raises(ConfigError, match="invalid app None: expected an import string"):
        Config(None)

    async def app(scope: Any, receive: Any, send: Any) -> None: ...

    assert Config(app).app is app


def test_values_are_normalised() -> None:
    config = Config(
        " main:app ",
        port="8001",
        log_level="DEBUG",
        access_log="off",
        use_colors="yes",
        timeout_keep_alive=2,
        limit_request_body="none",
        forwarded_allow_ips=["10.0.0.1", "10.0.0.2"],
        headers=["X-Frame-Options: DENY", ("X-Served-By", "pier-1"), "X-Empty:"],
        uds=Path("/tmp/pier.sock"),
    )
    assert config.app == "main:app"
    assert config.port == 8001
    assert config.log_level == "debug"
    assert config.log_level_number == logging.DEBUG
    assert config.access_log is False
    assert config.use_colors is True
    assert config.timeout_keep_alive == 2.0
    assert isinstance(config.timeout_keep_alive, float)
    assert config.limit_request_body is None
    assert config.forwarded_allow_ips == "10.0.0.1,10.0.0.2"
    assert config.headers == [
        ("X-Frame-Options", "DENY"), ("X-Served-By", "pier-1"), ("X-Empty", ""),
    ]
    assert config.uds == "/tmp/pier.sock"


def test_header_value_may_contain_colons() -> None:
    config = Config("main:app", headers=["Link: <https://example.com:8443/a>; rel=preload"])
    assert config.headers == [("Link", "<https://example.com:8443/a>; rel=preload")]


def test_forwarded_allow_ips_kept_as_given() -> None:
    assert Config("main:app", forwarded_allow_ips="*").forwarded_allow_ips == "*"
    assert (
        Config("main:app", forwarded_allow_ips="10.0.0.0/8, ::1").forwarded_allow_ips
        == "10.0.0.0/8, ::1"
    )


@pytest.mark.parametrize(("name", "number"), [("trace", 5), ("info", 20), ("critical", 50)])
def test_log_level_number(name: str, number: int) -> None:
    assert Config("main:app", log_level=name).log_level_number == number


def test_config_pickles_when_app_is_a_string() -> None:
    config = Config("main:app", port=0, headers=["X-A: 1"], log_level="debug")
    copy = pickle.loads(pickle.dumps(config))
    for option in options():
        assert getattr(copy, option.name) == getattr(config, option.name)
    assert copy.given == config.given
    assert copy.log_level_number == logging.DEBUG


def test_repr_shows_what_was_given() -> None:
    assert repr(Config("main:app", port=0)) == "Config('main:app', port=0)"


# --- environment precedence ------------------------------------------------------------


def test_env_overrides_defaults_and_keywords_override_env() -> None:
    environ = {"PIER_PORT": "9000", "PIER_LOG_LEVEL": "debug", "PIER_ACCESS_LOG": "false"}
    config = Config.from_env("main:app", environ=environ, log_level="warning")
    assert config.port == 9000
    assert config.log_level == "warning"
    assert config.access_log is False
    assert config.host == "127.0.0.1"
    assert config.given == {"app", "port", "log_level", "access_log"}


def test_env_supplies_the_app() -> None:
    assert Config.from_env(environ={"PIER_APP": "pkg.main:app"}).app == "pkg.main:app"
    with pytest.raises(ConfigError, match=r"no app given.*pier main:app"):
        Config.from_env(environ={})


def test_env_headers_are_one_per_line() -> None:
    config = Config.from_env(
        "main:app", environ={"PIER_HEADERS": "X-A: 1, 2\nCache-Control: no-store; private\n"}
    )
    assert config.headers == [("X-A", "1, 2"), ("Cache-Control", "no-store; private")]


def test_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env("main:app", environ={"PIER_PORT": "http"})
    assert str(info.value).startswith("invalid PIER_PORT 'http': expected an integer")


def test_forwarded_allow_ips_falls_back_to_uvicorn_variable() -> None:
    environ = {"FORWARDED_ALLOW_IPS": "10.0.0.1"}
    assert Config.from_env("a:b", environ=environ).forwarded_allow_ips == "10.0.0.1"
    environ["PIER_FORWARDED_ALLOW_IPS"] = "*"
    assert Config.from_env("a:b", environ=environ).forwarded_allow_ips == "*"
    assert Config("a:b").forwarded_allow_ips == "127.0.0.1"  # programmatic: no env


def test_misspelled_pier_variable_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        Config.from_env("a:b", environ={"PIER_TIMEOUT_KEEPALIVE": "3"})
    assert str(info.value) == (
        "unknown environment variable PIER_TIMEOUT_KEEPALIVE; "
        "did you mean PIER_TIMEOUT_KEEP_ALIVE?"
    )


def test_unrelated_pier_variable_is_ignored() -> None:
    assert Config.from_env("a:b", environ={"PIER_HOME": "/srv"}).port == 8000


def test_plain_config_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIER_PORT", "9000")
    assert Config("a:b").port == 8000
    assert Config.from_env("a:b").port == 9000


# --- env files -------------------------------------------------------------------------

ENV_FILE = """\
# database settings
export DB_URL=postgres://u:p@db:5432/app
PLAIN = spaced value   # trailing comment
HASH_IN_VALUE=a#b
SINGLE='literal \\n $HOME # not a comment'
DOUBLE="line1\\nline2 \\"quoted\\""
MULTI="first
second"
EMPTY=

"""


def test_env_file_syntax(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(ENV_FILE)
    assert load_env_file(path) == {
        "DB_URL": "postgres://u:p@db:5432/app",
        "PLAIN": "spaced value",
        "HASH_IN_VALUE": "a#b",
        "SINGLE": "literal \\n $HOME # not a comment",
        "DOUBLE": 'line1\nline2 "quoted"',
        "MULTI": "first\nsecond",
        "EMPTY": "",
    }


def test_env_file_is_loaded_into_environ_and_existing_values_win(tmp_path: Path) -> None:
    path = tmp_path / "app.env"
    path.write_text("PIER_TEST_SECRET=from-file\nPIER_TEST_KEPT=from-file\n")
    os.environ["PIER_TEST_KEPT"] = "from-shell"
    config = Config("main:app", env_file=str(path))
    assert config.env_file == str(path)
    assert os.environ["PIER_TEST_SECRET"] == "from-file"
    assert os.environ["PIER_TEST_KEPT"] == "from-shell"


def test_missing_env_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.env"
    with pytest.raises(ConfigError, match=r"env file '.*nope\.env' does not exist; fix the"):
        Config("main:app", env_file=str(missing))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("OK=1\njust words\n", "line 2: expected KEY=VALUE, got 'just words'"),
        ("1BAD=x\n", "line 1: expected KEY=VALUE"),
        ('OPEN="never closed\nOTHER=1\n', "line 1: OPEN has no closing \""),
        ("Q='a' b\n", "line 1: unexpected 'b' after the quoted value of Q"),
    ],
)
def test_malformed_env_file_names_file_and_line(tmp_path: Path, text: str,
                                                message: str) -> None:
    path = tmp_path / "bad.env"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_env_file(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


# --- log config files ------------------------------------------------------------------

JSON_CONFIG = """{
  "version": 1,
  "formatters": {"plain": {"format": "json|%(name)s|%(message)s"}},
  "handlers": {"out": {"class": "logging.StreamHandler", "formatter": "plain",
                       "stream": "ext://sys.stderr"}},
  "loggers": {"pier": {"handlers": ["out"], "level": "WARNING", "propagate": false}}
}"""

YAML_CONFIG = """\
version: 1
formatters:
  plain: {format: "yaml|%(name)s|%(message)s"}
handlers:
  out: {class: logging.StreamHandler, formatter: plain, stream: "ext://sys.stderr"}
loggers:
  pier: {handlers: [out], level: WARNING, propagate: false}
"""

INI_CONFIG = """\
[loggers]
keys=root,pier

[handlers]
keys=out

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_pier]
level=WARNING
handlers=out
propagate=0
qualname=pier

[handler_out]
class=StreamHandler
formatter=plain
args=(sys.stderr,)

[formatter_plain]
format=ini|%(name)s|%(message)s
"""


@pytest.mark.parametrize(
    ("name", "text", "tag"),
    [("log.json", JSON_CONFIG, "json"), ("log.yaml", YAML_CONFIG, "yaml"),
     ("log.yml", YAML_CONFIG, "yaml"), ("log.ini", INI_CONFIG, "ini")],
)
def test_log_config_file_is_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   name: str, text: str, tag: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with restored_logging():
        configure(Config("main:app", log_config=str(path)))
        logging.getLogger("pier.error").info("below the file's level")
        logging.getLogger("pier.error").warning("from the file's handler")
        err = capsys.readouterr().err
    assert err == f"{tag}|pier.error|from the file's handler\n"


def test_explicit_log_level_overrides_the_file(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "log.json"
    path.write_text(JSON_CONFIG)
    with restored_logging():
        configure(Config("main:app", log_config=str(path), log_level="debug"))
        logging.getLogger("pier.error").debug("now visible")
        err = capsys.readouterr().err
    assert err == "json|pier.error|now visible\n"


def test_log_config_dictionary(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    with restored_logging():
        configure(Config("main:app", log_config=json.loads(JSON_CONFIG)))
        logging.getLogger("pier.error").warning("dict")
        err = capsys.readouterr().err
    assert err == "json|pier.error|dict\n"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("log.json", '{"version": 1,', "is not valid JSON: Expecting"),
        ("log.json", "[1, 2]", "must hold a mapping (a logging dictConfig), not list"),
        ("log.json", '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}',
         "was rejected by logging.config.dictConfig"),
        ("log.yaml", "version: 1\nhandlers: [unclosed\n", "is not valid YAML"),
        ("log.ini", "[loggers]\nkeys=root\n", "was rejected by logging.config.fileConfig"),
        ("log.ini", "not an ini file\n", "was rejected by logging.config.fileConfig"),
    ],
)
def test_broken_log_config_names_file_and_parser_error(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with restored_logging(), pytest.raises(ConfigError) as info:
        configure(Config("main:app", log_config=str(path)))
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_table_has_room_for_later_options() -> None:
    # Adding an option is one row: a new group shows up in --help on its own.
    groups = list(dict.fromkeys(option.group for option in options()))
    # Later issues append groups (WebSocket, Workers, TLS); the first ones stay put.
    assert groups[:5] == ["App", "Server", "HTTP limits", "Proxy", "Logging"]
    assert config_module.options() is config_module._OPTIONS
