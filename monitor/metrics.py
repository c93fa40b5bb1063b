"""Prometheus metrics for the service, on an injected registry (no module-level singletons).

Counters answer the questions an operator asks of a monitor: is data coming in (events by
source and kind), is it finding things (findings by rule), are alerts getting out (sent/failed
by channel, outbox backlog), is the stream healthy (reconnects), is the monitor polite to
Binance (own API weight), and how quickly does a fact become an alert (detection latency).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.findings import Finding


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events_in = Counter(
            "keywatch_events", "Events stored, by source and kind", ["source", "kind"], registry=r
        )
        self.findings = Counter(
            "keywatch_findings", "Findings raised, by rule", ["rule"], registry=r
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
            "keywatch_outbox_backlog", "Deliveries waiting in the outbox", registry=r
        )
        self.stream_reconnects = Counter(
            "keywatch_stream_reconnects", "User-data stream reconnects, by account", ["account"],
            registry=r,
        )
        self.api_weight = Gauge(
            "keywatch_api_weight_used_1m", "Request weight the monitor itself used in the "
            "current minute, by account", ["account"], registry=r,
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

    def finding_silenced(self, f: Finding) -> None:
        """The alert manager's hook: a silence matched this finding (it is stored, not sent)."""
        self.findings_silenced.labels(f.rule_id).inc()
