"""The bounded pool of threads that run a worker's WSGI app (--wsgi-threads).

Rules: at most `size` threads, started as work arrives and kept; work beyond them waits
in arrival order (the ASGI task of each queued request still counts toward
--limit-concurrency, which is what bounds the queue). The threads are daemons: an app
stuck forever in a thread must not keep the process from exiting once graceful shutdown
has given up on it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["ThreadPool"]

logger = logging.getLogger("pier.error")


class ThreadPool:
    """submit(job) runs job() in a pool thread; job must not raise (it reports its own
    errors)."""

    __slots__ = ("_jobs", "_threads", "size", "submit")

    submit: Callable[[Callable[[], None]], None]

    def __init__(self, size: int) -> None:
        self.size = size
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self.submit = self._submit_starting

    def _submit_starting(self, job: Callable[[], None]) -> None:
        """submit() while threads are still to start: one starts per job until all run."""
        self._jobs.put(job)
        threads = self._threads
        if len(threads) < self.size:
            thread = threading.Thread(
                target=self._work, name=f"pier-wsgi-{len(threads) + 1}", daemon=True
            )
            threads.append(thread)
            thread.start()
            if len(threads) == self.size:
                # Every thread runs: submit() is the queue's own put, no Python frame.
                self.submit = self._jobs.put

    def _work(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            try:
                job()
            except BaseException:  # a bug in the bridge; the thread must survive it
                logger.exception("WSGI worker thread failed")
            del job

    def stop(self) -> None:
        """Let every thread end once it is idle (running work is not interrupted)."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads.clear()
        self.submit = self._submit_starting
