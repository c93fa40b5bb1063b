"""The dedupe and repeat stage, for a fingerprint already announced (firing).

A NEW incident is never held back: it reopens the record as an `update`, whatever the cooldown
or the repeat interval say. The same incident again is a duplicate (counted, not sent) until
`max(repeat_interval, cooldown)` has passed since the last notice; then it is a `repeat`.
"""

from __future__ import annotations

from dataclasses import replace

from monitor.alert.stages.base import Counters
from monitor.config import AlertsConfig
from monitor.core.findings import Finding
from monitor.store import AlertState


class Repeat:
    def __init__(self, cfg: AlertsConfig, counters: Counters) -> None:
        self.cfg = cfg
        self.counters = counters

    @property
    def repeat_ms(self) -> int:
        return int(max(self.cfg.repeat_interval_s, self.cfg.cooldown_s) * 1000)

    def cooling(self, st: AlertState, now: int) -> bool:
        """Notified less than `cooldown` ago."""
        last = st.last_notified_ts
        return last is not None and now - last < self.cfg.cooldown_s * 1000

    @staticmethod
    def update(st: AlertState, f: Finding, now: int) -> AlertState:
        """A new incident of an announced fingerprint: pending at once, showing it."""
        return replace(st, state="pending", kind="update", pending_since=now, finding=f)

    def step(self, st: AlertState, f: Finding, now: int) -> AlertState:
        """The same incident of a firing fingerprint: a reminder once due, else a duplicate."""
        if now - (st.last_notified_ts or 0) >= self.repeat_ms:
            return replace(st, state="pending", kind="repeat", pending_since=now, finding=f)
        self.counters["deduped"] += 1
        return st
