"""pier's configuration file: a TOML file named by --config, or `[tool.pier]` in the
pyproject.toml of the directory pier starts in; and `--print-config`'s listing.

Rules:
1. A file holds rows of the ONE option table (pier.config), under the same names as the
   command line, with dashes or underscores (`timeout-keep-alive = 10` or
   `timeout_keep_alive = 10`); the app string is the `app` key. Nothing else is read.
2. A key that is not an option is refused with a did-you-mean, naming the file; a value
   is checked by the option's own parser, so it reads the same as a bad flag.
3. Which file: `--config FILE` (or PIER_CONFIG_FILE). A file named pyproject.toml is
   read from its `[tool.pier]` table, any other file from its top level (a `[tool.pier]`
   table there is accepted too). Without --config, ./pyproject.toml is read only if it
   has a `[tool.pier]` table; a pyproject.toml without one is not pier's business.
4. Precedence (applied in pier.config.Config.from_env): command line > PIER_* environment
   > config file > table default.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pier.config import _suggest
from pier.errors import ConfigError

__all__ = ["ConfigFile", "find_config_file", "format_config", "read_config_file"]

PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class ConfigFile:
    """The options one file sets, by option name, and where they came from."""

    path: str
    values: dict[str, Any]

    @property
    def label(self) -> str:
        """How messages and --print-config name the file."""
        name = self.path
        return f"[tool.pier] in {name}" if Path(name).name == PYPROJECT else name


def _pier_table(document: dict[str, Any]) -> dict[str, Any] | None:
    tool = document.get("tool")
    if isinstance(tool, dict):
        table = tool.get("pier")
        if isinstance(table, dict):
            return table
    return None


def read_config_file(path: str | os.PathLike[str], known: Mapping[str, str]) -> ConfigFile:
    """Read `path` (rule 3) and map its keys to option names (rules 1 and 2).

    `known` maps every accepted spelling, with underscores, to its option name: the
    name (`headers`) and the flag's (`header`, from --header).
    """
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {name!r} does not exist; fix the --config path") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {name!r} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {name!r}: {exc}") from None
    table = _pier_table(document)
    if Path(name).name == PYPROJECT:
        if table is None:
            raise ConfigError(f"{name} has no [tool.pier] table; put pier's options there")
    elif table is None:
        table = document
    elif len(document) > 1:
        others = ", ".join(sorted(key for key in document if key != "tool"))
        raise ConfigError(
            f"config file {name!r} has a [tool.pier] table and top-level keys ({others});"
            " keep the options in one place"
        )
    found = ConfigFile(name, {})
    values: dict[str, Any] = {}
    for key, value in table.items():
        spelling = key.replace("-", "_")
        if spelling not in known:
            hint = _suggest(spelling, known) or "; see `pier --help` for the options"
            raise ConfigError(f"unknown option {key!r} in {found.label}{hint}")
        option = known[spelling]
        if option in values:
            raise ConfigError(f"option {option!r} is set twice in {found.label} ({key!r})")
        values[option] = value
    return ConfigFile(name, values)


def find_config_file(
    given: str | None, directory: str | os.PathLike[str] | None, known: Mapping[str, str]
) -> ConfigFile | None:
    """The file --config names, else ./pyproject.toml if it has [tool.pier] (rule 3)."""
    if given is not None:
        return read_config_file(given, known)
    if directory is None:
        return None
    candidate = Path(directory) / PYPROJECT
    try:
        with open(candidate, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {candidate}: {exc}") from None
    if _pier_table(document) is None:
        return None
    return read_config_file(PYPROJECT if directory == "." else candidate, known)


# --- --print-config ----------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        items = [
            f"{item[0]}: {item[1]}" if isinstance(item, tuple) else item for item in value
        ]
        return "[" + ", ".join(_toml_value(item) for item in items) + "]"
    if isinstance(value, dict):
        return json.dumps(json.dumps(value))  # a dictConfig dict, as its JSON text
    return json.dumps(repr(value))  # an app object given from Python


def format_config(rows: list[tuple[str, Any, str, bool]]) -> str:
    """`--print-config`: one `name = value  # source` line per (name, value, source, secret).

    The output is TOML (an unset option is a comment line), so it can start a config file.
    """
    lines = []
    for name, value, source, secret in rows:
        if value is None:
            text = f"# {name} is unset"
        else:
            shown = '"***"' if secret else _toml_value(value)
            text = f"{name} = {shown}"
        lines.append(f"{text:<44} # {source}")
    return "\n".join(lines) + "\n"
