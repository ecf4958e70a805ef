"""Switching from uvicorn is one word: every long option uvicorn 0.54's `--help` lists is
accepted by pier with the same value syntax, and each value means the same thing or is
taken the pier way with one info line (README's promise; docs/migrating.md).

The option list is read from the installed uvicorn (the `test` extra pins 0.54), so a
uvicorn option pier does not accept fails here by name.
"""

from __future__ import annotations

import re
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from pier.cli import build_parser, parse_args
from pier.config import Config
from pier.errors import ConfigError
from tests.helpers import PierProcess

# "  --name METAVAR   help" or "  --name / --no-name   help" at the start of a line.
OPTION_LINE = re.compile(r"^  (--[a-z0-9-]+)(?: / (--no-[a-z0-9-]+))?(?: (\[[^\]]+\]|[A-Z]+))?")
SAMPLES = {"INTEGER": ["1"], "FLOAT": ["0.5"], "BOOLEAN": ["true", "false"],
           "TEXT": ["x"], "PATH": ["."]}
# Values that only make sense in a shape of their own.
VALUES = {"--host": ["0.0.0.0"], "--port": ["0"], "--uds": ["/tmp/pier.sock"],
          "--fd": ["3"], "--reload-include": ["*.html"], "--root-path": ["/api"],
          "--forwarded-allow-ips": ["127.0.0.1,10.0.0.0/8"], "--header": ["X-A: b"],
          "--ssl-version": ["17", "2", "5"], "--ssl-cert-reqs": ["0", "1"],
          "--ssl-ciphers": ["ECDHE+AESGCM"], "--h11-max-incomplete-event-size": ["16384"]}
NEEDS = {"--ssl-keyfile": ["--ssl-certfile", "c.pem"],
         "--ssl-keyfile-password": ["--ssl-certfile", "c.pem"],
         "--ssl-version": ["--ssl-certfile", "c.pem"],
         "--ssl-ca-certs": ["--ssl-certfile", "c.pem"]}
# Refused, saying why, until that part of pier lands: (option, value) -> the reason named.
PENDING: dict[tuple[str, str | None], str] = {}


def uvicorn_options() -> list[tuple[str, str | None, list[str | None]]]:
    """(flag, its --no- form, values to try) for every long option of `uvicorn --help`."""
    text = subprocess.run([sys.executable, "-m", "uvicorn", "--help"], capture_output=True,
                          text=True, check=True, timeout=30).stdout
    found = []
    for line in text.splitlines():
        match = OPTION_LINE.match(line)
        if not match:
            continue
        flag, negative, metavar = match.groups()
        values: list[str | None]
        if metavar is None:
            values = [None]
        elif metavar.startswith("["):
            values = list(metavar.strip("[]").split("|"))
        else:
            values = list(VALUES.get(flag) or SAMPLES[metavar])
        found.append((flag, negative, values))
    return found


OPTIONS = uvicorn_options()


def test_the_list_is_uvicorns_whole_list() -> None:
    flags = {flag for flag, _, _ in OPTIONS}
    assert len(flags) > 50, sorted(flags)
    assert {"--http", "--ws", "--loop", "--ssl-version", "--reload-delay",
            "--h11-max-incomplete-event-size", "--ws-per-message-deflate"} <= flags


def test_pier_knows_every_uvicorn_option() -> None:
    known = {flag for action in build_parser()._actions for flag in action.option_strings}
    missing = [flag for flag, negative, _ in OPTIONS
               for flag in (flag, negative) if flag and flag not in known]
    assert missing == [], f"uvicorn options pier does not accept: {missing}"


@pytest.mark.parametrize(("flag", "negative", "values"), OPTIONS, ids=[o[0] for o in OPTIONS])
def test_every_uvicorn_value_is_accepted(
    flag: str, negative: str | None, values: list[str | None], tmp_path: Path
) -> None:
    if flag in ("--help", "--version"):
        return  # they print and exit; test_cli covers them
    files = {"--env-file": tmp_path / "x.env", "--log-config": tmp_path / "log.json"}
    files["--env-file"].write_text("A=1\n")
    files["--log-config"].write_text('{"version": 1}')
    for sample in values:
        value = str(files[flag]) if flag in files else sample
        argv = ["m:a", *NEEDS.get(flag, []), flag, *([] if value is None else [value])]
        reason = PENDING.get((flag, value))
        try:
            parse_args(argv, environ={})
        except ConfigError as exc:
            assert reason is not None, f"pier refuses {' '.join(argv[1:])}: {exc}"
            assert reason in str(exc), str(exc)
        if negative:
            parse_args(["m:a", negative], environ={})


@pytest.mark.parametrize(
    ("argv", "attribute", "value", "note"),
    [
        (["--http", "h11"], "http", "1", "pier always parses HTTP/1.1 with llhttp"),
        (["--http", "httptools"], "http", "1", "serving HTTP/1.1 only"),
        (["--ws", "wsproto"], "ws", "websockets", "websockets library's sans-I/O"),
        (["--ws", "websockets-sansio"], "ws", "websockets", "sans-I/O protocol core"),
        (["--loop", "none"], "loop", "asyncio", "asyncio's default event loop"),
        (["--h11-max-incomplete-event-size", "1000"], "limit_request_head_size", 1000,
         "--limit-request-head-size"),
        (["--timeout-notify", "3"], "timeout_worker_healthcheck", 3.0,
         "--timeout-worker-healthcheck"),
    ],
)
def test_implementation_choices_are_taken_the_pier_way_with_a_note(
    argv: list[str], attribute: str, value: Any, note: str
) -> None:
    config = parse_args(["m:a", *argv], environ={})
    assert getattr(config, attribute) == value
    assert [text for _, text in config.notes if note in text], config.notes


def test_uvicorn_boolean_value_syntax() -> None:
    # uvicorn 0.54: `--ws-per-message-deflate BOOLEAN`; pier's flags take it too.
    assert parse_args(["m:a", "--ws-per-message-deflate", "false"], environ={}) \
        .ws_per_message_deflate is False
    assert parse_args(["m:a", "--ws-per-message-deflate=no", "--reload"], environ={}) \
        .ws_per_message_deflate is False
    config = parse_args(["--reload", "m:a"], environ={})  # the app is not a yes/no word
    assert (config.reload, config.app) == (True, "m:a")


def test_http_2_and_uvicorns_http2_flag_are_accepted() -> None:
    # issue 9: pier serves HTTP/2; uvicorn's --http2 is pier's default, --http auto.
    assert parse_args(["m:a", "--http", "2"], environ={}).http == "2"
    config = parse_args(["m:a", "--http2"], environ={})
    assert config.http2 and config.http == "auto"


@pytest.mark.parametrize("http", ["1", "h11"])
def test_http2_flag_with_http_1_only_is_refused_not_ignored(http: str) -> None:
    with pytest.raises(ConfigError, match=f"--http2 asks for HTTP/2 but --http {http} serves"):
        parse_args(["m:a", "--http", http, "--http2"], environ={})


def test_an_old_name_and_the_new_one_disagreeing_is_refused() -> None:
    with pytest.raises(ConfigError, match="one setting"):
        parse_args(["m:a", "--h11-max-incomplete-event-size", "10",
                    "--limit-request-head-size", "20"], environ={})


def test_tls_1_0_is_refused_and_5_pins_tls_1_2(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"TLS 1\.0/1\.1"):
        parse_args(["m:a", "--ssl-certfile", "c.pem", "--ssl-version", "3"], environ={})
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    pem = tmp_path / "cert.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    from pier.io.tls import create_ssl_context

    context = create_ssl_context(Config("m:a", ssl_certfile=str(pem), ssl_version=5))
    assert context is not None
    assert context.maximum_version == ssl.TLSVersion.TLSv1_2
    default = create_ssl_context(Config("m:a", ssl_certfile=str(pem)))
    assert default is not None and default.maximum_version != ssl.TLSVersion.TLSv1_2


CONTEXT_APP = """
import contextvars
SEEN = contextvars.ContextVar("seen", default="fresh")
SEEN.set("import")  # set where the server runs, before it serves

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": SEEN.get().encode()})
"""


@pytest.mark.parametrize(("flag", "expected"), [([], "import"),
                                                (["--reset-contextvars"], "fresh")])
def test_reset_contextvars(flag: list[str], expected: str, tmp_path: Path) -> None:
    # A variable set where the server runs (at import) is seen by requests, unless
    # --reset-contextvars gives each request's task a fresh Context.
    (tmp_path / "ctxapp.py").write_text(CONTEXT_APP)
    proc = PierProcess("ctxapp:app", "--port", "0", "--lifespan", "off", *flag,
                       cwd=tmp_path)
    try:
        proc.wait_listening()
        assert httpx.get(proc.url, timeout=5).text == expected
    finally:
        proc.signal()
        proc.wait()


def test_notes_and_service_links_reach_the_log(tmp_path: Path) -> None:
    # Kubernetes sets PIER_PORT=tcp://IP:PORT in every pod when a Service is named "pier".
    (tmp_path / "app.py").write_text(
        "async def app(scope, receive, send):\n    pass\n")
    proc = PierProcess("app:app", "--http", "h11", "--lifespan", "off",
                       "--bind", "127.0.0.1:0", cwd=tmp_path,
                       env={"PIER_PORT": "tcp://10.0.0.1:80"})
    try:
        proc.wait_listening()
    finally:
        proc.signal()
        _, output = proc.wait()
    assert "WARNING:  ignoring PIER_PORT=tcp://10.0.0.1:80: that is a service link" in output
    assert "Service named 'pier'" in output
    assert "INFO:     --http h11: pier always parses HTTP/1.1 with llhttp" in output
