"""The forest as a detector: an unusual one-minute window is a note; unusual windows of one key
that keep coming back for hours page.

Each key's inputs are scaled against its own level over its previous LEVEL_WINDOWS windows
and its peak over PEAK_WINDOWS (`history`), which live keeps and replay has in full: one
function, both paths.

"Keep coming back": at least PERSIST_MIN anomalous windows of one key within PERSIST_SPAN_MS,
the first and the last at least PERSIST_SPREAD_MS apart. One burst of adjacent odd minutes is
not persistence (the rules judge bursts); a few odd minutes an hour for hours is how a slow,
low-rate misuse looks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

from monitor.core.clock import utc_minute
from monitor.core.findings import Severity, Signal
from monitor.detect.candidate import Candidate, Quiet, Windows, window_candidate
from monitor.detect.forest import ForestModel
from monitor.detect.forestinputs import (
    LEVEL_WINDOWS,
    MIN_LEVEL_WINDOWS,
    PEAK_WINDOWS,
    levels,
    raw,
    scaled,
)
from monitor.detect.rules import Rule
from monitor.features import MINUTE_MS

FOREST_RULE = Rule(
    id="forest.anomaly", title="Unusual key activity (IsolationForest)", kind="forest",
    severity=Severity.WARNING, signal=Signal.ANOMALY,
    description="A one-minute window unlike the key's normal traffic.",
    action="Review the key's recent activity; if you did not make these calls, revoke the key "
           "immediately, check other account settings and inspect your other API keys.",
    params={}, tags=("forest",), cooldown_ms=30 * MINUTE_MS, where="(built in)")
FOREST_PERSISTENT_RULE = Rule(
    id="forest.persistent", title="Unusual key activity for hours (IsolationForest)",
    kind="forest", severity=Severity.HIGH, signal=Signal.ANOMALY,
    description="The key's one-minute windows keep scoring as anomalous over hours: the shape "
                "of a slow, low-rate misuse that stays under every rule's threshold.",
    action=FOREST_RULE.action, params={}, tags=("forest",), cooldown_ms=360 * MINUTE_MS,
    where="(built in)")
PERSIST_MIN, PERSIST_SPAN_MS, PERSIST_SPREAD_MS = 3, 180 * MINUTE_MS, 30 * MINUTE_MS


class Persistence:
    """Anomalous window starts per key; a persistent-anomaly candidate when they keep coming."""

    def __init__(self) -> None:
        self.starts: dict[tuple[str, str], deque[int]] = {}

    def follow(self, cands: Iterable[Candidate]) -> list[Candidate]:
        """Forest candidates in time order -> each, followed by a persistence one when due."""
        out: list[Candidate] = []
        for c in cands:
            out.append(c)
            p = self._count(c)
            if p is not None:
                out.append(p)
        return out

    def _count(self, c: Candidate) -> Candidate | None:
        dq = self.starts.setdefault((c.account, c.key), deque())
        minute = int(c.anchor)
        while dq and dq[0] <= minute - PERSIST_SPAN_MS:
            dq.popleft()
        dq.append(minute)
        if len(dq) < PERSIST_MIN or dq[-1] - dq[0] < PERSIST_SPREAD_MS:
            return None
        hours = (dq[-1] + MINUTE_MS - dq[0]) / 3_600_000
        ev = {**c.evidence, "anomalous_windows": len(dq),
              "anomalous_window_starts_ms": list(dq)}
        summary = (f"{len(dq)} unusual minutes for this key over the last {hours:.1f} h, "
                   f"latest from {utc_minute(minute)}: {c.evidence['reasons'][0]}.")
        return Candidate(rule=FOREST_PERSISTENT_RULE, ts=c.ts, account=c.account, key=c.key,
                         anchor=c.anchor, summary=summary, evidence=ev, group=c.group)


class ForestDetector(Quiet):
    """Scores each new window with the model; explains the ones above its threshold."""

    rules: tuple[Rule, ...] = (FOREST_RULE, FOREST_PERSISTENT_RULE)
    history = max(LEVEL_WINDOWS, PEAK_WINDOWS)

    def __init__(self, model: ForestModel) -> None:
        self.model = model
        self.persistence = Persistence()

    def on_windows(self, w: Windows) -> list[Candidate]:
        new = np.flatnonzero(w.new)
        if not len(new):
            return []
        x = raw(w.frame)
        z = scaled(x, w.key_start)[new]
        scores = self.model.score_inputs(z)
        hit = np.flatnonzero(scores > self.model.threshold)
        if not len(hit):
            return []
        lvl, count = levels(x, w.key_start)
        out = []
        for i in hit:
            row = w.row(int(new[i]))
            known = count[new[i]] >= MIN_LEVEL_WINDOWS
            level = lvl[new[i]] if known else np.full(lvl.shape[1], np.nan)
            reasons = self.model.explain(row, z=z[i], level=level)
            ev = {"score": round(float(scores[i]), 4),
                  "threshold": round(self.model.threshold, 4), "reasons": reasons}
            summary = f"Unusual minute from {utc_minute(int(row['minute']))}: {reasons[0]}."
            out.append(window_candidate(FOREST_RULE, row, ev, summary))
        out.sort(key=lambda c: (c.ts, str(c.anchor)))
        return self.persistence.follow(out)
