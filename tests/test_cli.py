"""The `pier` command line: help, version, usage errors, and argv -> Config.

Pins:
- POSIX utility conventions as argparse implements them: exit status 2 for a usage
  error (unknown flag, missing operand, unusable value), 0 for --help/--version;
- pier's own rules: no abbreviated flags, a did-you-mean for a mistyped flag, a missing
  app explains "pier main:app", a start-up PierError is one "pier: error:" line with
  exit status 1 and no traceback;
- precedence command line > PIER_* environment > default.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pier.cli import UsageError, main, parse_args
from pier.config import options
from pier.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def run_pier(*args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m pier ARGS` with this test run's interpreter (the project .venv)."""
    return subprocess.run(
        [sys.executable, "-m", "pier", *args],
        capture_output=True, text=True, timeout=30, env=_env(env), cwd=cwd, check=False,
    )


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PIER_")}
    # Works whether or not pier is pip-installed into the interpreter's environment.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.update(extra or {})
    return env


# --- real subprocesses -----------------------------------------------------------------


def test_help_lists_every_option_by_group_with_defaults() -> None:
    result = run_pier("--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("usage: pier [options] module:attr\n")
    positions = [out.index(f"\n{group}:\n") for group in
                 ("App", "Server", "HTTP limits", "Proxy", "Logging")]
    assert positions == sorted(positions)
    for option in options():
        for flag in option.cli_flags:
            assert flag in out, flag
    assert "--timeout-keep-alive SECONDS" in out
    assert "[default: 8000]" in out
    assert "--proxy-headers, --no-proxy-headers" in out
    assert "{critical,error,warning,info,debug,trace}" in out
    assert "PIER_<NAME>" in out


def _expected_version() -> str:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return f"pier {version} "


def test_console_script_version() -> None:
    script = Path(sys.executable).parent / "pier"
    if not script.exists():
        pytest.skip(f"no {script}: pier is not pip-installed here (./scripts/test installs it)")
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(_expected_version())
    assert "Python" in result.stdout or "CPython" in result.stdout


def test_entry_point_target_prints_version() -> None:
    # What [project.scripts] pier = "pier.cli:main" runs, in a fresh interpreter.
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["pier"].partition(":")
    code = f"import sys; sys.argv[0] = 'pier'; from {module} import {func}; {func}()"
    result = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                            text=True, timeout=30, env=_env(), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(_expected_version())


def test_mistyped_flag_suggests_the_closest_and_exits_2() -> None:
    result = run_pier("--time-out-keep-alive", "3", "main:app")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        "pier: error: unknown option --time-out-keep-alive; did you mean --timeout-keep-alive?"
    )
    assert "Traceback" not in result.stderr


def test_missing_app_says_how_to_name_it() -> None:
    result = run_pier("--port", "0")
    assert result.returncode == 2
    assert "no app given; name it as module:attr" in result.stderr
    assert "pier main:app" in result.stderr


def test_bad_value_exits_2_naming_the_flag() -> None:
    result = run_pier("main:app", "--port=eighty")
    assert result.returncode == 2
    assert result.stderr == (
        "pier: error: invalid --port 'eighty': expected an integer from 0 to 65535 "
        "(0 picks a free port)\n"
    )


def test_startup_config_error_is_one_line_and_exit_1(tmp_path: Path) -> None:
    # A log config that parses as a path but not as JSON fails after argument parsing,
    # before anything is served: one line, no traceback.
    broken = tmp_path / "log.json"
    broken.write_text("{")
    result = run_pier("main:app", "--log-config", str(broken))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"pier: error: log config '{broken}' is not valid JSON")


# --- in-process: argv -> Config --------------------------------------------------------


def test_parse_args_maps_flags_to_config() -> None:
    config = parse_args(
        [
            "pkg.main:app", "--host", "0.0.0.0", "--port", "0", "--no-proxy-headers",
            "--header", "X-A: 1", "--header", "X-B:2", "--log-level", "debug",
            "--no-access-log", "--use-colors", "--timeout-keep-alive", "2.5",
            "--limit-request-body", "1048576", "--factory", "--root-path", "/api",
        ],
        environ={},
    )
    assert config.app == "pkg.main:app"
    assert (config.host, config.port) == ("0.0.0.0", 0)
    assert config.proxy_headers is False
    assert config.headers == [("X-A", "1"), ("X-B", "2")]
    assert config.log_level == "debug"
    assert config.access_log is False
    assert config.use_colors is True
    assert config.timeout_keep_alive == 2.5
    assert config.limit_request_body == 1048576
    assert config.factory is True
    assert config.root_path == "/api"
    assert config.server_header is True  # untouched options keep their defaults


def test_command_line_beats_environment_beats_default() -> None:
    environ = {"PIER_PORT": "9000", "PIER_HOST": "0.0.0.0", "PIER_PROXY_HEADERS": "no"}
    config = parse_args(["main:app", "--port", "9001"], environ=environ)
    assert config.port == 9001
    assert config.host == "0.0.0.0"
    assert config.proxy_headers is False
    assert config.backlog == 2048
    assert parse_args(["main:app", "--proxy-headers"], environ=environ).proxy_headers is True


def test_app_from_environment() -> None:
    assert parse_args([], environ={"PIER_APP": "main:app"}).app == "main:app"


def test_errors_name_where_the_value_came_from() -> None:
    with pytest.raises(ConfigError, match=r"^invalid PIER_PORT 'x'"):
        parse_args(["main:app"], environ={"PIER_PORT": "x"})
    with pytest.raises(ConfigError, match=r"^invalid --header 'oops'"):
        parse_args(["main:app", "--header", "oops"], environ={})
    with pytest.raises(ConfigError, match=r"^invalid --log-level 'loud'"):
        parse_args(["main:app", "--log-level", "loud"], environ={})


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["main:app", "--port"], "argument --port: expected one argument"),
        (["main:app", "--prot", "1"], "unknown option --prot; did you mean --port?"),
        (["main:app", "--proxy-header"], "did you mean --proxy-headers?"),
        (["main:app", "--timeout-keep=3"], "unknown option --timeout-keep; did you mean"),
        # No abbreviations: a prefix that is unique today stops being so tomorrow.
        (["main:app", "--back", "10"], "unknown option --back"),
        (["main:app", "--zzzzzzzz"], "unknown option --zzzzzzzz; see pier --help"),
        (["main:app", "other:app"], "unexpected argument 'other:app'"),
    ],
)
def test_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_args(argv, environ={})
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_main_usage_error_prints_usage_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["main:app", "--prot", "1"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "usage: pier [options] module:attr\n"
        "pier: error: unknown option --prot; did you mean --port?\n"
    )
