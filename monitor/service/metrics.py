"""Prometheus metrics for the service, on an injected registry (no module-level singletons).

Counters answer the questions an operator asks of a monitor: is data coming in (events by
source and kind, the last event per source), is it finding things (findings by rule and by
severity), are alerts getting out (sent/failed by channel, outbox backlog), is the stream
healthy (reconnects), is the monitor polite to Binance (the weight Binance reports on the
monitor's own answers, the weight the monitor spent), who goes through the tap (requests by
key), and how quickly does a fact become an alert (detection latency).

Each series is updated where its fact happens, through the small hooks below (`events_stored`,
`delivery`, `stream_reconnect`, `own_usage`, `weight_spent`, `tap_recorded`, `queue_dropped`),
which the service and the collector hand to the parts that see the fact. `prime` creates every
labelled series the config and the loaded rules already name at 0, so the first increment of a
counter is a change Prometheus sees (`increase()` and `rate()` need a sample before it).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor.binance.rest import BAD_ANSWER_REASONS
from monitor.core.events import Event, Kind, Source
from monitor.core.findings import Finding, Severity

if TYPE_CHECKING:
    from monitor.config import Config

# The kinds each source can produce (see monitor/binance/parse*.py, collect/*): the series
# `prime` creates at 0, so a kind's first event is an increase, not a new series.
SOURCE_KINDS: dict[Source, tuple[Kind, ...]] = {
    Source.REST: (Kind.USAGE, Kind.KEY_CONFIG, Kind.BALANCE, Kind.WITHDRAWAL,
                  Kind.STREAM_STATUS, Kind.PRICE),
    Source.STREAM: (Kind.ORDER, Kind.FILL, Kind.REJECT, Kind.BALANCE, Kind.STREAM_STATUS),
    Source.TAP: (Kind.REQUEST, Kind.REJECT),
    Source.LOG: (Kind.REQUEST, Kind.REJECT, Kind.STREAM_STATUS),
}
WEIGHT_POOLS = ("api", "sapi_ip", "sapi_uid")  # monitor/binance/budget.py POOL_LIMITS
QUEUES = ("ingest", "detection")
UNKNOWN_KEY = "unknown"  # tap requests whose API key is missing or not in the config


def version() -> str:
    try:
        return metadata.version("keywatch")
    except metadata.PackageNotFoundError:
        return "unknown"


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.build_info = Info(
            "keywatch_build", "Keywatch version and the Python it runs on", registry=r)
        self.build_info.info({"version": version(), "python": platform.python_version()})
        self.events_in = Counter(
            "keywatch_events", "New events stored, by source and kind", ["source", "kind"],
            registry=r,
        )
        self.last_event = Gauge(
            "keywatch_last_event_timestamp_seconds",
            "When the newest event from each source reached Keywatch (Unix time; 0: none yet "
            "since start)", ["source"], registry=r,
        )
        self.findings = Counter(
            "keywatch_findings", "Findings raised, by rule", ["rule"], registry=r
        )
        self.findings_by_severity = Counter(
            "keywatch_findings_by_severity", "Findings raised, by severity", ["severity"],
            registry=r,
        )
        self.alerts_sent = Counter(
            "keywatch_alerts_sent", "Alert deliveries that succeeded, by channel", ["channel"],
            registry=r,
        )
        self.alerts_failed = Counter(
            "keywatch_alerts_failed", "Alert delivery attempts that failed, by channel",
            ["channel"], registry=r,
        )
        self.outbox_backlog = Gauge(
            "keywatch_outbox_backlog", "Deliveries waiting in the outbox (pending, due or "
            "backing off)", registry=r
        )
        self.stream_reconnects = Counter(
            "keywatch_stream_reconnects", "User-data stream reconnects and failed connects, by "
            "account", ["account"], registry=r,
        )
        self.api_weight = Gauge(
            "keywatch_api_weight_used_1m", "X-MBX-USED-WEIGHT-1M on the last answer to one of "
            "Keywatch's own /api requests, by account: the weight Binance counted for this "
            "host's IP in that minute (Keywatch and anything sharing the IP)", ["account"],
            registry=r,
        )
        self.api_weight_spent = Counter(
            "keywatch_api_weight_spent", "Request weight Keywatch's own REST and WebSocket "
            "calls charged to its budget, by account and limit pool", ["account", "pool"],
            registry=r,
        )
        self.tap_requests = Counter(
            "keywatch_tap_requests", "Requests the tap forwarded and recorded, by account and "
            f"key label (key=\"{UNKNOWN_KEY}\": no or an unknown API key)", ["account", "key"],
            registry=r,
        )
        self.detection_latency = Histogram(
            "keywatch_detection_latency_seconds",
            "From an event's source time to the finding it raised",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.component_restarts = Counter(
            "keywatch_component_restarts", "Crashed components restarted, by component",
            ["component"], registry=r,
        )
        self.queue_drops = Counter(
            "keywatch_queue_drops", "Items dropped by a full bounded queue, by queue", ["queue"],
            registry=r,
        )
        self.findings_silenced = Counter(
            "keywatch_findings_silenced", "Findings a `keywatch silence` kept from alerting, by "
            "rule", ["rule"], registry=r,
        )
        self.events_quarantined = Counter(
            "keywatch_events_quarantined", "Events the store could not hold (e.g. an integer "
            "beyond int64), kept in the store's quarantine table instead, by source",
            ["source"], registry=r,
        )
        self.events_out_of_range = Counter(
            "keywatch_events_out_of_range", "Events stored with an integer field nulled because "
            "its value did not fit int64 (the text is kept in raw.out_of_range), by source",
            ["source"], registry=r,
        )
        self.store_write_errors = Counter(
            "keywatch_store_write_errors", "Event writes the store rejected as a whole (disk "
            "full, read-only, locked); retried with backoff", registry=r,
        )
        self.ingest_queue_events = Gauge(
            "keywatch_ingest_queue_events", "Events waiting in the ingest queue for the store",
            registry=r,
        )
        self.store_wal_bytes = Gauge(
            "keywatch_store_wal_bytes", "Size of the store's write-ahead log after the last "
            "checkpoint; it grows while a reader (a notebook's open transaction) holds an old "
            "snapshot, and /healthz warns past its bound", registry=r,
        )
        self.source_last_progress = Gauge(
            "keywatch_source_last_progress_timestamp_seconds", "When each active source last "
            "made progress (poller: a completed round; stream: a frame), by source and account "
            "(Unix time, the service's clock; 0: none seen yet). /healthz is not ok once this "
            "is older than the source's stall time", ["source", "account"], registry=r,
        )
        self.rest_bad_answers = Counter(
            "keywatch_rest_bad_answers", "Answers to Keywatch's own REST calls it refused, by "
            "account and reason (too_large, deadline, undecodable, not_json, wrong_shape)",
            ["account", "reason"], registry=r,
        )
        self._newest_ms: dict[str, int] = {}

    # -- zero-initialisation ----------------------------------------------------------------
    def prime(self, cfg: Config, *, rules: Iterable[str] = (), channels: Iterable[str] = (),
              components: Iterable[str] = ()) -> None:
        """Create at 0 every labelled series the config, the rules and the channels name."""
        src = cfg.sources
        sources = [Source.REST]  # every account's REST client: backfill, clock sync, polling
        if src.stream:
            sources.append(Source.STREAM)
        if src.tap.enabled:
            sources.append(Source.TAP)
        if src.logs:
            sources.append(Source.LOG)
        for s in sources:
            self.last_event.labels(s.value)
            self.events_quarantined.labels(s.value)
            self.events_out_of_range.labels(s.value)
            for k in SOURCE_KINDS[s]:
                self.events_in.labels(s.value, k.value)
        for rule in rules:
            self.findings.labels(rule)
            self.findings_silenced.labels(rule)
        for sev in Severity:
            self.findings_by_severity.labels(sev.value)
        for ch in channels:
            self.alerts_sent.labels(ch)
            self.alerts_failed.labels(ch)
        for acct in cfg.accounts:
            self.api_weight.labels(acct.name)
            for reason in BAD_ANSWER_REASONS:
                self.rest_bad_answers.labels(acct.name, reason)
            for pool in WEIGHT_POOLS:
                self.api_weight_spent.labels(acct.name, pool)
            if src.stream:
                self.stream_reconnects.labels(acct.name)
                self.source_last_progress.labels("stream", acct.name)
            if src.poller:
                self.source_last_progress.labels("poller", acct.name)
            if src.tap.enabled:
                for key in acct.keys:
                    self.tap_requests.labels(acct.name, key.label)
        if src.tap.enabled and cfg.accounts:
            self.tap_requests.labels(src.tap.account or cfg.accounts[0].name, UNKNOWN_KEY)
        for q in QUEUES:
            self.queue_drops.labels(q)
        self.prime_components(components)

    def prime_components(self, components: Iterable[str]) -> None:
        for name in components:
            self.component_restarts.labels(name)

    # -- hooks, called where each fact happens ----------------------------------------------
    def events_stored(self, events: Iterable[Event]) -> None:
        """New events the store accepted: counts by source and kind, newest per source."""
        newest: dict[str, int] = {}
        for ev in events:
            self.events_in.labels(ev.source.value, ev.kind.value).inc()
            newest[ev.source.value] = max(newest.get(ev.source.value, 0), ev.received_ts)
        for source, ms in newest.items():
            if ms > self._newest_ms.get(source, 0):  # never backwards (a late batch)
                self._newest_ms[source] = ms
                self.last_event.labels(source).set(ms / 1000)

    def events_quarantined_by_source(self, events: Iterable[Event]) -> None:
        """Events the store refused and quarantined (the ingest writer's hook)."""
        for ev in events:
            self.events_quarantined.labels(str(getattr(ev.source, "value", ev.source))).inc()

    def events_out_of_range_by_source(self, events: Iterable[Event]) -> None:
        """Stored events with an integer nulled as out of range (`Event.out_of_range`)."""
        for ev in events:
            self.events_out_of_range.labels(ev.source.value).inc()

    def finding(self, f: Finding) -> None:
        self.findings.labels(f.rule_id).inc()
        self.findings_by_severity.labels(Severity(f.severity).value).inc()

    def delivery(self, channel: str, ok: bool) -> None:
        """One outbox delivery attempt to `channel` (the notifier's hook)."""
        (self.alerts_sent if ok else self.alerts_failed).labels(channel).inc()

    def stream_reconnect(self, account: str) -> None:
        self.stream_reconnects.labels(account).inc()

    def own_usage(self, events: Iterable[Event]) -> None:
        """Usage events built from the answers to Keywatch's own REST calls (`BinanceRest`).

        Only /api answers: their header is X-MBX-USED-WEIGHT-1M (the 6000-a-minute pool);
        /sapi answers carry the separate SAPI IP pool's count in the same event field.
        """
        for ev in events:
            if (ev.source is Source.REST and ev.kind is Kind.USAGE and ev.weight_1m is not None
                    and ev.endpoint is not None and not ev.endpoint.startswith("/sapi/")):
                self.api_weight.labels(ev.account).set(ev.weight_1m)

    def rest_bad_answer(self, account: str, reason: str) -> None:
        """An answer `BinanceRest` refused (its `on_bad_answer` hook)."""
        self.rest_bad_answers.labels(account, reason).inc()

    def weight_spent(self, account: str, pool: str, weight: float) -> None:
        self.api_weight_spent.labels(account, pool).inc(weight)

    def tap_recorded(self, events: Iterable[Event]) -> None:
        """Events the tap recorded, one per forwarded request."""
        for ev in events:
            if ev.source is Source.TAP:
                self.tap_requests.labels(ev.account, ev.key or UNKNOWN_KEY).inc()

    def queue_dropped(self, queue: str, n: int) -> None:
        if n:
            self.queue_drops.labels(queue).inc(n)

    def finding_silenced(self, f: Finding) -> None:
        """The alert manager's hook: a silence matched this finding (it is stored, not sent)."""
        self.findings_silenced.labels(f.rule_id).inc()
