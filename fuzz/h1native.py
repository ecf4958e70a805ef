"""atheris target: the native request-head fast path (proto/h1.py rule 6) against llhttp.

Run through scripts/fuzz. On any bytes, a head `pier.proto._h1head.parse_head` accepts
must be the very request llhttp alone reads, and an H1Parser using the fast path must
tell its handler what one without it tells, whole and cut where the fuzzer says
(tests/proto/h1_invariants.py check_native_agrees; the hypothesis property in
tests/proto/test_h1_native.py checks the same). Coverage is Python's only: the C module
is not instrumented.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/

with atheris.instrument_imports():
    from tests.helpers import NOT_BUILT, native_parse_head
    from tests.proto.h1_invariants import check_native_agrees

NATIVE = native_parse_head()


def test_one_input(raw: bytes) -> None:
    assert NATIVE is not None
    provider = atheris.FuzzedDataProvider(raw)
    points = provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 6), 0, 4096)
    check_native_agrees(NATIVE, provider.ConsumeBytes(provider.remaining_bytes()), points)


def main() -> None:
    if NATIVE is None:
        sys.exit(f"fuzz/h1native.py: {NOT_BUILT}")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
