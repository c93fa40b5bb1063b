"""The detection engine: events in, findings out, the same way live and in replay.

Live: `process(events)` enriches a batch (advancing the feature state), fires event rules and
posture at once, and holds the batch until `tick(now_ms)` closes its minute; then the windowed
rules and the forest run over the closed windows (with a short per-key history for baselines).
Replay: `replay(df)` runs the very same functions over the whole frame at once. Repeats are held
back by each rule's cooldown per (rule, account, key, group), in time order, in both paths.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.detect import posture
from monitor.detect.forest import ForestModel
from monitor.detect.kinds import KINDS, as_float, scope_mask
from monitor.detect.rules import Rule, load_rules
from monitor.events import Event
from monitor.features import (
    CONTEXT_MINUTES,
    FEATURES,
    MINUTE_MS,
    FeatureContext,
    FeatureState,
    add_context,
    aggregate,
    enrich,
    events_to_frame,
    normalise,
)
from monitor.findings import Finding, Severity, Signal, finding_id

FOREST_RULE = Rule(
    id="forest.anomaly", title="Unusual key activity (IsolationForest)", kind="forest",
    severity=Severity.WARNING, signal=Signal.ANOMALY,
    description="A one-minute window unlike the key's normal traffic.",
    action="Review the key's recent activity; if you did not make these calls, revoke the key "
           "immediately, check other account settings and inspect your other API keys.",
    params={}, tags=("forest",), cooldown_ms=30 * MINUTE_MS, where="(built in)")
EVENT_EVIDENCE = ("ip", "method", "endpoint", "status", "code", "symbol", "side", "qty", "price",
                  "notional", "free_value", "notional_to_free", "usual_notional",
                  "notional_to_usual", "client_order_id", "order_id", "exec_type", "asset",
                  "fclass", "trading_ratio", "source", "kind")


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clean(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(as_float(v), 6)
    return v


def _present(v: Any) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and v != v)


class DetectionEngine:
    def __init__(self, ctx: FeatureContext, rules: list[Rule], forest: ForestModel | None = None,
                 *, use_rules: bool = True) -> None:
        self.ctx, self.forest = ctx, forest
        rules = rules if use_rules else []
        self.window_rules = [r for r in rules if KINDS[r.kind].stage == "window"]
        self.event_rules = [r for r in rules if KINDS[r.kind].stage == "event"]
        self.posture_rules = [r for r in rules if KINDS[r.kind].stage == "posture"]
        self.rules = {r.id: r for r in rules} | {FOREST_RULE.id: FOREST_RULE}
        self._history_len = 1 + max([r.params.get("baseline_windows", 0)
                                     for r in self.window_rules] + [CONTEXT_MINUTES])
        self.reset()

    @classmethod
    def from_config(cls, cfg: Config, rules_dir: str | Path | None = None,
                    model_path: str | Path | None = None, **kw: Any) -> DetectionEngine:
        rules = load_rules(rules_dir or cfg.rules_dir)
        forest = ForestModel.load(model_path) if model_path else None
        return cls(FeatureContext.from_config(cfg), rules, forest, **kw)

    def reset(self) -> None:
        self.fstate = FeatureState()
        self.pstates: dict[str, posture.PostureState] = {}
        self.last_fire: dict[tuple[str, str, str, str], int] = {}
        self.pending: list[pd.DataFrame] = []
        self.history = pd.DataFrame()
        self.last_windows = pd.DataFrame()  # the windows the last tick/replay closed

    # live ---------------------------------------------------------------------------------
    def process(self, events: list[Event]) -> list[Finding]:
        """Enrich a batch (in time order) and fire event rules and posture immediately."""
        if not events:
            return []
        e = enrich(events_to_frame(events), self.ctx, self.fstate)
        self.pending.append(e)
        return self._finalise(self._event_candidates(e))

    def tick(self, now_ms: int) -> list[Finding]:
        """Close every window that ended at or before `now_ms`; run windowed rules + forest."""
        self.last_windows = pd.DataFrame()
        if not self.pending:
            return []
        e = pd.concat(self.pending, ignore_index=True) if len(self.pending) > 1 else self.pending[0]
        done = (e["minute"] + MINUTE_MS) <= now_ms
        rest = e[~done]
        self.pending = [rest.reset_index(drop=True)] if len(rest) else []
        if not done.any():
            return []
        return self._finalise(self._window_candidates(aggregate(e[done])))

    # replay -------------------------------------------------------------------------------
    def replay(self, df: pd.DataFrame) -> list[Finding]:
        """A whole events frame through the same functions, vectorised; fresh state."""
        self.reset()
        e = enrich(normalise(df), self.ctx, self.fstate)
        cands = self._event_candidates(e) + self._window_candidates(aggregate(e))
        return self._finalise(cands)

    # internals ----------------------------------------------------------------------------
    def _event_candidates(self, e: pd.DataFrame) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for rule in self.event_rules:
            hit = KINDS[rule.kind].mask(rule.params, e)  # type: ignore[attr-defined]
            for _, row in e[hit].iterrows():
                key = row["wkey"]  # tapped label or clientOrderId owner; "" = account level
                group = {g: str(row[g]) for g in rule.params.get("group_by", [])
                         if _present(row[g])}
                if rule.kind == "new_value":
                    f = rule.params["field"]
                    group = {f: str(row[f])}
                ev = {k: _clean(row[k]) for k in EVENT_EVIDENCE if _present(row[k])}
                ev["event_id"] = row["event_id"]
                out.append({"rule": rule, "ts": int(row["ts"]), "account": row["account"],
                            "key": key, "group": group, "anchor": row["event_id"],
                            "summary": self._event_summary(rule, row, key), "evidence": ev})
        out.extend(posture.evaluate(self.posture_rules, e, self.ctx, self.pstates))
        return out

    @staticmethod
    def _event_summary(rule: Rule, row: pd.Series, key: str) -> str:
        who = f"key {key}" if key else f"account {row['account']}"
        bits = []
        if _present(row["ip"]):
            bits.append(f"from {row['ip']}")
        if _present(row["code"]):
            bits.append(f"code {int(row['code'])}")
        if _present(row["notional"]):
            bits.append(f"notional {row['notional']:.2f}")
        if _present(row["free_value"]):
            bits.append(f"free balance {row['free_value']:.2f}")
        detail = ", ".join(bits)
        return f"{rule.title} on {who} at {_iso(int(row['ts']))}" + (f" ({detail})." if bits
                                                                      else ".")

    def _window_candidates(self, w: pd.DataFrame) -> list[dict[str, Any]]:
        if w.empty:
            return []
        w = w.assign(_new=True)
        if len(self.history):
            w = pd.concat([self.history.assign(_new=False), w], ignore_index=True)
        w = add_context(w)
        self.history = (w.groupby(["account", "key"], sort=False).tail(self._history_len)
                        .drop(columns="_new").reset_index(drop=True))
        out: list[dict[str, Any]] = []
        for rule in self.window_rules:
            hit, base = KINDS[rule.kind].mask(rule.params, w)  # type: ignore[attr-defined]
            hit = hit & scope_mask(rule.params, w) & w["_new"]
            m = rule.params["metric"]
            for i in np.flatnonzero(hit.to_numpy()):
                row = w.iloc[i]
                v = float(row[m])
                b = None if base is None else float(base.iloc[i])
                if b is None:
                    summary = (f"{m} reached {v:g} in the minute from {_iso(int(row['minute']))} "
                               f"(threshold {rule.params['op']} {rule.params['value']:g}).")
                else:
                    ref = max(b, rule.params["floor"])
                    summary = (f"{m} was {v:g} in the minute from {_iso(int(row['minute']))}, "
                               f"{v / ref:.1f}x its baseline of {b:g}.")
                out.append(self._window_cand(rule, row, {m: v, "baseline": b}, summary))
        new = w[w["_new"]]
        self.last_windows = new.drop(columns="_new").reset_index(drop=True)
        if self.forest is not None and len(new):
            scores = self.forest.score(new)
            for i in np.flatnonzero(scores > self.forest.threshold):
                row = new.iloc[i]
                reasons = self.forest.explain(row)
                ev = {"score": round(float(scores[i]), 4),
                      "threshold": round(self.forest.threshold, 4), "reasons": reasons}
                summary = f"Unusual minute from {_iso(int(row['minute']))}: {reasons[0]}."
                out.append(self._window_cand(FOREST_RULE, row, ev, summary))
        return out

    @staticmethod
    def _window_cand(rule: Rule, row: pd.Series, extra: dict[str, Any], summary: str
                     ) -> dict[str, Any]:
        minute = int(row["minute"])
        ev = {"window_start_ms": minute, "window_end_ms": minute + MINUTE_MS, **extra,
              "features": {f: _clean(row[f]) for f in FEATURES if row[f]}}
        return {"rule": rule, "ts": minute + MINUTE_MS, "account": row["account"],
                "key": row["key"], "group": {}, "anchor": minute, "summary": summary,
                "evidence": ev}

    def _finalise(self, cands: list[dict[str, Any]]) -> list[Finding]:
        cands.sort(key=lambda c: (c["ts"], c["rule"].id, str(c["anchor"])))
        out = []
        for c in cands:
            rule: Rule = c["rule"]
            group = {k: str(v) for k, v in c["group"].items()}
            if rule.excepted(c["account"], c["key"], group):
                continue
            state = c.get("state", "firing")
            tag = (rule.id, c["account"], c["key"], repr(sorted(group.items())))
            last = self.last_fire.get(tag)
            if state == "firing" and last is not None and c["ts"] - last < rule.cooldown_ms:
                continue
            if state == "firing":
                self.last_fire[tag] = c["ts"]
            out.append(Finding(
                finding_id=finding_id(rule.id, c["account"], c["key"] or None, c["anchor"]),
                ts=c["ts"], rule_id=rule.id, detector="forest" if rule is FOREST_RULE else "rule",
                signal=rule.signal, severity=rule.severity, account=c["account"],
                key=c["key"] or None, title=rule.title, summary=c["summary"],
                evidence=c["evidence"], group=group, action=rule.action, tags=rule.tags,
                state=state,
            ))
        return out
