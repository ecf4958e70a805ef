"""Turning "module:attr" (or an object) into the ASGI3 callable the server calls.

Rules:
1. Every way loading can fail has its own exception from pier.errors, and its
   message is one line naming the cause and the fix. In particular "your module
   does not exist" (AppModuleNotFound) is never confused with "your module
   imports something that does not exist" (AppImportFailed).
2. The app is never called to find out what it is (interface.py decides from the
   shape). The only call made here is to a factory, exactly once: when the user
   said --factory, or when the callable can only be called with no arguments
   (then with a WARNING telling them to say --factory).
3. What leaves this module is always an ASGI3 callable: ASGI2 apps are wrapped
   in ASGI2Adapter, which is on the per-request path and so stays tiny; WSGI apps
   in pier.wsgi's WSGIAdapter (imported only when one is served).

What does not live here: deciding the interface (interface.py), running the app
(asgi/), reloading (supervisor/).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import logging
import os
import sys
import traceback
import types
from typing import cast

from pier.app.interface import inspect_shape, resolve_interface
from pier.errors import (
    AppAttributeMissing,
    AppFactoryFailed,
    AppImportFailed,
    AppLoadError,
    AppModuleNotFound,
    AppNotCallable,
    ConfigError,
)
from pier.types import ASGIApp, Receive, Scope, Send

__all__ = ["ASGI2Adapter", "import_from_string", "load_app"]

logger = logging.getLogger("pier.error")

_INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")
_MAX_SUGGESTIONS = 5


class ASGI2Adapter:
    """Presents an ASGI2 app (scope -> instance(receive, send)) as ASGI3."""

    __slots__ = ("app",)

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope)(receive, send)  # type: ignore[operator]

    def __repr__(self) -> str:
        return f"ASGI2Adapter({self.app!r})"


def _malformed(spec: str, hint: str) -> AppLoadError:
    return AppLoadError(f'expected "module:attribute", got "{spec}"; {hint}')


def _split_spec(spec: str) -> tuple[str, list[str]]:
    module_name, sep, attr = spec.partition(":")
    if not sep:
        guess = spec[:-3] if spec.endswith(".py") else spec
        guess = guess.replace("/", ".").replace("\\", ".").strip(".")
        return "", [f'did you mean "{guess or "main"}:app"?']
    if not module_name or not attr:
        return "", ['both sides of ":" are needed, e.g. "main:app"']
    if ":" in attr:
        return "", ['use one ":" between module and attribute, e.g. "pkg.main:app"']
    if module_name.endswith(".py") or "/" in module_name or "\\" in module_name:
        dotted = module_name[:-3] if module_name.endswith(".py") else module_name
        dotted = dotted.replace("/", ".").replace("\\", ".").strip(".")
        return "", [
            f'name the module with dots and without ".py": "{dotted}:{attr}" '
            "(use --app-dir for the directory it lives in)"
        ]
    parts = module_name.split(".")
    if not all(p.isidentifier() for p in parts):
        return "", [f'"{module_name}" is not a valid dotted module name']
    attrs = attr.split(".")
    if not all(a.isidentifier() for a in attrs):
        return "", [f'"{attr}" is not a valid dotted attribute name']
    return module_name, attrs


def _where(exc: BaseException) -> str:
    """file:line where exc was raised, skipping importlib's own frames."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")
    ]
    if not frames:
        return "an unknown location"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def _exc_text(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    if isinstance(exc, SyntaxError):
        return f"{type(exc).__name__}: {exc.msg}"
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _is_missing_itself(module_name: str, missing: str | None) -> bool:
    return missing is not None and (module_name == missing or module_name.startswith(missing + "."))


def _a(value: object) -> str:
    """'a dict', 'an int', 'None', 'a module': what a value is, for messages."""
    if value is None:
        return "None"
    kind = "module" if isinstance(value, types.ModuleType) else type(value).__name__
    return f"an {kind}" if kind[:1] in "aeiouAEIOU" else f"a {kind}"


def _first_path() -> str:
    return os.path.abspath(sys.path[0]) if sys.path else os.getcwd()


def _import(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is None:  # raised by hand, not by the import system
            raise _import_failed(module_name, exc) from exc
        if _is_missing_itself(module_name, exc.name):
            what = (
                f'module "{module_name}"'
                if exc.name == module_name
                else f'package "{exc.name}" (needed for module "{module_name}")'
            )
            raise AppModuleNotFound(
                f"{what} not found on sys.path (looked in {_first_path()} first); "
                "check the spelling, run pier from the directory that contains it, "
                "or pass --app-dir"
            ) from exc
        missing = exc.name or "?"
        if missing.partition(".")[0] == module_name.partition(".")[0]:
            # Inside the user's own package: a typo or a missing file, not pip.
            what, fix = "which does not exist", "create it"
        else:
            what, fix = "which is not installed", "install the package that provides it"
        raise AppImportFailed(
            f'module "{module_name}" failed to import: it imports "{missing}", {what} '
            f"({_exc_text(exc)} at {_where(exc)}); {fix}, or fix the import"
        ) from exc
    except (Exception, SystemExit) as exc:
        # SystemExit: a script that parses argv or calls sys.exit() at import
        # time; that is an import failure, not a reason for pier to exit silently.
        raise _import_failed(module_name, exc) from exc


def _import_failed(module_name: str, exc: BaseException) -> AppImportFailed:
    return AppImportFailed(
        f'module "{module_name}" raised {_exc_text(exc)} at {_where(exc)} while being '
        f'imported; fix that error (--log-level debug or python -c "import {module_name}"'
        " shows the full traceback)"
    )


def _suggestions(obj: object, wanted: str) -> str:
    try:
        names = [n for n in dir(obj) if not n.startswith("_")]
    except Exception:  # a hostile __dir__ must not hide the real error
        names = []
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    callables: list[str] = []
    home = getattr(obj, "__name__", None) if isinstance(obj, types.ModuleType) else None
    for n in names:
        if n in close:
            continue
        try:
            value = inspect.getattr_static(obj, n)
        except AttributeError:
            continue
        if isinstance(value, types.ModuleType) or not callable(value):
            continue
        # Functions and classes imported from elsewhere are noise; app instances
        # (FastAPI(), Starlette()) have another module's class but are defined
        # here, so they stay.
        if (
            home is not None
            and (inspect.isfunction(value) or inspect.isclass(value))
            and getattr(value, "__module__", None) != home
        ):
            continue
        callables.append(n)
    out: list[str] = []
    if close:
        out.append("did you mean " + " or ".join(f'"{c}"' for c in close) + "?")
    if callables:
        shown = callables[:_MAX_SUGGESTIONS]
        more = ", ..." if len(callables) > _MAX_SUGGESTIONS else ""
        out.append("callables there: " + ", ".join(shown) + more)
    return " (" + "; ".join(out) + ")" if out else ""


def import_from_string(spec: str) -> object:
    """Import "module:attr" (attr may be dotted, "pkg.mod:obj.app") and return the object.

    Raises AppLoadError (malformed spec), AppModuleNotFound, AppImportFailed or
    AppAttributeMissing; each message names the cause and the fix.
    """
    if not isinstance(spec, str):
        raise AppLoadError(
            f'expected "module:attribute" as a string, got a {type(spec).__name__}; '
            'pass e.g. "main:app" or the app object itself'
        )
    module_name, attrs = _split_spec(spec.strip())
    if not module_name:
        raise _malformed(spec, attrs[0])
    obj: object = _import(module_name)
    path = module_name
    for i, part in enumerate(attrs):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            where = f'module "{module_name}"' if i == 0 else f'"{path}" (a {type(obj).__name__})'
            hint = _suggestions(obj, part)
            missing = ".".join(attrs[: i + 1])
            raise AppAttributeMissing(
                f'{where} has no attribute "{part}" (looking up "{module_name}:{missing}")'
                f'{hint}; fix the name after ":" in "{spec}"'
            ) from exc
        except Exception as exc:
            raise AppLoadError(
                f'looking up "{part}" on "{path}" raised {_exc_text(exc)} at {_where(exc)}; '
                "fix that attribute"
            ) from exc
        path = f"{module_name}:{'.'.join(attrs[: i + 1])}"
    return obj


def _use_app_dir(app_dir: str) -> None:
    path = os.path.abspath(app_dir)
    if not os.path.isdir(path):
        raise ConfigError(
            f'--app-dir "{app_dir}" is not a directory; pass the directory that '
            "contains your app's module (default: the current directory)"
        )
    if not sys.path or sys.path[0] != path:
        sys.path.insert(0, path)


def _call_factory(factory: object, name: str) -> object:
    shape = inspect_shape(factory)
    if shape.params is not None and (shape.min_pos > 0 or shape.required_kwonly):
        raise AppFactoryFailed(
            f'factory "{name}" is {shape.with_article}, but a factory is called with no '
            "arguments; drop --factory if it is the app itself, or give the "
            "parameters defaults"
        )
    try:
        app = factory()  # type: ignore[operator]
    except Exception as exc:
        raise AppFactoryFailed(
            f'factory "{name}" raised {_exc_text(exc)} at {_where(exc)}; fix the factory'
        ) from exc
    if inspect.isawaitable(app):
        close = getattr(app, "close", None)
        if callable(close):
            close()  # silence "coroutine was never awaited"
        raise AppFactoryFailed(
            f'factory "{name}" returned {_a(app)} (is it `async def`?); '
            "pier calls factories synchronously, make it a plain def that returns the app"
        )
    if not callable(app):
        raise AppFactoryFailed(
            f'factory "{name}" returned {_a(app)}, not an ASGI app; '
            "return the application object from the factory"
        )
    return app


def _name_of(app: object) -> str:
    module = getattr(app, "__module__", None)
    qual = getattr(app, "__qualname__", None) or type(app).__qualname__
    return f"{module}:{qual}" if isinstance(module, str) else str(qual)


def load_app(
    app: object | str,
    *,
    factory: bool = False,
    interface: str = "auto",
    app_dir: str | None = None,
    wsgi_threads: int | None = None,
    wsgi_multiprocess: bool = False,
) -> ASGIApp:
    """Load app (an object or "module:attr") and return it as an ASGI3 callable.

    factory: call app once with no arguments and use the result.
    interface: "auto" (from the shape), "asgi3", "asgi2" or "wsgi".
    app_dir: directory put first on sys.path before importing ("." by the CLI).
    wsgi_threads, wsgi_multiprocess: the thread pool and wsgi.multiprocess of a WSGI app.
    """
    if interface not in _INTERFACES:
        raise ConfigError(
            f'--interface "{interface}" is not an interface; use one of {", ".join(_INTERFACES)}'
        )
    if isinstance(app, str):
        if app_dir is not None:
            _use_app_dir(app_dir)
        name = app.strip()
        obj = import_from_string(app)
    else:
        name = _name_of(app)
        obj = app
    if not callable(obj):
        raise AppNotCallable(
            f'app "{name}" is {_a(obj)}, not a callable; point pier at the ASGI '
            'application object itself (e.g. "main:app")'
        )
    if factory:
        obj = _call_factory(obj, name)
        name = f"{name}()"
    kind = resolve_interface(obj, interface, name=name)
    if kind == "factory":
        if factory:
            raise AppFactoryFailed(
                f'factory "{name[:-2]}" returned a callable that takes no arguments, '
                "not an ASGI app; return the application itself, not another factory"
            )
        if inspect.isclass(obj):
            logger.warning(
                'app "%s" is a class whose constructor takes no arguments, so pier creates '
                "one instance and serves that; point at an instance instead (app = %s()), "
                "or pass --factory (or factory=True) to say so and silence this warning",
                name,
                obj.__name__,
            )
        else:
            logger.warning(
                'app "%s" takes no arguments, so pier treats it as an app factory and calls '
                "it once; pass --factory (or factory=True) to say so and silence this warning",
                name,
            )
        obj = _call_factory(obj, name)
        name = f"{name}()"
        kind = resolve_interface(obj, interface, name=name)
        if kind == "factory":
            raise AppFactoryFailed(
                f'factory "{name[:-2]}" returned a callable that takes no arguments, '
                "not an ASGI app; return the application itself, not another factory"
            )
    if kind == "asgi2":
        return ASGI2Adapter(obj)
    if kind == "wsgi":
        from pier.wsgi import DEFAULT_THREADS, WSGIAdapter

        threads = wsgi_threads or DEFAULT_THREADS
        logger.info(
            'Serving app "%s" as WSGI (%s: %s) in %d threads per worker (--wsgi-threads)',
            name,
            "detected" if interface == "auto" else "--interface wsgi",
            inspect_shape(obj).described,
            threads,
        )
        return WSGIAdapter(obj, threads=threads, multiprocess=wsgi_multiprocess)
    return cast(ASGIApp, obj)
