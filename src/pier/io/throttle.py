"""Rate limits for operator warnings: an attack or an overload repeats its cause many
times a second, and the log should say so once per interval, not once per connection."""

from __future__ import annotations

from time import monotonic

__all__ = ["WARNING_INTERVAL", "Throttle"]

WARNING_INTERVAL = 10.0
"""Seconds between two warnings of one kind (a later one within it is not logged)."""


class Throttle:
    """Says whether a warning of each kind may be logged now."""

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float = WARNING_INTERVAL) -> None:
        self.interval = interval
        self._last: dict[str, float] = {}

    def allows(self, kind: str) -> bool:
        now = monotonic()
        if now - self._last.get(kind, float("-inf")) < self.interval:
            return False
        self._last[kind] = now
        return True
