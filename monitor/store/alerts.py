"""The alert records the store keeps: per-fingerprint alert state and the alerts in the outbox.

Frozen dataclasses, not pydantic: they are built only by the alert stages (never parsed from
outside input), every state change is a `dataclasses.replace`, and the store reads them back
from typed columns, so there is nothing to validate beyond what the columns already hold. The
`Finding` they carry is the object itself; only the store turns it into JSON text, for its
column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.core.findings import Finding

# idle: announced nothing (a group dropped whole by a silence while it waited); pending: waiting
# in its group for the flush; firing: announced; resolved: its resolved notice went out
StateName = Literal["idle", "pending", "firing", "resolved"]
# what the pending record will say when flushed: new, update (a new incident of a firing one),
# repeat (the same incident, after the repeat interval), resolved (the resolved notice)
ItemKind = Literal["new", "update", "repeat", "resolved"]
STATES: tuple[StateName, ...] = ("idle", "pending", "firing", "resolved")
ITEM_KINDS: tuple[ItemKind, ...] = ("new", "update", "repeat", "resolved")


@dataclass(frozen=True, slots=True)
class AlertState:
    """One fingerprint's record: where it is in pending -> firing -> resolved, and why."""

    fingerprint: str
    account: str
    rule_id: str
    key: str | None
    state: StateName
    kind: ItemKind
    pending_since: int  # when it started waiting in its group (group_wait counts from here)
    first_seen: int
    last_seen: int
    count: int  # findings folded in since the last notice
    finding: Finding  # the one shown: the newest evidence of the newest incident
    incidents: tuple[str, ...] = ()  # incident ids seen while firing (the newest MAX kept)
    n_incidents: int = 1  # distinct incidents since it started firing
    last_notified_ts: int | None = None
    last_alert_id: str | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"alert state {self.fingerprint}: unknown state {self.state!r}")
        if self.kind not in ITEM_KINDS:
            raise ValueError(f"alert state {self.fingerprint}: unknown kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One fingerprint's line in a stored alert (what the evaluation and the notebook read)."""

    fingerprint: str
    kind: str
    rule_id: str
    finding_id: str
    key: str | None
    signal: str
    count: int
    incident: str | None
    incidents: int


@dataclass(frozen=True, slots=True)
class AlertPayload:
    """What an alert holds beyond its text: the Markdown body, its fingerprints and lines; a
    digest has no lines but names its `day`."""

    markdown: str | None = None
    fingerprints: tuple[str, ...] = ()
    items: tuple[AlertLine, ...] = ()
    day: str | None = None


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """An alert as the outbox holds it (written once, before any send)."""

    alert_id: str
    fingerprint: str
    created_ts: int
    severity: str
    account: str
    key: str | None
    kind: str
    title: str
    body: str
    payload: AlertPayload
