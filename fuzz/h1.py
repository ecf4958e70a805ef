"""atheris target: pier's sans-I/O HTTP/1.1 parser (proto/h1.py) on arbitrary bytes.

Run through scripts/fuzz. The invariants are tests/proto/h1_invariants.py's (the
hypothesis properties check the same ones); the fuzzer picks the bytes and where reads
end. A broken one stops atheris, which saves the input.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests/

with atheris.instrument_imports():
    from tests.proto.h1_invariants import check_invariants


def test_one_input(raw: bytes) -> None:
    provider = atheris.FuzzedDataProvider(raw)
    points = provider.ConsumeIntListInRange(provider.ConsumeIntInRange(0, 6), 0, 4096)
    check_invariants(provider.ConsumeBytes(provider.remaining_bytes()), points)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
