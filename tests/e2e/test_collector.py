"""Python's cyclic collector and pier (issue 13; pier.collector, docs/performance.md
"How cost grows: traced").

What a user would notice: pier's own request path leaves nothing for the cyclic
collector (every per-request object dies by reference count, so collections that high
concurrency triggers free nothing of pier's); the pier command sets --gc-threshold
before importing the app and freezes the start-up heap after lifespan start-up
(--gc-freeze), both can be turned off, an app's own threshold wins, the threshold
rises and falls with the connections open (--gc-threshold-per-connection), and a
Server embedded in another program leaves the collector alone.
"""

from __future__ import annotations

import gc
import json
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from pier.collector import YOUNG_THRESHOLD_CEILING, YoungThreshold
from pier.types import Receive, Scope, Send
from tests.helpers import PierProcess, recv_response, running_server

REPO = Path(__file__).resolve().parents[2]
KEEP_ALIVE_REQUESTS = (
    b"GET /a?x=1 HTTP/1.1\r\nHost: t\r\nUser-Agent: test\r\n\r\n",
    b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
)
CLOSE_REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


@contextmanager
def cyclic_garbage() -> Iterator[Counter[str]]:
    """Within the block the collector is off; after it, the types of what a collection
    found unreachable (gc.DEBUG_SAVEALL keeps it in gc.garbage to be named)."""
    found: Counter[str] = Counter()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield found
        gc.collect()
        found.update(type(obj).__name__ for obj in gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_requests_leave_no_reference_cycles(loop: str) -> None:
    with running_server(echo, loop=loop) as server, server.connect() as sock:
        for request in KEEP_ALIVE_REQUESTS:  # warm: first-use caches, lazy imports
            sock.sendall(request)
            assert recv_response(sock).startswith(b"HTTP/1.1 200")
        with cyclic_garbage() as found:
            for request in KEEP_ALIVE_REQUESTS * 30:
                sock.sendall(request)
                assert recv_response(sock).startswith(b"HTTP/1.1 200")
            # The stdlib loop's own transport keeps a bound method of itself (a cycle
            # per closed connection that is asyncio's, not pier's): uvloop only.
            for _ in range(20 if loop == "uvloop" else 0):
                with server.connect() as fresh:
                    fresh.sendall(CLOSE_REQUEST)
                    assert recv_response(fresh).startswith(b"HTTP/1.1 200")
                    fresh.settimeout(5)
                    assert fresh.recv(1) == b""  # closed by the server: its objects gone
    assert not found, f"requests left reference cycles for the collector: {found}"


def _ask_state(sock: socket.socket) -> dict[str, int]:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    response = recv_response(sock)
    state: dict[str, int] = json.loads(response.partition(b"\r\n\r\n")[2])
    return state


def _collector_state(*options: str, app: str = "tests.e2e.apps.gc_report:app") -> dict[str, int]:
    process = PierProcess(app, "--port", "0", *options, cwd=REPO)
    try:
        with socket.create_connection(("127.0.0.1", process.wait_listening()), timeout=10) as sock:
            return _ask_state(sock)
    finally:
        process.stop()


def _threshold_becomes(sock: socket.socket, expected: int, within: float = 10.0) -> int:
    """The young threshold once it is `expected` (pier follows once a second), or the
    last one seen when `within` seconds pass first."""
    deadline = time.monotonic() + within
    while True:
        threshold = _ask_state(sock)["threshold"]
        if threshold == expected or time.monotonic() > deadline:
            return threshold
        time.sleep(0.05)  # between polls of an observable state, not a synchronisation


def _interpreter_defaults() -> dict[str, int]:
    """The collector's state in a bare interpreter (3.12 starts with some objects frozen)."""
    code = "import gc, json; print(json.dumps({'threshold': gc.get_threshold()[0],"
    code += " 'frozen': gc.get_freeze_count()}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    defaults: dict[str, int] = json.loads(out)
    return defaults


def test_the_pier_command_raises_the_threshold_and_freezes_the_startup_heap() -> None:
    state = _collector_state()
    assert state["threshold"] == 2000
    # The imported modules, pier and the app: thousands of objects no collection walks.
    assert state["frozen"] > 10_000


def test_both_can_be_turned_off() -> None:
    state = _collector_state("--gc-threshold", "none", "--no-gc-freeze")
    assert state == _interpreter_defaults()
    assert _collector_state("--gc-threshold", "5000")["threshold"] == 5000


def test_an_app_that_sets_its_own_threshold_keeps_it() -> None:
    state = _collector_state(app="tests.e2e.apps.gc_own_threshold:app")
    assert state["threshold"] == 1234


def _connections(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def test_the_threshold_rises_with_open_connections_and_falls_when_they_close() -> None:
    process = PierProcess("tests.e2e.apps.gc_report:app", "--port", "0",
                          "--gc-threshold-per-connection", "50", cwd=REPO)
    try:
        asking, *idle = _connections(process.wait_listening(), 101)
        with asking:
            try:
                # 101 connections x 50 objects: above the 2000 floor.
                assert _threshold_becomes(asking, 101 * 50) == 101 * 50
            finally:
                for sock in idle:
                    sock.close()
            assert _threshold_becomes(asking, 2000) == 2000  # the floor again
    finally:
        process.stop()


def test_a_fixed_threshold_does_not_follow_connections() -> None:
    process = PierProcess("tests.e2e.apps.gc_report:app", "--port", "0",
                          "--gc-threshold-per-connection", "0", cwd=REPO)
    try:
        connections = _connections(process.wait_listening(), 101)
        try:
            # Longer than a following server takes (above, once a second): still put.
            assert _threshold_becomes(connections[0], 101 * 50, within=2.5) == 2000
        finally:
            for sock in connections:
                sock.close()
    finally:
        process.stop()


def test_following_stops_for_good_once_someone_else_sets_the_threshold() -> None:
    saved = gc.get_threshold()
    try:
        young = YoungThreshold(floor=2000, per_connection=32)
        gc.set_threshold(2000, *saved[1:])
        young.follow(1_000)
        assert gc.get_threshold()[0] == 32_000
        young.follow(1_000_000)
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD_CEILING
        gc.set_threshold(1234, *saved[1:])  # the app's own, at run time
        young.follow(10)
        young.follow(5_000)
        assert gc.get_threshold()[0] == 1234
        assert not young.following
    finally:
        gc.set_threshold(*saved)


def test_an_embedded_server_leaves_the_collector_alone() -> None:
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with running_server(echo) as server, server.connect() as sock:
        sock.sendall(KEEP_ALIVE_REQUESTS[0])
        assert recv_response(sock).startswith(b"HTTP/1.1 200")
    assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)
