"""Loading the user's app: "module:attr", factories, and ASGI2 adaptation (pier.app.loader).

Pins the ASGI spec, "Applications" (what pier hands to the server is always an
ASGI 3 callable) and "Legacy Applications" (ASGI 2 apps are adapted, and their
instance is created per scope), plus pier's promises: each loading mistake is its
own exception whose one-line message names the cause and the fix; an app is never
called while loading; a factory is called exactly once.

Modules are real files written into tmp_path and imported through app_dir, each
under a unique name that is removed from sys.modules afterwards.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pier.app.loader import ASGI2Adapter, import_from_string, load_app
from pier.errors import (
    AppAttributeMissing,
    AppFactoryFailed,
    AppImportFailed,
    AppLoadError,
    AppModuleNotFound,
    AppNotCallable,
    ConfigError,
    InterfaceMismatch,
)
from pier.wsgi import WSGIAdapter
from tests.app import shapes

_counter = itertools.count()

ModuleMaker = Callable[..., str]


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, level: int) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno == level]


@pytest.fixture
def error_log() -> Iterator[_ListHandler]:
    # A handler on the logger itself: independent of propagation and of how
    # pier's logging setup configures the root logger.
    handler = _ListHandler()
    logger = logging.getLogger("pier.error")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture
def make_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleMaker]:
    """Write a module (or package) into tmp_path; return its unique import name."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # load_app inserts app_dir
    created: list[str] = []

    def make(source: str = "", *, package: dict[str, str] | None = None) -> str:
        name = f"pier_test_mod_{next(_counter)}_{tmp_path.name}".replace("-", "_")
        created.append(name)
        if package is None:
            (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        else:
            pkg = tmp_path / name
            pkg.mkdir()
            for filename, text in package.items():
                (pkg / filename).write_text(textwrap.dedent(text))
        import importlib

        importlib.invalidate_caches()
        return name

    yield make
    for name in created:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    shapes.CALLS.clear()
    yield
    shapes.CALLS.clear()


async def _one_request(app: Any) -> list[dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def _serve_one(app: Any) -> bytes:
    sent = asyncio.run(_one_request(app))
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    body: bytes = sent[1]["body"]
    return body


# --- every shape loads, answers, and is not called while loading -------------


@pytest.mark.parametrize("name", sorted(shapes.EXPECTED))
def test_every_shape_loads_as_object(name: str, error_log: _ListHandler) -> None:
    _, body, load_calls = shapes.EXPECTED[name]
    app = load_app(getattr(shapes, name))
    assert load_calls == shapes.CALLS
    assert _serve_one(app) == body.encode()


@pytest.mark.parametrize("name", sorted(shapes.EXPECTED))
def test_every_shape_loads_from_a_module_string(
    name: str, make_module: ModuleMaker, tmp_path: Path
) -> None:
    module = make_module(Path(shapes.__file__).read_text())
    app = load_app(f"{module}:{name}", app_dir=str(tmp_path))
    calls: list[str] = sys.modules[module].CALLS
    assert calls == shapes.EXPECTED[name][2]
    assert _serve_one(app) == shapes.EXPECTED[name][1].encode()


def test_asgi2_app_is_adapted_and_gets_one_instance_per_call() -> None:
    app = load_app(shapes.ClassicV2)
    assert isinstance(app, ASGI2Adapter)
    _serve_one(app)
    _serve_one(app)
    assert shapes.CALLS == ["ClassicV2", "ClassicV2"]


def test_asgi3_app_is_returned_unwrapped() -> None:
    # No adapter on the hot path for ASGI3.
    assert load_app(shapes.simple_app_v3) is shapes.simple_app_v3
    assert load_app(shapes.simple_app_any) is shapes.simple_app_any


def test_zero_argument_factory_warns_to_pass_factory(error_log: _ListHandler) -> None:
    app = load_app(shapes.create)
    assert app is shapes.simple_app_v3
    assert shapes.CALLS == ["create"]
    warnings = error_log.messages(logging.WARNING)
    assert len(warnings) == 1
    assert "takes no arguments" in warnings[0]
    assert "pass --factory (or factory=True)" in warnings[0]


def test_explicit_factory_is_called_once_without_warning(error_log: _ListHandler) -> None:
    app = load_app(shapes.create_v2, factory=True)
    assert isinstance(app, ASGI2Adapter)
    assert shapes.CALLS == ["create_v2"]
    assert error_log.messages(logging.WARNING) == []
    assert _serve_one(app) == b"simple_app_v2"


def test_factory_flag_on_an_app_refuses_without_calling_it() -> None:
    with pytest.raises(AppFactoryFailed) as info:
        load_app(shapes.simple_app_v3, factory=True)
    assert "taking (scope, receive, send)" in str(info.value)
    assert "drop --factory" in str(info.value)
    assert shapes.CALLS == []


def test_factory_with_explicit_interface_applies_it_to_the_result() -> None:
    app = load_app(shapes.create_v2, factory=True, interface="asgi2")
    assert _serve_one(app) == b"simple_app_v2"
    with pytest.raises(InterfaceMismatch, match=r'app "[^"]*create_v2\(\)" is a function'):
        load_app(shapes.create_v2, factory=True, interface="asgi3")


# --- import_from_string: each failure has its own error ------------------------


def test_dotted_attribute_path(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module(
        """
        class Holder:
            pass
        holder = Holder()
        holder.inner = Holder()
        holder.inner.app = "the app"
        """
    )
    sys.path.insert(0, str(tmp_path))
    assert import_from_string(f"{module}:holder.inner.app") == "the app"


def test_module_inside_package(make_module: ModuleMaker, tmp_path: Path) -> None:
    pkg = make_module(package={"__init__.py": "", "main.py": "app = 'pkg app'\n"})
    sys.path.insert(0, str(tmp_path))
    assert import_from_string(f"{pkg}.main:app") == "pkg app"


@pytest.mark.parametrize(
    ("spec", "fix"),
    [
        ("main", 'did you mean "main:app"?'),
        ("main.py", 'did you mean "main:app"?'),
        ("main:", 'both sides of ":" are needed'),
        (":app", 'both sides of ":" are needed'),
        ("main:app:extra", 'use one ":"'),
        ("main.py:app", 'name the module with dots and without ".py": "main:app"'),
        ("src/app/main.py:app", '"src.app.main:app"'),
        ("my-app:app", "not a valid dotted module name"),
        ("main:app()", "not a valid dotted attribute name"),
    ],
)
def test_malformed_spec(spec: str, fix: str) -> None:
    with pytest.raises(AppLoadError) as info:
        import_from_string(spec)
    assert type(info.value) is AppLoadError
    assert f'expected "module:attribute", got "{spec}"' in str(info.value)
    assert fix in str(info.value)


def test_missing_module(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(AppModuleNotFound) as info:
        import_from_string("pier_no_such_module_xyz:app")
    message = str(info.value)
    assert 'module "pier_no_such_module_xyz" not found on sys.path' in message
    assert "--app-dir" in message


def test_missing_parent_package() -> None:
    with pytest.raises(AppModuleNotFound) as info:
        import_from_string("pier_no_such_pkg_xyz.main:app")
    assert 'package "pier_no_such_pkg_xyz" (needed for module "pier_no_such_pkg_xyz.main")' in (
        str(info.value)
    )


def test_missing_submodule_of_existing_package(make_module: ModuleMaker, tmp_path: Path) -> None:
    pkg = make_module(package={"__init__.py": ""})
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(AppModuleNotFound, match=f'module "{pkg}.main" not found'):
        import_from_string(f"{pkg}.main:app")


def test_missing_dependency_is_not_a_missing_module(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    module = make_module("import json\nimport pier_missing_dependency_xyz\napp = None\n")
    with pytest.raises(AppImportFailed) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    message = str(info.value)
    assert f'module "{module}" failed to import' in message
    assert 'it imports "pier_missing_dependency_xyz", which is not installed' in message
    assert f"{module}.py:2" in message
    assert "install the package that provides it" in message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)


def test_package_importing_a_missing_sibling_is_an_import_failure(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    pkg = make_module(package={"__init__.py": "", "main.py": "from .helpers import db\n"})
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(AppImportFailed) as info:
        import_from_string(f"{pkg}.main:app")
    assert f'imports "{pkg}.helpers", which does not exist' in str(info.value)
    assert "create it, or fix the import" in str(info.value)


def test_module_raising_while_importing(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module(
        """
        import os

        raise RuntimeError("database is down")
        """
    )
    with pytest.raises(AppImportFailed) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    message = str(info.value)
    assert "RuntimeError: database is down" in message
    assert f"{tmp_path / module}.py:4" in message
    assert f'python -c "import {module}"' in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert module not in sys.modules


def test_error_raised_in_a_helper_points_at_the_helper(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    pkg = make_module(
        package={
            "__init__.py": "",
            "settings.py": "def load():\n    return int('not a number')\n",
            "main.py": "from .settings import load\nCONFIG = load()\n",
        }
    )
    sys.path.insert(0, str(tmp_path))
    with pytest.raises(AppImportFailed) as info:
        import_from_string(f"{pkg}.main:app")
    assert "ValueError: invalid literal for int()" in str(info.value)
    assert f"{tmp_path / pkg / 'settings.py'}:2" in str(info.value)


def test_syntax_error_names_file_and_line(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("x = 1\ndef app(:\n    pass\n")
    with pytest.raises(AppImportFailed) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    assert "SyntaxError" in str(info.value)
    assert f"{module}.py:2" in str(info.value)


def test_sys_exit_at_import_is_an_import_failure(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("import sys\nsys.exit(2)\n")
    with pytest.raises(AppImportFailed, match=f"SystemExit: 2 at .*{module}.py:2"):
        load_app(f"{module}:app", app_dir=str(tmp_path))


def test_missing_attribute_suggests_close_names_and_callables(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    module = make_module(
        """
        import os
        from json import dumps

        class Starlette:
            async def __call__(self, scope, receive, send): ...

        application = Starlette()

        def create_app():
            return application

        def helper():
            pass

        DEBUG = True
        """
    )
    with pytest.raises(AppAttributeMissing) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    message = str(info.value)
    assert f'module "{module}" has no attribute "app"' in message
    assert "callables there: Starlette, application, create_app, helper" in message
    # Imported names are not suggestions: they are not the user's app.
    assert "dumps" not in message
    assert "DEBUG" not in message
    assert f'fix the name after ":" in "{module}:app"' in message


def test_missing_attribute_did_you_mean(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("async def app(scope, receive, send): ...\n")
    with pytest.raises(AppAttributeMissing, match='did you mean "app"\\?'):
        load_app(f"{module}:ap", app_dir=str(tmp_path))


def test_missing_part_of_dotted_attribute(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module(
        """
        class Api:
            def __init__(self):
                self.router = None
        api = Api()
        """
    )
    with pytest.raises(AppAttributeMissing) as info:
        load_app(f"{module}:api.routr.app", app_dir=str(tmp_path))
    message = str(info.value)
    assert f'"{module}:api" (a Api) has no attribute "routr"' in message
    assert f'looking up "{module}:api.routr"' in message
    assert 'did you mean "router"?' in message


def test_not_callable_says_what_it_is(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("app = {'routes': []}\n")
    with pytest.raises(AppNotCallable) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    assert f'app "{module}:app" is a dict, not a callable' in str(info.value)
    assert "point pier at the ASGI application object" in str(info.value)


def test_submodule_instead_of_app_is_not_callable(make_module: ModuleMaker, tmp_path: Path) -> None:
    pkg = make_module(package={"__init__.py": "from . import main\n", "main.py": ""})
    with pytest.raises(AppNotCallable, match="is a module, not a callable"):
        load_app(f"{pkg}:main", app_dir=str(tmp_path))


# --- factories ---------------------------------------------------------------


def test_factory_raising(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("def create():\n    raise KeyError('DATABASE_URL')\n")
    with pytest.raises(AppFactoryFailed) as info:
        load_app(f"{module}:create", factory=True, app_dir=str(tmp_path))
    message = str(info.value)
    assert f'factory "{module}:create" raised KeyError' in message
    assert "DATABASE_URL" in message
    assert f"{module}.py:2" in message
    assert isinstance(info.value.__cause__, KeyError)


def test_factory_returning_non_callable(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("def create():\n    app = object()\n")
    with pytest.raises(AppFactoryFailed) as info:
        load_app(f"{module}:create", factory=True, app_dir=str(tmp_path))
    assert "returned None, not an ASGI app" in str(info.value)
    assert "return the application object from the factory" in str(info.value)


def test_auto_detected_factory_failing_is_a_factory_failure(
    make_module: ModuleMaker, tmp_path: Path, error_log: _ListHandler
) -> None:
    module = make_module("def create():\n    return 42\n")
    with pytest.raises(AppFactoryFailed, match="returned an int"):
        load_app(f"{module}:create", app_dir=str(tmp_path))
    assert len(error_log.messages(logging.WARNING)) == 1


def test_async_factory_with_flag_is_explained(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("async def create():\n    return None\n")
    with pytest.raises(AppFactoryFailed) as info:
        load_app(f"{module}:create", factory=True, app_dir=str(tmp_path))
    assert "returned a coroutine (is it `async def`?)" in str(info.value)
    assert "make it a plain def" in str(info.value)


def test_factory_returning_a_factory(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("def inner():\n    return None\ndef create():\n    return inner\n")
    with pytest.raises(AppFactoryFailed, match="not another factory"):
        load_app(f"{module}:create", factory=True, app_dir=str(tmp_path))


# --- options -------------------------------------------------------------------


def test_app_dir_is_put_first_on_sys_path(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("async def app(scope, receive, send): ...\n")
    load_app(f"{module}:app", app_dir=str(tmp_path))
    assert sys.path[0] == str(tmp_path)


def test_app_dir_dot_means_the_current_directory(
    make_module: ModuleMaker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = make_module("async def app(scope, receive, send): ...\n")
    monkeypatch.chdir(tmp_path)
    app = load_app(f"{module}:app", app_dir=".")
    assert app is sys.modules[module].app


def test_app_dir_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r'--app-dir ".*nowhere" is not a directory'):
        load_app("main:app", app_dir=str(tmp_path / "nowhere"))


def test_interface_value_is_checked() -> None:
    with pytest.raises(ConfigError, match="use one of auto, asgi3, asgi2, wsgi"):
        load_app(shapes.simple_app_v3, interface="asgi4")


@pytest.mark.parametrize(
    ("name", "interface", "needles"),
    [
        ("simple_app_v3", "wsgi", ["is a coroutine function taking (scope, receive, send) (ASGI3)",
                                   "an `async def` app is ASGI, not WSGI",
                                   "use --interface asgi3"]),
        ("wsgi_instance", "asgi3", ["WSGIObject with __call__ taking (environ, start_response)"
                                    " (WSGI)", "use --interface wsgi"]),
    ],
)
def test_wsgi_and_asgi_mismatch_says_what_was_found_and_why(
    name: str, interface: str, needles: list[str]
) -> None:
    with pytest.raises(InterfaceMismatch) as info:
        load_app(getattr(shapes, name), interface=interface)
    for needle in needles:
        assert needle in str(info.value)


def test_wsgi_app_is_served_through_the_adapter_and_says_so(
    error_log: _ListHandler, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="pier.error"):
        app = load_app(shapes.wsgi_function, wsgi_threads=3)
    assert isinstance(app, WSGIAdapter)
    assert app.pool.size == 3
    infos = error_log.messages(logging.INFO)
    assert any(
        "as WSGI (detected: function taking (environ, start_response))" in line
        and "in 3 threads" in line
        for line in infos
    ), infos
    assert shapes.CALLS == []


def test_async_two_argument_app_is_explained_as_neither_asgi_nor_wsgi() -> None:
    async def app(environ: Any, start_response: Any) -> None: ...

    with pytest.raises(AppLoadError) as info:
        load_app(app)
    assert "an `async def` cannot be a WSGI app" in str(info.value)


def test_interface_mismatch_through_load_app_names_the_spec(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    module = make_module("async def app(scope, receive, send): ...\n")
    with pytest.raises(InterfaceMismatch) as info:
        load_app(f"{module}:app", interface="asgi2", app_dir=str(tmp_path))
    assert str(info.value).startswith(f'app "{module}:app" is a coroutine function taking')
    assert shapes.CALLS == []


def test_interface_asgi2_on_a_star_args_wrapper(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module(
        """
        def v2(scope):
            async def asgi(receive, send):
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"v2"})
            return asgi

        def app(*args, **kwargs):
            return v2(*args, **kwargs)
        """
    )
    app = load_app(f"{module}:app", interface="asgi2", app_dir=str(tmp_path))
    assert isinstance(app, ASGI2Adapter)
    assert _serve_one(app) == b"v2"


def test_shape_that_fits_nothing_fails_at_load(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("async def app(scope, send):\n    pass\n")
    with pytest.raises(AppLoadError) as info:
        load_app(f"{module}:app", app_dir=str(tmp_path))
    assert f'app "{module}:app" is a coroutine function taking (scope, send)' in str(info.value)


def test_class_passed_instead_of_instance_warns_to_instantiate(error_log: _ListHandler) -> None:
    app = load_app(shapes.FactoryClass)
    assert isinstance(app, shapes.FactoryClass)
    assert shapes.CALLS == ["FactoryClass"]
    (warning,) = error_log.messages(logging.WARNING)
    assert "is a class whose constructor takes no arguments" in warning
    assert "point at an instance instead (app = FactoryClass())" in warning


def test_app_left_as_none_is_not_callable(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module("app = None\n")
    with pytest.raises(AppNotCallable, match=f'app "{module}:app" is None, not a callable'):
        load_app(f"{module}:app", app_dir=str(tmp_path))


def test_hand_raised_module_not_found_is_an_import_failure(
    make_module: ModuleMaker, tmp_path: Path
) -> None:
    module = make_module("raise ModuleNotFoundError('plugin registry missing')\n")
    with pytest.raises(AppImportFailed, match="ModuleNotFoundError: plugin registry missing"):
        load_app(f"{module}:app", app_dir=str(tmp_path))


def test_attribute_that_raises_when_read(make_module: ModuleMaker, tmp_path: Path) -> None:
    module = make_module(
        """
        class Lazy:
            @property
            def app(self):
                raise RuntimeError("settings not configured")
        lazy = Lazy()
        """
    )
    with pytest.raises(AppLoadError) as info:
        load_app(f"{module}:lazy.app", app_dir=str(tmp_path))
    assert 'looking up "app" on' in str(info.value)
    assert "RuntimeError: settings not configured" in str(info.value)
    assert f"{module}.py:5" in str(info.value)
