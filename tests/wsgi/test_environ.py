"""EnvironBuilder (pier.wsgi.environ): the PEP 3333 environ built from an ASGI http scope.

The e2e tests (tests/e2e/test_wsgi.py) pin the environ over real sockets; these pin the
builder's two ways of adding header fields (every name known and none repeated, in C
when the C module is built or in Python, or one at a time) give the same environ, and
that a scope leaving out what ASGI makes optional gets the spec's defaults.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from pier.proto import native
from pier.wsgi import environ as environ_module
from pier.wsgi.bridge import FileWrapper
from pier.wsgi.environ import EnvironBuilder
from tests.helpers import NOT_BUILT

_C_MODULE = native.load(honour_switch=False)
KNOWN_FIELDS = {
    "python": environ_module._python_known_fields,
    "c": None if _C_MODULE is None else _C_MODULE.environ_fields,
}


@pytest.fixture(params=sorted(KNOWN_FIELDS), autouse=True)
def known_fields(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Every test runs with the C fast pass and with the Python one."""
    implementation = KNOWN_FIELDS[request.param]
    if implementation is None:
        pytest.skip(NOT_BUILT)
    monkeypatch.setattr(environ_module, "_known_fields", implementation)
    return implementation


def builder() -> EnvironBuilder:
    return EnvironBuilder(errors=sys.stderr, file_wrapper=FileWrapper, multiprocess=False)


def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": "/a b",
        "raw_path": b"/a%20b",
        "query_string": b"x=1",
        "headers": headers,
    }


def no_body() -> Any:
    raise AssertionError("a bodyless request must not ask the loop for its body")


HEADER_SETS = {
    "plain": [(b"host", b"example.com"), (b"accept", b"*/*"), (b"user-agent", b"t\xe9")],
    "repeated": [(b"cookie", b"a=1"), (b"accept", b"text/plain"), (b"cookie", b"b=2")],
    "dropped": [(b"x-forwarded-for", b"203.0.113.7"), (b"x_forwarded_for", b"198.51.100.1")],
    "content": [(b"content-type", b"text/plain"), (b"content-length", b"0")],
}


@pytest.mark.parametrize("name", sorted(HEADER_SETS))
def test_known_names_build_the_same_environ_as_the_first_request(name: str) -> None:
    build = builder().build
    headers = HEADER_SETS[name]
    first = build(scope(headers), no_body)  # every name new: added one at a time
    again = build(scope(headers), no_body)  # names known: the usual request's way
    assert again == first
    assert list(again) == list(first)


def test_repeated_and_dropped_fields_on_a_known_connection() -> None:
    build = builder().build
    build(scope(HEADER_SETS["plain"] + HEADER_SETS["dropped"]), no_body)
    environ = build(scope(HEADER_SETS["repeated"] + HEADER_SETS["dropped"]), no_body)
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert environ["PATH_INFO"] == "/a b"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["REMOTE_PORT"] == "40000"


def test_user_agent_bytes_are_read_as_latin1() -> None:
    build = builder().build
    for _ in range(2):
        assert build(scope(HEADER_SETS["plain"]), no_body)["HTTP_USER_AGENT"] == "té"


def test_a_scope_without_the_optional_keys_gets_the_spec_defaults() -> None:
    minimal = {
        "type": "http",
        "method": "GET",
        "path": "/caf\u00e9",
        "headers": [(b"host", b"example.com:8080")],
    }
    environ = builder().build(minimal, no_body)
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["PATH_INFO"] == "/café".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == ""
    assert environ["SCRIPT_NAME"] == ""
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("example.com", "8080")
    assert "REMOTE_ADDR" not in environ
    assert environ["wsgi.input"].read() == b""


@pytest.mark.parametrize(
    ("headers", "taken"),
    [
        ([(b"host", b"h"), (b"accept", b"*/*")], True),
        ([], True),
        ([(b"host", b"h"), (b"x-new", b"v")], False),  # a name not translated yet
        ([(b"accept", b"a"), (b"accept", b"b")], False),  # repeated: joined elsewhere
        ([(b"host", b"h", b"extra")], False),
        ([[b"host", b"h"]], None),  # another server's list pairs: either way
        ([(b"host", "h")], False),
        (((b"host", b"h"),), None),  # not a list: either way
    ],
)
def test_the_fast_pass_takes_only_known_unrepeated_byte_pairs(
    known_fields: Any, headers: Any, taken: bool | None
) -> None:
    names = {b"host": "HTTP_HOST", b"accept": "HTTP_ACCEPT"}
    environ: dict[str, Any] = {"SCRIPT_NAME": ""}
    result = known_fields(environ, names, headers)
    assert result is (result if taken is None else taken)
    if result:  # taken: the environ is complete
        assert environ == {"SCRIPT_NAME": "", **{names[n]: v.decode("latin-1") for n, v in headers}}


def test_a_list_pair_from_another_server_is_still_read() -> None:
    build = builder().build
    for _ in range(2):
        environ = build(scope([[b"host", b"example.com"]]), no_body)  # type: ignore[list-item]
        assert environ["HTTP_HOST"] == "example.com"


def test_a_list_server_address_is_read_and_not_remembered() -> None:
    build = builder().build
    for _ in range(2):
        listed = {**scope([(b"host", b"h")]), "server": ["10.0.0.1", 8080]}
        environ = build(listed, no_body)
        assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("10.0.0.1", "8080")
