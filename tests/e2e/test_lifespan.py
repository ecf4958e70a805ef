"""Lifespan: startup before serving, shutdown after, state shared with requests, and the
three --lifespan modes.

Pins: ASGI lifespan spec ("Scope": type "lifespan", asgi version, "state"; "Startup",
"Startup - complete", "Startup - failed" with its message, "Shutdown", "Shutdown -
complete"; "if an exception is raised when calling the application callable with a
lifespan.startup message or a scope with type lifespan, the server must continue but not
send any lifespan events" for servers that do not require lifespan) and the HTTP
"Connection Scope" state clause (a shallow copy of the lifespan state per request).
pier's modes: auto tolerates apps without lifespan quietly, on requires it, off skips it;
a failed startup exits with code 1 and the app's message on one line.
"""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from pier.types import Receive, Scope, Send
from tests.e2e._support import Conn, capture_logs, connect_to, read_body, respond
from tests.helpers import PierProcess, running_server

APPS = Path(__file__).parent / "apps"


class LifespanApp:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.lifespan_scopes: list[Scope] = []
        self.connection = object()  # stands for a database pool made at startup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.lifespan_scopes.append(scope)
            while True:
                message = await receive()
                self.events.append(message["type"])
                if message["type"] == "lifespan.startup":
                    scope["state"]["pool"] = self.connection
                    scope["state"]["requests"] = []
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await read_body(receive)
        self.events.append("request " + scope["path"])
        state = scope["state"]
        state["requests"].append(scope["path"])
        same = state["pool"] is self.connection
        await respond(send, 200, b"same pool" if same else b"another pool")


def test_startup_before_requests_and_shutdown_after() -> None:
    app = LifespanApp()
    with running_server(app, lifespan="on") as server, Conn.open(server) as conn:
        assert conn.request("GET", "/a").status == 200
        assert app.events == ["lifespan.startup", "request /a"]
    assert app.events == ["lifespan.startup", "request /a", "lifespan.shutdown"]


def test_lifespan_scope_shape() -> None:
    app = LifespanApp()
    with running_server(app, lifespan="on"):
        pass
    (scope,) = app.lifespan_scopes
    assert scope["type"] == "lifespan"
    assert scope["asgi"]["version"] == "3.0"
    assert isinstance(scope["asgi"].get("spec_version", "2.0"), str)
    assert isinstance(scope["state"], dict)


def test_state_objects_made_at_startup_are_shared_with_every_request() -> None:
    app = LifespanApp()
    with running_server(app, lifespan="on") as server, Conn.open(server) as conn:
        first = conn.request("GET", "/one")
        second = conn.request("GET", "/two")
    assert first.body == second.body == b"same pool"
    # The list object placed in the state is shared (shallow copy), so appends show.
    (scope,) = app.lifespan_scopes
    assert scope["state"]["requests"] == ["/one", "/two"]


def test_auto_mode_quietly_serves_an_app_that_raises_on_lifespan() -> None:
    calls: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append(scope["type"])
        if scope["type"] != "http":
            raise ValueError("this app only does http")
        await read_body(receive)
        await respond(send, 200, b"served without lifespan")

    with capture_logs() as logs:
        with running_server(app, lifespan="auto") as server, Conn.open(server) as conn:
            assert conn.request("GET", "/").body == b"served without lifespan"
        loud = logs.messages(logging.WARNING)
    assert calls[0] == "lifespan"
    assert calls.count("lifespan") == 1, "lifespan must not be retried at shutdown"
    assert loud == [], f"auto mode must tolerate this quietly, but logged: {loud}"


def test_off_mode_never_calls_the_app_with_lifespan() -> None:
    types: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        types.append(scope["type"])
        await read_body(receive)
        await respond(send, 200, b"ok")

    with running_server(app, lifespan="off") as server, Conn.open(server) as conn:
        assert conn.request("GET", "/").status == 200
    assert types == ["http"]


def _run_to_exit(*args: str) -> tuple[int, str]:
    proc = PierProcess(*args, "--app-dir", str(APPS), "--port", "0")
    try:
        return proc.wait(timeout=20)
    finally:
        proc.stop()


def test_failed_startup_exits_1_with_the_apps_message() -> None:
    from tests.e2e.apps.lifespan_apps import STARTUP_FAILURE

    code, output = _run_to_exit("lifespan_apps:failing_startup")
    assert code == 1, output
    assert STARTUP_FAILURE in output
    assert "Listening on" not in output
    assert "Traceback" not in output, "a reported startup failure needs no traceback"


def test_startup_exception_with_lifespan_on_exits_1_naming_it() -> None:
    code, output = _run_to_exit("lifespan_apps:raising_in_startup", "--lifespan", "on")
    assert code == 1, output
    assert "redis refused the connection" in output
    assert "Listening on" not in output


def test_lifespan_on_with_an_app_without_lifespan_support_fails_startup() -> None:
    code, output = _run_to_exit("lifespan_apps:raising_on_lifespan", "--lifespan", "on")
    assert code == 1, output
    assert "lifespan" in output.lower()
    assert "Listening on" not in output


def test_auto_mode_serves_an_app_without_lifespan_support_from_the_cli() -> None:
    proc = PierProcess("lifespan_apps:raising_on_lifespan", "--app-dir", str(APPS),
                       "--port", "0")
    try:
        proc.wait_listening()
        assert proc.host and proc.port
        with Conn(connect_to(proc)) as conn:
            assert conn.request("GET", "/").status == 200
        proc.signal(signal.SIGTERM)
        code, output = proc.wait()
    finally:
        proc.stop()
    assert code == 0, output
    assert "Traceback" not in output


def test_startup_completes_before_listening_and_shutdown_runs_on_sigterm() -> None:
    proc = PierProcess("lifespan_apps:printing", "--app-dir", str(APPS), "--port", "0")
    try:
        proc.wait_listening()
        assert any("MARK lifespan startup" in line for line in proc.lines), (
            "the server listened before the app's startup completed"
        )
        with Conn(connect_to(proc)) as conn:
            response = conn.request("GET", "/")
            assert response.body == b"['ready']"
        proc.signal(signal.SIGTERM)
        code, output = proc.wait()
    finally:
        proc.stop()
    assert code == 0, output
    assert output.index("MARK lifespan startup") < output.index("MARK lifespan shutdown")
