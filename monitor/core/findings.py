"""What a detector says when it sees something: the hand-off between detection and alerting.

A `Finding` carries its own evidence so that the alert, the store and the notebook can explain
it without re-running the detector. Detectors build findings; the alert manager turns them into
alerts. Neither side imports the other: this module is the whole contract.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from monitor.core.events import MAX_TS_MS, MIN_TS_MS


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}


class Signal(StrEnum):
    """The seed's four signs of a leaked key, plus what its checklist adds."""

    CALL_RATE = "call_rate_spike"
    UNKNOWN_IP = "unknown_ip"
    FAILURE_RATE = "failure_rate_jump"
    OVERSIZED_REJECT = "oversized_rejected_order"
    FOREIGN_ORDER = "foreign_order"
    WITHDRAWAL = "withdrawal"
    POSTURE = "posture"
    DRIFT = "drift"
    TRADING_STATUS = "trading_status"
    ANOMALY = "anomaly"


class Finding(BaseModel):
    """One detector verdict about one (account, key) at one time.

    `state` is "firing" for a new observation and "resolved" when a detector that tracks a
    condition sees it clear; the alert manager decides what reaches a person.
    `group` holds the rule's grouping fields (e.g. the caller IP), which become part of the
    alert fingerprint so two unknown IPs are two alerts, not one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    finding_id: str
    ts: int
    rule_id: str
    detector: str = "rule"  # "rule" or "forest"
    signal: Signal
    severity: Severity
    account: str
    key: str | None = None
    title: str
    summary: str
    evidence: dict[str, Any] = Field(default_factory=dict)
    group: dict[str, str] = Field(default_factory=dict)
    action: str = ""
    tags: tuple[str, ...] = ()
    state: str = "firing"

    @field_validator("ts")
    @classmethod
    def _ms(cls, v: int) -> int:
        if not MIN_TS_MS <= v < MAX_TS_MS:
            raise ValueError(f"{v} is not a millisecond epoch time")
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v not in ("firing", "resolved"):
            raise ValueError("state must be 'firing' or 'resolved'")
        return v

    @field_validator("evidence")
    @classmethod
    def _json_able(cls, v: dict[str, Any]) -> dict[str, Any]:
        json.dumps(v, default=str)
        return v


# What makes two findings of one fingerprint (rule, account, key, group) the same incident:
# the evidence field naming the one thing that happened, first present wins. A signal not
# listed here (a rate, a window, a posture) is a condition: every finding of a fingerprint is
# the same incident until it resolves. The engine's cooldown and the alert manager's
# repeat_interval hold back only the same incident; a new one always gets through.
INCIDENT_FIELDS: dict[Signal, tuple[str, ...]] = {
    Signal.FOREIGN_ORDER: ("ip", "order_id", "client_order_id"),  # ip: alert/evidence.py
    Signal.OVERSIZED_REJECT: ("order_id", "client_order_id"),
    Signal.WITHDRAWAL: ("event_id",),  # one withdraw-history fact (its id and status)
    Signal.UNKNOWN_IP: ("ip",),
}


def incident_id(signal: Signal, evidence: dict[str, Any]) -> str | None:
    """`field=value` of the evidence that identifies the incident; None for a condition."""
    for name in INCIDENT_FIELDS.get(signal, ()):
        v = evidence.get(name)
        if isinstance(v, float) and v.is_integer():
            v = int(v)  # the live path carries ids as floats (NaN-able), replay as ints
        if v is not None and v != "":
            return f"{name}={v}"
    return None


def finding_id(rule_id: str, account: str, key: str | None, anchor: object) -> str:
    """Deterministic id: the same rule on the same window or event yields the same finding."""
    digest = hashlib.sha1(f"{rule_id}|{account}|{key}|{anchor}".encode()).hexdigest()[:16]
    return f"{rule_id}:{digest}"
