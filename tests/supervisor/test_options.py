"""The issue-5 options as a user types them: --workers (0/auto, PIER_WORKERS,
WEB_CONCURRENCY), --bind, the TLS options, the reload globs, and the combinations that
cannot work, each refused with one line that names the fix. Also the --reload filter.

Pins: pier's option table rules (pier.config: one row per option, errors name the option
as spelled); --bind formats follow RFC 3986 section 3.2.2 for IPv6 literals in brackets.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pier.addresses import Address, parse_bind
from pier.cli import parse_args
from pier.config import Config
from pier.errors import ConfigError
from pier.supervisor.reload import ChangeFilter


def test_workers_auto_and_zero_mean_one_per_cpu() -> None:
    cpus = len(os.sched_getaffinity(0))
    assert Config("m:a", workers="auto").workers == cpus
    assert Config("m:a", workers=0).workers == cpus
    assert Config("m:a", workers="3").workers == 3


def test_workers_from_the_environment_and_web_concurrency() -> None:
    assert parse_args(["m:a"], environ={"PIER_WORKERS": "4"}).workers == 4
    assert parse_args(["m:a"], environ={"WEB_CONCURRENCY": "3"}).workers == 3
    both = {"PIER_WORKERS": "2", "WEB_CONCURRENCY": "5"}
    assert parse_args(["m:a"], environ=both).workers == 2
    assert parse_args(["m:a", "--workers", "6"], environ=both).workers == 6


def test_a_bad_worker_count_names_the_option_and_what_is_accepted() -> None:
    with pytest.raises(ConfigError) as info:
        parse_args(["m:a", "--workers", "many"], environ={})
    assert str(info.value) == (
        "invalid --workers 'many': expected an integer >= 0 or \"auto\" (0 and auto mean"
        " one per CPU)"
    )


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8000", Address("tcp", host="127.0.0.1", port=8000)),
        ("localhost:0", Address("tcp", host="localhost", port=0)),
        ("[::1]:8443", Address("tcp", host="::1", port=8443)),
        ("[::]:80", Address("tcp", host="::", port=80)),
        ("unix:/run/pier.sock", Address("unix", path="/run/pier.sock")),
        ("fd://3", Address("fd", fd=3)),
    ],
)
def test_bind_formats(text: str, address: Address) -> None:
    assert parse_bind(text) == address
    assert str(address) == text


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("127.0.0.1", "the port is missing, e.g. 127.0.0.1:8000"),
        ("::1:8000", "an IPv6 address is written [::1]:8000"),
        ("[::1]8000", "an IPv6 address is written [::1]:8000"),
        (":8000", "the host is missing, e.g. 0.0.0.0:8000"),
        ("host:http", "with a port from 0 to 65535"),
        ("host:70000", "with a port from 0 to 65535"),
        ("unix:", "unix:PATH with a path"),
        ("fd://three", "fd://N with a file descriptor number"),
    ],
)
def test_a_malformed_bind_is_refused_with_the_formats(text: str, hint: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_args(["m:a", "--bind", "127.0.0.1:0", "--bind", text], environ={})
    message = str(info.value)
    assert message.startswith(f"invalid --bind {text!r}: expected ")
    assert hint in message


def test_bind_is_repeatable_and_comma_separated_in_the_environment() -> None:
    config = parse_args(["m:a", "--bind", "127.0.0.1:1", "--bind", "unix:/tmp/p.sock"],
                        environ={})
    assert config.bind == ["127.0.0.1:1", "unix:/tmp/p.sock"]
    config = parse_args(["m:a"], environ={"PIER_BIND": "127.0.0.1:1, [::1]:2"})
    assert config.bind == ["127.0.0.1:1", "[::1]:2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bind", "127.0.0.1:1", "--port", "2"],
         "--bind and --port both given; list every address with --bind"),
        (["--bind", "127.0.0.1:1", "--uds", "/tmp/x"], "--bind and --uds both given"),
        (["--reuse-port", "--uds", "/tmp/x"], "--reuse-port needs TCP addresses"),
        (["--ssl-keyfile", "key.pem"],
         "--ssl-keyfile given without --ssl-certfile; TLS needs a certificate"),
        (["--ssl-ca-certs", "ca.pem"], "--ssl-ca-certs given without --ssl-certfile"),
        (["--ssl-certfile", "c.pem", "--ssl-cert-reqs", "required"],
         "--ssl-cert-reqs required needs --ssl-ca-certs"),
        (["--ssl-cert-reqs", "sometimes"],
         "invalid --ssl-cert-reqs 'sometimes': expected one of none, optional, required"),
    ],
)
def test_combinations_that_cannot_work_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_args(["m:a", *argv], environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_cert_reqs_accepts_the_ssl_module_numbers() -> None:
    assert Config("m:a", ssl_cert_reqs=1).ssl_cert_reqs == "optional"
    assert Config("m:a", ssl_cert_reqs="2", ssl_certfile="c", ssl_ca_certs="a").ssl_cert_reqs == (
        "required"
    )


def test_the_keyfile_password_never_shows_in_repr() -> None:
    config = Config("m:a", ssl_certfile="c.pem", ssl_keyfile_password="hunter2")
    assert "hunter2" not in repr(config)
    assert "ssl_keyfile_password=***" in repr(config)


def test_reload_needs_nothing_beyond_the_readme_install() -> None:
    # `pip install -e .` (the README's command) must bring the watcher --reload uses.
    from importlib.metadata import requires

    plain = [req for req in requires("pier") or [] if "extra ==" not in req]
    assert any(req.startswith("watchfiles") for req in plain), plain


def test_reload_options_are_lists() -> None:
    config = parse_args(
        ["m:a", "--reload", "--reload-dir", "src", "--reload-dir", "lib",
         "--reload-include", "*.html", "--reload-exclude", "build"],
        environ={},
    )
    assert config.reload is True
    assert (config.reload_dirs, config.reload_includes, config.reload_excludes) == (
        ["src", "lib"], ["*.html"], ["build"],
    )
    config = parse_args(["m:a"], environ={"PIER_RELOAD_INCLUDES": "*.html,*.css"})
    assert config.reload_includes == ["*.html", "*.css"]


# --- which changed files reload (pier.supervisor.reload.ChangeFilter) --------------------


@pytest.mark.parametrize(
    ("relative", "relevant"),
    [
        ("app.py", True),
        ("pkg/models.py", True),
        ("templates/page.html", True),  # --reload-include *.html
        ("notes.txt", False),  # not included
        (".app.py.swp", False),  # hidden (editors' swap files)
        ("pkg/__pycache__/models.cpython-311.pyc", False),
        ("app.pyc", False),
        ("app.py~", False),
        (".venv/lib/site.py", False),  # a hidden directory
        ("build/gen.py", False),  # --reload-exclude build
        ("pkg/migrations/0001.py", False),  # --reload-exclude migrations/*.py
        ("pkg/static/app.html", True),
    ],
)
def test_change_filter(tmp_path: Path, relative: str, relevant: bool) -> None:
    change_filter = ChangeFilter(
        [str(tmp_path)], includes=["*.html"], excludes=["build", "migrations/*.py"]
    )
    assert change_filter.relevant(str(tmp_path / relative)) is relevant
