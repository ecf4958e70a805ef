"""The config file (issue 12): --config FILE and [tool.pier] in ./pyproject.toml, the
precedence command line > PIER_* > file > defaults, did-you-mean for a mistyped key,
and --print-config.

Pins the TOML 1.0 data model as tomllib reads it (a key's value arrives typed: 10 is an
integer, "10" a string) and pier's rule that a file key is checked by the same parser
as the flag of that name.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import httpx
import pytest

from pier.cli import parse_args
from pier.config import Config
from pier.errors import ConfigError
from tests.supervisor._harness import pier
from tests.test_cli import run_pier

PYPROJECT = """\
[project]
name = "demo"

[tool.pier]
app = "main:app"
port = 9100
timeout-keep-alive = 7
header = ["X-From: file"]
"""


def test_config_file_sets_options_under_flag_or_option_names(tmp_path: Path) -> None:
    path = tmp_path / "pier.toml"
    path.write_text(
        'app = "main:app"\nport = 9100\ntimeout_keep_alive = 7\n'
        'header = ["X-A: 1"]\nreload-dir = ["src"]\nproxy-headers = false\n'
    )
    config = parse_args(["--config", str(path)], environ={})
    assert config.app == "main:app"
    assert config.port == 9100
    assert config.timeout_keep_alive == 7.0
    assert config.headers == [("X-A", "1")]
    assert config.reload_dirs == ["src"]
    assert config.proxy_headers is False
    assert config.sources["port"] == str(path)


def test_command_line_beats_environment_beats_file_beats_default(tmp_path: Path) -> None:
    path = tmp_path / "pier.toml"
    path.write_text('app = "file:app"\nport = 9100\nhost = "10.0.0.1"\nbacklog = 10\n')
    environ = {"PIER_PORT": "9200", "PIER_HOST": "10.0.0.2"}
    config = parse_args(["--config", str(path), "--port", "9300"], environ=environ)
    assert config.port == 9300  # command line
    assert config.host == "10.0.0.2"  # environment over file
    assert config.backlog == 10  # file over default
    assert config.timeout_keep_alive == 5.0  # default
    assert config.app == "file:app"
    assert parse_args(["cli:app", "--config", str(path)], environ={}).app == "cli:app"


def test_pyproject_in_the_current_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    monkeypatch.chdir(tmp_path)
    config = parse_args([], environ={})
    assert (config.app, config.port, config.timeout_keep_alive) == ("main:app", 9100, 7.0)
    assert config.headers == [("X-From", "file")]
    assert config.config_file == "pyproject.toml"
    # A pyproject.toml without [tool.pier] is not pier's: nothing is read from it.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\nport = 1\n')
    assert parse_args(["main:app"], environ={}).port == 8000


def test_plain_config_reads_a_file_only_when_named(tmp_path: Path) -> None:
    path = tmp_path / "pier.toml"
    path.write_text("port = 9100\nbacklog = 10\n")
    assert Config("m:a").port == 8000
    config = Config("m:a", config_file=path, port=9101)
    assert (config.port, config.backlog) == (9101, 10)  # keyword > file


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown option 'prot' in {path}; did you mean 'port'?"),
        ("timeout-keepalive = 1\n", "did you mean 'timeout_keep_alive'?"),
        ("zzzzzz = 1\n", "unknown option 'zzzzzz' in {path}; see `pier --help`"),
        ('port = "eighty"\n', "invalid port (in {path}) 'eighty': expected an integer"),
        ("port = 80.5\n", "invalid port (in {path}) 80.5: expected an integer"),
        ("proxy_headers = 3\n", "invalid proxy_headers (in {path}) 3: expected true or false"),
        ("port = 1\nport = 2\n", "is not valid TOML"),
        ("port = 1\nPORT = 2\n", "unknown option 'PORT'"),
        ("header = []\nheaders = []\n", "option 'headers' is set twice"),
        ('config = "other.toml"\n', "a config file cannot name another"),
    ],
)
def test_bad_files_are_refused_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pier.toml"
    path.write_text('app = "m:a"\n' + text)
    with pytest.raises(ConfigError) as info:
        parse_args(["--config", str(path)], environ={})
    assert message.format(path=path) in str(info.value)


def test_missing_config_file_and_pyproject_without_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; fix the --config path"):
        parse_args(["m:a", "--config", str(tmp_path / "nope.toml")], environ={})
    bare = tmp_path / "pyproject.toml"
    bare.write_text('[project]\nname = "x"\n')
    with pytest.raises(ConfigError, match=r"has no \[tool\.pier\] table"):
        parse_args(["m:a", "--config", str(bare)], environ={})


def test_typo_in_config_file_refused_by_the_command(tmp_path: Path) -> None:
    (tmp_path / "pier.toml").write_text('app = "main:app"\ntimeout-keep-alve = 3\n')
    result = run_pier("--config", "pier.toml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "pier: error: unknown option 'timeout-keep-alve' in pier.toml; did you mean"
        " 'timeout_keep_alive'?\n"
    )


def test_print_config_lists_every_option_with_its_source(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    result = run_pier(
        "--print-config", "--host", "0.0.0.0", env={"PIER_BACKLOG": "64"}, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0 if not line.startswith("#") else 1]: line
             for line in result.stdout.splitlines()}
    assert lines["host"].startswith('host = "0.0.0.0"')
    assert lines["host"].endswith("# command line --host")
    assert lines["backlog"].endswith("# environment PIER_BACKLOG")
    assert lines["port"].endswith("# [tool.pier] in pyproject.toml")
    assert lines["app"].startswith('app = "main:app"')
    assert lines["limit_concurrency"].startswith("# limit_concurrency is unset")
    assert lines["date_header"].endswith("# default")
    # The listing is TOML: it can start a config file, and reads back the same values.
    document = tomllib.loads(result.stdout)
    assert document["timeout_keep_alive"] == 7.0
    assert document["headers"] == ["X-From: file"]
    again = tmp_path / "again.toml"
    again.write_text("\n".join(
        line for line in result.stdout.splitlines() if not line.startswith("config_file")
    ))
    assert parse_args(["--config", str(again)], environ={}).headers == [("X-From", "file")]


def test_help_says_whether_pyproject_is_read(tmp_path: Path) -> None:
    result = run_pier("--help", cwd=tmp_path)
    assert "no [tool.pier] in ./pyproject.toml" in " ".join(result.stdout.split())
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    result = run_pier("--help", cwd=tmp_path)
    assert "[tool.pier] in pyproject.toml is read" in " ".join(result.stdout.split())


def test_server_started_from_pyproject_alone(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text(
        "async def app(scope, receive, send):\n"
        "    assert scope['type'] == 'http'\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'from the file'})\n"
    )
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pier]\napp = "main:app"\nport = 0\nlifespan = "off"\n'
        'header = ["X-From: file"]\n'
    )
    with pier(cwd=tmp_path) as proc:
        response = httpx.get(f"http://127.0.0.1:{proc.port}/", timeout=5)
    assert response.text == "from the file"
    assert response.headers["x-from"] == "file"


def test_print_config_says_whether_the_c_parser_serves(tmp_path: Path) -> None:
    # PIER_NATIVE is read at import, so it is no option; the listing still says it,
    # as a comment that leaves the listing a config file.
    on = run_pier("--print-config", cwd=tmp_path, env={})
    off = run_pier("--print-config", cwd=tmp_path, env={"PIER_NATIVE": "off"})
    assert on.returncode == off.returncode == 0, on.stderr + off.stderr
    assert on.stdout.splitlines()[-1].endswith("on (PIER_NATIVE=0 turns it off)")
    assert "switched off by PIER_NATIVE" in off.stdout.splitlines()[-1]
    tomllib.loads(off.stdout)
