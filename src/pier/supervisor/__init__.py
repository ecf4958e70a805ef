"""Worker processes, rolling restarts, reload, signals (issue 5).

    manager.py   Supervisor: binds once, runs N workers, signals, restarts, reload
    process.py   WorkerProcess: the supervisor's handle on one worker
    worker.py    the worker process itself (python -m pier.supervisor.worker)
    channel.py   the control channel between the two (spec, READY, PING/PONG, RECYCLE)
    reload.py    --reload: watchfiles and the include/exclude filter

Rules: pier.serve.run_config hands over to `run_supervised` when the config asks
for more than one worker, --reload or --limit-max-requests; a worker is a plain
pier.io.server.Server, so nothing about HTTP lives in this package.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pier.errors import PierError

if TYPE_CHECKING:
    from pier.config import Config

__all__ = ["run_supervised"]

logger = logging.getLogger("pier.error")


def run_supervised(config: Config) -> int:
    """Run the supervisor until it stops; the process exit code (1: start-up failed)."""
    from pier.supervisor.manager import Supervisor

    try:
        return Supervisor(config).run()
    except PierError as exc:
        logger.error("%s", exc)
        return exc.exit_code
