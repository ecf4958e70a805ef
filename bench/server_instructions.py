"""Instructions per request of whole servers, counted by valgrind: pier beside its peers.

    bench/.venv/bin/python -m bench.server_instructions [--servers pier,uvicorn,granian]
        [--modes keepalive,close,json,fastapi,upload,stream,ws,wsgi,flask] [--scale 1.0]

Each server runs a bench app under callgrind (child processes included), started the
way bench/run starts it (bench/servers.py). One client on this side sends requests one
at a time and reads each answer whole before the next:

    keepalive  hello, all on one keep-alive connection
    close      hello, a new connection each with "Connection: close"
    json       the Starlette JSON route (bench/apps/starlette_json.py), keep-alive
    fastapi    the FastAPI POST with a pydantic body (bench/apps/fastapi_body.py)
    upload     a 1 MiB POST body read whole by a raw ASGI app (bench/apps/upload.py)
    stream     a 1 MiB response in 16 x 64 KiB body messages, chunked (bench/apps/stream.py)
    ws         32-byte text messages echoed over one WebSocket (bench/apps/websocket_echo.py)
    wsgi       hello as a WSGI app (bench/apps/wsgi_hello.py), each server's WSGI mode
    flask      the Flask JSON route over WSGI (bench/apps/flask_json.py)

The server is counted twice, for N and 3N requests; the difference divided by 2N is
its user-space cost per request, start-up and shutdown cancelled out. Unlike req/s or
CPU time, the count does not move with whatever else the shared machine is doing
(upload and stream move by a percent or so: how a megabyte splits into reads depends
on timing); unlike bench/instructions it includes the event loop, the socket calls'
user-space side and the accept path. Kernel work (the syscalls themselves) is not in
it: pier makes one write per response where uvicorn makes two, which this does not show.
The table is printed, and written to bench/results/instructions.json.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.apps.fastapi_body import SAMPLE_BODY
from bench.apps.hello import BODY as HELLO_BODY
from bench.apps.stream import TOTAL as STREAM_TOTAL
from bench.harness import RESULTS, free_port, wait_accepting
from bench.loadgen import (
    http_request,
    ws_check_handshake,
    ws_client_frame,
    ws_handshake_request,
    ws_server_frame,
)
from bench.scenarios import UPLOAD_SIZE, read_response
from bench.servers import HOST, REPO, Launch, by_name

WS_MESSAGE = b"m" * 32
KEEP_ALIVE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n"
START_TIMEOUT = 180.0  # servers start slowly under valgrind (FastAPI's imports most)
# Held from choosing a free port until the server accepts on it: two counts started at
# once (two people on one machine) could otherwise both pick the port, and the one
# server that binds it would count the other's client too.
STARTING_LOCK = Path(tempfile.gettempdir()) / "pier-server-instructions-starting.lock"
# One hash seed for every count: string hashes decide where dicts probe and collide, so
# a random seed per process moved a count by ~0.5-1.5k between runs of one build.
FIXED_HASH_SEED = {"PYTHONHASHSEED": "0"}


@dataclass(frozen=True)
class Mode:
    """One row of the table: the app, what is sent, and how the answer is checked."""

    key: str
    title: str
    app: str
    # Requests at the low count (the high one is three times it), before --scale.
    requests: int
    request: bytes = KEEP_ALIVE
    # Checks one (head, body) answer; raises SystemExit when it is wrong.
    check: Callable[[bytes, bytes], None] | None = None
    # "wsgi": served through each server's WSGI mode (bench/servers.py).
    interface: str = "asgi"


def expect_body(expected: bytes) -> Callable[[bytes, bytes], None]:
    def check(head: bytes, body: bytes) -> None:
        if body != expected:
            raise SystemExit(f"unexpected answer {head[:40]!r} {body[:40]!r}")

    return check


def expect_length(length: int) -> Callable[[bytes, bytes], None]:
    def check(head: bytes, body: bytes) -> None:
        if len(body) != length:
            raise SystemExit(f"unexpected answer {head[:40]!r}: {len(body)} bytes")

    return check


def expect_status(status: bytes) -> Callable[[bytes, bytes], None]:
    def check(head: bytes, body: bytes) -> None:
        if head[9:12] != status:
            raise SystemExit(f"unexpected answer {head[:40]!r} {body[:40]!r}")

    return check


MODES: tuple[Mode, ...] = (
    Mode("keepalive", "keep-alive hello", "bench.apps.hello:app", 1000,
         check=expect_body(HELLO_BODY)),
    Mode("close", "new connection per request", "bench.apps.hello:app", 1000, CLOSE),
    Mode("json", "Starlette JSON route", "bench.apps.starlette_json:app", 1000,
         http_request("GET", "/json", 0), expect_status(b"200")),
    Mode("fastapi", "FastAPI POST, pydantic body", "bench.apps.fastapi_body:app", 500,
         http_request("POST", "/items", 0, headers={"Content-Type": "application/json"},
                      body=SAMPLE_BODY), expect_status(b"200")),
    Mode("upload", "1 MiB upload", "bench.apps.upload:app", 100,
         http_request("POST", "/", 0, body=b"a" * UPLOAD_SIZE),
         expect_body(str(UPLOAD_SIZE).encode())),
    Mode("stream", "1 MiB streamed response", "bench.apps.stream:app", 100,
         check=expect_length(STREAM_TOTAL)),
    Mode("ws", "WebSocket echo (per message)", "bench.apps.websocket_echo:app", 1000),
    Mode("wsgi", "WSGI keep-alive hello", "bench.apps.wsgi_hello:app", 500,
         check=expect_body(HELLO_BODY), interface="wsgi"),
    Mode("flask", "Flask JSON route (WSGI)", "bench.apps.flask_json:app", 500,
         http_request("GET", "/json", 0), expect_status(b"200"), interface="wsgi"),
)


def echo_messages(port: int, count: int) -> None:
    with socket.create_connection((HOST, port)) as sock:
        key = b"dGhlIHNhbXBsZSBub25jZQ=="
        sock.sendall(ws_handshake_request("/", port, key))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("the server closed the connection during the handshake")
            head += chunk
        ws_check_handshake(head, key)
        frame = ws_client_frame(WS_MESSAGE)
        echo = ws_server_frame(WS_MESSAGE)
        for _ in range(count):
            sock.sendall(frame)
            received = b""
            while len(received) < len(echo):
                chunk = sock.recv(65536)
                if not chunk:
                    raise SystemExit("the server closed the WebSocket mid-echo")
                received += chunk
            if received != echo:
                raise SystemExit(f"unexpected echo {received[:40]!r}")


def send_requests(port: int, count: int, mode: Mode) -> None:
    if mode.key == "ws":
        echo_messages(port, count)
        return
    if mode.key == "close":
        for _ in range(count):
            with socket.create_connection((HOST, port)) as sock:
                sock.sendall(CLOSE)
                while sock.recv(65536):
                    pass
        return
    check = mode.check
    with socket.create_connection((HOST, port)) as sock:
        for _ in range(count):
            sock.sendall(mode.request)
            head, body = read_response(sock)
            if check is not None:
                check(head, body)


def count(server: str, mode: Mode, requests: int) -> int:
    """Instructions the server's processes ran in all, serving `requests` requests."""
    with tempfile.TemporaryDirectory() as out, STARTING_LOCK.open("a") as starting:
        valgrind = [
            "valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={out}/cg.%p",
        ]
        log = Path(out) / "server.log"
        fcntl.flock(starting, fcntl.LOCK_EX)
        port = free_port()
        launch = Launch(app=mode.app, port=port, interface=mode.interface)
        command = by_name()[server].command(launch)
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*valgrind, *command], cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True, env={**os.environ, **FIXED_HASH_SEED},
            )
        try:
            try:
                wait_accepting(process, port, log, deadline=START_TIMEOUT)
            finally:
                fcntl.flock(starting, fcntl.LOCK_UN)
            send_requests(port, requests, mode)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        total = 0
        for path in Path(out).glob("cg.*"):
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    total += int(line.split()[1])
        return total


def instructions_text(value: float) -> str:
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1000:.1f}k"


def table(results: dict[tuple[str, str], float], servers: list[str], modes: list[Mode]) -> str:
    """The results as a Markdown table, with pier's ratio to each peer."""
    peers = [name for name in servers if name != "pier"]
    lines = [
        "| scenario | " + " | ".join(servers) + "".join(f" | pier / {p}" for p in peers) + " |",
        "| --- |" + " ---: |" * (len(servers) + len(peers)),
    ]
    for mode in modes:
        cells = [
            instructions_text(results[name, mode.key]) if (name, mode.key) in results else "-"
            for name in servers
        ]
        for peer in peers:
            pier, other = results.get(("pier", mode.key)), results.get((peer, mode.key))
            cells.append(f"{pier / other:.2f}x" if pier and other else "-")
        lines.append(f"| {mode.title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="pier,uvicorn,granian")
    parser.add_argument(
        "--modes", default=",".join(mode.key for mode in MODES),
        help="comma-separated, from: " + ", ".join(mode.key for mode in MODES),
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply every mode's request count"
    )
    args = parser.parse_args()
    known = {mode.key: mode for mode in MODES}
    unknown = [key for key in args.modes.split(",") if key not in known]
    if unknown:
        parser.error(f"unknown mode(s) {', '.join(unknown)}")
    modes = [known[key] for key in args.modes.split(",")]
    servers = args.servers.split(",")
    results: dict[tuple[str, str], float] = {}
    for mode in modes:
        low = max(1, round(mode.requests * args.scale))
        for server in servers:
            per_request = (count(server, mode, 3 * low) - count(server, mode, low)) / (2 * low)
            results[server, mode.key] = per_request
            line = f"{server:10} {mode.key:10} {per_request:12,.0f} instructions per request"
            print(line, flush=True)
    print()
    print(table(results, servers, modes))
    RESULTS.mkdir(exist_ok=True)
    document = {f"{server} {mode}": value for (server, mode), value in results.items()}
    (RESULTS / "instructions.json").write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
