"""A client that does not read holds a streaming app back on every Python pier supports.

What a user would notice: on Python 3.12.0-3.12.8 and 3.13.0-3.13.1, asyncio's own socket
transport buffers what writelines() cannot send without pausing the protocol (CPython
gh-127655), so without pier's own check (FlowControl.write_pieces) an app streaming to a
client that reads nothing puts its whole response into the server's memory. The suite
itself runs on one interpreter; this test runs pier (--loop asyncio, the transport with
the hole) under every other CPython 3.12 or later that pyenv has on the machine, in a
venv of its own with pier's runtime dependencies, pier itself from this checkout.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.apps.stream_big import TOTAL
from tests.helpers import PierProcess

REPO = Path(__file__).resolve().parents[2]
MB = 1024 * 1024
# What the server may hold beyond its start-up size while the client reads nothing: the
# transport's high-water mark, the kernel's socket buffers are not in RSS; generous.
HELD_AT_MOST = 40 * MB
# How long the client reads nothing: the unprotected server takes all 100 MB in well
# under a second here.
NOT_READING_FOR = 3.0


def _other_interpreters() -> list[Path]:
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              timeout=30, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    running = ".".join(map(str, sys.version_info[:3]))
    found = []
    for version in sorted(Path(root, "versions").glob("3.*")):
        python = version / "bin" / "python3"
        minor = version.name.split(".")[1]
        if python.exists() and minor.isdigit() and int(minor) >= 12 and version.name != running:
            found.append(python)
    return found


INTERPRETERS = _other_interpreters()


def _venv_python(interpreter: Path, where: Path) -> Path:
    """A venv of `interpreter` with pier's runtime dependencies (not pier: PYTHONPATH)."""
    subprocess.run([str(interpreter), "-m", "venv", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "httptools>=0.6",
                    "websockets>=16", "h2>=4.1,<5"], check=True, timeout=300)
    return python


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not INTERPRETERS, reason="no other CPython 3.12 or later under pyenv")
@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=lambda path: path.parents[1].name)
def test_a_client_that_reads_nothing_holds_the_app_back(
    interpreter: Path, tmp_path: Path
) -> None:
    python = _venv_python(interpreter, tmp_path / "venv")
    env = {"PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    process = PierProcess("tests.e2e.apps.stream_big:app", "--port", "0", "--loop", "asyncio",
                          "--no-access-log", cwd=REPO, env=env, python=str(python))
    try:
        port = process.wait_listening()
        pid = process.proc.pid
        before = _rss(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            # A small receive buffer: the kernel absorbs little of what is sent.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            peak = before
            until = time.monotonic() + NOT_READING_FOR
            while time.monotonic() < until and peak - before <= HELD_AT_MOST:
                peak = max(peak, _rss(pid))
                time.sleep(0.02)  # sampling memory over the window, not a synchronisation
            assert peak - before <= HELD_AT_MOST, (
                f"the server took {(peak - before) // MB} MB of the response into memory"
                f" from an app streaming to a client that reads nothing ({interpreter})"
            )
            received = 0
            while received < TOTAL + 30:  # the whole response still arrives
                data = sock.recv(1 << 20)
                assert data, "the server closed before the whole response"
                received += len(data)
        assert received > TOTAL
    finally:
        process.stop()
