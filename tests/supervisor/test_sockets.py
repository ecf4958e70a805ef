"""Where pier listens: several --bind addresses at once, IPv6 and dual-stack "::", Unix
domain sockets (permissions, stale and live files), inherited descriptors (--fd and
systemd socket activation), SO_REUSEPORT.

Pins: sd_listen_fds(3) (LISTEN_PID/LISTEN_FDS, descriptors from 3); RFC 3493 section
5.3 (IPV6_V6ONLY off: one "::" socket serves IPv4-mapped clients too); socket(7)
SO_REUSEPORT; unix(7) (connecting needs write permission on the socket file).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import stat
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pier.config import Config
from pier.errors import BindError
from pier.io.server import Server
from pier.io.sockets import bind_tcp, bind_unix, from_fd, systemd_sockets
from tests.e2e._support import ok_app
from tests.helpers import running_server
from tests.supervisor._harness import Proc, pier

APP = "tests.supervisor.apps:app"


def has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback (::1) here")


def http_get(family: int, address: object) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(address)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@contextmanager
def serving(app: Any, **options: Any) -> Iterator[Server]:
    """A Server in a thread (tests.helpers.running_server always sets --port)."""
    server = Server(Config(app, log_level="warning", **options))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    assert server.wait_started(10) and server.started
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)


def test_several_bind_addresses_are_served_at_once(tmp_path: Path) -> None:
    path = str(tmp_path / "pier.sock")
    with serving(ok_app(b"hello"), bind=["127.0.0.1:0", f"unix:{path}"]) as server:
        tcp, unix = server.bound_addresses
        assert http_get(socket.AF_INET, tcp[:2]).endswith(b"hello")
        assert http_get(socket.AF_UNIX, path).endswith(b"hello")
        assert unix == path


@needs_ipv6
def test_ipv6_loopback() -> None:
    with serving(ok_app(b"six"), bind=["[::1]:0"]) as server:
        (address,) = server.bound_addresses
        assert http_get(socket.AF_INET6, address[:2]).endswith(b"six")


@needs_ipv6
def test_host_double_colon_serves_ipv4_and_ipv6() -> None:
    with running_server(ok_app(b"both"), host="::") as server:
        port = server.server.bound_addresses[0][1]
        assert http_get(socket.AF_INET6, ("::1", port)).endswith(b"both")
        assert http_get(socket.AF_INET, ("127.0.0.1", port)).endswith(b"both")


def test_unix_socket_is_owner_and_group_only(tmp_path: Path) -> None:
    path = str(tmp_path / "pier.sock")
    sock = bind_unix(path, backlog=8)
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o660
    finally:
        sock.close()


def test_a_stale_unix_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "pier.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # the file stays: what a crashed server leaves behind
    live = bind_unix(path, backlog=8)
    try:
        with pytest.raises(BindError) as info:
            bind_unix(path, backlog=8)
        assert str(info.value) == (
            f"--uds {path}: another server is listening on it; stop that server or"
            " choose another path"
        )
    finally:
        live.close()
    (tmp_path / "file").write_text("")
    with pytest.raises(BindError, match="exists and is not a socket"):
        bind_unix(str(tmp_path / "file"), backlog=8)


def test_supervisor_removes_its_unix_socket_on_exit(tmp_path: Path) -> None:
    path = tmp_path / "pier.sock"
    with pier(APP, "--workers", "2", "--uds", str(path), "--no-access-log",
              listening=False) as server:
        server.wait_for(f"Listening on unix socket {path}")
        assert http_get(socket.AF_UNIX, str(path)).startswith(b"HTTP/1.1 200")
        server.signal(signal.SIGTERM)
        assert server.wait() == 0
    assert not path.exists()


def test_port_in_use_names_the_fix() -> None:
    first = bind_tcp("127.0.0.1", 0, backlog=8)
    port = first.getsockname()[1]
    try:
        with pytest.raises(BindError) as info:
            bind_tcp("127.0.0.1", port, backlog=8)
        assert str(info.value) == (
            f"address 127.0.0.1:{port} is already in use; stop the other server or choose"
            " another --port"
        )
    finally:
        first.close()


def test_reuse_port_lets_several_listeners_share_a_port() -> None:
    first = bind_tcp("127.0.0.1", 0, backlog=8, reuse_port=True)
    port = first.getsockname()[1]
    second = bind_tcp("127.0.0.1", port, backlog=8, reuse_port=True)
    first.close()
    second.close()


def test_fd_must_be_a_listening_socket() -> None:
    unbound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(BindError) as info:
            from_fd(unbound.fileno())
        assert "is a socket that is not listening" in str(info.value)
    finally:
        unbound.close()
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(BindError, match="is not an open socket"):
            from_fd(read_end)
    finally:
        os.close(read_end)
        os.close(write_end)


def inherited_listener() -> socket.socket:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.set_inheritable(True)
    return sock


def test_fd_serves_a_socket_inherited_from_the_parent() -> None:
    listener = inherited_listener()
    port = listener.getsockname()[1]
    try:
        proc = Proc([sys.executable, "-m", "pier", APP, "--fd", str(listener.fileno()),
                     "--no-access-log"], pass_fds=(listener.fileno(),))
        try:
            proc.wait_listening()
            assert proc.port == port
            assert http_get(socket.AF_INET, ("127.0.0.1", port)).startswith(b"HTTP/1.1 200")
        finally:
            proc.stop()
    finally:
        listener.close()


def test_systemd_socket_activation() -> None:
    listener = inherited_listener()
    port = listener.getsockname()[1]
    fd = listener.fileno()
    # Like systemd: the socket at fd 3, LISTEN_PID naming the process that serves it
    # (exec keeps the pid).
    script = (
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.close(int(sys.argv[1]));"
        " os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1');"
        " os.execv(sys.executable, [sys.executable, '-m', 'pier', *sys.argv[2:]])"
    )
    try:
        proc = Proc([sys.executable, "-c", script, str(fd), APP, "--workers", "2",
                     "--no-access-log"], pass_fds=(fd,))
        try:
            proc.wait_listening()
            assert proc.port == port
            assert http_get(socket.AF_INET, ("127.0.0.1", port)).startswith(b"HTTP/1.1 200")
        finally:
            proc.stop()
    finally:
        listener.close()


def test_listen_fds_for_another_process_are_left_alone() -> None:
    environ = {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    assert systemd_sockets(environ) == []
    assert environ == {"LISTEN_PID": str(os.getpid() + 1), "LISTEN_FDS": "1"}
    with pytest.raises(BindError, match="LISTEN_FDS='x' is not a number"):
        systemd_sockets({"LISTEN_PID": str(os.getpid()), "LISTEN_FDS": "x"})
