"""A WSGI app that writes a line to wsgi.errors (PEP 3333's error stream)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    errors = environ["wsgi.errors"]
    errors.write("written to wsgi.errors\n")
    errors.flush()
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
