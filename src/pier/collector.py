"""Python's cyclic garbage collector, tuned for a process that pier serves from.

Rules:
1. Applied only where pier owns the process (the pier command and pier.run(), each
   supervised worker, the gunicorn worker): `Server.tune_gc` says so. A Server embedded
   in someone else's program leaves the interpreter's collector alone.
2. --gc-threshold is set before the app is imported, so an app that sets its own
   threshold at import keeps it. --gc-freeze runs after lifespan start-up, so the
   app's own start-up objects are frozen too.
3. --gc-threshold is a floor: once a second the server raises the young threshold to
   --gc-threshold-per-connection times the connections open (YoungThreshold), and
   lowers it again as they close. It stops following as soon as anyone else (the app)
   has set a threshold of its own.

Why (issue 13, docs/performance.md "How cost grows: traced"): pier's request path makes
no reference cycles, so every collection finds nothing to free. Collections are
triggered by allocations minus frees of container objects; with hundreds of requests
in flight, their live objects (scope, Task, coroutine, cycle...) pass the young
generation's threshold of 700 again and again, survive, and are promoted, so the
older generations and the full collections (which walk every object alive: the
imported modules, the app, every connection) run too. At 1,024 keep-alive connections
that was 2.9-4.9 us of CPU per hello request; at 16 connections, none. A fixed
threshold only moves the concurrency at which this starts, so the threshold follows
the connections open: what the requests in flight hold grows with them.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD_CEILING", "YoungThreshold", "freeze_startup_heap",
           "set_young_threshold"]

# How high following the connections may take the young threshold. A young collection
# walks up to this many objects (1.7-4.3 ms at 100,000 here), and cyclic garbage can pile up to
# it between collections; an explicit --gc-threshold above it still wins.
YOUNG_THRESHOLD_CEILING = 100_000


def set_young_threshold(threshold: int | None) -> None:
    """Set the first generation's threshold, keeping the others (None: leave it)."""
    if threshold is None:
        return
    # Only the first: on Python 3.14 the other two mean something else (incremental GC).
    gc.set_threshold(threshold, *gc.get_threshold()[1:])


def freeze_startup_heap() -> int:
    """Collect once, then freeze what is alive; returns how many objects were frozen.

    The collection first, so that garbage made while importing is freed rather than
    kept forever. Frozen objects are never examined again; one that later becomes part
    of unreachable cycle is never freed (gc.unfreeze() in the app undoes it).
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class YoungThreshold:
    """The young generation's threshold: a floor, raised with the connections open.

    A request in flight keeps a few dozen containers alive (its scope, Task, coroutine,
    the app's own objects); collections are triggered by allocations minus frees, so
    with many connections the requests of one loop pass alone trip a fixed threshold,
    and every collection walks objects that are alive. per_connection objects of
    headroom for each open connection keep those collections away at any concurrency.
    """

    __slots__ = ("_ours", "floor", "per_connection")

    def __init__(self, floor: int, per_connection: int) -> None:
        self.floor = floor
        self.per_connection = per_connection
        self._ours: int | None = floor  # what pier set last; None once the app set its own

    @property
    def following(self) -> bool:
        return self._ours is not None and self.per_connection > 0

    def follow(self, connections: int) -> None:
        """Set the threshold for this many open connections (call it now and then)."""
        if self._ours is None:
            return
        current = gc.get_threshold()[0]
        if current != self._ours:
            self._ours = None  # someone else's now: leave it to them from here on
            return
        wanted = max(self.floor, min(self.per_connection * connections, YOUNG_THRESHOLD_CEILING))
        if wanted != current:
            set_young_threshold(wanted)
            self._ours = wanted
