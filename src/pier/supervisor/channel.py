"""The control channel between the supervisor and one worker process.

Rules:
1. One AF_UNIX stream socket pair per worker; the worker's end is inherited by fd
   number. Nothing else crosses it, and the sockets carry no request traffic.
2. First, once: the supervisor sends the worker's `WorkerSpec` as a length-prefixed
   pickle (the only pickle on the channel, sent parent to child, never the other way).
3. Then one-line ASCII messages. Worker to supervisor: READY (listening, lifespan
   started), PONG (answer to PING), RECYCLE (--limit-max-requests reached; replace me),
   "metrics {json}" (issue 12: its counters, asked for or sent once more at the end).
   Supervisor to worker: PING, METRICS (send your counters). Stopping is a signal
   (SIGTERM), not a message, so that `kill` works the same. End of file on either
   side means the other side is gone.
4. The worker answers PING from its event loop, so a blocked loop is a missed PONG:
   that is the health check.
"""

from __future__ import annotations

import pickle
import socket
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pier.config import Config

__all__ = [
    "LINE_LIMIT",
    "METRICS",
    "PING",
    "PONG",
    "READY",
    "RECYCLE",
    "SNAPSHOT_PREFIX",
    "WorkerSpec",
    "receive_spec",
    "send_spec",
]

READY = b"ready\n"
PING = b"ping\n"
PONG = b"pong\n"
RECYCLE = b"recycle\n"
METRICS = b"metrics\n"
SNAPSHOT_PREFIX = b"metrics "
"""A worker's answer to METRICS: this prefix, a pier.metrics.Snapshot as JSON, newline."""
LINE_LIMIT = 1024 * 1024
"""StreamReader limit for the channel: a snapshot line is a few KiB at most."""

_LENGTH = struct.Struct("!I")


@dataclass
class WorkerSpec:
    """What a worker needs besides its inherited file descriptors."""

    config: Config
    """pier.Config (its app is an import string, so it pickles)."""
    fds: list[int] = field(default_factory=list)
    """Listening sockets shared by every worker, by inherited fd number."""
    reuse_port: list[tuple[str, int]] = field(default_factory=list)
    """With --reuse-port: TCP addresses the worker binds itself (SO_REUSEPORT)."""
    request_limit: int | None = None
    """--limit-max-requests plus this worker's share of the jitter."""
    drain_idle: float = 0.0
    """Server.drain_idle: how long idle keep-alive connections live on at shutdown."""


def send_spec(sock: socket.socket, spec: WorkerSpec) -> None:
    data = pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def receive_spec(sock: socket.socket) -> WorkerSpec:
    """Blocking read of the spec (the worker has no event loop yet)."""
    (length,) = _LENGTH.unpack(_receive_exactly(sock, _LENGTH.size))
    spec = pickle.loads(_receive_exactly(sock, length))
    if not isinstance(spec, WorkerSpec):
        raise TypeError(f"expected a WorkerSpec on the control channel, got {type(spec)}")
    return spec


def _receive_exactly(sock: socket.socket, count: int) -> bytes:
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError("the supervisor closed the control channel before the spec")
        data += chunk
    return bytes(data)
