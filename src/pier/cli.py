"""The `pier` command line, generated from the option table in pier.config.

Rules:
1. No option is named here: flags, metavars, help lines and groups all come from
   `pier.config.options()`. This module only knows how a row's `kind` maps to argparse.
2. argparse only collects strings; pier.config validates them, so a bad value reads
   the same whether it came from a flag, a PIER_* variable or a keyword.
3. Exit codes: 2 for a usage error (unknown flag, missing app, unusable value), 1 for a
   PierError at start-up, otherwise whatever `run_config` returns. A user-caused error
   is one "pier: error: ..." line on stderr, never a traceback.
4. Nothing is started here: `main` builds the Config, configures logging and hands
   over to pier.serve.run_config.
"""

from __future__ import annotations

import argparse
import difflib
import platform
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import NoReturn

from pier import logging as pier_logging
from pier.config import FILE_KEYS, Config, Option, bool_word, options
from pier.errors import ConfigError, PierError

__all__ = ["UsageError", "build_parser", "main", "parse_args", "print_config"]

PROG = "pier"
USAGE = f"{PROG} [options] module:attr"


class UsageError(ConfigError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of printing and exiting, so we own the message."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def version_string() -> str:
    """`pier --version`: pier's version plus the interpreter, for bug reports."""
    return (
        f"{PROG} {_pier_version()} ({platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()})"
    )


def _pier_version() -> str:
    try:
        return version("pier")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


def _add_option(group: argparse._ArgumentGroup, option: Option) -> None:
    # default=SUPPRESS: only what the user typed reaches Config.from_env, so the
    # environment and the table defaults fill in the rest (precedence rule 3).
    metavar = "{" + ",".join(option.choices) + "}" if option.choices else option.metavar
    if option.kind == "positional":
        group.add_argument(
            option.name, nargs="?", default=argparse.SUPPRESS, metavar=metavar,
            help=option.help_text,
        )
    elif option.kind == "flag":
        group.add_argument(
            option.cli_flags[0], dest=option.name, action=argparse.BooleanOptionalAction,
            default=argparse.SUPPRESS, help=option.help_text,
        )
    else:
        group.add_argument(
            *option.cli_flags, dest=option.name,
            action="append" if option.kind == "append" else "store",
            default=argparse.SUPPRESS, metavar=metavar, help=option.help_text,
        )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser for `pier`, one argument group per option group."""
    parser = _Parser(
        prog=PROG,
        usage=USAGE,
        description="Serve an ASGI application. Example: pier main:app --port 8001",
        epilog=(
            "Every option can also be set in the environment as PIER_<NAME>, e.g. "
            "PIER_PORT=8001 or PIER_LOG_LEVEL=debug, and in a TOML config file (--config"
            " FILE, or a [tool.pier] table in ./pyproject.toml) under the flag's name: "
            "port = 8001. The command line wins over the environment, which wins over "
            "the file. " + _config_file_note()
        ),
        allow_abbrev=False,  # a prefix that is unique today is ambiguous tomorrow
        add_help=False,
        formatter_class=lambda prog: argparse.HelpFormatter(prog, max_help_position=34),
    )
    groups: dict[str, argparse._ArgumentGroup] = {}
    for option in options():
        if option.group not in groups:
            groups[option.group] = parser.add_argument_group(option.group)
        _add_option(groups[option.group], option)
    general = parser.add_argument_group("General")
    general.add_argument("-h", "--help", action="help", help="show this help and exit")
    general.add_argument(
        "--print-config", action="store_true", default=argparse.SUPPRESS,
        help="show every option's effective value and where it came from, and exit",
    )
    general.add_argument(
        "--version", action="version", version=version_string(),
        help="show pier's and Python's versions and exit",
    )
    return parser


def _config_file_note() -> str:
    """--help says whether this directory's pyproject.toml will be read."""
    from pier.configfile import find_config_file

    try:
        found = find_config_file(None, ".", FILE_KEYS)
    except ConfigError as exc:
        return f"Here: {exc}."
    if found is None:
        return "Here: no [tool.pier] in ./pyproject.toml; only --config would be read."
    return f"Here: {found.label} is read (unless --config names another file)."


def _flag_of(option: Option) -> str:
    return option.cli_flags[0] if option.cli_flags else "the app argument"


def _reject_extras(parser: argparse.ArgumentParser, extras: Sequence[str]) -> None:
    known = [flag for action in parser._actions for flag in action.option_strings]
    for extra in extras:
        if extra.startswith("-") and extra != "-":
            flag = extra.split("=", 1)[0]
            match = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            hint = f"; did you mean {match[0]}?" if match else f"; see {PROG} --help"
            raise UsageError(f"unknown option {flag}{hint}")
    if extras:
        raise UsageError(
            f"unexpected argument {extras[0]!r}; pier serves one app, named as module:attr"
        )


def _flag_values(args: list[str]) -> list[str]:
    """`--flag false`, `--flag=no` (uvicorn's syntax for some flags) as --no-flag.

    A yes/no word right after an on/off flag is its value; anything else after it
    (the app, another option) is left alone, so `--reload main:app` still works.
    """
    flags = {
        option.cli_flags[0]: option.cli_flags
        for option in options()
        if option.kind == "flag"
    }
    out: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            out.extend(args[index - 1 :])
            break
        flag, has_value, value = arg.partition("=")
        if flag not in flags:
            out.append(arg)
            continue
        if not has_value and index < len(args) and bool_word(args[index]) is not None:
            value, has_value = args[index], "="
            index += 1
        meaning = bool_word(value) if has_value else True
        if meaning is None:
            raise UsageError(f"{flag} takes true or false (or no value), not {value!r}")
        out.append(flags[flag][0 if meaning else 1])
    return out


def parse_args(
    argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Config:
    """Command line (plus PIER_* environment) to a validated Config.

    Raises UsageError for a malformed command line and ConfigError for a value
    pier cannot use. `--help` and `--version` print and raise SystemExit(0).
    """
    return _parse(argv, environ)[0]


def _parse(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None
) -> tuple[Config, bool]:
    """parse_args, and whether --print-config was asked for (then the app may be missing)."""
    parser = build_parser()
    args = _flag_values(list(sys.argv[1:] if argv is None else argv))
    namespace, extras = parser.parse_known_args(args)
    _reject_extras(parser, extras)
    given = vars(namespace)
    print_config = bool(given.pop("print_config", False))
    by_name = {option.name: option for option in options()}
    labels = {name: _flag_of(by_name[name]) for name in given}
    app = given.pop("app", None)
    config = Config.from_env(
        app, environ=environ, labels=labels, search_dir=".", require_app=False, **given
    )
    if config.app is None and not print_config:
        raise UsageError(
            'no app given; name it as module:attr, e.g. "pier main:app" (or set PIER_APP,'
            " or app in the config file)"
        )
    return config, print_config


def print_config(config: Config) -> str:
    """`pier --print-config`: every option, its effective value and its source."""
    from pier.configfile import format_config
    from pier.proto import native

    rows = []
    for option in options():
        source = config.sources.get(option.name, "default")
        if source.startswith("-"):
            source = "command line " + source
        elif source.startswith("PIER_") or source.isupper():
            source = "environment " + source
        rows.append((option.name, getattr(config, option.name), source, option.secret))
    # A comment, so the listing stays a config file pier reads back.
    return format_config(rows) + (
        "# C fast paths (pier.proto._h1head: request heads, response heads, WSGI header"
        f" fields): {native.state()}\n"
    )


def _fail(message: str, code: int, *, usage: bool = False) -> NoReturn:
    if usage:
        sys.stderr.write(f"usage: {USAGE}\n")
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console script `pier` (and `python -m pier`): parse, configure logging, serve."""
    try:
        config, show = _parse(argv, None)
    except UsageError as exc:
        _fail(str(exc), 2, usage=True)
    except ConfigError as exc:
        # A value given on the command line or in PIER_* that pier cannot use is a
        # usage error too: nothing was started.
        _fail(str(exc), 2)
    if show:
        sys.stdout.write(print_config(config))
        sys.exit(0)

    try:
        pier_logging.configure(config)
        # Imported late so that --help, --version and usage errors never pay for
        # (or trip over) the event loop and server machinery.
        from pier.serve import run_config

        code = run_config(config)
    except PierError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        # Ctrl-C before the server installed its signal handlers: no traceback wall.
        sys.exit(130)
    sys.exit(code)
