"""The resolve stage: resolved notices, flapping, and where each record goes after a flush.

A resolved finding turns a firing record into a pending `resolved` notice; with nothing
announced (or already cleared) there is nothing to resolve. The same incident firing again
inside the cooldown after its notice went out returns to firing quietly (flapping); firing
again before the notice left cancels the notice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from monitor.alert.stages.base import Counters
from monitor.core.findings import Finding
from monitor.store import AlertState
from monitor.store.alerts import ItemKind, StateName

# a record a silence dropped while it waited goes back to where it was before it waited
BACK: dict[ItemKind, StateName] = {
    "new": "idle", "repeat": "firing", "update": "firing", "resolved": "resolved",
}


def on_resolved(st: AlertState | None, f: Finding, now: int) -> AlertState | None:
    if st is not None and st.state == "firing":
        return replace(st, state="pending", kind="resolved", pending_since=now,
                       last_seen=f.ts, finding=f)
    return None


def refire(st: AlertState, f: Finding, counters: Counters) -> AlertState:
    """The same incident again on a resolved record (inside the cooldown) or on one whose
    resolved notice still waits."""
    if st.state == "resolved":  # flapping inside the cooldown: firing again, quietly
        counters["deduped"] += 1
        return replace(st, state="firing", count=1, first_seen=f.ts)
    return replace(st, state="firing", kind="new", count=1)  # the notice never leaves


def settle(group: Sequence[AlertState], dropped: Sequence[AlertState], alert_id: str | None,
           now: int) -> list[AlertState]:
    """After a group's flush: the dropped ones back, the sent ones firing (or resolved)."""
    out = [replace(st, state=BACK[st.kind]) for st in dropped]
    gone = {st.fingerprint for st in dropped}
    out += [
        replace(st, state="resolved" if st.kind == "resolved" else "firing", count=0,
                last_notified_ts=now, last_alert_id=alert_id)
        for st in group if st.fingerprint not in gone
    ]
    return out
