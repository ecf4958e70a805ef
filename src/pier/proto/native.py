"""pier's optional C module (`pier.proto._h1head`, src/pier/proto/_h1head.c), or None.

None where it was not built (no C compiler where pier was installed), where it was
built from older source than the Python beside it (an editable install pulled without
rebuilding: a warning says how to mend it), or where the environment switches it off
(`PIER_NATIVE=0`, also `false`, `no`, `off`): its callers then use their pure-Python
paths. Read once, at import, by each caller.
"""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

_OFF = frozenset({"0", "false", "no", "off"})
# What pier's Python calls in the C module. One built before a name was added lacks it,
# and would otherwise fail its caller's import with a bare AttributeError.
NAMES = ("parse_head", "has_any_name", "environ_fields", "framer_tables", "frame_response")
REBUILD = "rebuild it with `pip install -e .` in pier's checkout, or reinstall pier"
# Several modules load the C module at import; a stale one is reported by the first only.
_stale_reported = False


def switched_off() -> bool:
    """Does the environment turn the C module off (`PIER_NATIVE=0`, `false`, `no`, `off`)?"""
    return os.environ.get("PIER_NATIVE", "1").strip().lower() in _OFF


def state() -> str:
    """The C module's state in words, for `--print-config` (it is not an option: read
    at import, before any configuration)."""
    module = _import()
    if module is None:
        return "not built (no C compiler where pier was installed): the Python paths serve"
    missing = _missing(module)
    if missing:
        names = ", ".join(missing)
        return f"built from older source (no {names}): the Python paths serve; {REBUILD}"
    if switched_off():
        return "built, switched off by PIER_NATIVE: the Python paths serve"
    return "on (PIER_NATIVE=0 turns it off)"


def load(*, honour_switch: bool = True) -> ModuleType | None:
    """The C module, or None (not built, older than its source, or `PIER_NATIVE` says
    off and is honoured)."""
    if honour_switch and switched_off():
        return None
    module = _import()
    if module is None:
        return None
    missing = _missing(module)
    if missing:
        global _stale_reported
        if not _stale_reported:
            _stale_reported = True
            warnings.warn(
                f"pier's C module {module.__file__} was built from older source (it has no"
                f" {', '.join(missing)}): pier runs on its Python paths, slower; {REBUILD}",
                RuntimeWarning,
                stacklevel=2,
            )
        return None
    return module


def _import() -> ModuleType | None:
    try:
        return importlib.import_module("pier.proto._h1head")
    except ImportError:
        return None


def _missing(module: ModuleType) -> list[str]:
    return [name for name in NAMES if not hasattr(module, name)]
