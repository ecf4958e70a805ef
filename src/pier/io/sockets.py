"""Opening listening sockets: TCP (IPv4/IPv6), Unix domain sockets, inherited fds.

Rules: every failure is a BindError that names the address and the fix. Sockets are
created here, before the event loop serves, so a supervisor can bind once and hand
them to worker processes.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Any

from pier.errors import BindError


def bind_sockets(config: Any) -> list[socket.socket]:
    """Create the listening socket(s) the config asks for."""
    if config.fd is not None:
        return [from_fd(config.fd)]
    if config.uds:
        return [bind_unix(config.uds, backlog=config.backlog)]
    return [bind_tcp(config.host, config.port, backlog=config.backlog)]


def from_fd(fd: int) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(
            f"--fd {fd} is not an open socket ({exc.strerror}); pass the number of a"
            " listening socket inherited from the parent process"
        ) from None
    sock.setblocking(False)
    return sock


def bind_unix(path: str, *, backlog: int) -> socket.socket:
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(mode):
            raise BindError(f"--uds {path} exists and is not a socket; choose another path")
        os.unlink(path)  # a stale socket left by a previous run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Group-writable so a reverse proxy in the same group can connect.
        os.chmod(path, 0o660)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on unix socket {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def bind_tcp(host: str, port: int, *, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    except socket.gaierror:
        if family == socket.AF_INET:
            try:
                infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
            except socket.gaierror as exc:
                raise BindError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
        else:
            raise BindError(f"--host {host!r} is not a valid address") from None
    af, kind, proto, _, address = infos[0]
    sock = socket.socket(af, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if af == socket.AF_INET6:
            # "::" means IPv6 only unless the system says otherwise; be explicit.
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if af == socket.AF_INET6 else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise BindError(
                f"address {where} is already in use; stop the other server or choose"
                " another --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise BindError(
                f"permission denied to listen on {where}; ports below 1024 need root"
                " (or CAP_NET_BIND_SERVICE): choose a --port of 1024 or more"
            ) from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise BindError(
                f"cannot listen on {where}: that address is not on this machine; use"
                " --host 0.0.0.0 for every interface"
            ) from None
        raise BindError(f"cannot listen on {where}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def describe(sock: socket.socket, *, scheme: str = "http") -> str:
    """The URL a user would type to reach this socket."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix socket {name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"
