"""Where a server's CPU per request goes: user and kernel time, syscalls, context switches.

    bench/.venv/bin/python -m bench.cpu_split [--servers pier,granian]
        [--scenarios hello,starlette_json] [--rounds 4] [--seconds 4] [--syscalls]

bench/run reports utime + stime per request; this splits it, for the wrk scenarios
(keep-alive, no request body), one server at a time as bench/servers.py starts it: the
server pinned to core 0, wrk (`-t1`, the scenario's connections) to core 1, 2 s of
warm-up, then a window of --seconds. Per request it prints the server's user and system
time (every thread, /proc/<pid>/task/*/stat), its voluntary context switches, and what
core 0 did meanwhile (/proc/stat: other processes' share of the core, and the softirq
time no process is charged with). With --syscalls a second window counts syscalls per
request with perf's syscall tracepoints (`perf stat`, a counter: it barely slows the
server, unlike strace). Rounds alternate the servers. Hold the exclusive quiet lock
(`flock -x /tmp/pier-quiet.lock`) while it runs. docs/performance.md quotes it.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench import procfs, servers
from bench.harness import server_env
from bench.scenarios import Scenario, by_key

SERVER_CORE = "0"
LOAD_CORE = "1"
PORT = 23001
WARM_UP = 2
SYSCALLS = (
    "read", "write", "writev", "readv", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "epoll_wait", "epoll_pwait", "epoll_ctl", "futex", "sched_yield", "poll", "ppoll",
    "getsockname", "getpeername", "setsockopt", "accept4", "close", "shutdown", "getpid",
    "ioctl", "clock_gettime", "madvise", "mmap", "munmap", "brk", "io_uring_enter",
)
_SWITCHES = re.compile(rb"^voluntary_ctxt_switches:\s+(\d+)", re.MULTILINE)


def thread_times(root: int) -> tuple[int, int, int]:
    """(utime ticks, stime ticks, voluntary context switches) over every thread."""
    user = system = switches = 0
    for pid in procfs.process_tree(root):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tids:
            try:
                stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
                status = Path(f"/proc/{pid}/task/{tid}/status").read_bytes()
            except FileNotFoundError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            user += int(fields[11])
            system += int(fields[12])
            found = _SWITCHES.search(status)
            switches += int(found.group(1)) if found else 0
    return user, system, switches


def core_fields(core: str) -> list[int]:
    """/proc/stat's columns for one core: user nice system idle iowait irq softirq steal."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            return [int(value) for value in line.split()[1:9]]
    raise SystemExit(f"no cpu{core} line in /proc/stat")


def wrk(port: int, scenario: Scenario, seconds: int) -> int:
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{scenario.connections}",
               f"-d{seconds}s"]
    for header in scenario.wrk_headers:
        command += ["-H", header]
    out = subprocess.run([*command, f"http://127.0.0.1:{port}{scenario.path}"],
                         capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+) requests in", out)
    if found is None:
        raise SystemExit(f"wrk said: {out}")
    return int(found.group(1))


def wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the server did not listen within 30 s")


def cpu_window(pid: int, port: int, scenario: Scenario, seconds: int) -> str:
    tick = procfs.CLOCK_TICKS
    core_before, before = core_fields(SERVER_CORE), thread_times(pid)
    started = time.monotonic()
    count = wrk(port, scenario, seconds)
    elapsed = time.monotonic() - started
    core_after, after = core_fields(SERVER_CORE), thread_times(pid)
    user, system, switches = (b - a for a, b in zip(before, after, strict=True))
    core = [b - a for a, b in zip(core_before, core_after, strict=True)]
    busy = sum(core) - core[3] - core[4]
    other = max(0.0, (busy - core[6] - user - system) / tick / elapsed)
    per = 1e6 / tick / count
    return (
        f"{count / elapsed:8.0f} req/s  us/request: user {user * per:6.2f} sys"
        f" {system * per:6.2f} total {(user + system) * per:6.2f}  voluntary switches"
        f" {switches / count:.3f}  core {SERVER_CORE}: softirq {core[6] * per:.2f} us,"
        f" other processes {other:.0%}"
    )


def syscall_window(pid: int, port: int, scenario: Scenario, seconds: int) -> str:
    events = ",".join(f"syscalls:sys_enter_{name}" for name in SYSCALLS)
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        pids = ",".join(map(str, procfs.process_tree(pid)))
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-e", events, "-p", pids,
                                 "-o", out.name])
        time.sleep(0.3)
        count = wrk(port, scenario, seconds)
        perf.send_signal(signal.SIGINT)
        perf.wait()
        counts: dict[str, int] = {}
        for line in Path(out.name).read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 3 and parts[0].strip().isdigit():
                counts[parts[2].rsplit("sys_enter_", 1)[-1]] = int(parts[0])
    total = sum(counts.values()) / count
    shown = "  ".join(
        f"{name} {value / count:.2f}"
        for name, value in sorted(counts.items(), key=lambda item: -item[1])
        if value / count >= 0.005
    )
    return f"syscalls/request {total:.2f}: {shown}"


def measure(spec: servers.ServerSpec, scenario: Scenario, args: argparse.Namespace) -> None:
    launch = servers.Launch(app=scenario.app, port=PORT, keep_alive=120,
                            max_connections=scenario.connections)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(["taskset", "-c", SERVER_CORE, *spec.command(launch)],
                                   env=server_env(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_listening(PORT, process)
            wrk(PORT, scenario, WARM_UP)
            label = f"{scenario.key:15} {spec.name:9}"
            print(f"{label} {cpu_window(process.pid, PORT, scenario, args.seconds)}",
                  flush=True)
            if args.syscalls:
                print(f"{label} {syscall_window(process.pid, PORT, scenario, args.seconds)}",
                      flush=True)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", default="pier,granian")
    parser.add_argument("--scenarios", default="hello,starlette_json")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--syscalls", action="store_true",
                        help="count syscalls per request too (perf stat, syscall tracepoints)")
    args = parser.parse_args()
    specs = {spec.name: spec for spec in servers.SERVERS}
    scenarios = by_key()
    for number in range(args.rounds):
        print(f"round {number + 1}", flush=True)
        for key in args.scenarios.split(","):
            scenario = scenarios[key]
            if scenario.kind != "wrk" or scenario.lua:
                raise SystemExit(f"{key}: only wrk scenarios without a request body")
            for name in args.servers.split(","):
                measure(specs[name], scenario, args)


if __name__ == "__main__":
    main()
