"""systemd's notify protocol (sd_notify(3)), written out: one datagram per state change.

Rules:
1. Only the process systemd started talks to it (the supervisor, or the single server
   process); `Notifier.from_environment` takes NOTIFY_SOCKET, WATCHDOG_USEC and
   WATCHDOG_PID out of os.environ, as sd_notify's unset_environment does, so workers
   and the app's own subprocesses never send in its name.
2. A message is newline-separated KEY=VALUE assignments in one AF_UNIX datagram to
   $NOTIFY_SOCKET (a path, or "@name" for the abstract namespace). Sending never
   blocks and never fails the server: systemd gone is logged once, then ignored.
3. What pier sends: READY=1 once it serves (and after a rolling restart or reload),
   RELOADING=1 with MONOTONIC_USEC when a rolling restart or reload begins (what
   Type=notify-reload expects), STOPPING=1 when a stop begins, STATUS=... lines a human
   reads in `systemctl status`, and WATCHDOG=1 every half of WATCHDOG_USEC from the
   event loop, so a blocked loop is a missed keep-alive and systemd restarts the unit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import MutableMapping

__all__ = ["Notifier"]

logger = logging.getLogger("pier.error")


class Notifier:
    """sd_notify for one process; a Notifier with no address sends nothing."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._sock: socket.socket | None = None
        self._failed = False
        self._watchdog: asyncio.TimerHandle | None = None

    @classmethod
    def from_environment(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """Take the notify variables out of the environment (rule 1)."""
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None) or None
        usec_text = env.pop("WATCHDOG_USEC", None)
        pid_text = env.pop("WATCHDOG_PID", None)
        watchdog = None
        if usec_text:
            try:
                usec = int(usec_text)
                for_us = pid_text is None or int(pid_text) == os.getpid()
            except ValueError:
                logger.warning("Ignoring WATCHDOG_USEC=%r (not a number)", usec_text)
            else:
                watchdog = usec if usec > 0 and for_us else None
        return cls(address, watchdog_usec=watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> None:
        """One datagram of KEY=VALUE lines (rule 2)."""
        address = self.address
        if address is None or self._failed:
            return
        target = "\0" + address[1:] if address.startswith("@") else address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(assignments).encode(), target)
        except OSError as exc:
            self._failed = True
            logger.warning(
                "Cannot notify systemd at NOTIFY_SOCKET=%s (%s); not trying again",
                address,
                exc,
            )

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self, status: str) -> None:
        monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}", f"STATUS={status}")

    def stopping(self, status: str = "Stopping") -> None:
        # The watchdog keeps beating through the drain: a long --timeout-graceful-shutdown
        # must not look like a hang.
        self.send("STOPPING=1", f"STATUS={status}")

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """WATCHDOG=1 every WATCHDOG_USEC / 2 from `loop` while it runs (rule 3)."""
        if self.watchdog_usec is None or self.address is None:
            return
        interval = self.watchdog_usec / 2_000_000

        def beat() -> None:
            self.send("WATCHDOG=1")
            self._watchdog = loop.call_later(interval, beat)

        beat()

    def stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def close(self) -> None:
        self.stop_watchdog()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
