"""The group stage: findings of one fingerprint fold into one record; an account's records wait
`group_wait` together and leave as one alert.

A record opens (kind `new`) on the first finding of an idle fingerprint; while it waits, each
further finding counts, and the newest evidence of the newest incident is the one shown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from monitor.core.findings import Finding, incident_id
from monitor.store import AlertState

MAX_INCIDENTS = 100  # incident ids remembered per firing fingerprint (the oldest are forgotten)


def open_state(f: Finding, fp: str, inc: str | None, now: int,
               prior: AlertState | None) -> AlertState:
    """A new pending record; the prior one's last notice is kept (cooldown and the next
    alert's `previous_alert_id` read it)."""
    return AlertState(
        fingerprint=fp, account=f.account, rule_id=f.rule_id, key=f.key, state="pending",
        kind="new", pending_since=now, first_seen=f.ts, last_seen=f.ts, count=1, finding=f,
        incidents=(inc,) if inc else (), n_incidents=1,
        last_notified_ts=prior.last_notified_ts if prior else None,
        last_alert_id=prior.last_alert_id if prior else None,
    )


def touch(st: AlertState, f: Finding, inc: str | None, fresh: bool) -> AlertState:
    """One more finding of an open fingerprint: counted, and a new incident remembered."""
    st = replace(st, count=st.count + 1, last_seen=max(st.last_seen, f.ts))
    if fresh:
        assert inc is not None
        st = replace(st, incidents=(*st.incidents, inc)[-MAX_INCIDENTS:],
                     n_incidents=st.n_incidents + 1)
    return st


def waiting(st: AlertState) -> bool:
    """Waiting in its group for the flush (a resolved notice waits too, but takes nothing in)."""
    return st.state == "pending" and st.kind != "resolved"


def join(st: AlertState, f: Finding, inc: str | None, fresh: bool) -> AlertState:
    """Fold a finding into a record still waiting in its group."""
    shown = st.finding
    if fresh or inc is None or inc == incident_id(shown.signal, shown.evidence):
        st = replace(st, finding=f)  # the newest evidence of the newest incident
    if fresh and st.kind == "repeat":
        st = replace(st, kind="update")
    return st


def due(states: Iterable[AlertState], wait_ms: int, now: int, *, final: bool = False
        ) -> list[tuple[str, list[AlertState]]]:
    """Per account (sorted), its pending records, once the oldest has waited `wait_ms`
    (`final`: all of them, at shutdown)."""
    by_account: dict[str, list[AlertState]] = defaultdict(list)
    for st in states:
        if st.state == "pending":
            by_account[st.account].append(st)
    return [
        (account, group) for account, group in sorted(by_account.items())
        if final or min(s.pending_since for s in group) + wait_ms <= now
    ]
