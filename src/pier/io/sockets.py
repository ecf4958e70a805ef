"""Opening listening sockets: TCP (IPv4/IPv6), Unix domain sockets, inherited fds, systemd.

Rules:
1. Every failure is a BindError that names the address and the fix.
2. Sockets are created here, before the event loop serves, so a supervisor can bind
   once and hand them to worker processes (they are inheritable by fd number).
3. Where to listen is decided in one place, `addresses()`: --bind (several), else --fd,
   else --uds, else --host/--port. systemd socket activation (LISTEN_FDS, sd_listen_fds(3))
   replaces all of these unless --bind, --fd or --uds is given.
4. What a --bind value means is pier/addresses.py (pure, no I/O), so that pier.config
   validates --bind without importing this layer.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import MutableMapping
from typing import TYPE_CHECKING

from pier.addresses import Address, parse_bind
from pier.errors import BindError

if TYPE_CHECKING:
    from pier.config import Config

__all__ = [
    "addresses",
    "bind_sockets",
    "bind_tcp",
    "bind_unix",
    "describe",
    "from_fd",
    "open_address",
    "systemd_sockets",
]

SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3


def addresses(config: Config) -> list[Address]:
    """Where the config says to listen (systemd sockets aside)."""
    if config.bind:
        return [parse_bind(text) for text in config.bind]
    if config.fd is not None:
        return [Address("fd", fd=config.fd)]
    if config.uds:
        return [Address("unix", path=config.uds)]
    return [Address("tcp", host=config.host, port=config.port)]


def bind_sockets(config: Config) -> list[socket.socket]:
    """Create the listening socket(s) the config (or systemd) asks for."""
    if not (config.bind or config.fd is not None or config.uds):
        inherited = systemd_sockets()
        if inherited:
            return inherited
    opened: list[socket.socket] = []
    try:
        for address in addresses(config):
            opened.append(
                open_address(
                    address,
                    backlog=config.backlog,
                    reuse_port=getattr(config, "reuse_port", False),
                )
            )
    except BaseException:
        for sock in opened:
            sock.close()
        raise
    return opened


def open_address(
    address: Address, *, backlog: int, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    if address.kind == "fd":
        return from_fd(address.fd)
    if address.kind == "unix":
        return bind_unix(address.path, backlog=backlog)
    return bind_tcp(
        address.host, address.port, backlog=backlog, reuse_port=reuse_port, listen=listen
    )


def systemd_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """Sockets passed by systemd socket activation, or [] when there are none for us.

    The variables are removed once read, so that the app's own child processes do
    not take the sockets for theirs (sd_listen_fds(3) with unset_environment=1).
    """
    env = os.environ if environ is None else environ
    count_text = env.get("LISTEN_FDS")
    if not count_text or env.get("LISTEN_PID") != str(os.getpid()):
        return []  # none, or meant for another process (a parent that exec'd us?)
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not count_text.isdigit():
        raise BindError(
            f"LISTEN_FDS={count_text!r} is not a number of sockets; fix the systemd unit"
            " (or unset LISTEN_FDS)"
        )
    return [
        from_fd(fd, what="LISTEN_FDS socket")
        for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count_text))
    ]


def from_fd(fd: int, *, what: str = "--fd") -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(
            f"{what} {fd} is not an open socket ({exc.strerror}); pass the number of a"
            " listening socket inherited from the parent process"
        ) from None
    accepting = getattr(socket, "SO_ACCEPTCONN", None)
    if accepting is not None:
        try:
            listening = sock.getsockopt(socket.SOL_SOCKET, accepting)
        except OSError:
            listening = 1  # the platform cannot tell; let serving find out
        if not listening:
            sock.detach()  # not ours to close
            raise BindError(
                f"{what} {fd} is a socket that is not listening; the parent process must"
                " bind() and listen() before passing it"
            )
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
        if _unix_socket_alive(path):
            raise BindError(
                f"--uds {path}: another server is listening on it; stop that server or"
                " choose another path"
            )
        os.unlink(path)  # a stale socket left by a previous run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Owner and group may connect (a reverse proxy is usually put in the group);
        # done before listen(), so no one can connect while the mode is the umask's.
        os.chmod(path, 0o660)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot listen on unix socket {path}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


def _unix_socket_alive(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False  # ECONNREFUSED: nobody listens, the file is left over
    finally:
        probe.close()
    return True


def bind_tcp(
    host: str, port: int, *, backlog: int, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """A TCP socket bound to host:port; listening unless `listen` is False.

    `reuse_port` sets SO_REUSEPORT, so several processes can each listen on the same
    port and the kernel spreads connections between them. A bound socket that does
    not listen reserves the port (and resolves port 0) without receiving connections.
    """
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
    where = f"[{host}]:{port}" if af == socket.AF_INET6 else f"{host}:{port}"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            option = getattr(socket, "SO_REUSEPORT", None)
            if option is None:
                raise BindError(
                    "--reuse-port: this platform has no SO_REUSEPORT; leave --reuse-port off"
                )
            sock.setsockopt(socket.SOL_SOCKET, option, 1)
        if af == socket.AF_INET6 and host in ("::", "[::]"):
            # "::" means every interface, IPv4 included, whatever the system default.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
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
    except BaseException:
        sock.close()
        raise
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
