"""Prometheus series of the standalone tap (`keywatch tap --metrics-port`), in its own registry.

Why its own: the tap runs as a process apart from the service (issue 14), so the service's
`/metrics` cannot see its upstream errors, its spool or what it adds to a call. The counters are
read from the tap's and the spool's own counters at scrape time (one count per fact, no second
bookkeeping that could drift); per-key requests and the two histograms are kept here, fed by
wrapping the spool's `commit`, so they count exactly what was recorded. Series for every known
key (and `key="unknown"`) and both spool outcomes start at 0, so `increase()` sees the first.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.collect.serverlimits import HEALTH_LIMITS, server_config
from monitor.core.events import Event

UNKNOWN_KEY = "unknown"  # no API key, or one the config does not name (as the service says)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class TapMetrics(Collector):
    """The standalone tap's series; `wrap(spool.commit)` is what the `Tap` is given."""

    def __init__(self, tap_counters: Mapping[str, int], spool_counters: Mapping[str, int],
                 keys: Iterable[tuple[str, str]], default_account: str) -> None:
        self.registry = CollectorRegistry()
        self._tap, self._spool = tap_counters, spool_counters
        self._requests: Counter[tuple[str, str]] = Counter()
        for account, label in keys:
            self._requests[(account, label)] += 0
        self._requests[(default_account, UNKNOWN_KEY)] += 0
        self.latency = Histogram(
            "keywatch_tap_upstream_latency_seconds", "Time from a bot's request to Binance's "
            "whole answer, as the tap recorded it", buckets=LATENCY_BUCKETS,
            registry=self.registry)
        self.commit_seconds = Histogram(
            "keywatch_tap_spool_commit_seconds", "What making a call's record durable (write "
            "+ fdatasync, group-committed) added before its answer's last byte",
            buckets=COMMIT_BUCKETS, registry=self.registry)
        self.registry.register(self)

    def wrap(self, commit: Callable[[list[Event]], Awaitable[int]]
             ) -> Callable[[list[Event]], Awaitable[int]]:
        async def counted(events: list[Event]) -> int:
            for ev in events:
                self._requests[(ev.account, ev.key or UNKNOWN_KEY)] += 1
                if ev.latency_ms is not None:
                    self.latency.observe(ev.latency_ms / 1000)
            t0 = time.perf_counter()
            try:
                return await commit(events)
            finally:
                self.commit_seconds.observe(time.perf_counter() - t0)
        return counted

    def collect(self) -> Iterator[CounterMetricFamily]:
        req = CounterMetricFamily("keywatch_tap_requests", "Calls the standalone tap answered "
                                  "and recorded, by account and key", labels=["account", "key"])
        for (account, key), n in sorted(self._requests.items()):
            req.add_metric([account, key], n)
        yield req
        yield CounterMetricFamily(
            "keywatch_tap_upstream_errors", "Calls Binance could not be reached for (answered "
            "502) or whose answer broke off", value=self._tap.get("upstream_errors", 0))
        yield CounterMetricFamily(
            "keywatch_tap_upstream_retries", "Reads sent again after a stale pooled connection",
            value=self._tap.get("upstream_retries", 0))
        spool = CounterMetricFamily("keywatch_tap_spool_records", "Records the tap wrote to its "
                                    "spool, or dropped (disk full, unwritable)",
                                    labels=["outcome"])
        spool.add_metric(["written"], self._spool.get("lines", 0))
        spool.add_metric(["dropped"], self._spool.get("dropped", 0))
        yield spool
        yield CounterMetricFamily(
            "keywatch_tap_spool_fsyncs", "fdatasync/fsync calls on the spool (one per group)",
            value=self._spool.get("fsyncs", 0))


class _NoSignals(uvicorn.Server):
    """Leaves SIGTERM to the tap's own server, which stops this one once it has shut down."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def metrics_server(registry: CollectorRegistry, port: int) -> uvicorn.Server:
    """`/metrics` on 127.0.0.1:`port` only, with the health server's limits; `serve()` it and
    set `should_exit` to stop it."""
    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[Route("/metrics", prometheus)])
    return _NoSignals(server_config(app, "127.0.0.1", port, HEALTH_LIMITS, log_level="warning",
                                    lifespan="off", access_log=False))
