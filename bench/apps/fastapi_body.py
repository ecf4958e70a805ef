"""A FastAPI route taking a pydantic-validated JSON body and answering a model.

The body is read, parsed and validated on every request, so the server's body delivery
and the framework's work both show up.
"""

from __future__ import annotations

from fastapi import FastAPI
from pydantic import BaseModel

# The request body the wrk script posts and the sanity check sends.
SAMPLE_BODY = (
    b'{"name": "widget", "price": 9.99, "quantity": 3, '
    b'"tags": ["blue", "small"], "description": "a small blue widget"}'
)


class Item(BaseModel):
    name: str
    price: float
    quantity: int
    tags: list[str] = []
    description: str | None = None


class Receipt(BaseModel):
    name: str
    total: float
    tag_count: int


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/items")
async def create_item(item: Item) -> Receipt:
    return Receipt(name=item.name, total=item.price * item.quantity, tag_count=len(item.tags))
