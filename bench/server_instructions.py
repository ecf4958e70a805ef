"""Instructions per request of whole servers, counted by valgrind: pier beside its peers.

    bench/.venv/bin/python -m bench.server_instructions [--servers pier,uvicorn]
        [--modes keepalive,close,ws] [--requests 1000]

Each server runs the hello app under callgrind (child processes included), started the
way bench/run starts it (bench/servers.py). One client on this side sends hello
requests one at a time, either all on one keep-alive connection or each on a new
connection with "Connection: close"; or (ws) echoes 32-byte messages one at a time
over one WebSocket of the echo app. The server is counted twice, for N and 3N
requests; the difference divided by 2N is its user-space cost per request, start-up
and shutdown cancelled out. Unlike req/s or CPU time, the count does not move with
whatever else the shared machine is doing; unlike bench/instructions it includes the
event loop, the socket calls' user-space side and the accept path. Kernel work (the
syscalls themselves) is not in it: pier makes one write per response where uvicorn
makes two, which this does not show.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from bench.harness import free_port, wait_accepting
from bench.loadgen import (
    ws_check_handshake,
    ws_client_frame,
    ws_handshake_request,
    ws_server_frame,
)
from bench.servers import HOST, REPO, Launch, by_name

APP = "bench.apps.hello:app"
WS_APP = "bench.apps.websocket_echo:app"
WS_MESSAGE = b"m" * 32
BODY = b"Hello, world!"
KEEP_ALIVE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
CLOSE = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nConnection: close\r\n\r\n"
START_TIMEOUT = 120.0  # servers start slowly under valgrind


def read_response(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(BODY):
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit(f"the server closed the connection mid-response: {data[:80]!r}")
        data += chunk


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


def send_requests(port: int, count: int, mode: str) -> None:
    if mode == "ws":
        echo_messages(port, count)
        return
    if mode == "close":
        for _ in range(count):
            with socket.create_connection((HOST, port)) as sock:
                sock.sendall(CLOSE)
                while sock.recv(65536):
                    pass
        return
    with socket.create_connection((HOST, port)) as sock:
        for _ in range(count):
            sock.sendall(KEEP_ALIVE)
            read_response(sock)


def count(server: str, mode: str, requests: int) -> int:
    """Instructions the server's processes ran in all, serving `requests` hello requests."""
    port = free_port()
    command = by_name()[server].command(Launch(app=WS_APP if mode == "ws" else APP, port=port))
    with tempfile.TemporaryDirectory() as out:
        valgrind = [
            "valgrind", "--tool=callgrind", "--trace-children=yes",
            f"--callgrind-out-file={out}/cg.%p",
        ]
        log = Path(out) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [*valgrind, *command], cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_accepting(process, port, log, deadline=START_TIMEOUT)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="pier,uvicorn")
    parser.add_argument("--modes", default="keepalive,close", help="keepalive, close, ws")
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    low = args.requests
    results: dict[tuple[str, str], float] = {}
    for mode in args.modes.split(","):
        for server in args.servers.split(","):
            per_request = (count(server, mode, 3 * low) - count(server, mode, low)) / (2 * low)
            results[server, mode] = per_request
            line = f"{server:10} {mode:10} {per_request:10,.0f} instructions per request"
            print(line, flush=True)
    for (server, mode), value in results.items():
        if server != "uvicorn" and ("uvicorn", mode) in results:
            print(f"{server} / uvicorn, {mode}: {value / results['uvicorn', mode]:.2f}x")


if __name__ == "__main__":
    main()
