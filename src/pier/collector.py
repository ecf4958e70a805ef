"""Python's cyclic garbage collector, tuned for a process that pier serves from.

Rules:
1. Applied only where pier owns the process (the pier command and pier.run(), each
   supervised worker, the gunicorn worker): `Server.tune_gc` says so. A Server embedded
   in someone else's program leaves the interpreter's collector alone.
2. --gc-threshold is set before the app is imported, so an app that sets its own
   threshold at import keeps it. --gc-freeze runs after lifespan start-up, so the
   app's own start-up objects are frozen too.

Why (issue 13, docs/performance.md "How cost grows: traced"): pier's request path makes
no reference cycles, so every collection finds nothing to free. Collections are
triggered by allocations minus frees of container objects; with hundreds of requests
in flight, their live objects (scope, Task, coroutine, cycle...) pass the young
generation's threshold of 700 again and again, survive, and are promoted, so the
older generations and the full collections (which walk every object alive: the
imported modules, the app, every connection) run too. At 1,024 keep-alive connections
that was 2.9-4.9 us of CPU per hello request; at 16 connections, none.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap", "set_young_threshold"]


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
