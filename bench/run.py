"""The benchmark command: `bench/run [--quick] [--scenarios a,b] [--servers x,y]`.

Rules: this module runs twice. First under any Python, using only the standard library:
it builds bench/.venv from the project's own interpreter (the one behind .venv, so pier
and its peers are measured on the same Python), installs pier (editable) and the peers
from bench/requirements.txt, installs wrk if missing, then re-executes itself inside
bench/.venv. Second, inside bench/.venv, it runs the harness and writes the results.
Nothing here measures anything; see bench/harness.py.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENV = BENCH / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
REQUIREMENTS = BENCH / "requirements.txt"
STAMP = VENV / ".installed"
DOCS = REPO / "docs" / "benchmarks.md"


class SetupError(Exception):
    """The environment cannot be prepared; the message names the fix."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark pier against its peers, one server at a time, and write "
        "docs/benchmarks.md and bench/results/latest.json.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="1 round, short durations (~4 minutes): a smoke test, not a result",
    )
    parser.add_argument("--scenarios", help="comma-separated scenario keys (default: all)")
    parser.add_argument(
        "--servers",
        help="comma-separated server names (default: all; "
        "uvicorn is always added, ratios are to it)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per scenario (default 3, quick 1)")
    parser.add_argument(
        "--duration", type=int, help="measured seconds per run (default 4, quick 2)"
    )
    parser.add_argument("--warmup", type=int, help="warm-up seconds per run (default 1)")
    parser.add_argument(
        "--latency-rate",
        type=float,
        default=2000.0,
        help="requests per second in the latency scenario (default 2000)",
    )
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=10_000,
        help="connections held in the memory scenario (default 10000)",
    )
    docs = parser.add_mutually_exclusive_group()
    docs.add_argument(
        "--write-docs",
        action="store_true",
        help="write docs/benchmarks.md even for a quick or partial run",
    )
    docs.add_argument("--no-docs", action="store_true", help="never write docs/benchmarks.md")
    parser.add_argument(
        "--skip-setup", action="store_true", help="use bench/.venv as it is (no pip, no apt-get)"
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and servers, then exit")
    parser.add_argument(
        "--growth",
        action="store_true",
        help="instead of the scenarios: hello at 16-1,024 connections and the mixed-load "
        "soak (default servers pier, uvicorn, granian); writes the growth section of "
        "docs/benchmarks.md and docs/benchmarks-growth.png",
    )
    parser.add_argument(
        "--growth-part",
        choices=("both", "curve", "soak"),
        default="both",
        help="with --growth, run only the concurrency curve or only the soak; the other "
        "part is kept from the last run (bench/results/growth.json), so a long soak and a "
        "curve wanting a quiet machine can be taken at different times",
    )
    parser.add_argument(
        "--soak-seconds",
        type=int,
        help="length of the soak per server (default 600, quick 120)",
    )
    return parser.parse_args(argv)


# --- stage 1: the environment (standard library only) ---------------------------------


def project_interpreter() -> Path:
    """The interpreter behind the project's .venv, else python3.11 on PATH."""
    override = os.environ.get("PIER_BENCH_PYTHON")
    if override:
        return Path(override).resolve()
    project = REPO / ".venv" / "bin" / "python"
    if project.exists():
        return project.resolve()
    found = shutil.which("python3.11")
    if found is None:
        raise SetupError(
            "no project interpreter: create .venv (scripts/test does) or set "
            "PIER_BENCH_PYTHON=/path/to/python3.11"
        )
    return Path(found).resolve()


def ensure_venv(interpreter: Path) -> None:
    if VENV_PYTHON.exists() and VENV_PYTHON.resolve() != interpreter:
        print(f"bench/.venv was built from {VENV_PYTHON.resolve()}, not {interpreter}: rebuilding")
        shutil.rmtree(VENV)
    if not VENV_PYTHON.exists():
        print(f"creating bench/.venv with {interpreter}", flush=True)
        subprocess.run([str(interpreter), "-m", "venv", str(VENV)], check=True)
    digest = hashlib.sha256()
    for path in (REQUIREMENTS, REPO / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(str(interpreter).encode())
    stamp = digest.hexdigest()
    if STAMP.exists() and STAMP.read_text() == stamp:
        return
    print("installing pier and its peers into bench/.venv", flush=True)
    done = subprocess.run(
        [
            str(VENV_PYTHON),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
            "-e",
            str(REPO),
        ],
        check=False,
    )
    if done.returncode != 0:
        raise SetupError(
            "pip could not install bench/requirements.txt into bench/.venv; "
            "see the pip output above, fix the pin or the network, rerun"
        )
    STAMP.write_text(stamp)


def ensure_tools() -> None:
    if shutil.which("wrk") is None:
        prefix: list[str] = []
        if os.geteuid() != 0:
            if shutil.which("sudo") is None:
                raise SetupError("wrk is missing: install the Debian package (apt-get install wrk)")
            prefix = ["sudo", "-n"]
        print("installing wrk (Debian package) with apt-get", flush=True)
        update = subprocess.run([*prefix, "apt-get", "update", "-qq"], check=False)
        install = subprocess.run([*prefix, "apt-get", "install", "-y", "-qq", "wrk"], check=False)
        if update.returncode or install.returncode or shutil.which("wrk") is None:
            raise SetupError("could not install wrk: run `apt-get install wrk` as root, rerun")
    if shutil.which("taskset") is None:
        raise SetupError("taskset is missing: install util-linux (apt-get install util-linux)")


def in_bench_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


# --- stage 2: the run (inside bench/.venv) --------------------------------------------


def cores() -> tuple[int | None, int | None]:
    """(server core, load core) from the cores this process may use; None, None if < 2."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def pick(names: str | None, known: list[str], what: str) -> list[str]:
    if not names:
        return known
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise SetupError(f"unknown {what} {', '.join(unknown)}: choose from {', '.join(known)}")
    return [name for name in known if name in chosen]


GROWTH_SERVERS = "pier,uvicorn,granian"


def run_benchmarks(args: argparse.Namespace) -> int:
    from bench import growth, harness, report
    from bench.scenarios import SCENARIOS
    from bench.servers import BASELINE, SERVERS

    scenario_names = pick(args.scenarios, [s.key for s in SCENARIOS], "scenario")
    server_names = pick(
        args.servers or (GROWTH_SERVERS if args.growth else None),
        [s.name for s in SERVERS],
        "server",
    )
    if BASELINE not in server_names:
        server_names = [
            name for name in (s.name for s in SERVERS) if name in server_names or name == BASELINE
        ]
    if args.list:
        for scenario in SCENARIOS:
            print(f"scenario {scenario.key:<16} {scenario.title}")
        for server in SERVERS:
            print(f"server   {server.name:<16} {server.label}")
        return 0
    servers = [spec for spec in SERVERS if spec.name in server_names]
    scenarios = [scenario for scenario in SCENARIOS if scenario.key in scenario_names]
    server_core, load_core = cores()
    settings = harness.Settings(
        rounds=args.rounds or (1 if args.quick else 3),
        duration=args.duration or (2 if args.quick else 4),
        warmup=args.warmup or 1,
        latency_duration=2 if args.quick else 6,
        latency_rate=args.latency_rate,
        idle_count=args.idle_connections,
        idle_hold=1.0,
        quick=args.quick,
        server_core=server_core,
        load_core=load_core,
    )
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})
    harness.raise_fd_limit()
    if args.growth:
        return growth.run_growth(
            servers,
            settings,
            soak_seconds=args.soak_seconds or (120 if args.quick else 600),
            write_docs=not args.no_docs,
            part=args.growth_part,
        )
    complete = len(servers) == len(SERVERS) and len(scenarios) == len(SCENARIOS)
    started = datetime.datetime.now().astimezone()
    print(
        f"bench: {len(servers)} servers x {len(scenarios)} scenarios x {settings.rounds} "
        f"round(s); server core {server_core}, load core {load_core}",
        flush=True,
    )
    outcomes = harness.run_all(servers, scenarios, settings)
    finished = datetime.datetime.now().astimezone()
    data = report.to_json(
        started=started,
        finished=finished,
        settings=settings,
        servers=servers,
        scenarios=scenarios,
        outcomes=outcomes,
        complete=complete,
    )
    harness.RESULTS.mkdir(exist_ok=True)
    (harness.RESULTS / "latest.json").write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    markdown = report.to_markdown(
        data, settings=settings, servers=servers, scenarios=scenarios, outcomes=outcomes
    )
    (harness.RESULTS / "latest.md").write_text(markdown)
    official = complete and not args.quick and settings.rounds >= 3
    if args.write_docs or (official and not args.no_docs):
        # The growth section comes from `bench/run --growth`; a scenario run keeps it.
        kept = growth.kept_section(DOCS.read_text()) if DOCS.exists() else None
        DOCS.write_text(growth.with_section(markdown, kept) if kept else markdown)
        print(f"\nwrote {DOCS.relative_to(REPO)} and bench/results/latest.json")
    else:
        print(
            "\nwrote bench/results/latest.md and latest.json (docs/benchmarks.md is only "
            "rewritten by a full run, or with --write-docs)"
        )
    print(f"took {(finished - started).total_seconds() / 60:.1f} minutes")
    return 0


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    args = parse_args(arguments)
    try:
        if not in_bench_venv():
            if not args.skip_setup:
                ensure_venv(project_interpreter())
                ensure_tools()
            elif not VENV_PYTHON.exists():
                raise SetupError("--skip-setup but bench/.venv does not exist: rerun without it")
            os.chdir(REPO)
            os.execv(
                str(VENV_PYTHON), [str(VENV_PYTHON), "-m", "bench.run", "--skip-setup", *arguments]
            )
        return run_benchmarks(args)
    except SetupError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; servers of the current run were stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
