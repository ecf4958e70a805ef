"""pier: an ASGI web server. The public API is what `__all__` lists."""

from __future__ import annotations

from pier.config import Config
from pier.io.server import Server, run

__version__ = "0.1.0"

__all__ = ["Config", "Server", "__version__", "run"]
