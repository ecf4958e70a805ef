"""Serving a Config: one Server in this process, or a supervisor and its workers.

Rules: the top of the serving layers, so that io/server.py never imports the
supervisor (which itself runs io/server.py's Server in each worker). `run` is the
public pier.run(); the CLI calls `run_config`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import TYPE_CHECKING, Any

from pier.config import Config
from pier.errors import PierError

if TYPE_CHECKING:
    from pier.io.server import Server
    from pier.io.systemd import Notifier

logger = logging.getLogger("pier.error")

__all__ = ["run", "run_config"]


def run_config(config: Config) -> int:
    """Serve until stopped; the process exit code (1 when start-up failed)."""
    for level, note in getattr(config, "notes", ()):
        logger.log(level, "%s", note)
    if (
        config.workers > 1
        or config.reload
        or config.limit_max_requests is not None
        or config.limit_max_memory is not None  # issue 12: a worker is replaced, so
        or config.limit_max_lifetime is not None  # there must be a supervisor
    ):
        # issue 5: worker processes (and their replacement) belong to the supervisor.
        from pier.supervisor import run_supervised

        return run_supervised(config)
    from pier.io.server import Server

    server = Server(config)
    server.tune_gc = True  # this process is pier's (pier.collector rule 1)
    notifier = _notify_systemd(server)
    try:
        server.run()
    except PierError as exc:
        from pier.io.server import log_startup_error

        log_startup_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0
    finally:
        notifier.close()
    return 0


def _notify_systemd(server: Server) -> Notifier:
    """issue 12: Type=notify for the single-process server (pier.io.systemd)."""
    from pier.io.systemd import Notifier

    notifier = Notifier.from_environment()
    if notifier.enabled:

        def started() -> None:
            notifier.ready("Serving on " + ", ".join(server.listening_on))
            notifier.start_watchdog(asyncio.get_running_loop())

        server.on_started = started
        server.on_stopping = notifier.stopping
    return notifier


def run(app: Any, **options: Any) -> None:
    """Serve `app` (an ASGI callable or "module:attr") until SIGINT/SIGTERM.

    Options are pier.Config's (the CLI's flags with underscores). Exits the process
    with status 1 if start-up fails.
    """
    from pier.logging import configure

    config = Config(app, **options)
    configure(config)
    code = run_config(config)
    if code:
        sys.exit(code)
