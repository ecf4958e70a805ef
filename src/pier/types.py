"""ASGI type vocabulary shared by every layer (ASGI spec 3.0, HTTP spec 2.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol, TypeAlias

Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]


class ASGI3App(Protocol):
    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]: ...


class ASGI2Instance(Protocol):
    def __call__(self, receive: Receive, send: Send) -> Awaitable[None]: ...


class ASGI2App(Protocol):
    def __call__(self, scope: Scope) -> ASGI2Instance: ...


ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]
"""What every layer above app/ calls: an ASGI3 callable (ASGI2 apps are adapted)."""

Headers: TypeAlias = list[tuple[bytes, bytes]]
