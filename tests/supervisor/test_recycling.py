"""Recycling beyond --limit-max-requests (issue 12): --limit-max-memory replaces a worker
whose resident memory passed the limit, --limit-max-lifetime one that served long
enough; both gracefully (the replacement is READY before the old worker is asked to
leave: no request fails), both named in the log and in /metrics.
"""

from __future__ import annotations

import re

from tests.supervisor._harness import STARTED, Load, get, pier
from tests.supervisor.test_metrics import ADMIN, scrape

APP = "tests.supervisor.apps:app"


def test_worker_over_its_memory_limit_is_replaced_without_a_failed_request() -> None:
    args = (APP, "--port", "0", "--no-access-log", "--limit-max-memory", "150",
            "--metrics-bind", "127.0.0.1:0")
    with pier(*args) as proc:
        admin = int(proc.wait_for(ADMIN).group(1))
        old = int(proc.wait_for(STARTED).group(1))
        with Load(proc.host, proc.port, connections=4) as load:
            load.wait_requests(50)
            assert get(proc.host, proc.port, "/grow?mb=200") == (200, b"grown")
            line = proc.wait_for(
                rf"Worker \[{old}\] uses (\d+) MiB, over --limit-max-memory 150;"
                " starting its replacement"
            )
            assert int(line.group(1)) > 150
            new = int(proc.wait_for(rf"Started worker \[(\d+)\] in place of worker \[{old}\]")
                      .group(1))
            proc.wait_for(rf"Stopped worker \[{old}\]")
            load.wait_requests(50)
            result = load.stop()
        assert result.failures == []
        assert set(result.by_body) == {str(old).encode(), str(new).encode()}
        metrics = scrape(admin)
        assert metrics["pier_worker_recycles_total{limit=max_memory}"] == 1
        assert metrics["pier_worker_exits_total{reason=max_memory}"] == 1
        assert metrics["pier_requests_total{method=GET,protocol=HTTP/1.1,status=2xx}"] == (
            result.ok + 1
        )


def test_worker_is_replaced_after_its_lifetime() -> None:
    args = (APP, "--port", "0", "--no-access-log", "--workers", "2",
            "--limit-max-lifetime", "1", "--limit-max-lifetime-jitter", "0.5")
    with pier(*args) as proc:
        first = [int(pid) for pid in re.findall(r"Started worker \[(\d+)\]\n",
                                                "".join(proc.lines))]
        with Load(proc.host, proc.port, connections=4) as load:
            for pid in first:
                match = proc.wait_for(rf"Worker \[{pid}\] served for (\d+)s"
                                      r" \(--limit-max-lifetime\)")
                assert 1 <= int(match.group(1)) <= 2
                proc.wait_for(rf"in place of worker \[{pid}\]")
            load.wait_requests(20)
            result = load.stop()
        assert result.failures == []
