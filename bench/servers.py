"""The servers under test and how each is started: one worker, loopback, access log off
(on, in each server's own default format, for the one scenario that measures it).

Rules: one ServerSpec per server, holding everything server-specific (command line,
version, how it is labelled). The harness knows nothing about any particular server.
Each peer runs in its fastest documented single-worker configuration; where that needs
an optional extra (uvicorn[standard], gunicorn[fast]) the extra is installed and the
label says so.

Adding a server: write a `_<name>_command` function, append a ServerSpec to SERVERS,
add its package to bench/requirements.txt. Nothing else changes.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Launch:
    """What one run needs from a server beyond the app and the port."""

    app: str
    port: int
    # Seconds an idle keep-alive connection is kept; None keeps the server's default.
    keep_alive: int | None = None
    # Connections the scenario will hold open at once; servers that cap concurrency
    # by default are told to allow this many.
    max_connections: int | None = None
    # One line per request to the server's stdout, in the server's default format.
    access_log: bool = False
    # The app's interface: "asgi", or "wsgi" (a PEP 3333 app, served by each server's
    # own WSGI support with WSGI_THREADS threads where it has a thread count).
    interface: str = "asgi"
    # Worker processes; every scenario uses one, the soak (bench/growth.py) two.
    workers: int = 1


# Threads per worker for WSGI apps: pier's default (--wsgi-threads), given to every
# server that has a thread-count knob so that none runs with more or fewer.
WSGI_THREADS = 10


@dataclass(frozen=True)
class ServerSpec:
    name: str
    label: str
    packages: tuple[str, ...]
    module: str
    command: Callable[[Launch], list[str]]
    # How the server runs a WSGI app (the WSGI scenarios' tables say this instead).
    wsgi_label: str = ""

    def available(self) -> str | None:
        """None when the server can be started, else why it cannot."""
        try:
            found = importlib.util.find_spec(self.module)
        except Exception as exc:  # a half-written package can fail in any way
            return f"{self.module} cannot be imported ({type(exc).__name__}: {exc})"
        if found is None:
            return f"{self.module} is not installed in bench/.venv"
        return None

    def versions(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for package in self.packages:
            try:
                result[package] = importlib.metadata.version(package)
            except importlib.metadata.PackageNotFoundError:
                result[package] = "not installed"
        return result


def _python() -> list[str]:
    return [sys.executable]


def _flags(text: str) -> list[str]:
    return text.split()


def _uvicorn_style_logging(launch: Launch) -> list[str]:
    # Access lines are logged at info: with the access log on, warning would hide them.
    if launch.access_log:
        return _flags("--access-log --log-level info")
    return _flags("--no-access-log --log-level warning")


def _workers(launch: Launch) -> list[str]:
    return [] if launch.workers == 1 else ["--workers", str(launch.workers)]


def _pier_command(launch: Launch) -> list[str]:
    command = [*_python(), "-m", "pier", launch.app, "--host", HOST, "--port", str(launch.port)]
    command += _workers(launch)
    command += _uvicorn_style_logging(launch)
    if launch.interface == "wsgi":
        command += ["--interface", "wsgi", "--wsgi-threads", str(WSGI_THREADS)]
    if launch.keep_alive is not None:
        command += ["--timeout-keep-alive", str(launch.keep_alive)]
    return command


def _uvicorn_command(launch: Launch) -> list[str]:
    command = [*_python(), "-m", "uvicorn", launch.app, "--host", HOST, "--port", str(launch.port)]
    command += _flags("--loop uvloop --http httptools")
    command += _workers(launch)
    command += _uvicorn_style_logging(launch)
    if launch.interface == "wsgi":
        # uvicorn's own (deprecated) WSGI middleware; its thread pool has no option.
        command += ["--interface", "wsgi"]
    if launch.keep_alive is not None:
        command += ["--timeout-keep-alive", str(launch.keep_alive)]
    return command


def _granian_command(launch: Launch) -> list[str]:
    command = [*_python(), "-m", "granian", "--host", HOST, "--port", str(launch.port)]
    if launch.interface == "wsgi":
        command += _flags(f"--interface wsgi --blocking-threads {WSGI_THREADS}")
    else:
        command += _flags("--interface asgi --runtime-threads 1 --loop uvloop")
    command += ["--workers", str(launch.workers)]
    if launch.access_log:
        command += _flags("--access-log --log-level info")
    else:
        command += _flags("--no-access-log --log-level warning")
    if launch.max_connections is not None:
        # granian admits at most `backpressure` connections at once (default: backlog,
        # 1024); the rest wait unserved, which would not measure idle connections.
        command += ["--backpressure", str(launch.max_connections)]
    if launch.keep_alive is not None:
        # granian has no idle keep-alive timeout; its header-read timeout is the
        # closest knob (milliseconds, at most 60 s).
        command += ["--http1-header-read-timeout", str(min(launch.keep_alive * 1000, 60000))]
    return [*command, launch.app]


def _gunicorn_command(launch: Launch) -> list[str]:
    command = [*_python(), "-m", "gunicorn", launch.app, "--bind", f"{HOST}:{launch.port}"]
    # No control socket: it is a second listener in $HOME that runs would share.
    if launch.interface == "wsgi":
        # gunicorn's threaded WSGI worker, the one for apps that wait on I/O.
        command += _flags(
            f"--worker-class gthread --threads {WSGI_THREADS}"
            " --http-parser fast --no-control-socket"
        )
    else:
        command += _flags(
            "--worker-class asgi --asgi-loop uvloop --http-parser fast --no-control-socket"
        )
    command += ["--workers", str(launch.workers)]
    if launch.access_log:
        command += _flags("--access-logfile - --log-level info")
    else:
        command += _flags("--log-level warning")
    if launch.keep_alive is not None:
        command += ["--keep-alive", str(launch.keep_alive)]
    if launch.max_connections is not None:
        command += ["--worker-connections", str(launch.max_connections)]
    return command


def _hypercorn_command(launch: Launch) -> list[str]:
    command = [*_python(), "-m", "hypercorn", launch.app, "--bind", f"{HOST}:{launch.port}"]
    command += ["--workers", str(launch.workers), "--worker-class", "uvloop"]
    # hypercorn's access lines go through a logger that --log-level filters too.
    if launch.access_log:
        command += _flags("--access-logfile - --log-level info")
    else:
        command += _flags("--log-level warning")
    if launch.keep_alive is not None:
        command += ["--keep-alive", str(launch.keep_alive)]
    return command


SERVERS: tuple[ServerSpec, ...] = (
    ServerSpec(
        name="pier",
        label="pier",
        packages=("pier", "httptools", "uvloop"),
        module="pier.__main__",
        command=_pier_command,
        wsgi_label=f"pier --interface wsgi --wsgi-threads {WSGI_THREADS}",
    ),
    ServerSpec(
        name="uvicorn",
        label="uvicorn[standard] (httptools, uvloop)",
        packages=("uvicorn", "httptools", "uvloop", "websockets"),
        module="uvicorn",
        command=_uvicorn_command,
        wsgi_label="uvicorn --interface wsgi (its own WSGIMiddleware)",
    ),
    ServerSpec(
        name="granian",
        label="granian (asgi, uvloop)",
        packages=("granian",),
        module="granian",
        command=_granian_command,
        wsgi_label=f"granian --interface wsgi --blocking-threads {WSGI_THREADS}",
    ),
    ServerSpec(
        name="gunicorn",
        label="gunicorn -k asgi (h1c parser, uvloop)",
        packages=("gunicorn", "gunicorn_h1c"),
        module="gunicorn.workers.gasgi",
        command=_gunicorn_command,
        wsgi_label=f"gunicorn -k gthread --threads {WSGI_THREADS} (h1c parser)",
    ),
    ServerSpec(
        name="hypercorn",
        label="hypercorn (uvloop)",
        packages=("hypercorn", "wsproto"),
        module="hypercorn",
        command=_hypercorn_command,
        wsgi_label="hypercorn (WSGI detected, default executor)",
    ),
)

BASELINE = "uvicorn"


def by_name() -> dict[str, ServerSpec]:
    return {spec.name: spec for spec in SERVERS}


def pier_revision() -> str:
    """The commit pier was measured at, with "+dirty" when src/ has local changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")
