"""A FastAPI app for the framework tests.

No `from __future__ import annotations` here on purpose: FastAPI resolves parameter
annotations at runtime, and postponed (string) annotations of names defined inside
`create` could not be resolved.
"""

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import BackgroundTasks, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float


def create(later: Callable[[str], Awaitable[None]]) -> FastAPI:
    """The app; `later` is the background task the /background route queues."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello from fastapi lifespan"}

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}")
    async def user(user_id: int, verbose: bool = False) -> dict[str, Any]:
        return {"user_id": user_id, "verbose": verbose}

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "price_with_tax": round(item.price * 1.2, 2)}

    @app.post("/upload")
    async def upload(file: Annotated[UploadFile, File()],
                     note: Annotated[str, Form()]) -> dict[str, Any]:
        content = await file.read()
        return {"filename": file.filename, "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(), "note": note}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for index in range(5):
                yield f"piece {index}\n".encode()

        return StreamingResponse(pieces(), media_type="text/plain")

    @app.post("/background")
    async def background(tasks: BackgroundTasks) -> dict[str, bool]:
        tasks.add_task(later, "fastapi")
        return {"queued": True}

    @app.get("/state")
    async def state(request: Request) -> str:
        return str(request.state.greeting)

    return app
