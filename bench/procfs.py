"""Readings from /proc: a server's process tree, its CPU time and memory, per-core load.

Rules: read-only, Linux only, no third-party packages. Every figure comes from the
kernel's own accounting of the server's processes, never from the load generator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and every live descendant (gunicorn and granian fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if _stat_fields(pid) is None:
            continue
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes (all their threads), in seconds."""
    ticks = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # After the name: state(0) ppid(1) ... utime(11) stime(12), see proc(5).
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def rss_bytes(pids: list[int]) -> int:
    """Resident set size summed over the processes."""
    total = 0
    for pid in pids:
        try:
            resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        total += resident * PAGE_SIZE
    return total


def pss_bytes(pids: list[int]) -> int | None:
    """Proportional set size summed over the processes (shared pages counted once).

    RSS double-counts the pages a forked worker shares with its parent; PSS does not.
    None where smaps_rollup is unavailable.
    """
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        for line in text.splitlines():
            if line.startswith("Pss:"):
                total += int(line.split()[1]) * 1024
                break
    return total


@dataclass(frozen=True)
class CoreTimes:
    """Busy and total jiffies of one core since boot."""

    busy: int
    total: int


def core_times() -> dict[int, CoreTimes]:
    """Per-core busy/total jiffies from /proc/stat (idle and iowait count as not busy)."""
    result: dict[int, CoreTimes] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu") or line.startswith("cpu "):
            continue
        name, *values = line.split()
        numbers = [int(value) for value in values]
        idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)
        # guest time is already included in user/nice, so only the first 8 fields count.
        total = sum(numbers[:8])
        result[int(name[3:])] = CoreTimes(busy=total - idle, total=total)
    return result


def core_busy_fraction(
    before: dict[int, CoreTimes], after: dict[int, CoreTimes], core: int
) -> float:
    """Fraction of the interval `core` spent busy (any process)."""
    if core not in before or core not in after:
        return 0.0
    total = after[core].total - before[core].total
    if total <= 0:
        return 0.0
    return (after[core].busy - before[core].busy) / total
