"""What a native HTTP/1.1 head parser or response framer could save, measured with stubs.

    .venv/bin/python -m bench.native_stub [--variants none,parser,framer,both]

bench/micro_h1.py's keep-alive round (a real H1Connection on uvloop, hello app) runs
under callgrind with parts of pier replaced by stubs that hand over precomputed
results for the one request micro_h1 sends:

    parser  H1Parser.receive_data calls on_request(...) and on_end() with the values
            the parser would produce: no llhttp, no per-header callbacks, no framing
            checks in Python. What is left is what a native parser would leave if its
            own work cost about one Python call.
    framer  ResponseFramer.head returns the head it built the first time (and sets the
            framer's state as it did): no header validation, no head assembly.

N and 3N requests as in bench/instructions; the difference over 2N is the per-request
count. A measuring device, not a design: the stubs only know micro_h1's request.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def install(variant: str) -> None:
    from bench import micro_h1
    from pier.proto import h1

    if variant in ("parser", "both"):
        request = micro_h1.REQUEST
        assert request.startswith(b"GET /plaintext HTTP/1.1\r\n")

        def receive_data(self: Any, data: bytes) -> None:
            assert data == request
            self._on_request(
                "GET", b"/plaintext", b"",
                [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"wrk"), (b"accept", b"*/*")],
                "1.1", True, False, None, None, False, False,
            )
            self._on_end()

        h1.H1Parser.receive_data = receive_data  # type: ignore[method-assign]

    if variant in ("framer", "both"):
        original = h1.ResponseFramer.head
        built: dict[int, tuple[bytes, tuple[Any, ...]]] = {}

        def head(self: Any, status: int, headers: Any, **options: Any) -> bytes:
            cached = built.get(status)
            if cached is None:
                encoded = original(self, status, headers, **options)
                state = (self.no_body, self.chunked, self.remaining, self.keep_alive,
                         self.sent, self.trailers)
                built[status] = encoded, state
                return encoded
            (self.no_body, self.chunked, self.remaining, self.keep_alive, self.sent,
             self.trailers) = cached[1]
            return cached[0]

        h1.ResponseFramer.head = head  # type: ignore[method-assign]


def run(variant: str, requests: int) -> None:
    from bench import micro_h1
    from pier.io.server import loop_factory

    install(variant)
    with asyncio.Runner(loop_factory=loop_factory("uvloop")) as runner:
        runner.run(micro_h1.run_round(requests))


def count(variant: str, requests: int) -> int:
    with tempfile.TemporaryDirectory() as out:
        result = Path(out) / "cg.out"
        subprocess.run(
            [
                "valgrind", "--tool=callgrind", f"--callgrind-out-file={result}",
                sys.executable, "-m", "bench.native_stub", "--run", variant, str(requests),
            ],
            cwd=HERE.parent, check=True, capture_output=True,
        )
        for line in result.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit("callgrind wrote no summary")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="none,parser,framer,both")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run(args.run[0], int(args.run[1]))
        return
    low = args.requests
    for variant in args.variants.split(","):
        per_request = (count(variant, 3 * low) - count(variant, low)) / (2 * low)
        print(f"{variant:8} {per_request:10,.0f} instructions per keep-alive request", flush=True)


if __name__ == "__main__":
    main()
