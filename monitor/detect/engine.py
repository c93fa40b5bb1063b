"""The detection engine: events in, findings out, the same way live and in replay.

It owns the feature state, the detectors (`candidate.Detector`: every rule kind, posture and
drift, the forest) and the one cooldown, and special-cases none of them:

    events -> enrich (features) -> each detector's event hits            -> candidates
           -> open windows -> lines crossed on the event (count, maximum) -^
    closed minutes -> windows frame (+ kept history) -> each detector's window hits -^
    candidates -> time order -> rule exceptions -> cooldown -> Finding

Live: `process(events)` enriches a batch (advancing the feature state) and fires the event-level
detectors at once; `tick(now_ms)` closes the ended minutes and runs the window detectors over
them, after the per-key history the detectors asked for. Replay: `replay(df)` runs the very
same functions over the whole frame at once (tests/detect/test_live_replay.py proves them equal).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.core.events import Event
from monitor.core.findings import Finding, finding_id
from monitor.detect.anomaly import ForestDetector
from monitor.detect.candidate import Candidate, Detector, Row, Windows
from monitor.detect.cooldown import Cooldown
from monitor.detect.forest import ForestModel
from monitor.detect.kinds import build_detectors
from monitor.detect.rules import Rule, load_rules
from monitor.detect.warmup import WarmUpReport, key_progress, plan
from monitor.features import (
    CONTEXT_MINUTES,
    FEATURES,
    MINUTE_MS,
    FeatureContext,
    FeatureState,
    add_context,
    aggregate,
    enrich,
    normalise,
)
from monitor.features.live import LiveFeatures

WINDOW_COLUMNS = ["account", "key", "minute", *FEATURES]
CHUNK = 256  # events enriched, then judged by every event detector, at a time


class DetectionEngine:
    def __init__(self, ctx: FeatureContext, rules: list[Rule], forest: ForestModel | None = None,
                 *, use_rules: bool = True, provenance_grace_ms: int | None = None) -> None:
        if provenance_grace_ms is not None:
            ctx = dataclasses.replace(ctx, provenance_grace_ms=int(provenance_grace_ms))
        self.ctx, self.forest = ctx, forest
        self.rule_list = rules if use_rules else []
        self.reset()

    @classmethod
    def from_config(cls, cfg: Config, rules_dir: str | Path | None = None,
                    model_path: str | Path | None = None, *, isolated: bool = False,
                    **kw: Any) -> DetectionEngine:
        """`isolated`: load the model without importing scikit-learn (the service's way)."""
        rules = load_rules(rules_dir or cfg.rules_dir)
        forest = ForestModel.load(model_path, isolated=isolated) if model_path else None
        return cls(FeatureContext.from_config(cfg), rules, forest, **kw)

    def reset(self) -> None:
        """Fresh state: features, detectors (their own state: posture, persistence), cooldown."""
        self.detectors: list[Detector] = build_detectors(self.rule_list, self.ctx)
        if self.forest is not None:
            self.detectors.append(ForestDetector(self.forest))
        self.rules = {r.id: r for d in self.detectors for r in d.rules}
        self.crossers = [d for d in self.detectors if d.crossing]
        self._history_len = 1 + max([d.history for d in self.detectors] + [CONTEXT_MINUTES])
        self.fstate = FeatureState()
        self.cooldown = Cooldown()
        self.live = LiveFeatures(self.ctx, self.fstate)
        self.history = pd.DataFrame()  # the last windows per key, for the next minute's close
        self.last_windows = pd.DataFrame()  # the windows the last tick/replay closed
        self._seen_ips: frozenset[tuple[str, str, str]] = frozenset()

    def seen_ips(self) -> frozenset[tuple[str, str, str]]:
        """(account, key, ip) of every address a key was seen calling from, as of the last
        batch. The feature state's own set grows inside `process` on the detection thread; this
        is an immutable copy swapped in after each batch, so the alert renderer can read it
        from the event loop without a lock."""
        return self._seen_ips

    def warm_up_report(self, now_ms: int) -> WarmUpReport:
        """What judges from a key's first event, what after an hour or a day (`warmup.plan`),
        and for each key seen so far the rules still learning it (first sightings since the
        engine started: after a restart, from the replayed store history)."""
        rules = list(self.rules.values())
        first: dict[str, int] = self.fstate.facts.get("key_first_ts", {})  # type: ignore[assignment]
        keys = []
        # copied in one C-level step (str keys, int values: the GIL is held throughout), so the
        # service may ask from its event loop while detection adds keys on its thread
        for ak, ts in sorted(list(first.items())):
            account, _, key = ak.partition("\x1f")
            keys.append(key_progress(rules, account, key, max(0, now_ms - ts) // MINUTE_MS,
                                     bool(self.ctx.whitelists.get((account, key)))))
        return WarmUpReport(plan=plan(rules), keys=keys)

    # live ---------------------------------------------------------------------------------
    # Events go one at a time through plain Python (monitor/features/live.py): a pandas frame
    # per small batch costs milliseconds of fixed overhead. Windows close once a minute, so
    # they take the frame path replay takes.
    def process(self, events: list[Event]) -> list[Finding]:
        """Enrich a batch (in time order), count it into its windows, fire the event-level
        detectors immediately."""
        if not events:
            return []
        if any(a.ts > b.ts for a, b in zip(events, events[1:], strict=False)):
            events = sorted(events, key=lambda e: e.ts)  # stable, as `normalise`
        cands: list[Candidate] = []
        for i in range(0, len(events), CHUNK):  # detectors read rows while they are in cache
            rows: list[Row] = []
            for ev in events[i:i + CHUNK]:
                for r in self.live.feed(ev):
                    self._count(r, cands)
                    rows.append(r)
            cands += [c for d in self.detectors for c in d.on_rows(rows)]
        return self._finalise(cands)

    def _count(self, r: Row, crossed: list[Candidate]) -> None:
        """Fold a row into its open window; a window that crosses a line on it is reported."""
        w = self.live.add(r)
        for d in self.crossers:
            c = d.on_count(r, w)
            if c is not None:
                crossed.append(c)

    def settle(self, now_ms: int) -> list[Finding]:
        """Decide the held reports whose grace ended before `now_ms` (event time): no record
        explained them, so they are foreign; event-level detectors judge them now."""
        rows = self.live.expire(now_ms)
        crossed: list[Candidate] = []
        for r in rows:
            self._count(r, crossed)
        return self._finalise(crossed + [c for d in self.detectors for c in d.on_rows(rows)])

    def next_due_ms(self) -> int | None:
        """Event time after which `settle` has a held report to decide (None: nothing held)."""
        return self.live.prov.next_due()

    def tick(self, now_ms: int) -> list[Finding]:
        """Settle held reports due before `now_ms`, then close every window that ended at or
        before it and run the window detectors over them."""
        self.last_windows = pd.DataFrame()
        found = self.settle(now_ms)
        rows = self.live.close(now_ms)
        if not rows:
            return found
        # features as one float block (one array, not forty columns to consolidate)
        new = pd.DataFrame(np.array([[r[f] for f in FEATURES] for r in rows], dtype=float),
                           columns=list(FEATURES))
        new.insert(0, "minute", np.array([r["minute"] for r in rows], dtype=np.int64))
        new.insert(0, "key", [r["key"] for r in rows])
        new.insert(0, "account", [r["account"] for r in rows])
        return found + self._finalise(self._window_candidates(new))

    # replay -------------------------------------------------------------------------------
    def replay(self, df: pd.DataFrame) -> list[Finding]:
        """A whole events frame through the same functions, vectorised; fresh state."""
        self.reset()
        e = enrich(normalise(df), self.ctx, self.fstate)
        cands = [c for d in self.detectors for c in d.on_frame(e)]
        return self._finalise(cands + self._window_candidates(aggregate(e)))

    def warm_up(self, before: pd.DataFrame, current: list[Event]) -> int:
        """Rebuild the state a restart lost from events the store already holds: `before` (up
        to the current minute) through replay, `current` (this minute's) through the live path,
        so the next events continue where they left off: first sightings, each key's learning
        day, baselines, held reports, the cooldown. Their findings were given before the
        restart and are dropped here. Returns the events replayed."""
        self.replay(before)
        self.process(current)
        return len(before) + len(current)

    # both ---------------------------------------------------------------------------------
    def _window_candidates(self, new: pd.DataFrame) -> list[Candidate]:
        """New windows after the kept history (context features, baselines) -> each window
        detector's hits; the history keeps what the detectors need for the next close."""
        if new.empty:
            return []
        w = new.assign(_new=True)
        if len(self.history):
            w = pd.concat([self.history.assign(_new=False), w], ignore_index=True)
        windows = Windows(add_context(w))  # sorted by (account, key, minute)
        w = windows.frame.drop(columns="_new")
        self.history = w[windows.last_of_key(self._history_len)].reset_index(drop=True)
        self.last_windows = w[windows.new].reset_index(drop=True)
        return [c for d in self.detectors for c in d.on_windows(windows)]

    def _finalise(self, cands: list[Candidate]) -> list[Finding]:
        seen = self.fstate.seen["ip"]
        if len(seen) != len(self._seen_ips):  # it only grows (`reset` starts both afresh)
            self._seen_ips = frozenset(seen)
        cands.sort(key=lambda c: (c.ts, c.rule.id, str(c.anchor)))
        return [to_finding(c) for c in cands
                if not c.rule.excepted(c.account, c.key, dict(c.group))
                and self.cooldown.admit(c)]


def to_finding(c: Candidate) -> Finding:
    """A decided candidate as the Finding the store and the alert stages take."""
    rule = c.rule
    return Finding(
        finding_id=finding_id(rule.id, c.account, c.key or None, c.anchor), ts=c.ts,
        rule_id=rule.id, detector="forest" if rule.kind == "forest" else "rule",
        signal=rule.signal, severity=rule.severity, account=c.account, key=c.key or None,
        title=rule.title, summary=c.summary, evidence=c.evidence, group=dict(c.group),
        action=rule.action, tags=rule.tags, state=c.state)
