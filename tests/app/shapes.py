"""Every app shape pier must load: one per way people write ASGI apps.

Each app answers an http request with a body naming itself, and appends to
CALLS when it is called, so tests can see both that the right thing runs and
that loading alone never calls it. The loader tests also copy this file into
a throwaway module and load it by "module:attr".
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

CALLS: list[str] = []


async def _respond(send: Callable[[dict[str, Any]], Awaitable[None]], body: str) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})


async def simple_app_v3(scope: Any, receive: Any, send: Any) -> None:
    CALLS.append("simple_app_v3")
    await _respond(send, "simple_app_v3")


def simple_app_v2(scope: Any) -> Any:
    CALLS.append("simple_app_v2")

    async def asgi(receive: Any, send: Any) -> None:
        await _respond(send, "simple_app_v2")

    return asgi


async def simple_app_any(*args: Any, **kwargs: Any) -> None:
    CALLS.append("simple_app_any")
    await _respond(args[2], "simple_app_any")


def create() -> Any:
    CALLS.append("create")
    return simple_app_v3


def create_v2() -> Any:
    CALLS.append("create_v2")
    return simple_app_v2


async def _tagged_v3(tag: str, scope: Any, receive: Any, send: Any) -> None:
    CALLS.append(f"partial_v3:{tag}")
    await _respond(send, f"partial_v3:{tag}")


partial_v3 = functools.partial(_tagged_v3, "a")


def _tagged_v2(tag: str, scope: Any) -> Any:
    CALLS.append(f"partial_v2:{tag}")

    async def asgi(receive: Any, send: Any) -> None:
        await _respond(send, f"partial_v2:{tag}")

    return asgi


partial_v2 = functools.partial(_tagged_v2, "b")


async def _v3_with_options(scope: Any, receive: Any, send: Any, *, greeting: str) -> None:
    CALLS.append(f"partial_kw:{greeting}")
    await _respond(send, f"partial_kw:{greeting}")


partial_kw = functools.partial(_v3_with_options, greeting="hi")


class ClassicV2:
    """ASGI2 classic: the class is the app, an instance per connection."""

    def __init__(self, scope: Any) -> None:
        CALLS.append("ClassicV2")
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        await _respond(send, "ClassicV2")


class AwaitableV3:
    """ASGI3 as a class: constructing it with the three arguments gives an awaitable."""

    def __init__(self, scope: Any, receive: Any, send: Any) -> None:
        CALLS.append("AwaitableV3")
        self.send = send

    def __await__(self) -> Any:
        return _respond(self.send, "AwaitableV3").__await__()


class InstanceV3:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        CALLS.append("instance_v3")
        await _respond(send, "instance_v3")


instance_v3 = InstanceV3()


class SyncCallInstance:
    """Sync __call__ returning the coroutine: what many middleware wrappers do."""

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        CALLS.append("sync_call_instance")
        return _respond(send, "sync_call_instance")


sync_call_instance = SyncCallInstance()


class Router:
    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        CALLS.append("bound_method")
        await _respond(send, "bound_method")


bound_method = Router().handle


def _logged(app: Any) -> Any:
    @functools.wraps(app)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        CALLS.append("wrapped")
        await app(*args, **kwargs)

    return wrapper


wrapped_v3 = _logged(simple_app_v3)


def _sync_logged(app: Any) -> Any:
    @functools.wraps(app)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        CALLS.append("wrapped_v2")
        return app(*args, **kwargs)

    return wrapper


wrapped_v2 = _sync_logged(simple_app_v2)


def _bare_decorator(app: Any) -> Any:
    # No functools.wraps: nothing to see but (*a, **k), which means ASGI3.
    def wrapper(*a: Any, **k: Any) -> Any:
        CALLS.append("bare_wrapped")
        return app(*a, **k)

    return wrapper


bare_wrapped_v3 = _bare_decorator(simple_app_v3)


def sync_returns_coroutine(scope: Any, receive: Any, send: Any) -> Awaitable[None]:
    CALLS.append("sync_returns_coroutine")
    return _respond(send, "sync_returns_coroutine")


async def with_defaults(scope: Any, receive: Any = None, send: Any = None) -> None:
    CALLS.append("with_defaults")
    await _respond(send, "with_defaults")


async def with_optional_kwonly(scope: Any, receive: Any, send: Any, *, debug: bool = False) -> None:
    CALLS.append("with_optional_kwonly")
    await _respond(send, "with_optional_kwonly")


class FactoryClass:
    """Passing the class where the instance was meant: a zero-argument factory."""

    def __init__(self) -> None:
        CALLS.append("FactoryClass")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await _respond(send, "FactoryClass")


def create_with_config(config: Any = None) -> Any:
    CALLS.append("create_with_config")
    return simple_app_v3


# --- WSGI (PEP 3333): sync callables taking (environ, start_response) -------------


def wsgi_function(environ: Any, start_response: Any) -> Any:
    CALLS.append("wsgi_function")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi_function"]


def _tagged_wsgi(tag: str, environ: Any, start_response: Any) -> Any:
    start_response("200 OK", [])
    return [f"wsgi_partial:{tag}".encode()]


wsgi_partial = functools.partial(_tagged_wsgi, "w")


class WSGIObject:
    """Flask's and Django's shape: an instance whose __call__ is the WSGI app."""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        yield b"wsgi_instance"


wsgi_instance = WSGIObject()


class WSGIIterable:
    """PEP 3333's class-as-app: constructed per request, iterated for the body."""

    def __init__(self, environ: Any, start_response: Any) -> None:
        self.start_response = start_response

    def __iter__(self) -> Any:
        self.start_response("200 OK", [])
        yield b"WSGIIterable"


@functools.wraps(wsgi_function)
def wrapped_wsgi(environ: Any, start_response: Any) -> Any:
    return wsgi_function(environ, start_response)


# name -> (interface detect_interface reports, body the loaded app answers with,
#          calls made by load_app alone)
EXPECTED: dict[str, tuple[str, str, list[str]]] = {
    "simple_app_v3": ("asgi3", "simple_app_v3", []),
    "simple_app_v2": ("asgi2", "simple_app_v2", []),
    "simple_app_any": ("asgi3", "simple_app_any", []),
    "create": ("factory", "simple_app_v3", ["create"]),
    "create_v2": ("factory", "simple_app_v2", ["create_v2"]),
    "partial_v3": ("asgi3", "partial_v3:a", []),
    "partial_v2": ("asgi2", "partial_v2:b", []),
    "partial_kw": ("asgi3", "partial_kw:hi", []),
    "ClassicV2": ("asgi2", "ClassicV2", []),
    "AwaitableV3": ("asgi3", "AwaitableV3", []),
    "instance_v3": ("asgi3", "instance_v3", []),
    "sync_call_instance": ("asgi3", "sync_call_instance", []),
    "bound_method": ("asgi3", "bound_method", []),
    "wrapped_v3": ("asgi3", "simple_app_v3", []),
    "wrapped_v2": ("asgi2", "simple_app_v2", []),
    "bare_wrapped_v3": ("asgi3", "simple_app_v3", []),
    "sync_returns_coroutine": ("asgi3", "sync_returns_coroutine", []),
    "with_defaults": ("asgi3", "with_defaults", []),
    "with_optional_kwonly": ("asgi3", "with_optional_kwonly", []),
    "FactoryClass": ("factory", "FactoryClass", ["FactoryClass"]),
    "create_with_config": ("factory", "simple_app_v3", ["create_with_config"]),
    "wsgi_function": ("wsgi", "wsgi_function", []),
    "wsgi_partial": ("wsgi", "wsgi_partial:w", []),
    "wsgi_instance": ("wsgi", "wsgi_instance", []),
    "WSGIIterable": ("wsgi", "WSGIIterable", []),
    "wrapped_wsgi": ("wsgi", "wsgi_function", []),
}
