"""Which interface (ASGI3, ASGI2, WSGI) an application speaks, decided from its shape alone.

Rules:
1. The application is NEVER called here. Everything is decided from
   `inspect.signature`, `inspect.iscoroutinefunction` and `inspect.unwrap`.
   (Calling an app "to see what happens" is how `async def app(*args, **kwargs)`
   ends up as "'coroutine' object is not callable".)
2. The decision is by positional arity, the number of positional arguments the
   callable accepts:
     accepts 3, or takes *args          -> "asgi3"  (scope, receive, send) -> awaitable
     sync, accepts 1 (and not 3)        -> "asgi2"  (scope) -> instance(receive, send)
     sync, accepts 2 (and not 1 or 3)   -> "wsgi"   (environ, start_response) -> iterable
     sync, needs 0 (and cannot take 3)  -> "factory" (call once, the result is the app)
   Classes are judged by what calling them produces: a class whose instances are
   awaitable (`__await__`) and whose constructor takes (scope, receive, send) is
   ASGI3; a class constructed from (scope) whose instances are callable with
   (receive, send) is classic ASGI2; a class constructed from (environ, start_response)
   whose instances are iterable is WSGI (PEP 3333 allows a class as the app); a class
   constructed from nothing is a factory.
3. Anything else is a user mistake, raised as AppLoadError (or InterfaceMismatch
   for an explicit --interface) whose message names the shape found, what each
   interface expects, and what to change.
4. Callables without a retrievable signature (builtins, C extensions) are assumed
   ASGI3; the assumption is logged at DEBUG.

What does not live here: importing ("module:attr" is loader.py), calling
factories, and adapting ASGI2 apps (loader.py does both).
"""

from __future__ import annotations

import functools
import inspect
import logging
from dataclasses import dataclass
from typing import Literal

from pier.errors import AppLoadError, InterfaceMismatch

__all__ = [
    "Interface",
    "Shape",
    "describe",
    "detect_interface",
    "inspect_shape",
    "resolve_interface",
]

Interface = Literal["asgi3", "asgi2", "wsgi", "factory"]

logger = logging.getLogger("pier.error")

_EXPECT_ASGI3 = "ASGI3 expects a callable taking (scope, receive, send) that returns an awaitable"
_EXPECT_ASGI2 = (
    "ASGI2 expects a plain (non-async) callable taking (scope) that returns "
    "an awaitable callable taking (receive, send)"
)
_EXPECT_WSGI = "WSGI expects a plain (non-async) callable taking (environ, start_response)"


@dataclass(frozen=True, slots=True)
class Shape:
    """What can be known about a callable without calling it."""

    kind: str
    """Human description: "coroutine function", "class", "instance of Foo"..."""
    params: str | None
    """The parameter list as a user would write it, e.g. "(scope, receive, send)";
    None when the signature cannot be retrieved."""
    min_pos: int
    max_pos: int | None
    """None means *args: any number of positional arguments."""
    is_async: bool
    """Calling it returns a coroutine (so it cannot return an ASGI2 instance)."""
    required_kwonly: tuple[str, ...] = ()
    is_class: bool = False
    awaitable_instances: bool = False
    callable_instances: bool = False
    iterable_instances: bool = False
    instance_call_accepts_2: bool = False
    instance_call_accepts_3: bool = False
    async_generator: bool = False

    def accepts(self, n: int) -> bool:
        """Whether it can be called with exactly n positional arguments."""
        return self.min_pos <= n and (self.max_pos is None or n <= self.max_pos)

    @property
    def with_article(self) -> str:
        """'a function taking ...', 'an instance of Flask with ...'."""
        described = self.described
        return ("an " if described[:1] in "aeiou" else "a ") + described

    @property
    def described(self) -> str:
        if self.params is None:
            return f"{self.kind} (signature not inspectable)"
        return f"{self.kind} taking {self.params}"


def _arity(sig: inspect.Signature) -> tuple[int, int | None, tuple[str, ...]]:
    min_pos = 0
    max_pos: int | None = 0
    required_kwonly: list[str] = []
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            if max_pos is not None:
                max_pos += 1
            if p.default is p.empty:
                min_pos += 1
        elif p.kind is p.VAR_POSITIONAL:
            max_pos = None
        elif p.kind is p.KEYWORD_ONLY and p.default is p.empty:
            required_kwonly.append(p.name)
    return min_pos, max_pos, tuple(required_kwonly)


def _format_params(sig: inspect.Signature) -> str:
    # Names only: annotations make the message long and say nothing about arity.
    parts: list[str] = []
    star_written = False
    for p in sig.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            parts.append(f"*{p.name}")
            star_written = True
        elif p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        else:
            if p.kind is p.KEYWORD_ONLY and not star_written:
                parts.append("*")
                star_written = True
            parts.append(p.name if p.default is p.empty else f"{p.name}=...")
    return "(" + ", ".join(parts) + ")"


def _signature(obj: object) -> inspect.Signature | None:
    try:
        # follow_wrapped: a functools.wraps decorator reports the wrapped
        # function's parameters, which is what the wrapper passes through.
        return inspect.signature(obj)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return None


def _is_coroutine_callable(obj: object) -> bool:
    if inspect.iscoroutinefunction(obj):  # handles partials and bound methods
        return True
    while isinstance(obj, functools.partial):
        obj = obj.func
    if inspect.iscoroutinefunction(obj):
        return True
    # An instance whose class has `async def __call__`.
    return (
        not inspect.isroutine(obj)
        and not inspect.isclass(obj)
        and inspect.iscoroutinefunction(_class_defines(type(obj), "__call__"))
    )


def _is_async(obj: object) -> bool:
    """Whether calling obj returns a coroutine rather than a plain value."""
    if _is_coroutine_callable(obj):
        return True
    # A sync wrapper made with functools.wraps around a coroutine function passes
    # the coroutine through; without wraps there is nothing to see, and the
    # wrapper's own shape (usually *args) decides.
    inner = obj
    while isinstance(inner, functools.partial):
        inner = inner.func
    if getattr(inner, "__wrapped__", None) is not None:
        try:
            unwrapped = inspect.unwrap(inner)  # type: ignore[arg-type]
        except ValueError:  # a __wrapped__ cycle
            return False
        return _is_coroutine_callable(unwrapped)
    return False


def _kind(obj: object) -> str:
    if isinstance(obj, functools.partial):
        return f"functools.partial of {_kind(obj.func)}"
    if inspect.ismethod(obj):
        return "bound coroutine method" if _is_async(obj) else "bound method"
    if inspect.isasyncgenfunction(obj):
        return "async generator function"
    if inspect.iscoroutinefunction(obj):
        return "coroutine function"
    if inspect.isfunction(obj):
        if getattr(obj, "__wrapped__", None) is not None:
            return "wrapped coroutine function" if _is_async(obj) else "wrapped function"
        return "function"
    if inspect.isbuiltin(obj):
        return "builtin function"
    cls = type(obj)
    how = (
        "async __call__"
        if inspect.iscoroutinefunction(_class_defines(cls, "__call__"))
        else "__call__"
    )
    return f"instance of {cls.__qualname__} with {how}"


def _class_defines(cls: type, name: str) -> object | None:
    # Look in the class's own MRO only: getattr(cls, "__call__") would find
    # type.__call__ (the constructor), which says nothing about instances.
    for klass in cls.__mro__[:-1]:
        if name in vars(klass):
            value: object = vars(klass)[name]
            return value
    return None


def _class_shape(cls: type) -> Shape:
    sig = _signature(cls)
    awaitable = _class_defines(cls, "__await__") is not None
    iterable = _class_defines(cls, "__iter__") is not None
    call = _class_defines(cls, "__call__")
    call_2 = call_3 = False
    if call is not None:
        call_sig = _signature(call)
        if call_sig is None:
            call_2 = call_3 = True
        else:
            # Unbound: the first positional is self.
            lo, hi, kw = _arity(call_sig)
            lo, hi = max(lo - 1, 0), None if hi is None else hi - 1
            call_2 = not kw and lo <= 2 and (hi is None or hi >= 2)
            call_3 = not kw and lo <= 3 and (hi is None or hi >= 3)
    if sig is None:
        return Shape(
            kind=f"class {cls.__qualname__}",
            params=None,
            min_pos=0,
            max_pos=None,
            is_async=False,
            is_class=True,
            awaitable_instances=awaitable,
            callable_instances=call is not None,
            iterable_instances=iterable,
            instance_call_accepts_2=call_2,
            instance_call_accepts_3=call_3,
        )
    lo, hi, kw = _arity(sig)
    return Shape(
        kind=f"class {cls.__qualname__}",
        params=_format_params(sig),
        min_pos=lo,
        max_pos=hi,
        is_async=False,
        required_kwonly=kw,
        is_class=True,
        awaitable_instances=awaitable,
        callable_instances=call is not None,
        iterable_instances=iterable,
        instance_call_accepts_2=call_2,
        instance_call_accepts_3=call_3,
    )


def inspect_shape(app: object) -> Shape:
    """Everything about app's calling convention that can be known without calling it."""
    if inspect.isclass(app):
        return _class_shape(app)
    sig = _signature(app)
    is_async = _is_async(app)
    asyncgen = inspect.isasyncgenfunction(app) or (
        getattr(app, "__wrapped__", None) is not None
        and inspect.isasyncgenfunction(_safe_unwrap(app))
    )
    if sig is None:
        return Shape(
            kind=_kind(app),
            params=None,
            min_pos=0,
            max_pos=None,
            is_async=is_async,
            async_generator=asyncgen,
        )
    lo, hi, kw = _arity(sig)
    return Shape(
        kind=_kind(app),
        params=_format_params(sig),
        min_pos=lo,
        max_pos=hi,
        is_async=is_async,
        required_kwonly=kw,
        async_generator=asyncgen,
    )


def _safe_unwrap(obj: object) -> object:
    try:
        return inspect.unwrap(obj)  # type: ignore[arg-type]
    except ValueError:
        return obj


def _label(name: str | None) -> str:
    return f'app "{name}"' if name else "the app"


def _fits(shape: Shape) -> list[Interface]:
    """Every interface the shape is compatible with, best guess first."""
    if shape.async_generator or shape.required_kwonly:
        return []
    if shape.params is None:
        # No signature to read: the only evidence left is whether it is async.
        return ["asgi3"]
    fits: list[Interface] = []
    if shape.is_class:
        if shape.awaitable_instances and shape.accepts(3):
            fits.append("asgi3")
        if shape.callable_instances and shape.instance_call_accepts_2 and shape.accepts(1):
            fits.append("asgi2")
        if shape.iterable_instances and shape.accepts(2) and not shape.accepts(1):
            fits.append("wsgi")
        if shape.min_pos == 0:
            fits.append("factory")
        return fits
    if shape.accepts(3):
        fits.append("asgi3")
    if not shape.is_async and shape.accepts(1):
        fits.append("asgi2")
    if not shape.is_async and shape.accepts(2):
        # After asgi3/asgi2: `def app(environ, start_response)` accepts exactly 2 and
        # lands here alone; a callable that also accepts 1 or 3 keeps its ASGI reading
        # (--interface wsgi says otherwise).
        fits.append("wsgi")
    if not shape.is_async and shape.min_pos == 0 and not shape.accepts(3):
        # Zero required arguments and no room for (scope, receive, send): a
        # factory. It goes before asgi2 so that `def create_app(config=None)`
        # is called once at start-up rather than once per request with a scope.
        fits.insert(0, "factory")
    return fits


def _no_fit_message(app: object, shape: Shape, name: str | None) -> str:
    what = f"{_label(name)} is {shape.with_article}"
    if shape.async_generator:
        return (
            f"{what}, which returns an async generator, not an awaitable; "
            "replace `yield` with `await send(...)` calls"
        )
    if shape.required_kwonly:
        names = ", ".join(shape.required_kwonly)
        return (
            f"{what}, which requires keyword-only argument(s) {names} that pier never passes; "
            "give them defaults or bind them with functools.partial"
        )
    if shape.is_class:
        if shape.accepts(3) and not shape.awaitable_instances:
            return (
                f"{what}, but its instances are not awaitable; {_EXPECT_ASGI3} "
                "(define __await__, or make it a class whose instances have "
                "`async def __call__(self, scope, receive, send)` and pass an instance)"
            )
        if shape.accepts(1) and not (shape.callable_instances and shape.instance_call_accepts_2):
            return (
                f"{what}, but its instances are not callable with (receive, send); "
                f"{_EXPECT_ASGI2} (define `async def __call__(self, receive, send)`)"
            )
    if shape.is_async and shape.min_pos == 0 and not shape.accepts(3):
        return (
            f"{what}; pier cannot await an app factory at start-up, and {_EXPECT_ASGI3}; "
            "make the factory a plain `def` that returns the app"
        )
    if shape.is_async and shape.accepts(2) and not shape.accepts(1):
        return (
            f"{what}; {_EXPECT_ASGI3}, and {_EXPECT_WSGI} (an `async def` cannot be a"
            " WSGI app); add the send parameter for ASGI, or drop `async` for WSGI"
        )
    if shape.is_async and shape.accepts(1):
        return (
            f"{what}; {_EXPECT_ASGI3}, and {_EXPECT_ASGI2} (a coroutine function cannot "
            "return the ASGI2 instance synchronously); add the receive and send parameters"
        )
    return (
        f"{what}; {_EXPECT_ASGI3}, {_EXPECT_ASGI2}, {_EXPECT_WSGI}, and an app factory "
        "takes no arguments; fix the parameters"
    )


def detect_interface(app: object, *, name: str | None = None) -> Interface:
    """The interface app speaks, from its shape only (it is never called).

    Raises AppLoadError, naming the signature, when the shape fits no interface.
    """
    shape = inspect_shape(app)
    fits = _fits(shape)
    if not fits:
        raise AppLoadError(_no_fit_message(app, shape, name))
    if shape.params is None and not shape.is_async:
        logger.debug(
            "%s is a %s; assuming ASGI3 (pass --interface asgi2 or wsgi if it is not)",
            _label(name),
            shape.described,
        )
    return fits[0]


_FLAG_EXPECTS = {
    "asgi3": "a callable taking (scope, receive, send) that returns an awaitable",
    "asgi2": "a callable taking (scope) that returns an awaitable callable",
    "wsgi": "a plain (non-async) callable taking (environ, start_response)",
}


def resolve_interface(app: object, requested: str, *, name: str | None = None) -> Interface:
    """Reconcile the shape of app with --interface (requested: auto, asgi3, asgi2 or wsgi).

    Returns "factory" when app is a factory: the interface then applies to what
    the factory returns, which the caller resolves in turn.
    """
    if requested == "auto":
        return detect_interface(app, name=name)
    if requested not in _FLAG_EXPECTS:
        raise InterfaceMismatch(
            f'--interface "{requested}" is not an interface; use auto, asgi3, asgi2 or wsgi'
        )
    shape = inspect_shape(app)
    fits = _fits(shape)
    if requested in fits or shape.params is None:
        # Explicit choice and nothing that contradicts it.
        return requested  # type: ignore[return-value]
    if fits and fits[0] == "factory":
        return "factory"
    found = describe(app, name=name, shape=shape, fits=fits)
    others = [kind for kind in fits if kind != requested]
    if others:
        fix = f"drop --interface or use --interface {others[0]}"
    else:
        fix = "fix the app's parameters"
    why = ""
    if requested == "asgi2" and shape.is_async:
        why = " (a coroutine function cannot return the ASGI2 instance synchronously)"
    elif requested == "wsgi" and shape.is_async:
        why = " (an `async def` app is ASGI, not WSGI)"
    raise InterfaceMismatch(
        f"{found}, but --interface {requested} expects {_FLAG_EXPECTS[requested]}{why}; {fix}"
    )


def describe(
    app: object,
    *,
    name: str | None = None,
    shape: Shape | None = None,
    fits: list[Interface] | None = None,
) -> str:
    """'app "main:app" is a coroutine function taking (scope, receive, send) (ASGI3)'."""
    shape = shape if shape is not None else inspect_shape(app)
    fits = fits if fits is not None else _fits(shape)
    tag = {
        "asgi3": " (ASGI3)",
        "asgi2": " (ASGI2)",
        "wsgi": " (WSGI)",
        "factory": " (an app factory)",
    }
    suffix = tag[fits[0]] if fits else ""
    return f"{_label(name)} is {shape.with_article}{suffix}"
