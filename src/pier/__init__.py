"""pier: an ASGI web server. The public API is what `__all__` lists.

The names load on first use (module __getattr__), so that importing a lower layer
(`import pier.proto.h1`, a sans-I/O parser) does not pull in the server, asyncio and
the config machinery through this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Config", "Server", "__version__", "run"]

if TYPE_CHECKING:
    from pier.config import Config
    from pier.io.server import Server
    from pier.serve import run

_WHERE = {"Config": "pier.config", "Server": "pier.io.server", "run": "pier.serve"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pier' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
