"""--reload: watch files with watchfiles and tell the supervisor what changed.

Rules:
1. Which paths matter is decided by `ChangeFilter` alone (a pure function of the path):
   a file reloads when its name matches an include glob (*.py plus --reload-include)
   and neither its name nor a directory between it and the watched root matches an
   exclude glob (.*, *.py[cod], *~, __pycache__ plus --reload-exclude). A glob with a
   "/" is matched against the path relative to its root, from the right.
2. The watcher only reports; the supervisor restarts (pier.supervisor.supervisor).
3. Changes are grouped for STEP_MS (or --reload-delay) of quiet, at most DEBOUNCE_MS, so
   saving ten files at once is one restart, and a single save restarts well within a
   second.
"""

from __future__ import annotations

import asyncio
import fnmatch
import os
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from pier.errors import ConfigError

if TYPE_CHECKING:
    from pier.config import Config

__all__ = ["DEFAULT_EXCLUDES", "DEFAULT_INCLUDES", "ChangeFilter", "watch"]

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", "*.py[cod]", "*~", "__pycache__")
DEBOUNCE_MS = 400
STEP_MS = 50


class ChangeFilter:
    def __init__(
        self, roots: Iterable[str], includes: Iterable[str], excludes: Iterable[str]
    ) -> None:
        # watchfiles reports paths as the watcher saw them: try both spellings.
        self.roots: list[Path] = []
        for root in roots:
            for form in (Path(root).absolute(), Path(root).resolve()):
                if form not in self.roots:
                    self.roots.append(form)
        self.includes = (*DEFAULT_INCLUDES, *includes)
        self.excludes = (*DEFAULT_EXCLUDES, *excludes)

    def __call__(self, change: Any, path: str) -> bool:
        return self.relevant(path)

    def relevant(self, path: str) -> bool:
        full = Path(path)
        relative = self._relative(full)
        parts = relative.parts
        for directory in parts[:-1]:
            if _matches(directory, PurePath(directory), self.excludes):
                return False
        if not parts or _matches(parts[-1], relative, self.excludes):
            return False
        return _matches(parts[-1], relative, self.includes)

    def _relative(self, path: Path) -> PurePath:
        for root in self.roots:
            if path.is_relative_to(root):
                return path.relative_to(root)
        return path


def _matches(name: str, relative: PurePath, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if "/" in pattern.rstrip("/"):
            if relative.match(pattern.rstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern.rstrip("/")):
            return True
    return False


def watched_dirs(config: Config) -> list[str]:
    dirs = list(config.reload_dirs) or [os.getcwd()]
    for directory in dirs:
        if not os.path.isdir(directory):
            raise ConfigError(
                f"--reload-dir {directory} is not a directory; fix the path or leave it out"
                " to watch the current directory"
            )
    return dirs


def check_reload(config: Config) -> None:
    """Fail before any worker starts if --reload cannot work (a bad --reload-dir, no watchfiles)."""
    watched_dirs(config)
    _watchfiles()


def _watchfiles() -> Any:
    try:
        import watchfiles
    except ImportError:
        raise ConfigError(
            "--reload needs the watchfiles package, a dependency of pier that is missing"
            " from this environment: pip install watchfiles"
        ) from None
    return watchfiles


async def watch(
    config: Config,
    on_change: Callable[[list[str]], Awaitable[None] | None],
    stop: asyncio.Event,
) -> None:
    """Call `on_change(paths)` for every group of relevant changes until `stop` is set."""
    awatch = _watchfiles().awatch
    dirs = watched_dirs(config)
    change_filter = ChangeFilter(dirs, config.reload_includes, config.reload_excludes)
    # --reload-delay (uvicorn's name) sets the quiet period that groups changes.
    step = STEP_MS if config.reload_delay is None else round(config.reload_delay * 1000)
    async for changes in awatch(
        *dirs,
        watch_filter=change_filter,
        debounce=max(DEBOUNCE_MS, step),
        step=step,
        stop_event=stop,
    ):
        paths = sorted({path for _, path in changes})
        result = on_change(paths)
        if result is not None:
            await result
