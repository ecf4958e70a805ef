"""A Flask route answering the same small JSON document as starlette_json.py (WSGI)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from bench.apps._document import DOCUMENT

app = Flask(__name__)


@app.get("/json")
def json_endpoint() -> dict[str, Any]:
    return DOCUMENT
