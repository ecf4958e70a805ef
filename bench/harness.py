"""The benchmark loop: start one server, check it, load it, read its accounting, stop it.

Rules: one server runs at a time. The server is pinned to one core and every load
client (wrk, bench/loadgen.py) to the other; this process pins itself to the load core
too, and only waits while a measurement runs. Servers take turns round by round, the
starting server rotating each round, and the median of the rounds is kept. Every figure
comes from the server's process tree in /proc (CPU, memory) or from the load client's
own count of completed requests; nothing is estimated.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import procfs
from bench.scenarios import CheckFailed, Scenario, Unsupported
from bench.servers import HOST, REPO, Launch, ServerSpec

BENCH = REPO / "bench"
RESULTS = BENCH / "results"
LOGS = RESULTS / "logs"
LUA = BENCH / "lua"
START_DEADLINE = 30.0
STOP_GRACE = 10.0
# Environment variables that change how a server or Python runs; stripped so that
# whatever the caller's shell holds cannot favour one server.
STRIPPED_ENV_PREFIXES = ("PIER_", "UVICORN_", "GRANIAN_", "HYPERCORN_", "GUNICORN_")
STRIPPED_ENV = (
    "PYTHONASYNCIODEBUG",
    "PYTHONDEVMODE",
    "PYTHONTRACEMALLOC",
    "PYTHONMALLOC",
    "PYTHONPROFILEIMPORTTIME",
    "PYTHONWARNINGS",
    # Logging flushes per record either way; stripped so output buffering is each
    # server's own default, not whatever the shell running the bench exported.
    "PYTHONUNBUFFERED",
)

Status = Literal["ok", "unsupported", "failed", "unavailable"]


class MeasureFailed(Exception):
    """A run could not be measured (load client error, server died mid-run)."""


@dataclass(frozen=True)
class Settings:
    rounds: int
    duration: int
    warmup: int
    latency_duration: int
    latency_rate: float
    idle_count: int
    idle_hold: float
    quick: bool
    server_core: int | None
    load_core: int | None

    def describe(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "duration_s": self.duration,
            "warmup_s": self.warmup,
            "latency_duration_s": self.latency_duration,
            "latency_rate": self.latency_rate,
            "idle_connections": self.idle_count,
            "idle_hold_s": self.idle_hold,
            "quick": self.quick,
            "server_core": self.server_core,
            "load_core": self.load_core,
        }


@dataclass
class RunResult:
    status: Status
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    round: int = 0


@dataclass
class Outcome:
    """Every round of one server in one scenario."""

    server: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def ok_runs(self) -> list[RunResult]:
        return [run for run in self.runs if run.status == "ok"]

    @property
    def status(self) -> Status:
        if self.ok_runs:
            return "ok"
        if not self.runs:
            return "unavailable"
        return self.runs[-1].status

    @property
    def reason(self) -> str:
        for run in reversed(self.runs):
            if run.status != "ok":
                return run.reason
        return ""

    def median(self) -> dict[str, float]:
        keys = {key for run in self.ok_runs for key in run.metrics}
        return {
            key: statistics.median([run.metrics[key] for run in self.ok_runs if key in run.metrics])
            for key in sorted(keys)
        }


# --- processes ------------------------------------------------------------------------


def pinned(core: int | None) -> list[str]:
    return [] if core is None else ["taskset", "-c", str(core)]


def server_env() -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(STRIPPED_ENV_PREFIXES) and name not in STRIPPED_ENV
    }
    env["PYTHONPATH"] = str(REPO)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def raise_fd_limit() -> int:
    """Lift the soft fd limit to the hard one; children (servers, clients) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def log_tail(path: Path, lines: int = 6) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return ""
    return " | ".join(text[-lines:])


@contextlib.contextmanager
def running(
    spec: ServerSpec, launch: Launch, settings: Settings, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start the server in its own session, wait until it accepts, stop it afterwards."""
    command = [*pinned(settings.server_core), *spec.command(launch)]
    with log.open("wb") as output:
        output.write((" ".join(command) + "\n").encode())
        output.flush()
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=REPO,
            env=server_env(),
            start_new_session=True,
        )
    try:
        wait_accepting(process, launch.port, log)
        yield process
    finally:
        stop(process)


def wait_accepting(
    process: subprocess.Popen[bytes], port: int, log: Path, deadline: float = START_DEADLINE
) -> None:
    give_up = time.monotonic() + deadline
    while True:
        if process.poll() is not None:
            raise MeasureFailed(f"exited with code {process.returncode} at start: {log_tail(log)}")
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            pass
        if time.monotonic() > give_up:
            raise MeasureFailed(f"not accepting on port {port} after {deadline:.0f} s")
        # Doubles as the pause between connection attempts and as the exit detector.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.05)


def _group_alive(pgid: int) -> bool:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry.name}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            return True
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's own process group, SIGKILL what is left after a grace period."""
    pgid = process.pid  # start_new_session made the server its group's leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        process.wait()
    give_up = time.monotonic() + STOP_GRACE
    while _group_alive(pgid):
        if time.monotonic() > give_up:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            break
        time.sleep(0.05)  # polling the workers' exit; they have no handle to wait on


class LineReader:
    """Tagged lines from a load client's stdout, each awaited with a deadline."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        assert process.stdout is not None
        self.process = process
        self.fd = process.stdout.fileno()
        self.buffer = b""
        self.log = log

    def next(self, timeout: float) -> tuple[str, dict[str, Any]]:
        give_up = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            remaining = give_up - time.monotonic()
            if remaining <= 0:
                raise MeasureFailed(f"load client silent for {timeout:.0f} s")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                continue
            data = os.read(self.fd, 65536)
            if not data:
                code = self.process.wait()
                raise MeasureFailed(f"load client exited ({code}): {log_tail(self.log)}")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        tag, _, payload = line.decode().strip().partition(" ")
        data_: dict[str, Any] = json.loads(payload) if payload else {}
        if tag == "ERROR":
            if "refused" in data_:
                raise Unsupported(f"WebSocket upgrade refused: {data_['refused']}")
            raise MeasureFailed(f"load client: {data_.get('failure', data_)}")
        return tag, data_


def start_loadgen(arguments: list[str], settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    command = [*pinned(settings.load_core), sys.executable, "-m", "bench.loadgen", *arguments]
    with log.open("wb") as errors:
        return subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            stdin=subprocess.PIPE,
            cwd=REPO,
            env=server_env(),
        )


# --- one measurement ------------------------------------------------------------------


@dataclass
class Window:
    """Server CPU and per-core load between two instants."""

    pids: list[int]
    cpu: float
    cores: dict[int, procfs.CoreTimes]
    at: float

    @classmethod
    def open(cls, root: int) -> Window:
        pids = procfs.process_tree(root)
        return cls(pids, procfs.cpu_seconds(pids), procfs.core_times(), time.monotonic())

    def close(self, root: int, settings: Settings, *, client_cpu: float) -> dict[str, float]:
        """Server CPU, and how busy each core was, over the window.

        `client_cpu` is the load client's own CPU time in the window: it tells a
        saturated client (the figure is the client's limit) from other users of the
        machine (noise).
        """
        pids = sorted(set(self.pids) | set(procfs.process_tree(root)))
        cpu = procfs.cpu_seconds(pids) - self.cpu
        cores = procfs.core_times()
        elapsed = time.monotonic() - self.at
        result = {"server_cpu_s": cpu, "elapsed_s": elapsed, "client_busy": client_cpu / elapsed}
        if settings.server_core is not None and settings.load_core is not None:
            server_busy = procfs.core_busy_fraction(self.cores, cores, settings.server_core)
            load_busy = procfs.core_busy_fraction(self.cores, cores, settings.load_core)
            result["server_core_other"] = max(0.0, server_busy - cpu / elapsed)
            result["load_core_other"] = max(0.0, load_busy - client_cpu / elapsed)
        return result


def run_wrk(scenario: Scenario, port: int, seconds: int, settings: Settings) -> dict[str, Any]:
    script = (LUA / scenario.lua).read_text() if scenario.lua else ""
    script += "\n" + (LUA / "report.lua").read_text()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", dir=RESULTS, delete=False) as handle:
        handle.write(script)
    command = [
        *pinned(settings.load_core),
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        handle.name,
    ]
    for header in scenario.wrk_headers:
        command += ["-H", header]
    command.append(f"http://{HOST}:{port}{scenario.path}")
    try:
        finished = subprocess.run(
            command, check=False, capture_output=True, text=True, timeout=seconds + 60
        )
    finally:
        os.unlink(handle.name)
    for line in finished.stdout.splitlines():
        if line.startswith("PIERBENCH "):
            summary: dict[str, Any] = json.loads(line[len("PIERBENCH ") :])
            return summary
    raise MeasureFailed(f"wrk gave no summary: {finished.stderr.strip()[-200:]}")


WRK_ERRORS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")


def wrk_errors(summary: dict[str, Any]) -> int:
    return sum(int(summary[key]) for key in WRK_ERRORS)


def measure_wrk(
    process: subprocess.Popen[bytes], scenario: Scenario, port: int, settings: Settings
) -> dict[str, float]:
    warmup = run_wrk(scenario, port, settings.warmup, settings)
    window = Window.open(process.pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = run_wrk(scenario, port, settings.duration, settings)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    metrics = window.close(process.pid, settings, client_cpu=client_cpu)
    if process.poll() is not None:
        raise MeasureFailed(f"server exited during the run (code {process.returncode})")
    requests = int(summary["requests"])
    if requests == 0:
        raise MeasureFailed(f"no request completed; wrk errors {summary}")
    errors = wrk_errors(summary)
    for key in WRK_ERRORS:
        metrics[key] = float(summary[key])
    metrics.update(
        warmup_requests=float(warmup["requests"]),
        rate=requests / (summary["duration_us"] / 1e6),
        cpu_us=metrics["server_cpu_s"] / requests * 1e6,
        requests=requests,
        errors=errors,
        error_fraction=errors / requests,
        loaded_p50_us=float(summary["p50_us"]),
        loaded_p99_us=float(summary["p99_us"]),
        rss_mib=procfs.rss_bytes(procfs.process_tree(process.pid)) / 2**20,
    )
    return metrics


def measure_stream_client(
    process: subprocess.Popen[bytes],
    arguments: list[str],
    settings: Settings,
    log: Path,
    *,
    count_key: str,
    lead_time: float,
) -> dict[str, float]:
    """Run a load client that prints START then END, measuring the server in between."""
    client = start_loadgen(arguments, settings, log)
    try:
        reader = LineReader(client, log)
        reader.next(timeout=lead_time + 30)
        window = Window.open(process.pid)
        _, result = reader.next(timeout=settings.latency_duration + settings.duration + 60)
        metrics = window.close(process.pid, settings, client_cpu=float(result.pop("cpu_s")))
        client.wait(timeout=30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if process.poll() is not None:
        raise MeasureFailed(f"server exited during the run (code {process.returncode})")
    count = int(result[count_key])
    if count == 0:
        raise MeasureFailed(f"no {count_key} completed: {result}")
    metrics["cpu_us"] = metrics["server_cpu_s"] / count * 1e6
    for key, value in result.items():
        if isinstance(value, int | float):
            metrics[key] = float(value)
    metrics["rss_mib"] = procfs.rss_bytes(procfs.process_tree(process.pid)) / 2**20
    return metrics


def _timed_client(
    kind: str, scenario: Scenario, port: int, warmup: float, duration: float
) -> list[str]:
    """bench/loadgen.py arguments for a client that loads the server for a set time."""
    return [
        kind, "--port", str(port), "--path", scenario.path,
        "--connections", str(scenario.connections),
        "--warmup", str(warmup), "--duration", str(duration),
    ]


def measure_websocket(
    process: subprocess.Popen[bytes], scenario: Scenario, port: int, settings: Settings, log: Path
) -> dict[str, float]:
    arguments = _timed_client("ws", scenario, port, settings.warmup, settings.duration)
    metrics = measure_stream_client(
        process, arguments, settings, log, count_key="messages", lead_time=settings.warmup
    )
    metrics["rate"] = metrics["messages"] / metrics["duration_s"]
    metrics["errors"] = metrics.pop("error_count", 0.0)
    return metrics


def measure_latency(
    process: subprocess.Popen[bytes], scenario: Scenario, port: int, settings: Settings, log: Path
) -> dict[str, float]:
    duration = settings.latency_duration
    arguments = [
        *_timed_client("latency", scenario, port, settings.warmup, duration),
        "--rate", str(settings.latency_rate),
    ]
    return measure_stream_client(
        process, arguments, settings, log, count_key="requests", lead_time=settings.warmup
    )


def measure_idle(
    process: subprocess.Popen[bytes], scenario: Scenario, port: int, settings: Settings, log: Path
) -> dict[str, float]:
    # A short burst of ordinary traffic first, so the baseline is a server that has
    # served requests, not one that has only imported its code.
    run_wrk(scenario, port, settings.warmup, settings)
    pids = procfs.process_tree(process.pid)
    baseline = procfs.rss_bytes(pids)
    client = start_loadgen(
        ["idle", "--port", str(port), "--path", scenario.path, "--count", str(settings.idle_count)],
        settings,
        log,
    )
    try:
        reader = LineReader(client, log)
        _, ready = reader.next(timeout=300)
        # The hold is part of what is measured: memory a server allocates for an idle
        # connection after a while (timers, buffers) counts too.
        time.sleep(settings.idle_hold)
        pids = procfs.process_tree(process.pid)
        held = procfs.rss_bytes(pids)
        pss = procfs.pss_bytes(pids)
        assert client.stdin is not None
        client.stdin.write(b"check\n")
        client.stdin.flush()
        _, alive = reader.next(timeout=60)
        client.stdin.write(b"close\n")
        client.stdin.flush()
        client.wait(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    opened = int(ready["opened"])
    if opened == 0:
        raise MeasureFailed(f"no connection could be held: {ready.get('first_error')}")
    metrics = {
        "rss_idle_mib": baseline / 2**20,
        "rss_held_mib": held / 2**20,
        "kib_per_connection": (held - baseline) / 1024 / opened,
        "opened": float(opened),
        "failed": float(ready["failed"]),
        "alive": float(alive["alive"]),
        "processes": float(len(pids)),
    }
    if pss is not None:
        metrics["pss_held_mib"] = pss / 2**20
    if ready.get("first_error"):
        metrics["failed"] = float(ready["failed"])
    return metrics


def shrink_access_log(log: Path, *, keep: int = 40) -> int:
    """Count the access lines in a server log, then cut the log to its first lines.

    A full run would otherwise leave hundreds of megabytes of access lines behind.
    """
    count = 0
    head: list[bytes] = []
    with log.open("rb") as handle:
        for line in handle:
            if b"GET /" in line:
                count += 1
            if len(head) < keep:
                head.append(line)
    head.append(f"[bench: {count} access lines counted, the rest of the log cut]\n".encode())
    log.write_bytes(b"".join(head))
    return count


def run_once(spec: ServerSpec, scenario: Scenario, settings: Settings, round_: int) -> RunResult:
    port = free_port()
    idle = scenario.kind == "idle"
    # Servers that cap connections near what a scenario opens (granian at 1,024,
    # gunicorn at 1,000) are told to allow them all, with slack for the checks.
    held = settings.idle_count if idle else scenario.connections
    launch = Launch(
        app=scenario.app,
        port=port,
        keep_alive=120 if idle else None,
        max_connections=held + 100 if held > 500 else None,
        access_log=scenario.access_log,
        interface=scenario.interface,
    )
    began = time.monotonic()
    stem = f"{scenario.key}-{spec.name}-r{round_ + 1}"
    log = LOGS / f"{stem}.log"
    client_log = LOGS / f"{stem}.client.log"
    try:
        with running(spec, launch, settings, log) as process:
            try:
                scenario.check(port)
            except (OSError, ValueError) as exc:
                raise CheckFailed(f"{type(exc).__name__}: {exc}") from exc
            if scenario.kind == "wrk":
                metrics = measure_wrk(process, scenario, port, settings)
            elif scenario.kind == "websocket":
                metrics = measure_websocket(process, scenario, port, settings, client_log)
            elif scenario.kind == "latency":
                metrics = measure_latency(process, scenario, port, settings, client_log)
            else:
                metrics = measure_idle(process, scenario, port, settings, client_log)
    except Unsupported as exc:
        return RunResult("unsupported", str(exc), round=round_)
    except CheckFailed as exc:
        return RunResult(
            "failed", f"wrong answer: {exc}; server log: {log_tail(log, 3)}", round=round_
        )
    except (MeasureFailed, OSError, subprocess.SubprocessError) as exc:
        return RunResult("failed", f"{type(exc).__name__}: {exc}", round=round_)
    if scenario.access_log:
        # Proof the log was really written: lines per request served (about 1.0).
        served = metrics["requests"] + metrics["warmup_requests"] + 1
        metrics["access_lines_per_request"] = shrink_access_log(log) / served
    metrics["run_s"] = time.monotonic() - began
    return RunResult("ok", metrics=metrics, round=round_)


# --- the whole run --------------------------------------------------------------------


def headline(scenario: Scenario, run: RunResult) -> str:
    if run.status != "ok":
        return f"{run.status}: {run.reason}"
    m = run.metrics
    if scenario.kind in ("wrk", "websocket"):
        text = f"{m['rate']:,.0f} {scenario.unit}, {m['cpu_us']:.1f} us CPU each"
        if m.get("errors"):
            text += f", {m['errors']:.0f} errors"
    elif scenario.kind == "latency":
        text = f"p50 {m['p50_us']:.0f} us, p99 {m['p99_us']:.0f} us"
    else:
        text = (
            f"{m['rss_held_mib']:.1f} MiB with {m['alive']:.0f} connections "
            f"({m['kib_per_connection']:.1f} KiB each)"
        )
    if "client_busy" in m:
        text += f" [client {m['client_busy']:.0%} of a core"
        if "server_core_other" in m:
            text += (
                f"; others on server core {m['server_core_other']:.0%},"
                f" on load core {m['load_core_other']:.0%}"
            )
        text += "]"
    return text


def run_all(
    servers: list[ServerSpec], scenarios: list[Scenario], settings: Settings
) -> dict[str, dict[str, Outcome]]:
    RESULTS.mkdir(exist_ok=True)
    LOGS.mkdir(exist_ok=True)
    outcomes: dict[str, dict[str, Outcome]] = {}
    unavailable = {spec.name: spec.available() for spec in servers}
    for scenario in scenarios:
        print(f"\n== {scenario.key}: {scenario.title}", flush=True)
        table = {spec.name: Outcome(spec.name) for spec in servers}
        outcomes[scenario.key] = table
        for round_ in range(settings.rounds):
            # Rotate who goes first, so no server always runs on the coolest machine.
            shift = round_ % len(servers)
            for spec in servers[shift:] + servers[:shift]:
                outcome = table[spec.name]
                reason = unavailable[spec.name]
                if reason is not None:
                    if not outcome.runs:
                        outcome.runs.append(RunResult("unavailable", reason))
                    continue
                if outcome.runs and outcome.runs[-1].status == "unsupported":
                    continue
                run = run_once(spec, scenario, settings, round_)
                outcome.runs.append(run)
                print(f"  round {round_ + 1} {spec.name:<10} {headline(scenario, run)}", flush=True)
    return outcomes
