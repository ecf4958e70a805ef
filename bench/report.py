"""Results out: bench/results/latest.json (machine-readable) and docs/benchmarks.md.

Rules: docs/benchmarks.md is generated here and nowhere else; it is never edited by
hand. Every number in it comes from the outcomes passed in; ratios are computed against
uvicorn measured in the same run. A figure the reader should distrust (errors, a
saturated load core, other load on the server's core, rounds far apart) is flagged next
to it, not dropped.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.harness import Outcome, Settings
from bench.scenarios import Scenario
from bench.servers import BASELINE, ServerSpec, pier_revision

# Thresholds for the warnings printed next to a figure.
SATURATED_CLIENT = 0.90
FOREIGN_LOAD = 0.05
ROUND_SPREAD = 0.10
ERROR_KINDS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
FRAMEWORK_PACKAGES = (
    "starlette",
    "fastapi",
    "pydantic",
    "flask",
    "httptools",
    "uvloop",
    "websockets",
    "wsproto",
    "h11",
)


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": f"{platform.system()} {platform.release()}",
        "memory": memory,
    }


def wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "not installed"
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" Copyright")[0] if first else "unknown"


def versions(servers: list[ServerSpec]) -> dict[str, Any]:
    packages: dict[str, str] = {}
    for name in FRAMEWORK_PACKAGES:
        try:
            packages[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            packages[name] = "not installed"
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "python_executable": sys.executable,
        "servers": {spec.name: spec.versions() for spec in servers},
        "pier_revision": pier_revision(),
        "packages": packages,
        "wrk": wrk_version(),
    }


# --- which number is the headline of a scenario ---------------------------------------


def primary(scenario: Scenario) -> tuple[str, bool]:
    """(metric key, higher is better) of the scenario's headline figure."""
    if scenario.kind == "latency":
        return "p99_us", False
    if scenario.kind == "idle":
        return "rss_held_mib", False
    return "rate", True


def ratio(outcomes: dict[str, Outcome], server: str, key: str) -> float | None:
    mine = outcomes[server].median().get(key) if outcomes[server].ok_runs else None
    base = outcomes.get(BASELINE)
    theirs = base.median().get(key) if base is not None and base.ok_runs else None
    if mine is None or not theirs:
        return None
    return mine / theirs


def spread(outcome: Outcome, key: str) -> float:
    values = [run.metrics[key] for run in outcome.ok_runs if key in run.metrics]
    if len(values) < 2:
        return 0.0
    middle = sorted(values)[len(values) // 2]
    return (max(values) - min(values)) / middle if middle else 0.0


def warnings(scenario: Scenario, outcome: Outcome) -> list[str]:
    if outcome.status != "ok":
        return [f"{outcome.status}: {outcome.reason}"]
    notes: list[str] = []
    median = outcome.median()
    if median.get("errors", 0) > 0:
        kinds = [
            f"{median[key]:.0f} {key.replace('_errors', '').replace('_', ' ')}"
            for key in ERROR_KINDS
            if median.get(key, 0) > 0
        ]
        notes.append(
            f"{median['errors']:.0f} errors per run"
            + (f" ({', '.join(kinds)}; wrk reconnects after each)" if kinds else "")
        )
    if scenario.kind in ("wrk", "websocket") and median.get("client_busy", 0) >= SATURATED_CLIENT:
        notes.append(f"load client at {median['client_busy']:.0%} of its core: may be client-bound")
    others = [
        f"{median[key]:.0%} on the {where} core"
        for key, where in (("server_core_other", "server"), ("load_core_other", "load"))
        if median.get(key, 0) >= FOREIGN_LOAD
    ]
    if others:
        notes.append("other processes used " + " and ".join(others))
    key, _ = primary(scenario)
    if spread(outcome, key) >= ROUND_SPREAD:
        notes.append(f"rounds spread {spread(outcome, key):.0%}")
    # More lines than counted requests is expected (requests in flight when wrk stops
    # are logged but not counted); fewer means the server did not log every request.
    if scenario.access_log and median.get("access_lines_per_request", 0) < 0.95:
        notes.append(
            f"only {median.get('access_lines_per_request', 0):.2f} access-log lines per request"
        )
    if scenario.kind == "idle" and median.get("alive", 0) < median.get("opened", 0):
        notes.append(f"only {median['alive']:.0f} of {median['opened']:.0f} still open")
    if scenario.kind == "idle" and median.get("failed", 0):
        notes.append(f"{median['failed']:.0f} connections refused")
    if scenario.kind == "latency" and median.get("queue_peak", 0) >= 100:
        notes.append(
            f"could not keep up with the rate ({median['queue_peak']:.0f} requests queued "
            "at peak): latency grows with the run's length"
        )
    if scenario.kind == "latency" and median.get("reconnects", 0):
        notes.append(f"server closed {median['reconnects']:.0f} connections mid-run")
    if scenario.kind == "latency" and median.get("send_lag_p99_us", 0) > 200:
        notes.append(f"client sent late (p99 {median['send_lag_p99_us']:.0f} us)")
    if len(outcome.runs) > len(outcome.ok_runs):
        failed = [run for run in outcome.runs if run.status != "ok"]
        notes.append(f"{len(failed)} round(s) failed: {failed[-1].reason}")
    return notes


# --- JSON -----------------------------------------------------------------------------


def finite(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None, so the JSON is strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [finite(item) for item in value]
    return value


def to_json(
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    settings: Settings,
    servers: list[ServerSpec],
    scenarios: list[Scenario],
    outcomes: dict[str, dict[str, Outcome]],
    complete: bool,
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "finished": finished.isoformat(timespec="seconds"),
        "complete": complete,
        "machine": machine(),
        "versions": versions(servers),
        "settings": settings.describe(),
        "baseline": BASELINE,
        "scenarios": {},
    }
    for scenario in scenarios:
        key, higher = primary(scenario)
        table = outcomes[scenario.key]
        result["scenarios"][scenario.key] = {
            "title": scenario.title,
            "measures": scenario.measures,
            "unit": scenario.unit,
            "primary": key,
            "higher_is_better": higher,
            "servers": {
                name: {
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "median": outcome.median(),
                    "ratio_to_baseline": ratio(table, name, key),
                    "cpu_ratio_to_baseline": ratio(table, name, "cpu_us"),
                    "notes": warnings(scenario, outcome),
                    "rounds": [
                        {
                            "round": run.round + 1,
                            "status": run.status,
                            "reason": run.reason,
                            "metrics": run.metrics,
                        }
                        for run in outcome.runs
                    ],
                }
                for name, outcome in table.items()
            },
        }
    return finite(result)


# --- Markdown -------------------------------------------------------------------------


def rate_text(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    if value >= 1000:
        return f"{value / 1000:.2f}k"
    return f"{value:.0f}"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def cell(outcome: Outcome, key: str, fmt: str = "{:.1f}") -> str:
    median = outcome.median()
    return fmt.format(median[key]) if key in median else "-"


def status_cell(outcome: Outcome) -> str:
    return {"unsupported": "unsupported", "unavailable": "not available", "failed": "failed"}.get(
        outcome.status, "-"
    )


def scenario_table(
    scenario: Scenario, table: dict[str, Outcome], labels: dict[str, str]
) -> list[str]:
    key, _ = primary(scenario)
    lines: list[str] = []
    if scenario.kind in ("wrk", "websocket"):
        unit = scenario.unit
        lines += [
            f"| server | {unit} | vs uvicorn | server CPU us per {unit.split('/')[0]} "
            "| CPU vs uvicorn | rounds | notes |",
            "| --- | ---: | ---: | ---: | ---: | --- | --- |",
        ]
        for name, outcome in table.items():
            if outcome.status != "ok":
                lines.append(
                    f"| {labels[name]} | {status_cell(outcome)} | | | | | "
                    f"{'; '.join(warnings(scenario, outcome))} |"
                )
                continue
            rounds = " / ".join(rate_text(run.metrics["rate"]) for run in outcome.ok_runs)
            lines.append(
                f"| {labels[name]} | {rate_text(outcome.median()['rate'])} "
                f"| {times(ratio(table, name, key))} | {cell(outcome, 'cpu_us')} "
                f"| {times(ratio(table, name, 'cpu_us'))} | {rounds} "
                f"| {'; '.join(warnings(scenario, outcome))} |"
            )
    elif scenario.kind == "latency":
        lines += [
            "| server | p50 us | p90 us | p99 us | p99.9 us | p99 vs uvicorn "
            "| server CPU us per request | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, outcome in table.items():
            if outcome.status != "ok":
                lines.append(
                    f"| {labels[name]} | {status_cell(outcome)} | | | | | | "
                    f"{'; '.join(warnings(scenario, outcome))} |"
                )
                continue
            lines.append(
                f"| {labels[name]} | {cell(outcome, 'p50_us', '{:.0f}')} "
                f"| {cell(outcome, 'p90_us', '{:.0f}')} | {cell(outcome, 'p99_us', '{:.0f}')} "
                f"| {cell(outcome, 'p999_us', '{:.0f}')} | {times(ratio(table, name, key))} "
                f"| {cell(outcome, 'cpu_us')} | {'; '.join(warnings(scenario, outcome))} |"
            )
    else:
        lines += [
            "| server | RSS after warm-up, MiB | RSS holding the connections, MiB | vs uvicorn "
            "| PSS holding, MiB | KiB per connection | processes | still open | notes |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for name, outcome in table.items():
            if outcome.status != "ok":
                lines.append(
                    f"| {labels[name]} | {status_cell(outcome)} | | | | | | | "
                    f"{'; '.join(warnings(scenario, outcome))} |"
                )
                continue
            lines.append(
                f"| {labels[name]} | {cell(outcome, 'rss_idle_mib')} "
                f"| {cell(outcome, 'rss_held_mib')} | {times(ratio(table, name, key))} "
                f"| {cell(outcome, 'pss_held_mib')} | {cell(outcome, 'kib_per_connection')} "
                f"| {cell(outcome, 'processes', '{:.0f}')} | {cell(outcome, 'alive', '{:,.0f}')} "
                f"| {'; '.join(warnings(scenario, outcome))} |"
            )
    return lines


def to_markdown(
    data: dict[str, Any],
    *,
    settings: Settings,
    servers: list[ServerSpec],
    scenarios: list[Scenario],
    outcomes: dict[str, dict[str, Outcome]],
) -> str:
    labels = {spec.name: spec.label for spec in servers}
    mach = data["machine"]
    vers = data["versions"]
    kind = (
        "quick run (1 round, short durations: indicative only)"
        if settings.quick
        else (f"full run ({settings.rounds} rounds)")
    )
    if not data["complete"]:
        kind += ", subset of scenarios or servers"
    out = [
        "# Benchmarks",
        "",
        "<!-- Generated by `bench/run` (bench/report.py). Do not edit by hand: rerun the "
        "command. -->",
        "",
        f"Measured {data['started']} to {data['finished']}, {kind}.",
        "",
        f"- Machine: {mach['cores']} cores, {mach['cpu']}, {mach['memory']} RAM, {mach['kernel']}",
        f"- Python: {vers['python']} (the same interpreter for every server and client)",
        f"- pier: revision {vers['pier_revision']}",
        f"- Load generators: {vers['wrk']}; bench/loadgen.py (WebSocket, fixed-rate, idle)",
        "- Frameworks: "
        + ", ".join(f"{name} {version}" for name, version in vers["packages"].items()),
        "",
        "| server | started as | versions |",
        "| --- | --- | --- |",
    ]
    for spec in servers:
        packages = ", ".join(
            f"{name} {version}" for name, version in vers["servers"][spec.name].items()
        )
        out.append(f"| {spec.name} | {spec.label} | {packages} |")
    pin = (
        f"server pinned to core {settings.server_core}, every load client to core "
        f"{settings.load_core} (`taskset`)"
        if settings.server_core is not None
        else "NOT pinned (fewer than 2 cores): server and load share the machine"
    )
    out += [
        "",
        "## Method",
        "",
        f"- One server at a time; {pin}; the harness itself waits on the load core.",
        "- One worker process per server, access log off, bound to 127.0.0.1; each "
        "server's own start command and flags are in bench/servers.py and at the top of "
        "each run's log in bench/results/logs/.",
        f"- Servers take turns round by round ({settings.rounds} round(s)), the first "
        "server rotating each round; a fresh server process per run; the median of the "
        "rounds is shown, with every round's figure beside it.",
        f"- Each throughput run: sanity check of the answer, {settings.warmup} s of "
        f"warm-up load, then {settings.duration} s measured (wrk 1 thread, or the "
        "WebSocket client).",
        "- Ratios are to uvicorn measured in the same run. Server CPU per request is "
        "utime+stime from /proc/<pid>/stat, summed over the server's whole process tree "
        "(all threads, master and worker), divided by the requests completed in the "
        "measured window.",
        f"- Latency: an open-loop client sends at a fixed {settings.latency_rate:,.0f} "
        f"req/s for {settings.latency_duration} s (after {settings.warmup} s of warm-up) "
        "and times each request from when it was due (wrk2's method; wrk2 itself is not "
        "packaged by Debian and Debian's wrk has no `-R`).",
        f"- Memory: {settings.idle_count:,} connections each make one request and stay "
        f"open; RSS of the process tree is read after a {settings.idle_hold:.0f} s hold, "
        "then the client checks how many are still open. Keep-alive timeouts are raised "
        "to 120 s where the server has one; granian's connection cap (backpressure) "
        "and gunicorn's worker-connections are raised to fit. RSS sums every process of "
        "the server (granian, gunicorn and hypercorn run a worker beside their main "
        "process even with one worker; uvicorn and pier serve in one); KiB per "
        "connection compares the cost of a connection alone, and PSS counts shared "
        "pages once.",
        "- Notes flag what to distrust: a load client using >= 90% of its core (the "
        "figure may be the client's limit, not the server's), and CPU used by other "
        "processes on either core during the measurement (a shared machine; from "
        "/proc/stat minus the server's and the client's own CPU time).",
        "",
        "## Summary: ratio to uvicorn",
        "",
        "Throughput rows: higher is better. Latency and memory rows: lower is better.",
        "",
        "| scenario | " + " | ".join(spec.name for spec in servers) + " |",
        "| --- | " + " | ".join("---:" for _ in servers) + " |",
    ]
    for scenario in scenarios:
        key, _ = primary(scenario)
        table = outcomes[scenario.key]
        what = {"rate": scenario.unit, "p99_us": "p99 latency", "rss_held_mib": "RSS"}[key]
        cells = []
        for spec in servers:
            outcome = table[spec.name]
            cells.append(
                times(ratio(table, spec.name, key))
                if outcome.status == "ok"
                else status_cell(outcome)
            )
        out.append(f"| {scenario.title} ({what}) | " + " | ".join(cells) + " |")
        if scenario.key in ("hello", "hello_access_log"):
            cpu_cells = [
                times(ratio(table, spec.name, "cpu_us"))
                if table[spec.name].status == "ok"
                else status_cell(table[spec.name])
                for spec in servers
            ]
            out.append(
                f"| {scenario.title} (server CPU per request) | " + " | ".join(cpu_cells) + " |"
            )
    for scenario in scenarios:
        out += ["", f"## {scenario.title}", "", f"Measures {scenario.measures}.", ""]
        shown = labels
        if scenario.interface == "wsgi":
            shown = {spec.name: spec.wsgi_label for spec in servers}
        out += scenario_table(scenario, outcomes[scenario.key], shown)
    out.append("")
    return "\n".join(out)
