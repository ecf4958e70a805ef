"""Server metrics (--metrics-bind): counted per process, summed across workers, written
out in the Prometheus text format.

Rules:
1. Counting costs (next to) nothing when metrics are off and little when on. When on,
   `Recorder` takes the access log's place in ServerContext, so the glue's one call per
   finished response (io/lifecycle.py log_response) happens; log_response counts
   inline and passes the line on to the real access log. H1Connection counts bytes
   behind a None check; what happens once per connection or refusal is counted by
   io/metered.py's subclass. Gauges (requests in flight, open connections) are read
   from the server's own sets when a snapshot is taken, not counted per request.
2. Why not prometheus_client's Counter/Histogram (multiprocess mode): measured on this
   machine, its calls for one request (labelled counter, histogram, two byte counters,
   an in-flight gauge up and down) cost 31 us in one process and 43 us in multiprocess
   mode (a lock and an mmap write per value), against 1.3-2.4 us for the plain counters
   here; a hello request costs ~50 us in all. prometheus_client still writes the
   exposition (`render`), at scrape time only, and the tests read it back with its
   parser.
3. A `Snapshot` is plain data (JSON over the supervisor's control channel). The
   supervisor keeps each worker's latest one, folds a worker's last snapshot into the
   retired totals when it exits, and adds them up per scrape, so counters never go
   back when a worker is replaced, and every scrape is one consistent sum.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUCKETS", "Recorder", "ServerState", "Snapshot", "render"]

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Request duration histogram bounds in seconds (prometheus_client's defaults, which
cover a fast API call to a slow report); one more bucket is +Inf."""

REFUSAL_REASONS = {
    400: "bad_request",
    408: "request_timeout",
    413: "body_too_large",
    414: "uri_too_long",
    431: "headers_too_large",
    503: "over_capacity",
}


class Recorder:
    """One process's counters; sits where ServerContext.access_log is (rule 1)."""

    __slots__ = (
        "access",
        "buckets",
        "connections_total",
        "duration_sum",
        "fast",
        "last",
        "received",
        "refusals",
        "requests",
        "sent",
        "websocket_sessions",
    )

    def __init__(self, access: Any = None) -> None:
        self.access = access
        """The real access log (pier.logging.AccessLog), or None when it is off."""
        self.requests: dict[tuple[str, str, int], int] = {}
        """(method, HTTP version, status) -> count, but for the current run (`last`)."""
        self.last: list[Any] = [None, None, None, 0]
        """The run of responses alike: method, version, status, and how many so far
        (io/lifecycle.py adds to it without hashing a key; pier.metrics rule 1)."""
        self.fast = 0
        """Responses in the first histogram bucket, counted apart (no bisect)."""
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.duration_sum = 0.0
        self.received = 0
        self.sent = 0
        self.connections_total: dict[str, int] = {}
        self.websocket_sessions = 0
        self.refusals: dict[str, int] = {}

    def count_new(self, method: str, version: str, status: int) -> None:
        """Count a response whose (method, version, status) differs from the last one's:
        the last run goes into `requests`, and a new run starts."""
        self._flush_run()
        self.last = [method, version, status, 1]

    def _flush_run(self) -> None:
        method, version, status, run = self.last
        if run:
            key = (method, version, status)
            self.requests[key] = self.requests.get(key, 0) + run
            self.last[3] = 0

    def record(  # the access log's call: WebSocket handshakes (io/websocket.py)
        self,
        *,
        method: str,
        http_version: str,
        status: int,
        duration: float,
        **fields: Any,
    ) -> None:
        """A finished response (pier.logging.AccessLog.record's arguments): WebSocket
        handshakes; HTTP responses are counted in io/lifecycle.py log_response."""
        self.count_new(method, http_version, status)
        self.buckets[bisect_left(BUCKETS, duration)] += 1
        self.duration_sum += duration
        if status == 101:
            self.websocket_sessions += 1
        access = self.access
        if access is not None:
            access.record(
                method=method,
                http_version=http_version,
                status=status,
                duration=duration,
                **fields,
            )

    def refused(self, reason: int | str) -> None:
        """A request turned away by the server itself (400, 408, 413, 431, 503, h2_*)."""
        name = REFUSAL_REASONS.get(reason, str(reason)) if isinstance(reason, int) else reason
        self.refusals[name] = self.refusals.get(name, 0) + 1

    def connected(self, protocol: str) -> None:
        self.connections_total[protocol] = self.connections_total.get(protocol, 0) + 1

    def snapshot(self, *, in_flight: int, connections: dict[str, int]) -> Snapshot:
        self._flush_run()
        requests: dict[str, int] = {}
        for (method, version, status), count in self.requests.items():
            key = f"{method} {status // 100}xx HTTP/{version}"
            requests[key] = requests.get(key, 0) + count
        return Snapshot(
            requests=requests,
            buckets=[self.buckets[0] + self.fast, *self.buckets[1:]],
            duration_sum=self.duration_sum,
            received=self.received,
            sent=self.sent,
            connections_total=dict(self.connections_total),
            websocket_sessions=self.websocket_sessions,
            refusals=dict(self.refusals),
            in_flight=in_flight,
            connections=connections,
        )


@dataclass
class Snapshot:
    """One process's counters and gauges at one moment (rule 3); JSON-able."""

    requests: dict[str, int] = field(default_factory=dict)
    """"METHOD Nxx HTTP/V" -> count."""
    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    duration_sum: float = 0.0
    received: int = 0
    sent: int = 0
    connections_total: dict[str, int] = field(default_factory=dict)
    websocket_sessions: int = 0
    refusals: dict[str, int] = field(default_factory=dict)
    in_flight: int = 0
    connections: dict[str, int] = field(default_factory=dict)
    """Open connections by protocol (a gauge: only live workers count)."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Snapshot:
        known = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in known})

    def add(self, other: Snapshot, *, gauges: bool = True) -> None:
        """Add `other`'s counters (and its gauges unless it is a retired worker's)."""
        _add_counts(self.requests, other.requests)
        self.buckets = [a + b for a, b in zip(self.buckets, other.buckets, strict=True)]
        self.duration_sum += other.duration_sum
        self.received += other.received
        self.sent += other.sent
        _add_counts(self.connections_total, other.connections_total)
        self.websocket_sessions += other.websocket_sessions
        _add_counts(self.refusals, other.refusals)
        if gauges:
            self.in_flight += other.in_flight
            _add_counts(self.connections, other.connections)


def _add_counts(into: dict[str, int], other: dict[str, int]) -> None:
    for key, value in other.items():
        into[key] = into.get(key, 0) + value


@dataclass
class ServerState:
    """What only the supervisor (or the single process) knows: workers and lifespan."""

    workers_by_state: dict[str, int] = field(default_factory=dict)
    worker_starts: int = 0
    worker_exits: dict[str, int] = field(default_factory=dict)
    ready: bool = False
    draining: bool = False
    recycles: dict[str, int] = field(default_factory=dict)
    """Workers replaced by a limit, by limit (max_requests, max_memory, max_lifetime)."""


def render(total: Snapshot, state: ServerState) -> bytes:
    """The Prometheus text exposition of one scrape (written by prometheus_client)."""
    from prometheus_client.core import CollectorRegistry
    from prometheus_client.exposition import generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(total, state))
    return generate_latest(registry)


class _Collector:
    def __init__(self, total: Snapshot, state: ServerState) -> None:
        self.total = total
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        total, state = self.total, self.state
        requests = CounterMetricFamily(
            "pier_requests",
            "HTTP requests answered, by method, status class and protocol",
            labels=["method", "status", "protocol"],
        )
        for key, count in sorted(total.requests.items()):
            method, status, protocol = key.split(" ")
            requests.add_metric([method, status, protocol], count)
        yield requests
        cumulative, running = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), total.buckets, strict=True):
            running += count
            cumulative.append((_bound(bound), running))
        yield HistogramMetricFamily(
            "pier_request_duration_seconds",
            "Time from a request's head to the end of its response",
            buckets=cumulative,
            sum_value=total.duration_sum,
        )
        yield GaugeMetricFamily(
            "pier_requests_in_flight", "Requests whose app task is running", total.in_flight
        )
        yield _labelled(GaugeMetricFamily, "pier_connections_open",
                        "Open client connections, by protocol", "protocol", total.connections)
        yield _labelled(CounterMetricFamily, "pier_connections",
                        "Client connections accepted, by protocol", "protocol",
                        total.connections_total)
        yield CounterMetricFamily(
            "pier_received_bytes", "Bytes received from clients", total.received
        )
        yield CounterMetricFamily("pier_sent_bytes", "Bytes sent to clients", total.sent)
        yield CounterMetricFamily(
            "pier_websocket_sessions", "WebSocket sessions accepted", total.websocket_sessions
        )
        yield _labelled(CounterMetricFamily, "pier_refusals",
                        "Requests and connections the server itself refused, by reason",
                        "reason", total.refusals)
        yield _labelled(GaugeMetricFamily, "pier_workers",
                        "Worker processes by state (ready: lifespan start-up completed)",
                        "state", state.workers_by_state)
        yield CounterMetricFamily(
            "pier_worker_starts", "Worker processes started", state.worker_starts
        )
        yield _labelled(CounterMetricFamily, "pier_worker_exits",
                        "Worker processes that ended, by reason", "reason", state.worker_exits)
        yield _labelled(CounterMetricFamily, "pier_worker_recycles",
                        "Workers replaced on reaching a --limit-max-* limit, by limit",
                        "limit", state.recycles)
        yield GaugeMetricFamily(
            "pier_ready",
            "1 when every worker completed lifespan start-up and no drain has begun",
            1 if state.ready else 0,
        )
        yield GaugeMetricFamily(
            "pier_draining", "1 from the moment a graceful stop begins", int(state.draining)
        )


def _labelled(kind: Any, name: str, documentation: str, label: str,
              values: dict[str, int]) -> Any:
    family = kind(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def sum_snapshots(live: Iterable[Snapshot], retired: Snapshot) -> Snapshot:
    """Rule 3: the retired totals plus every live worker's latest snapshot."""
    total = Snapshot()
    total.add(retired, gauges=False)
    for snapshot in live:
        total.add(snapshot)
    return total
