"""Folding paging findings into per-fingerprint records: the state machine, one step each.

Per fingerprint (rule, account, key, the rule's grouping fields) a record walks through

    (none) --finding--> pending --flush after group_wait--> firing --resolved--> pending(resolved)
                                                             |  |                      |
                         repeat_interval and cooldown passed +  + a NEW incident       v
                                          pending(repeat)         pending(update)   resolved

An incident is one fingerprint plus the evidence that names one thing that happened
(`findings.incident_id`); a finding without such evidence is a condition, one incident per
fingerprint. Which stage decides: `resolve` (a resolved finding, flapping), `group` (a new
record, a record still waiting), `repeat` (dedupe and reminders of a firing one).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.alert.render import fingerprint
from monitor.alert.stages import group, resolve
from monitor.alert.stages.base import Counters
from monitor.alert.stages.repeat import Repeat
from monitor.core.findings import Finding, incident_id
from monitor.store import AlertState, Store


class Fold:
    """Holds every pending record (so a restart resumes waiting groups) and the ones touched."""

    def __init__(self, store: Store, repeat: Repeat, counters: Counters) -> None:
        self.store = store
        self.repeat = repeat
        self.counters = counters
        self.states: dict[str, AlertState] = {
            s.fingerprint: s for s in store.load_alert_states(state="pending")
        }

    def run(self, findings: list[Finding], now: int) -> list[AlertState]:
        """Fold each finding in; return the records that changed (to be saved)."""
        self._load({fingerprint(f) for f in findings})
        changed: dict[str, AlertState] = {}
        for f in findings:
            fp = fingerprint(f)
            st = self.step(self.states.get(fp), f, fp, now)
            if st is not None:
                self.states[fp] = st
                changed[fp] = st
        return list(changed.values())

    def step(self, st: AlertState | None, f: Finding, fp: str, now: int) -> AlertState | None:
        inc = incident_id(f.signal, f.evidence)
        if f.state == "resolved":
            return resolve.on_resolved(st, f, now)
        if (st is None or st.state == "idle"
                or (st.state == "resolved" and not self.repeat.cooling(st, now))):
            self.counters["new"] += 1
            return group.open_state(f, fp, inc, now, st)
        fresh = inc is not None and inc not in st.incidents
        st = group.touch(st, f, inc, fresh)
        if fresh:  # a new incident: remembered, shown, and never held back
            self.counters["new_incidents"] += 1
        if group.waiting(st):
            self.counters["grouped"] += 1
            return group.join(st, f, inc, fresh)
        if fresh:  # firing, resolved inside the cooldown, or a resolved notice still waiting
            return self.repeat.update(st, f, now)
        if st.state in ("resolved", "pending"):
            return resolve.refire(st, f, self.counters)
        return self.repeat.step(st, f, now)

    def pending(self) -> list[AlertState]:
        return [s for s in self.states.values() if s.state == "pending"]

    def put(self, states: Iterable[AlertState]) -> None:
        for st in states:
            self.states[st.fingerprint] = st

    def _load(self, fps: set[str]) -> None:
        missing = [fp for fp in fps if fp not in self.states]
        for st in self.store.load_alert_states(fingerprints=missing):
            self.states[st.fingerprint] = st
