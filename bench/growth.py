"""How cost grows: hello at rising concurrency, and a mixed-load soak with RSS sampled.

    bench/run --growth [--quick] [--servers pier,granian] [--soak-seconds 600]

Rules: the same harness as the scenarios (one server at a time, server and load on
separate cores, a fresh server per run, rotation, medians of rounds). Two parts:

- The concurrency curve: the hello scenario at 16, 64, 256 and 1,024 keep-alive
  connections (wrk, one thread), server CPU per request and wrk's p99 at each. wrk is
  a closed loop, so its p99 is mostly queueing: each connection waits for the others.
- The soak: each server with two workers serves bench/apps/mixed.py under four wrk
  clients at once (keep-alive hello, a new connection per request, 1 MiB uploads,
  1 MiB streamed responses) and bench/loadgen.py's WebSocket echo, for the soak's
  duration; the RSS of the whole process tree is read every 10 s. After the warm-up
  (the first fifth), RSS should not grow by more than 5 %.

Output: bench/results/growth.json (every figure), the "How cost grows" section of
docs/benchmarks.md (between the markers below, kept when a full scenario run rewrites
the rest of the file) and docs/benchmarks-growth.png (matplotlib), both rewritten by
every growth run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any

from bench import harness, procfs
from bench.harness import LineReader, Outcome, Settings
from bench.scenarios import by_key, check_hello, check_websocket
from bench.servers import HOST, REPO, Launch, ServerSpec, pier_revision

CONNECTIONS = (16, 64, 256, 1024)
SOAK_APP = "bench.apps.mixed:app"
SOAK_WORKERS = 2
SAMPLE_EVERY = 10.0
# The soak's first fifth is warm-up (2 of 10 minutes): imports, caches and the
# allocator's arenas fill; growth is judged over the rest.
WARMUP_FRACTION = 0.2
# (name, wrk connections, path, wrk script in bench/lua/, extra headers) of the
# soak's HTTP clients.
SOAK_HTTP: tuple[tuple[str, int, str, str | None, tuple[str, ...]], ...] = (
    ("keep-alive hello", 16, "/", None, ()),
    ("new connection", 4, "/", None, ("Connection: close",)),
    ("1 MiB upload", 4, "/upload", "upload.lua", ()),
    ("1 MiB stream", 4, "/stream", None, ()),
)
SOAK_WEBSOCKETS = 8
DOCS = REPO / "docs" / "benchmarks.md"
PLOT = REPO / "docs" / "benchmarks-growth.png"
BEGIN = "<!-- growth: begin (written by `bench/run --growth`; do not edit by hand) -->"
END = "<!-- growth: end -->"


# --- the concurrency curve ------------------------------------------------------------


def run_curve(
    servers: list[ServerSpec], settings: Settings, connections: tuple[int, ...]
) -> dict[int, dict[str, Outcome]]:
    hello = by_key()["hello"]
    curve: dict[int, dict[str, Outcome]] = {}
    for count in connections:
        scenario = dataclasses.replace(
            hello, key=f"hello_c{count}", title=f"hello, {count} connections", connections=count
        )
        curve[count] = harness.run_all(servers, [scenario], settings)[scenario.key]
    return curve


# --- the soak -------------------------------------------------------------------------


def _wrk(
    port: int, client: tuple[str, int, str, str | None, tuple[str, ...]], seconds: int,
    settings: Settings,
) -> subprocess.Popen[str]:
    _, connections, path, lua, headers = client
    # wrk takes one script: the client's own (if any) with the summary appended.
    script = (harness.LUA / lua).read_text() + "\n" if lua else ""
    script += (harness.LUA / "report.lua").read_text()
    handle = harness.RESULTS / f"soak-{port}-{SOAK_HTTP.index(client)}.lua"
    handle.write_text(script)
    command = [
        *harness.pinned(settings.load_core), "wrk", "-t1", f"-c{connections}",
        f"-d{seconds}s", "--timeout", "10s", "-s", str(handle),
    ]
    for header in headers:
        command += ["-H", header]
    command.append(f"http://{HOST}:{port}{path}")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wrk_summary(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=timeout)
    for line in stdout.splitlines():
        if line.startswith("PIERBENCH "):
            summary: dict[str, Any] = json.loads(line[len("PIERBENCH ") :])
            return summary
    raise harness.MeasureFailed(f"wrk gave no summary: {stderr.strip()[-200:]}")


def soak_once(spec: ServerSpec, settings: Settings, seconds: int) -> dict[str, Any]:
    """One server, two workers, mixed load for `seconds`; RSS sampled every 10 s."""
    port = harness.free_port()
    launch = Launch(app=SOAK_APP, port=port, workers=SOAK_WORKERS)
    harness.LOGS.mkdir(parents=True, exist_ok=True)  # the curve, which makes it, may not run
    log = harness.LOGS / f"soak-{spec.name}.log"
    client_log = harness.LOGS / f"soak-{spec.name}.client.log"
    with harness.running(spec, launch, settings, log) as process:
        check_hello(port)
        check_websocket(port)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        window = harness.Window.open(process.pid)
        websocket = harness.start_loadgen(
            [
                "ws", "--port", str(port), "--path", "/ws",
                "--connections", str(SOAK_WEBSOCKETS), "--warmup", "0",
                "--duration", str(seconds),
            ],
            settings,
            client_log,
        )
        clients = [_wrk(port, client, seconds, settings) for client in SOAK_HTTP]
        started = time.monotonic()
        samples: list[tuple[float, float]] = []
        try:
            reader = LineReader(websocket, client_log)
            reader.next(timeout=30)  # START: every WebSocket is open
            while True:
                elapsed = time.monotonic() - started
                pids = procfs.process_tree(process.pid)
                samples.append((elapsed, procfs.rss_bytes(pids) / 2**20))
                if elapsed >= seconds:
                    break
                # The sampling period: the load runs on its own meanwhile.
                time.sleep(min(SAMPLE_EVERY, seconds - elapsed) + 0.01)
            summaries = [_wrk_summary(client, timeout=60) for client in clients]
            _, ws_result = reader.next(timeout=60)
            websocket.wait(timeout=30)
        finally:
            running: list[subprocess.Popen[Any]] = [*clients, websocket]
            for client in running:
                if client.poll() is None:
                    client.kill()
                    client.wait()
            for stale in harness.RESULTS.glob(f"soak-{port}-*.lua"):
                stale.unlink()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        client_cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        metrics = window.close(process.pid, settings, client_cpu=client_cpu)
        if process.poll() is not None:
            raise harness.MeasureFailed(f"server exited during the soak ({process.returncode})")
    clients_out = {
        name: {
            "requests": int(summary["requests"]),
            "errors": harness.wrk_errors(summary),
            "p99_us": float(summary["p99_us"]),
        }
        for (name, *_), summary in zip(SOAK_HTTP, summaries, strict=True)
    }
    clients_out["WebSocket echo"] = {
        "requests": int(ws_result["messages"]),
        "errors": int(ws_result.get("error_count", 0)),
        "first_errors": ws_result.get("errors", []),
    }
    served = sum(client["requests"] for client in clients_out.values())
    warm = [rss for at, rss in samples if at >= seconds * WARMUP_FRACTION]
    return {
        "seconds": seconds,
        "workers": SOAK_WORKERS,
        "samples": samples,
        "clients": clients_out,
        "served": served,
        "errors": sum(client["errors"] for client in clients_out.values()),
        "cpu_us": metrics["server_cpu_s"] / served * 1e6 if served else None,
        "server_core_other": metrics.get("server_core_other"),
        "load_core_other": metrics.get("load_core_other"),
        "client_busy": metrics["client_busy"],
        "rss_after_warmup_mib": warm[0] if warm else None,
        "rss_end_mib": samples[-1][1],
        "rss_growth": (max(warm) - warm[0]) / warm[0] if warm else None,
    }


def run_soak(servers: list[ServerSpec], settings: Settings, seconds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print(f"\n== soak: {seconds} s of mixed load, {SOAK_WORKERS} workers", flush=True)
    for spec in servers:
        reason = spec.available()
        if reason is not None:
            results[spec.name] = {"status": "unavailable", "reason": reason}
            continue
        try:
            result = soak_once(spec, settings, seconds)
        except Exception as exc:  # report and go on to the next server, as run_all does
            results[spec.name] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
            print(f"  {spec.name:<10} failed: {exc}", flush=True)
            continue
        results[spec.name] = {"status": "ok", **result}
        growth = result["rss_growth"]
        print(
            f"  {spec.name:<10} {result['served']:,} served, {result['errors']} errors, RSS "
            f"{result['rss_after_warmup_mib']:.1f} -> {result['rss_end_mib']:.1f} MiB"
            + (f" ({growth:+.1%} peak after warm-up)" if growth is not None else ""),
            flush=True,
        )
    return results


# --- output ---------------------------------------------------------------------------


def _previous_run() -> dict[str, Any]:
    """The last growth run's figures, when there is one whose parts this run keeps."""
    path = harness.RESULTS / "growth.json"
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    for part in ("curve", "soak"):  # written before parts could be run alone
        data.setdefault(f"{part}_measured", {"started": data["started"],
                                             "pier_revision": data["pier_revision"]})
        data.setdefault(f"{part}_settings", data["settings"])
    return data


def to_json(
    curve: dict[int, dict[str, Outcome]], soak: dict[str, Any], settings: Settings,
    started: datetime.datetime,
) -> dict[str, Any]:
    measured = {"started": started.isoformat(timespec="seconds"),
                "pier_revision": pier_revision()}
    return {
        **measured,
        "settings": settings.describe(),
        "curve_measured": measured,
        "curve_settings": settings.describe(),
        "soak_measured": measured,
        "soak_settings": settings.describe(),
        "curve": {
            str(count): {
                name: {
                    "status": outcome.status,
                    "reason": outcome.reason,
                    "median": outcome.median(),
                    "rounds": [run.metrics for run in outcome.ok_runs],
                }
                for name, outcome in table.items()
            }
            for count, table in curve.items()
        },
        "soak": soak,
    }


def _curve_value(data: dict[str, Any], count: str, server: str, key: str) -> float | None:
    entry = data["curve"].get(count, {}).get(server)
    if entry is None or entry["status"] != "ok":
        return None
    value = entry["median"].get(key)
    return float(value) if value is not None else None


def to_markdown(data: dict[str, Any], servers: list[str]) -> str:
    settings = data.get("curve_settings", data["settings"])
    counts = list(data["curve"])
    soak_seconds = max(
        (entry["seconds"] for entry in data["soak"].values() if entry["status"] == "ok"),
        default=0,
    )
    short = settings["quick"] or settings["rounds"] < 3 or soak_seconds < 600
    curve_at = data.get("curve_measured", data)
    soak_at = data.get("soak_measured", data)
    if curve_at == soak_at:
        when = f"Measured {curve_at['started']}, pier revision {curve_at['pier_revision']}"
    else:
        when = (f"The curve measured {curve_at['started']} (pier revision "
                f"{curve_at['pier_revision']}), the soak {soak_at['started']} (pier revision "
                f"{soak_at['pier_revision']})")
    out = [
        BEGIN,
        "## How cost grows",
        "",
        f"{when}, by `bench/run --growth` (bench/growth.py): the concurrency curve "
        f"({settings['rounds']} round(s) of {settings['duration_s']} s per point) and "
        "the soak.",
    ]
    if short:
        out += [
            "",
            "**Short run: indicative only.** These figures come from a short form "
            f"({settings['rounds']} round(s) of {settings['duration_s']} s per point, "
            f"a {soak_seconds} s soak per server) on a 2-core machine shared with "
            "other work: the CPU and p99 figures are noisy, and a soak this short "
            "cannot show slow growth. The full form is "
            "`bench/run --growth` (3 rounds of 4 s per point, a 10-minute soak per "
            "server, about 45 minutes for three servers).",
        ]
    out += [
        "",
        "![CPU per request and p99 against connections; RSS during the soak]"
        "(benchmarks-growth.png)",
        "",
        "### Hello at rising concurrency",
        "",
    ]
    if not counts:
        out += ["Not measured yet: `bench/run --growth --growth-part curve`.", ""]
        counts = ["-"]  # one empty column keeps the tables below well-formed
    out += [
        "Server CPU per request (us; lower is better), median of rounds:",
        "",
        "| server | " + " | ".join(f"{c} conns" for c in counts) + f" | {counts[-1]} vs "
        f"{counts[0]} |",
        "| --- |" + " ---: |" * (len(counts) + 1),
    ]
    for server in servers:
        values = [_curve_value(data, c, server, "cpu_us") for c in counts]
        cells = [f"{v:.1f}" if v is not None else "-" for v in values]
        first, last = values[0], values[-1]
        change = f"{last / first - 1:+.0%}" if first and last else "-"
        out.append(f"| {server} | " + " | ".join(cells) + f" | {change} |")
    out += [
        "",
        "wrk's p99 latency (ms; closed loop, so mostly each connection queueing behind "
        "the others) and requests per second:",
        "",
        "| server | " + " | ".join(f"{c} conns" for c in counts) + " |",
        "| --- |" + " ---: |" * len(counts),
    ]
    for server in servers:
        cells = []
        for c in counts:
            p99 = _curve_value(data, c, server, "loaded_p99_us")
            rate = _curve_value(data, c, server, "rate")
            cells.append(f"{p99 / 1000:.2f} ms, {rate:,.0f}/s" if p99 and rate else "-")
        out.append(f"| {server} | " + " | ".join(cells) + " |")
    out += [
        "",
        "### Soak: mixed load against two workers",
        "",
        "Four wrk clients at once (keep-alive hello x16 connections, a new connection "
        "per request x4, 1 MiB uploads x4, 1 MiB streamed responses x4) and 8 WebSocket "
        "echo connections, against bench/apps/mixed.py; RSS of the whole process tree "
        "every 10 s; warm-up is the first fifth. Target: RSS grows by no more than 5 % "
        "after warm-up.",
        "",
        "| server | seconds | served | errors | CPU us per message | worst wrk p99 "
        "| RSS after warm-up | RSS at end | peak growth after warm-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for server in servers:
        entry = data["soak"].get(server)
        if entry is None:
            continue
        if entry["status"] != "ok":
            out.append(f"| {server} | {entry['status']}: {entry['reason']} ||||||||")
            continue
        growth = entry["rss_growth"]
        worst = max(client.get("p99_us", 0.0) for client in entry["clients"].values())
        out.append(
            f"| {server} | {entry['seconds']} | {entry['served']:,} | {entry['errors']} "
            f"| {entry['cpu_us']:.1f} | {worst / 1000:.0f} ms "
            f"| {entry['rss_after_warmup_mib']:.1f} MiB "
            f"| {entry['rss_end_mib']:.1f} MiB | "
            + (f"{growth:+.1%}" if growth is not None else "-")
            + " |"
        )
    out += ["", END]
    return "\n".join(out)


def plot(data: dict[str, Any], servers: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (cpu_axes, p99_axes, rss_axes) = plt.subplots(1, 3, figsize=(15, 4.5))
    counts = [int(c) for c in data["curve"]]
    for server in servers:
        cpu = [_curve_value(data, str(c), server, "cpu_us") for c in counts]
        p99 = [_curve_value(data, str(c), server, "loaded_p99_us") for c in counts]
        shown = [(c, v) for c, v in zip(counts, cpu, strict=True) if v is not None]
        if shown:
            cpu_axes.plot(*zip(*shown, strict=True), marker="o", label=server)
        shown = [(c, v / 1000) for c, v in zip(counts, p99, strict=True) if v is not None]
        if shown:
            p99_axes.plot(*zip(*shown, strict=True), marker="o", label=server)
        entry = data["soak"].get(server, {})
        if entry.get("status") == "ok":
            rss_axes.plot(*zip(*entry["samples"], strict=True), marker=".", label=server)
    for axes in (cpu_axes, p99_axes):
        axes.set_xscale("log", base=2)
        axes.set_xticks(counts, [str(c) for c in counts])
        axes.set_xlabel("keep-alive connections (hello)")
        axes.grid(True, alpha=0.3)
        axes.legend()
    cpu_axes.set_ylabel("server CPU per request (us)")
    cpu_axes.set_ylim(bottom=0)
    p99_axes.set_yscale("log")
    p99_axes.set_ylabel("wrk p99 latency (ms)")
    rss_axes.set_xlabel("soak time (s)")
    rss_axes.set_ylabel("RSS, whole process tree (MiB)")
    rss_axes.set_ylim(bottom=0, top=rss_axes.get_ylim()[1] * 1.15)
    rss_axes.grid(True, alpha=0.3)
    rss_axes.legend()
    settings = data.get("curve_settings", data["settings"])
    title = "pier and peers: cost against load"
    if settings["quick"] or settings["rounds"] < 3:
        title += " (short run: indicative only)"
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def with_section(document: str, section: str) -> str:
    """`document` with its growth section replaced by `section` (appended if absent)."""
    start, end = document.find(BEGIN), document.find(END)
    if start >= 0 and end > start:
        return document[:start] + section + document[end + len(END) :]
    return document.rstrip("\n") + "\n\n" + section + "\n"


def kept_section(document: str) -> str | None:
    """The growth section of an existing docs/benchmarks.md, for a rewrite to keep."""
    start, end = document.find(BEGIN), document.find(END)
    if start >= 0 and end > start:
        return document[start : end + len(END)]
    return None


def run_growth(
    servers: list[ServerSpec], settings: Settings, *, soak_seconds: int, write_docs: bool,
    part: str = "both",
) -> int:
    started = datetime.datetime.now().astimezone()
    previous = _previous_run() if part != "both" else {}
    data = to_json(
        run_curve(servers, settings, CONNECTIONS) if part != "soak" else {},
        run_soak(servers, settings, soak_seconds) if part != "curve" else {},
        settings, started,
    )
    for kept in ("curve", "soak"):
        if part not in ("both", kept) and kept in previous:
            # This run took the other part: this one is the last run's, with its date.
            data[kept] = previous[kept]
            data[f"{kept}_measured"] = previous[f"{kept}_measured"]
            data[f"{kept}_settings"] = previous[f"{kept}_settings"]
    harness.RESULTS.mkdir(exist_ok=True)
    (harness.RESULTS / "growth.json").write_text(json.dumps(data, indent=2) + "\n")
    names = [spec.name for spec in servers]
    section = to_markdown(data, names)
    (harness.RESULTS / "growth.md").write_text(section + "\n")
    if write_docs:
        existing = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
        DOCS.write_text(with_section(existing, section))
        plot(data, names, PLOT)
        print(f"\nwrote the growth section of {DOCS.relative_to(REPO)} and "
              f"{PLOT.relative_to(REPO)}")
    else:
        plot(data, names, harness.RESULTS / "growth.png")
        print("\nwrote bench/results/growth.{json,md,png} (--no-docs: docs/ left as it is)")
    return 0
