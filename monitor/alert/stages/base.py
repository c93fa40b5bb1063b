"""What the alert stages share: the intake contract and the manager's counters.

An intake stage takes the batch of findings one `submit` brings and returns the ones that go
on (prometheus/alertmanager's `Stage.Exec(alerts) -> alerts`); the stages after it work on
per-fingerprint `AlertState` records (`fold.py`, then `flush` in the manager).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Protocol

from monitor.core.findings import Finding

# named counts the service's heartbeat and the tests read (findings, new, grouped, silenced...)
Counters = MutableMapping[str, int]


class FindingStage(Protocol):
    """One step of intake: findings in, the findings that go on out."""

    def run(self, findings: list[Finding], now: int) -> list[Finding]: ...
