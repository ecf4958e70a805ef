"""HTTP/2 scenarios: h2load against pier and the peers that speak HTTP/2 here.

    bench/.venv/bin/python -m bench.http2                 # every server, every scenario
    bench/.venv/bin/python -m bench.http2 --servers pier,hypercorn --seconds 5

Run it from the bench environment that bench/run builds (bench/README.md). h2load is
Debian's nghttp2-client. Same fairness rules as bench/run: one server at a time, the
server pinned to one core and h2load to the other, one worker, access log off, the same
app module; server CPU per request is utime + stime of the server's process tree over the
measured window (bench/procfs.py), divided by the requests h2load completed.

Scenarios:
- h2c_hello: the 13-byte hello over cleartext HTTP/2 with prior knowledge, 4 connections
  x 64 concurrent streams.
- tls_hello: the same over TLS, HTTP/2 chosen by ALPN.
- h2c_stream: a 1 MiB response streamed as 16 x 64 KiB body messages, 4 connections x 8
  streams (flow control and the peer's windows).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.harness import Settings, Window, free_port, pinned, running
from bench.servers import HOST, Launch, ServerSpec, by_name

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class H2Scenario:
    key: str
    app: str
    tls: bool
    connections: int
    streams: int


SCENARIOS = (
    H2Scenario("h2c_hello", "bench.apps.hello:app", tls=False, connections=4, streams=64),
    H2Scenario("tls_hello", "bench.apps.hello:app", tls=True, connections=4, streams=64),
    H2Scenario("h2c_stream", "bench.apps.stream:app", tls=False, connections=4, streams=8),
)

# Each peer's flags for HTTP/2 (cleartext prior knowledge, TLS with ALPN h2); None: the
# server cannot serve this scenario.
def _h2_flags(name: str, tls: bool, cert: Path, key: Path) -> list[str] | None:
    if name == "pier":
        return ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)] if tls else []
    if name == "hypercorn":
        return ["--certfile", str(cert), "--keyfile", str(key)] if tls else []
    if name == "granian":
        flags = ["--http", "2"]
        return [*flags, "--ssl-certificate", str(cert), "--ssl-keyfile", str(key)] if tls \
            else flags
    if name == "gunicorn":
        flags = ["--http-protocols", "h2,h1"]
        if tls:
            return [*flags, "--certfile", str(cert), "--keyfile", str(key)]
        return [*flags, "--http2-cleartext", "prior-knowledge"]
    return None


def _with_flags(spec: ServerSpec, flags: list[str]) -> ServerSpec:
    def command(launch: Launch) -> list[str]:
        base = spec.command(launch)
        if spec.name == "granian":  # its app argument comes last
            return [*base[:-1], *flags, base[-1]]
        return [*base, *flags]

    return ServerSpec(spec.name, spec.label, spec.packages, spec.module, command)


_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s")
_REQUESTS = re.compile(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, "
                       r"(\d+) failed, (\d+) errored")


def _h2load(
    url: str, scenario: H2Scenario, seconds: int, load_core: int | None
) -> dict[str, float]:
    command = [*pinned(load_core), "h2load", "-c", str(scenario.connections), "-m",
               str(scenario.streams), "-t", "1", "-D", str(seconds), url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    finished = _FINISHED.search(done.stdout)
    counts = _REQUESTS.search(done.stdout)
    if finished is None or counts is None:
        raise RuntimeError(f"h2load gave no summary: {done.stdout[-300:]} {done.stderr[-300:]}")
    if "Application protocol: h2" not in done.stdout:
        raise RuntimeError("h2load did not negotiate HTTP/2")
    return {"rate": float(finished.group(3)), "succeeded": float(counts.group(2)),
            "failed": float(counts.group(3)) + float(counts.group(4))}


def measure(spec: ServerSpec, scenario: H2Scenario, settings: Settings, *, cert: Path,
            key: Path, log: Path) -> dict[str, float] | str:
    flags = _h2_flags(spec.name, scenario.tls, cert, key)
    if flags is None:
        return "no HTTP/2"
    port = free_port()
    launch = Launch(app=scenario.app, port=port)
    url = f"{'https' if scenario.tls else 'http'}://{HOST}:{port}/"
    try:
        with running(_with_flags(spec, flags), launch, settings, log) as process:
            _h2load(url, scenario, settings.warmup, settings.load_core)
            window = Window.open(process.pid)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            result = _h2load(url, scenario, settings.duration, settings.load_core)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            client = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            metrics = window.close(process.pid, settings, client_cpu=client)
    except Exception as exc:  # a server that fails is reported, not fatal
        return f"failed: {exc}"[:200]
    if result["succeeded"] == 0:
        return f"failed: no request succeeded ({result['failed']:.0f} failed)"
    result["cpu_us"] = metrics["server_cpu_s"] / result["succeeded"] * 1e6
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", default="pier,hypercorn,granian,gunicorn")
    parser.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if shutil.which("h2load") is None:
        print("h2load is missing: apt-get install nghttp2-client", file=sys.stderr)
        return 2
    allowed = sorted(os.sched_getaffinity(0))
    server_core, load_core = (allowed[0], allowed[1]) if len(allowed) >= 2 else (None, None)
    settings = Settings(rounds=args.rounds, duration=args.seconds, warmup=2,
                        latency_duration=0, latency_rate=0, idle_count=0, idle_hold=0,
                        quick=False, server_core=server_core, load_core=load_core)
    servers = [by_name()[name] for name in args.servers.split(",")]
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios.split(",")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logs").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as directory:
        # A throwaway self-signed certificate (h2load does not verify it); PKCS#8 key,
        # which granian requires.
        cert, key = Path(directory, "cert.pem"), Path(directory, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                        "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        lines = ["| scenario | server | req/s (median) | CPU us/req | rounds (req/s) |",
                 "| --- | --- | ---: | ---: | --- |"]
        for scenario in scenarios:
            runs: dict[str, list[dict[str, float] | str]] = {s.name: [] for s in servers}
            for round_ in range(args.rounds):
                # Rotation: each round starts with the next server.
                order = servers[round_ % len(servers):] + servers[: round_ % len(servers)]
                for spec in order:
                    log = RESULTS / "logs" / f"h2-{scenario.key}-{spec.name}-r{round_}.log"
                    runs[spec.name].append(measure(spec, scenario, settings, cert=cert, key=key,
                                                   log=log))
                    print(scenario.key, spec.name, round_, runs[spec.name][-1], flush=True)
            for spec in servers:
                good = [r for r in runs[spec.name] if isinstance(r, dict)]
                if not good:
                    lines.append(f"| {scenario.key} | {spec.name} | {runs[spec.name][0]} | | |")
                    continue
                rate = statistics.median(r["rate"] for r in good)
                cpu = statistics.median(r["cpu_us"] for r in good)
                each = ", ".join(f"{r['rate']:.0f}" for r in good)
                lines.append(f"| {scenario.key} | {spec.name} | {rate:.0f} | {cpu:.0f} | {each} |")
    table = "\n".join(lines)
    (RESULTS / "http2.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
