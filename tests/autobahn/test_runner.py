"""tests/autobahn/run.py as scripts/test uses it: `--install` sets wstest up and stops.

A first `./scripts/test` once spent ~19 silent minutes here because `--install` went on
to run all 517 cases; the full run is its own command now (tests/autobahn/README.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.autobahn.run import ROOT


def test_install_with_wstest_present_runs_no_case(tmp_path: Path) -> None:
    called = tmp_path / "called"
    fake = tmp_path / "wstest"
    fake.write_text(f"#!/bin/sh\ntouch {called}\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "tests/autobahn/run.py", "--install"], cwd=ROOT, timeout=30,
        env={**os.environ, "PIER_WSTEST": str(fake)}, capture_output=True, text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wstest: {fake}"
    assert not called.exists(), "--install ran the suite"
