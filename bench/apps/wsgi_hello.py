"""Plain-text hello as a WSGI app (PEP 3333): the same 13-byte answer as hello.py, so
the WSGI scenario measures each server's WSGI path (threads, environ, bridge)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.apps.hello import BODY

HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
]


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", HEADERS)
    return [BODY]
