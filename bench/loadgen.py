"""Load clients wrk cannot play: WebSocket echo, fixed-rate latency, idle connections.

Rules: each client runs as its own process, pinned by the harness to the load core, and
talks to the harness in lines on stdout (`START`, `END {json}`, `READY {json}`,
`ALIVE {json}`, `ERROR {json}`); nothing else is printed there. Clients do the least
work per message (frames and requests built once, responses recognised by their
length) so they are not the bottleneck; the harness records the load core's busy
fraction to show it. The sans-I/O helpers at the top are also used by the harness's
sanity checks.

Usage: python -m bench.loadgen {ws,latency,idle} --port P [options]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import errno
import functools
import hashlib
import json
import math
import os
import resource
import select
import socket
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

HOST = "127.0.0.1"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class ProtocolFailure(Exception):
    """The server answered something the client cannot accept (status, framing)."""


class WebSocketRefused(ProtocolFailure):
    """The server answered the upgrade request with something other than 101."""


# --- sans-I/O helpers -----------------------------------------------------------------


def http_request(
    method: str, path: str, port: int, *, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def response_length(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """(status, total length) of the first response in `buffer`, or None if incomplete.

    Only Content-Length framing is understood: the apps these clients talk to set it.
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    try:
        status = int(head[9:12])
    except ValueError as exc:
        raise ProtocolFailure(f"not an HTTP response: {head[:40]!r}") from exc
    marker = head.find(b"\r\ncontent-length:")
    if marker < 0:
        raise ProtocolFailure("response without Content-Length; the client needs one")
    line_end = head.find(b"\r\n", marker + 2)
    value = head[marker + 17 : line_end if line_end >= 0 else len(head)]
    total = end + 4 + int(value.strip())
    if len(buffer) < total:
        return None
    return status, total


def ws_handshake_request(path: str, port: int, key: bytes) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def ws_check_handshake(head: bytes, key: bytes) -> None:
    """Raise unless `head` (up to the blank line) accepts the upgrade for `key`."""
    status_line = head.split(b"\r\n", 1)[0]
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or parts[1] != b"101":
        raise WebSocketRefused(status_line.decode("latin-1", "replace"))
    expected = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).lower()
    if b"sec-websocket-accept: " + expected not in head.lower():
        raise ProtocolFailure("101 response without the right Sec-WebSocket-Accept")


def ws_client_frame(payload: bytes, *, opcode: int = 0x1) -> bytes:
    """One final, masked client frame (RFC 6455 section 5.2/5.3) for a short payload."""
    if len(payload) > 125:
        raise ValueError("payloads over 125 bytes are not needed by this client")
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


def ws_server_frame(payload: bytes, *, opcode: int = 0x1) -> bytes:
    """The unmasked frame a server sends for a short payload."""
    return bytes([0x80 | opcode, len(payload)]) + payload


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(fraction * len(sorted_values) + 0.5))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def emit(tag: str, payload: dict[str, Any] | None = None) -> None:
    if payload is not None:
        # Strict JSON: a percentile of no samples is null, not NaN.
        payload = {
            key: None if isinstance(value, float) and not math.isfinite(value) else value
            for key, value in payload.items()
        }
    line = tag if payload is None else f"{tag} {json.dumps(payload, allow_nan=False)}"
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# --- WebSocket echo -------------------------------------------------------------------


@dataclass
class EchoCounter:
    messages: int = 0
    errors: list[str] = field(default_factory=list)


class EchoProtocol(asyncio.Protocol):
    """One connection: handshake, then send a message each time the echo arrives."""

    def __init__(
        self,
        *,
        port: int,
        path: str,
        payload: bytes,
        counter: EchoCounter,
        opened: asyncio.Future[None],
    ) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.handshake = ws_handshake_request(path, port, self.key)
        self.frame = ws_client_frame(payload)
        self.echo = ws_server_frame(payload)
        self.counter = counter
        self.opened = opened
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.handshake)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ProtocolFailure("connection closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        transport = self.transport
        assert transport is not None
        # The steady state: exactly one echo arrived; nothing to parse.
        if self.upgraded and not self.buffer and data == self.echo:
            self.counter.messages += 1
            transport.write(self.frame)
            return
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                ws_check_handshake(bytes(self.buffer[:end]), self.key)
            except ProtocolFailure as exc:
                if not self.opened.done():
                    self.opened.set_exception(exc)
                transport.close()
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            if not self.opened.done():
                self.opened.set_result(None)
            transport.write(self.frame)
        self._parse_frames(transport)

    def _parse_frames(self, transport: asyncio.Transport) -> None:
        buffer = self.buffer
        position = 0
        while len(buffer) - position >= 2:
            first, second = buffer[position], buffer[position + 1]
            length = second & 0x7F
            head = 2
            if length == 126:
                if len(buffer) - position < 4:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 4], "big")
                head = 4
            elif length == 127:
                if len(buffer) - position < 10:
                    break
                length = int.from_bytes(buffer[position + 2 : position + 10], "big")
                head = 10
            if second & 0x80:
                self.counter.errors.append("server sent a masked frame (RFC 6455 5.1)")
                transport.close()
                return
            end = position + head + length
            if len(buffer) < end:
                break
            opcode = first & 0x0F
            if opcode in (0x0, 0x1, 0x2) and first & 0x80:
                self.counter.messages += 1
                transport.write(self.frame)
            elif opcode == 0x9:
                # RFC 6455 section 5.5.2: a Ping is answered with its payload; a server
                # with a keep-alive ping (uvicorn's and pier's default 20 s) closes a
                # connection that does not answer, which cut the soak's echo short.
                transport.write(ws_client_frame(bytes(buffer[end - length : end]), opcode=0xA))
            elif opcode == 0x8:
                self.counter.errors.append("server closed the WebSocket")
                transport.close()
                return
            position = end
        del buffer[:position]

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            # Close frame, status 1000, so servers see an orderly end, not a reset.
            self.transport.write(ws_client_frame(b"\x03\xe8", opcode=0x8))
            self.transport.close()


async def websocket_echo(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    counter = EchoCounter()
    payload = b"x" * args.size
    protocols: list[EchoProtocol] = []
    waits: list[asyncio.Future[None]] = []
    for _ in range(args.connections):
        opened: asyncio.Future[None] = loop.create_future()
        _, protocol = await loop.create_connection(
            functools.partial(
                EchoProtocol,
                port=args.port,
                path=args.path,
                payload=payload,
                counter=counter,
                opened=opened,
            ),
            HOST,
            args.port,
        )
        protocols.append(protocol)
        waits.append(opened)
    try:
        await asyncio.wait_for(asyncio.gather(*waits), timeout=10)
    except WebSocketRefused as exc:
        emit("ERROR", {"refused": str(exc)})
        return
    except (ProtocolFailure, TimeoutError) as exc:
        emit("ERROR", {"failure": str(exc) or "WebSocket handshakes unanswered after 10 s"})
        return
    # Warm-up and measurement are periods of load, not synchronisation.
    await asyncio.sleep(args.warmup)
    start_count, started, cpu = counter.messages, time.perf_counter(), time.process_time()
    emit("START")
    await asyncio.sleep(args.duration)
    count, elapsed = counter.messages - start_count, time.perf_counter() - started
    emit(
        "END",
        {
            "cpu_s": time.process_time() - cpu,
            "messages": count,
            "duration_s": elapsed,
            "errors": counter.errors[:5],
            "error_count": len(counter.errors),
        },
    )
    for protocol in protocols:
        protocol.close()


def run_websocket(args: argparse.Namespace) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(websocket_echo(args))
    else:
        uvloop.run(websocket_echo(args))


# --- fixed-rate (open-loop) latency ---------------------------------------------------


@dataclass
class Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)
    intended: float | None = None


def run_latency(args: argparse.Namespace) -> None:
    """Send requests on a fixed schedule and time each from when it was due.

    Open loop, as wrk2 does: a request that finds every connection busy waits in a
    queue and its wait counts, so a slow server cannot slow the schedule down and hide
    its own latency (coordinated omission).
    """
    request = http_request("GET", args.path, args.port)
    poller = select.epoll()
    connections: dict[int, Connection] = {}

    def connect() -> Connection:
        sock = socket.create_connection((HOST, args.port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        connection = Connection(sock)
        connections[sock.fileno()] = connection
        poller.register(sock.fileno(), select.EPOLLIN)
        return connection

    for _ in range(args.connections):
        connect()
    idle: deque[Connection] = deque(connections.values())
    queued: deque[float] = deque()
    interval = 1.0 / args.rate
    total = int((args.warmup + args.duration) * args.rate)
    begin = time.perf_counter() + 0.01
    measure_from = begin + args.warmup
    measure_to = measure_from + args.duration
    latencies: list[float] = []
    lags: list[float] = []
    next_index = 0
    finished = 0
    errors = 0
    queue_peak = 0
    reconnects = 0
    announced = False
    cpu_started = 0.0
    first_error = ""

    def send(connection: Connection, intended: float, now: float, *, queued: bool) -> None:
        connection.intended = intended
        # The client's own lateness; a queued request's wait is the server's doing.
        if intended >= measure_from and not queued:
            lags.append(now - intended)
        connection.sock.send(request)

    while finished < total:
        now = time.perf_counter()
        if not announced and now >= measure_from:
            emit("START")
            announced = True
            cpu_started = time.process_time()
        while next_index < total and begin + next_index * interval <= now:
            intended = begin + next_index * interval
            next_index += 1
            if idle:
                send(idle.popleft(), intended, now, queued=False)
            else:
                queued.append(intended)
                queue_peak = max(queue_peak, len(queued))
        if next_index < total:
            wait = begin + next_index * interval - time.perf_counter()
            # epoll rounds its timeout up to whole milliseconds: spin for the last two
            # (the load core is ours alone) so requests leave on time.
            timeout = 0.0 if wait < 0.002 else wait - 0.001
        else:
            timeout = 0.05
            if now > measure_to + 10:
                errors += total - finished
                first_error = first_error or "responses still missing 10 s after the last send"
                break
        for fd, _ in poller.poll(timeout):
            connection = connections[fd]
            try:
                data = connection.sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionError:
                data = b""
            if not data:
                # The server closed the connection: a request in flight is lost (an
                # error); the schedule goes on over a new connection.
                poller.unregister(fd)
                del connections[fd]
                connection.sock.close()
                reconnects += 1
                if connection in idle:
                    idle.remove(connection)
                if connection.intended is not None:
                    finished += 1
                    errors += 1
                    first_error = first_error or "server closed a connection mid-request"
                replacement = connect()
                if queued:
                    send(replacement, queued.popleft(), time.perf_counter(), queued=True)
                else:
                    idle.append(replacement)
                continue
            connection.buffer += data
            parsed = response_length(connection.buffer)
            if parsed is None:
                continue
            status, length = parsed
            done_at = time.perf_counter()
            del connection.buffer[:length]
            intended = connection.intended
            assert intended is not None
            connection.intended = None
            finished += 1
            if status != 200:
                errors += 1
                first_error = first_error or f"status {status}"
            elif measure_from <= intended < measure_to:
                latencies.append(done_at - intended)
            if queued:
                send(connection, queued.popleft(), done_at, queued=True)
            else:
                idle.append(connection)
    if not announced:
        emit("START")
        cpu_started = time.process_time()
    cpu_used = time.process_time() - cpu_started
    latencies.sort()
    lags.sort()
    emit(
        "END",
        {
            "cpu_s": cpu_used,
            "requests": len(latencies),
            "duration_s": args.duration,
            "rate": args.rate,
            "errors": errors,
            "first_error": first_error,
            "p50_us": percentile(latencies, 0.50) * 1e6,
            "p90_us": percentile(latencies, 0.90) * 1e6,
            "p99_us": percentile(latencies, 0.99) * 1e6,
            "p999_us": percentile(latencies, 0.999) * 1e6,
            "max_us": (latencies[-1] if latencies else float("nan")) * 1e6,
            "send_lag_p99_us": percentile(lags, 0.99) * 1e6,
            "queue_peak": queue_peak,
            "reconnects": reconnects,
        },
    )
    for connection in connections.values():
        connection.sock.close()


# --- idle keep-alive connections ------------------------------------------------------


@dataclass
class Opening:
    """A connection on its way to idle: connecting, then awaiting its one response."""

    sock: socket.socket
    sent: bool = False
    buffer: bytearray = field(default_factory=bytearray)


def run_idle(args: argparse.Namespace) -> None:
    """Open `count` connections, one request each, then hold them idle until told.

    At most `parallel` connections are being opened at once (below every server's
    default listen backlog, hypercorn's 100 being the smallest), so no SYN is dropped
    and retried a second later.
    """
    limit = raise_fd_limit()
    if limit < args.count + 64:
        emit(
            "ERROR",
            {
                "failure": f"fd limit {limit} < {args.count} connections; "
                "raise it with `ulimit -n` (hard limit) and rerun"
            },
        )
        return
    request = http_request("GET", args.path, args.port)
    sockets: list[socket.socket] = []
    pending: dict[int, Opening] = {}
    poller = select.epoll()
    started = 0
    failures = 0
    first_error = ""

    def fail(opening: Opening, reason: str) -> None:
        nonlocal failures, first_error
        failures += 1
        first_error = first_error or reason
        with contextlib.suppress(KeyError, OSError):
            poller.unregister(opening.sock.fileno())
        pending.pop(opening.sock.fileno(), None)
        opening.sock.close()

    while (started < args.count or pending) and failures <= 100:
        while started < args.count and len(pending) < args.parallel:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            started += 1
            code = sock.connect_ex((HOST, args.port))
            opening = Opening(sock)
            if code not in (0, errno.EINPROGRESS):
                fail(opening, f"connect: {os.strerror(code)}")
                continue
            pending[sock.fileno()] = opening
            poller.register(sock.fileno(), select.EPOLLOUT)
        events = poller.poll(10.0)
        if not events:
            for opening in list(pending.values()):
                fail(opening, "no answer within 10 s")
            continue
        for fd, _ in events:
            opening = pending[fd]
            try:
                if not opening.sent:
                    code = opening.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        fail(opening, f"connect: {os.strerror(code)}")
                        continue
                    opening.sock.send(request)
                    opening.sent = True
                    poller.modify(fd, select.EPOLLIN)
                    continue
                data = opening.sock.recv(65536)
                if not data:
                    fail(opening, "closed before the response ended")
                    continue
                opening.buffer += data
                parsed = response_length(opening.buffer)
            except (OSError, ProtocolFailure) as exc:
                fail(opening, f"{type(exc).__name__}: {exc}")
                continue
            if parsed is None:
                continue
            if parsed[0] != 200:
                fail(opening, f"status {parsed[0]}")
                continue
            poller.unregister(fd)
            del pending[fd]
            sockets.append(opening.sock)
    emit("READY", {"opened": len(sockets), "failed": failures, "first_error": first_error})
    for line in sys.stdin:
        command = line.strip()
        if command == "check":
            alive = 0
            for sock in sockets:
                try:
                    if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                        alive += 1  # unexpected bytes, but the connection is open
                except BlockingIOError:
                    alive += 1
                except OSError:
                    pass
            emit("ALIVE", {"alive": alive})
        elif command == "close":
            break
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    sub = parser.add_subparsers(dest="client", required=True)
    ws = sub.add_parser("ws", help="WebSocket echo of small messages")
    ws.add_argument("--connections", type=int, default=64)
    ws.add_argument("--size", type=int, default=32)
    latency = sub.add_parser("latency", help="fixed-rate open-loop GETs, latency percentiles")
    latency.add_argument("--rate", type=float, default=2000)
    latency.add_argument("--connections", type=int, default=16)
    idle = sub.add_parser("idle", help="hold many idle keep-alive connections")
    idle.add_argument("--count", type=int, default=10_000)
    idle.add_argument("--parallel", type=int, default=64)
    for command in (ws, latency, idle):
        command.add_argument("--port", type=int, required=True)
        command.add_argument("--path", default="/")
    for command in (ws, latency):
        command.add_argument("--warmup", type=float, default=1.0)
        command.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        if args.client == "ws":
            run_websocket(args)
        elif args.client == "latency":
            run_latency(args)
        else:
            run_idle(args)
    except (OSError, ProtocolFailure) as exc:
        emit("ERROR", {"failure": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()
