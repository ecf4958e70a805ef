"""ASGI interface detection from the callable's shape (pier.app.interface).

Pins the ASGI spec, "Applications" (ASGI 3: a single async callable taking
scope, receive, send) and "Legacy Applications" (ASGI 2: a callable taking
scope that returns an awaitable callable taking receive, send), and pier's rule
that an app is never called to find out which one it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pier.app.interface import detect_interface, resolve_interface
from pier.errors import AppLoadError, InterfaceMismatch
from tests.app import shapes


@pytest.fixture(autouse=True)
def _clear_calls() -> Iterator[None]:
    shapes.CALLS.clear()
    yield
    shapes.CALLS.clear()


@pytest.mark.parametrize("name", sorted(shapes.EXPECTED))
def test_every_shape_is_detected_without_being_called(name: str) -> None:
    expected = shapes.EXPECTED[name][0]
    assert detect_interface(getattr(shapes, name)) == expected
    assert shapes.CALLS == []


@pytest.mark.parametrize("name", sorted(shapes.EXPECTED))
def test_auto_resolution_matches_detection(name: str) -> None:
    expected = shapes.EXPECTED[name][0]
    assert resolve_interface(getattr(shapes, name), "auto") == expected


def test_partial_binding_reduces_arity() -> None:
    async def four(a: Any, scope: Any, receive: Any, send: Any) -> None: ...

    def two(a: Any, scope: Any) -> Any: ...

    def one(a: Any) -> Any: ...

    assert detect_interface(functools.partial(four, 1)) == "asgi3"
    assert detect_interface(functools.partial(two, 1)) == "asgi2"
    # Everything bound: a zero-argument callable is a factory.
    assert detect_interface(functools.partial(one, 1)) == "factory"
    # A partial of a partial of a coroutine function still counts as async.
    with pytest.raises(InterfaceMismatch):
        resolve_interface(functools.partial(functools.partial(four, 1)), "asgi2")


def test_wrapper_without_wraps_is_asgi3_and_may_be_declared_asgi2() -> None:
    def wrapper(*a: Any, **k: Any) -> Any:
        return shapes.simple_app_v2(*a, **k)

    assert detect_interface(wrapper) == "asgi3"
    # *args accepts (scope) too, so an explicit --interface asgi2 is believed.
    assert resolve_interface(wrapper, "asgi2") == "asgi2"
    assert resolve_interface(wrapper, "asgi3") == "asgi3"


def test_coroutine_star_args_cannot_be_declared_asgi2() -> None:
    with pytest.raises(InterfaceMismatch) as info:
        resolve_interface(shapes.simple_app_any, "asgi2", name="main:app")
    message = str(info.value)
    assert 'app "main:app" is a coroutine function taking (*args, **kwargs) (ASGI3)' in message
    assert "--interface asgi2 expects a callable taking (scope)" in message
    assert "drop --interface or use --interface asgi3" in message


def test_asgi3_declared_asgi2_names_both_shapes_and_the_fix() -> None:
    with pytest.raises(InterfaceMismatch) as info:
        resolve_interface(shapes.simple_app_v3, "asgi2", name="main:app")
    assert str(info.value).startswith(
        'app "main:app" is a coroutine function taking (scope, receive, send) (ASGI3), '
        "but --interface asgi2 expects a callable taking (scope) that returns an "
        "awaitable callable"
    )
    assert str(info.value).endswith("drop --interface or use --interface asgi3")


def test_asgi2_declared_asgi3_is_a_mismatch() -> None:
    with pytest.raises(InterfaceMismatch) as info:
        resolve_interface(shapes.ClassicV2, "asgi3", name="main:App")
    message = str(info.value)
    assert "class ClassicV2 taking (scope) (ASGI2)" in message
    assert "--interface asgi3 expects a callable taking (scope, receive, send)" in message
    assert "use --interface asgi2" in message


def test_explicit_interface_matching_the_shape_is_kept() -> None:
    assert resolve_interface(shapes.simple_app_v3, "asgi3") == "asgi3"
    assert resolve_interface(shapes.simple_app_v2, "asgi2") == "asgi2"
    assert resolve_interface(shapes.ClassicV2, "asgi2") == "asgi2"
    # An optional-argument factory that is really ASGI2: the flag disambiguates.
    assert resolve_interface(shapes.create_with_config, "asgi2") == "asgi2"


def test_factory_with_explicit_interface_is_still_a_factory() -> None:
    # The flag describes what the factory returns, not the factory.
    assert resolve_interface(shapes.create, "asgi3") == "factory"


def test_unknown_interface_value_is_refused() -> None:
    with pytest.raises(InterfaceMismatch, match="use auto, asgi3, asgi2 or wsgi"):
        resolve_interface(shapes.simple_app_v3, "asgi4")


@pytest.mark.parametrize(
    ("app", "params"),
    [
        (lambda a, b, c, d: None, "(a, b, c, d)"),
        (lambda a, b, c, d, e: None, "(a, b, c, d, e)"),
    ],
)
def test_arity_that_fits_nothing_names_the_signature(app: Any, params: str) -> None:
    with pytest.raises(AppLoadError) as info:
        detect_interface(app, name="main:app")
    message = str(info.value)
    assert f"taking {params}" in message
    assert "ASGI3 expects a callable taking (scope, receive, send)" in message
    assert "ASGI2 expects a plain (non-async) callable taking (scope)" in message
    assert "WSGI expects a plain (non-async) callable taking (environ, start_response)" in message


def test_two_argument_coroutine_fits_nothing() -> None:
    async def app(receive: Any, send: Any) -> None: ...

    with pytest.raises(AppLoadError, match=r"taking \(receive, send\)"):
        detect_interface(app)


def test_one_argument_coroutine_is_neither_asgi2_nor_asgi3() -> None:
    async def app(scope: Any) -> None: ...

    with pytest.raises(AppLoadError) as info:
        detect_interface(app, name="main:app")
    assert "cannot return the ASGI2 instance synchronously" in str(info.value)
    assert "add the receive and send parameters" in str(info.value)


def test_async_factory_is_explained() -> None:
    async def create() -> Any: ...

    with pytest.raises(AppLoadError, match="make the factory a plain `def`"):
        detect_interface(create)


def test_required_keyword_only_parameter_is_explained() -> None:
    async def app(scope: Any, receive: Any, send: Any, *, db: Any) -> None: ...

    with pytest.raises(AppLoadError) as info:
        detect_interface(app)
    assert "keyword-only argument(s) db" in str(info.value)
    assert "functools.partial" in str(info.value)


def test_async_generator_is_explained() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> Any:
        yield None

    with pytest.raises(AppLoadError, match="returns an async generator"):
        detect_interface(app)


def test_class_taking_three_args_without_await_is_explained() -> None:
    class App:
        def __init__(self, scope: Any, receive: Any, send: Any) -> None: ...

    with pytest.raises(AppLoadError, match=r"its instances are not awaitable; .*define __await__"):
        detect_interface(App)


def test_class_taking_scope_without_call_is_explained() -> None:
    class App:
        def __init__(self, scope: Any) -> None: ...

    with pytest.raises(AppLoadError, match=r"not callable with \(receive, send\)"):
        detect_interface(App)


class _Opaque:
    """A callable whose signature cannot be read, like some C extension callables.

    (A real C callable such as operator.itemgetter serves on 3.11 and 3.12 only:
    Python 3.13 gave it a readable signature.)
    """

    @property
    def __signature__(self) -> Any:
        raise ValueError("no signature")

    def __call__(self, *args: Any) -> None:
        pass


def test_callable_without_signature_is_assumed_asgi3_with_a_debug_line() -> None:
    opaque = _Opaque()
    handler = _ListHandler()
    logger = logging.getLogger("pier.error")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        assert detect_interface(opaque, name="ext:app") == "asgi3"
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert any(
        r.levelno == logging.DEBUG and "assuming ASGI3" in r.getMessage() for r in handler.records
    )
    # And an explicit choice is believed, since nothing contradicts it.
    assert resolve_interface(opaque, "asgi2") == "asgi2"


def test_instance_with_async_call_but_unreadable_signature_is_asgi3() -> None:
    class App:
        __signature__ = "not a signature"  # inspect.signature raises TypeError

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None: ...

    assert detect_interface(App()) == "asgi3"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
