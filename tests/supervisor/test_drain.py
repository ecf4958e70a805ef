"""Long-lived streams at shutdown (issue 12): a drain ends when the work ends, and what the
graceful timeout cuts is named in the log.

Pins: RFC 6455 section 7.4.1 (close code 1001, "going away", sent when the drain
starts) and the ASGI HTTP spec's http.disconnect (sent to a streaming response, such
as server-sent events, when the graceful timeout closes its connection, so the app ends
on its own instead of being cancelled).
"""

from __future__ import annotations

import signal
import socket

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.supervisor._harness import pier

APP = "tests.supervisor.apps:app"


def test_sse_gets_http_disconnect_at_the_deadline_and_the_log_names_it() -> None:
    with pier(APP, "--port", "0", "--timeout-graceful-shutdown", "1") as proc:
        sock = socket.create_connection((proc.host, proc.port), timeout=10)
        sock.sendall(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        received = b""
        while b"data: hello" not in received:
            received += sock.recv(4096)
        proc.signal(signal.SIGTERM)
        proc.wait_for("Graceful shutdown timed out")
        proc.wait_for("Requests cut by the graceful shutdown timeout: GET /events from 127.0.0.1:")
        proc.wait_for("events saw http.disconnect")
        assert proc.wait() == 0
        assert "CancelledError" not in proc.output
        sock.close()


def test_websocket_gets_1001_when_the_drain_starts_and_the_drain_ends_with_it() -> None:
    with pier("tests.autobahn.echo_app:app", "--port", "0",
              "--timeout-graceful-shutdown", "30") as proc:
        with connect(f"ws://{proc.host}:{proc.port}/", open_timeout=10) as ws:
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"
            proc.signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001
        # Well within the 30 s graceful timeout: the session's end ended the drain.
        assert proc.wait(timeout=10) == 0
        assert "Graceful shutdown timed out" not in proc.output
