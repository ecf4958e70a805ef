"""pier's optional C module (`pier.proto._h1head`, src/pier/proto/_h1head.c), or None.

None where it was not built (no C compiler where pier was installed) or where the
environment switches it off (`PIER_NATIVE=0`, also `false`, `no`, `off`): its callers
then use their pure-Python paths. Read once, at import, by each caller.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

_OFF = frozenset({"0", "false", "no", "off"})


def switched_off() -> bool:
    """Does the environment turn the C module off (`PIER_NATIVE=0`, `false`, `no`, `off`)?"""
    return os.environ.get("PIER_NATIVE", "1").strip().lower() in _OFF


def state() -> str:
    """The C module's state in words, for `--print-config` (it is not an option: read
    at import, before any configuration)."""
    if load(honour_switch=False) is None:
        return "not built (no C compiler where pier was installed): the Python paths serve"
    if switched_off():
        return "built, switched off by PIER_NATIVE: the Python paths serve"
    return "on (PIER_NATIVE=0 turns it off)"


def load(*, honour_switch: bool = True) -> ModuleType | None:
    """The C module, or None (not built, or `PIER_NATIVE` says off and is honoured)."""
    if honour_switch and switched_off():
        return None
    try:
        return importlib.import_module("pier.proto._h1head")
    except ImportError:
        return None
