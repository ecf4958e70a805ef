"""Fixtures shared across test directories."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pier.proto import h1
from tests.helpers import NOT_BUILT, native_parse_head


@pytest.fixture(scope="module", params=["native", "llhttp"])
def h1_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Runs a module's HTTP/1.1 tests twice: with the native head fast path
    (proto/h1.py rule 6) and with llhttp alone; H1Parsers made meanwhile use it."""
    native = native_parse_head() if request.param == "native" else None
    if request.param == "native" and native is None:
        pytest.skip(NOT_BUILT)
    saved = h1.parse_head
    h1.parse_head = native
    try:
        yield request.param
    finally:
        h1.parse_head = saved
