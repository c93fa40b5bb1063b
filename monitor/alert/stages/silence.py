"""The silence stage: the one place a silence keeps a finding from alerting.

Checked at intake (active silences now), again when a group's wait is over (a silence added
while it waited), and for each digest finding at its own time; always through `keep`, so each
silenced finding is logged, counted and reported to `on_silenced`: a silence never hides a
finding silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from monitor.alert.stages.base import Counters
from monitor.core.clock import utc_minute
from monitor.core.findings import Finding
from monitor.store import Silence as SilenceRecord
from monitor.store import Store

log = logging.getLogger("monitor.alert.manager")


class Silence:
    def __init__(self, store: Store, counters: Counters,
                 on_silenced: Callable[[Finding], None]) -> None:
        self.store = store
        self.counters = counters
        self.on_silenced = on_silenced

    def run(self, findings: list[Finding], now: int) -> list[Finding]:
        """Intake: the findings no silence active now matches."""
        return self.keep(findings, self.active(now), now)

    def active(self, now: int | None) -> list[SilenceRecord]:
        """The silences active at `now` (None: every silence, for findings of other times)."""
        return self.store.silences(now)

    def keep(self, findings: Sequence[Finding], silences: Sequence[SilenceRecord], now: int,
             *, waited: bool = False) -> list[Finding]:
        out: list[Finding] = []
        for f in findings:
            s = next((s for s in silences if s.matches_finding(f, now)), None)
            if s is None:
                out.append(f)
                continue
            self.counters["silenced"] += 1
            self.on_silenced(f)
            log.info("finding %s (%s, %s/%s%s) silenced%s by silence %d until %s: %s",
                     f.finding_id, f.rule_id, f.account, f.key or "-",
                     f" ip {s.ip}" if s.ip else "", " while its group waited" if waited else "",
                     s.silence_id, utc_minute(s.expires_ts), s.reason)
        return out
