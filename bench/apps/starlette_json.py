"""A Starlette route answering a small JSON document (routing + JSONResponse)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.apps._document import DOCUMENT


async def json_endpoint(request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT)


app = Starlette(routes=[Route("/json", json_endpoint)])
