"""Worker processes under continuous load: a rolling restart (SIGHUP) and a
--limit-max-requests recycle fail zero requests; workers on TLS; --reuse-port.

Pins: RFC 9112 section 9.6 (a server that closes a persistent connection says so with
"Connection: close" on the last response it sends; it must not close a connection on
which a request may be in flight) and section 9.3 (persistence), as seen by clients
that keep connections alive and reconnect only when told to. The load is a bounded
keep-alive loop on loopback (tests/supervisor/_harness.Load) counting every request
that does not end in a complete 200.
"""

from __future__ import annotations

import re
import signal

from tests.supervisor._harness import STARTED, Load, get, pier

APP = "tests.supervisor.apps:app"
QUIET = ("--no-access-log", "--port", "0")


def test_rolling_restart_under_load_fails_no_request() -> None:
    with pier(APP, "--workers", "2", *QUIET) as server:
        old = {int(m) for m in STARTED.findall(server.output)}
        assert len(old) == 2
        with Load(server.host, server.port, connections=12) as load:
            load.wait_requests(300)
            mark = server.mark()
            server.signal(signal.SIGHUP)
            server.wait_for("Rolling restart done", after=mark)
            load.wait_requests(300)
            result = load.stop()
        new = {int(m) for m in STARTED.findall("".join(server.lines[mark:]))}
    assert result.failures == [], f"{len(result.failures)} failed: {result.failures[:5]}"
    assert len(new) == 2 and not new & old
    served_by = {int(body) for body in result.by_body}
    assert old & served_by, "the old workers served before the restart"
    assert new & served_by, "the new workers served after the restart"
    assert served_by <= old | new


def test_max_requests_recycle_under_load_fails_no_request() -> None:
    limit, jitter = 150, 30
    with pier(APP, "--workers", "2", "--limit-max-requests", str(limit),
              "--limit-max-requests-jitter", str(jitter), *QUIET) as server:
        with Load(server.host, server.port, connections=6) as load:
            # Four replacements after the first two workers: every worker leaves.
            server.wait_count(STARTED, 6)
            load.wait_requests(200)  # the last replacements serve too
            result = load.stop()
        stopped = {int(pid) for pid in re.findall(r"Stopped worker \[(\d+)\]", server.output)}
    assert result.failures == [], f"{len(result.failures)} failed: {result.failures[:5]}"
    served = {int(body): count for body, count in result.by_body.items()}
    assert len(served) >= 4, f"workers were not recycled: {served}"
    recycled = stopped & set(served)
    assert len(recycled) >= 2, (stopped, served)
    # A worker leaves after its limit (plus jitter), not before.
    assert all(served[pid] >= limit for pid in recycled), served


def test_single_worker_recycles_without_a_gap() -> None:
    # With one worker, its replacement is READY before it leaves (capacity first).
    with pier(APP, "--limit-max-requests", "50", *QUIET) as server, Load(
        server.host, server.port, connections=4
    ) as load:
        mark = server.mark()
        server.wait_for("starting its replacement", after=mark)
        server.wait_for(r"Started worker \[\d+\] in place of", after=mark)
        load.wait_requests(100)
        result = load.stop()
    assert result.failures == [], result.failures[:5]
    assert len(result.by_body) >= 2


def test_reuse_port_workers_each_listen() -> None:
    with pier(APP, "--workers", "2", "--reuse-port", *QUIET) as server:
        assert "SO_REUSEPORT" in server.output
        started = {int(m) for m in STARTED.findall(server.output)}
        seen = set()
        # The kernel picks a listener per connection (a hash of the 4-tuple): new
        # connections reach both workers.
        for _ in range(200):
            status, body = get(server.host, server.port)
            assert status == 200
            seen.add(int(body))
            if seen == started:
                break
    assert seen == started
