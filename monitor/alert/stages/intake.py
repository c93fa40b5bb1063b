"""The first intake stages: enrich from the store, scrub secrets, record, keep what pages."""

from __future__ import annotations

from monitor.alert.evidence import with_store_evidence
from monitor.alert.redact import Redactor
from monitor.alert.stages.base import Counters
from monitor.core.findings import Finding, Severity
from monitor.store import Store


def immediate(f: Finding) -> bool:
    """High and critical findings page someone; lower ones wait for the digest."""
    return f.severity.rank >= Severity.HIGH.rank


class Enrich:
    """Add what the stored events say (`evidence.py`: the codes behind a failure count, the
    address an unexplained order came from)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        return with_store_evidence(self.store, findings)


class Scrub:
    """Defensive: a secret that slipped into a finding never reaches the store or a message."""

    def __init__(self, redactor: Redactor, counters: Counters) -> None:
        self.redactor = redactor
        self.counters = counters

    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        return [self.one(f) for f in findings]

    def one(self, f: Finding) -> Finding:
        red = self.redactor
        title, summary, action = red.text(f.title), red.text(f.summary), red.text(f.action)
        evidence = red.data(f.evidence)
        group = {k: red.text(v) for k, v in f.group.items()}
        if (title, summary, action, evidence, group) == (
            f.title, f.summary, f.action, f.evidence, f.group
        ):
            return f
        self.counters["redacted_findings"] += 1
        return f.model_copy(update={"title": title, "summary": summary, "action": action,
                                    "evidence": evidence, "group": group})


class Record:
    """Persist every finding (paging or not: the digest and the notebook read them back)."""

    def __init__(self, store: Store, counters: Counters) -> None:
        self.store = store
        self.counters = counters

    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        self.store.insert_findings(findings)
        self.counters["findings"] += len(findings)
        return findings


class Page:
    """Keep the findings that page (`immediate`); the rest wait for the daily digest."""

    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        return [f for f in findings if immediate(f)]
