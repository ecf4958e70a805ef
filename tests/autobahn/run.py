"""Run Autobahn|Testsuite's fuzzing client (RFC 6455 / RFC 7692 conformance) against pier.

    python tests/autobahn/run.py                 # cases of spec.json (1-7, 9, 10, 12, 13)
    python tests/autobahn/run.py --cases '1.*,5.*' --report /tmp/autobahn
    python tests/autobahn/run.py --install       # set up wstest (Python 2.7) and stop

What it does: starts `python -m pier tests.autobahn.echo_app:app` on a free port, runs
`wstest -m fuzzingclient` with spec.json (its URL pointed at that port), reads the
suite's index.json, prints the count of each result and every case that is not OK,
and exits 1 if any case FAILED. The HTML report stays in --report (or a temp dir).

wstest is Python 2.7 software (PyPI: autobahntestsuite). It is looked for in
$PIER_WSTEST, then ~/.cache/pier/wstest-venv/bin/wstest, then on PATH. `--install`
creates that virtualenv from pyenv's 2.7.18 (or any python2.7 on PATH) when no wstest is
found, prints where wstest is, and runs nothing: the full run takes ~30 minutes, so it is
only ever asked for by name (`run.py` without --install).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SPEC = Path(__file__).with_name("spec.json")
VENV = Path.home() / ".cache" / "pier" / "wstest-venv"
LISTENING = re.compile(r"Listening on http://(\S+):(\d+)")
# Results the issue accepts; anything else is listed, and FAILED fails the run.
ACCEPTED = {"OK", "NON-STRICT", "INFORMATIONAL"}


def find_wstest() -> str | None:
    candidates = [os.environ.get("PIER_WSTEST"), str(VENV / "bin" / "wstest"),
                  shutil.which("wstest")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _python27() -> str:
    try:
        prefix = subprocess.run(["pyenv", "prefix", "2.7.18"], capture_output=True,
                                text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        prefix = ""
    if prefix and os.access(f"{prefix}/bin/python", os.X_OK):
        return f"{prefix}/bin/python"
    found = shutil.which("python2.7")
    if found:
        return found
    raise SystemExit("no Python 2.7 found: install one (pyenv install 2.7.18) for wstest")


def install_wstest() -> str:
    """Create ~/.cache/pier/wstest-venv with autobahntestsuite; return its wstest."""
    python = _python27()
    have_virtualenv = subprocess.run([python, "-m", "virtualenv", "--version"],
                                     capture_output=True, check=False).returncode == 0
    if not have_virtualenv:
        # The last virtualenv releases that still run on Python 2.7.
        subprocess.run([python, "-m", "pip", "install", "-q", "virtualenv<20.22"], check=True)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "virtualenv", "-q", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", "autobahntestsuite"],
                   check=True)
    return str(VENV / "bin" / "wstest")


class PierServer:
    """pier serving the echo app in a subprocess, on a free port."""

    def __init__(self, extra: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pier", "tests.autobahn.echo_app:app", "--port", "0",
             "--log-level", "info", "--no-access-log", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output: list[str] = []
        assert self.proc.stdout is not None
        timer = threading.Timer(20, self.proc.kill)
        timer.start()
        try:
            for line in self.proc.stdout:
                self.output.append(line)
                match = LISTENING.search(line)
                if match:
                    self.port = int(match.group(2))
                    break
            else:
                raise RuntimeError("pier exited before listening:\n" + "".join(self.output))
        finally:
            timer.cancel()
        # Keep draining its output so a chatty log never blocks the server.
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def run_suite(
    cases: list[str],
    *,
    wstest: str,
    outdir: Path,
    pier_args: list[str] | None = None,
    exclude: list[str] | None = None,
    timeout: float | None = None,
) -> tuple[dict[str, dict[str, Any]], str]:
    """Run the given cases; return ({case id: result}, pier's log output)."""
    server = PierServer(pier_args or [])
    try:
        spec = json.loads(SPEC.read_text())
        spec["servers"][0]["url"] = f"ws://127.0.0.1:{server.port}"
        spec["cases"] = cases
        spec["exclude-cases"] = exclude or []
        spec["outdir"] = str(outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        spec_file = outdir / "spec.json"
        spec_file.write_text(json.dumps(spec, indent=2))
        completed = subprocess.run(
            [wstest, "-m", "fuzzingclient", "-s", str(spec_file)], cwd=outdir,
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        index = outdir / "index.json"
        if not index.exists():
            raise RuntimeError(
                f"wstest wrote no report (exit {completed.returncode}):\n"
                + completed.stdout[-3000:] + completed.stderr[-3000:]
            )
        results: dict[str, dict[str, Any]] = json.loads(index.read_text())["pier"]
    finally:
        server.stop()
    return results, "".join(server.output)


def _case_key(case: str) -> tuple[int, ...]:
    return tuple(int(part) for part in case.split("."))


def summary(results: dict[str, dict[str, Any]]) -> str:
    counts = collections.Counter(result["behavior"] for result in results.values())
    close = collections.Counter(result["behaviorClose"] for result in results.values())
    lines = [
        f"{len(results)} cases: "
        + ", ".join(f"{name} {count}" for name, count in sorted(counts.items())),
        "closing behaviour: "
        + ", ".join(f"{name} {count}" for name, count in sorted(close.items())),
    ]
    for case in sorted(results, key=_case_key):
        result = results[case]
        if result["behavior"] != "OK" or result["behaviorClose"] not in ACCEPTED:
            lines.append(
                f"  {case}: {result['behavior']} (close: {result['behaviorClose']},"
                f" remote close code {result.get('remoteCloseCode')})"
            )
    return "\n".join(lines)


def failed(results: dict[str, dict[str, Any]]) -> list[str]:
    return sorted(
        (case for case, result in results.items()
         if result["behavior"] == "FAILED" or result["behaviorClose"] == "FAILED"),
        key=_case_key,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", help="comma-separated case patterns, e.g. '1.*,9.1.1'")
    parser.add_argument("--exclude", default="", help="comma-separated case patterns to skip")
    parser.add_argument("--install", action="store_true",
                        help="set up wstest if it is missing, then stop (runs no case)")
    parser.add_argument("--wstest", help="path of the wstest executable")
    parser.add_argument("--report", help="directory for the HTML report and index.json")
    parser.add_argument("pier_args", nargs="*", help="extra pier options, after --")
    args = parser.parse_args()
    wstest = args.wstest or find_wstest()
    if args.install:
        print(f"wstest: {wstest or install_wstest()}")
        return 0
    if wstest is None:
        print("wstest not found: run with --install, or set PIER_WSTEST", file=sys.stderr)
        return 2
    cases = args.cases.split(",") if args.cases else json.loads(SPEC.read_text())["cases"]
    exclude = [c for c in args.exclude.split(",") if c]
    outdir = Path(args.report) if args.report else Path(tempfile.mkdtemp(prefix="autobahn-"))
    results, _ = run_suite(cases, wstest=wstest, outdir=outdir, pier_args=args.pier_args,
                           exclude=exclude)
    print(summary(results))
    print(f"report: {outdir / 'index.html'}")
    return 1 if failed(results) else 0


if __name__ == "__main__":
    sys.exit(main())
