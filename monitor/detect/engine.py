"""The detection engine: events in, findings out, the same way live and in replay.

Live: `process(events)` enriches a batch (advancing the feature state), fires event rules and
posture at once, and holds the batch until `tick(now_ms)` closes its minute; then the windowed
rules and the forest run over the closed windows (with a short per-key history for baselines).
Replay: `replay(df)` runs the very same functions over the whole frame at once. Repeats are held
back by each rule's cooldown per (rule, account, key, group), in time order, in both paths.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.core.events import Event
from monitor.core.findings import Finding, Severity, Signal, finding_id, incident_id
from monitor.detect import posture
from monitor.detect.forest import ForestModel
from monitor.detect.kinds import KINDS, BaselineRatio, as_float, scope_mask
from monitor.detect.rules import Rule, load_rules
from monitor.features import (
    ACCOUNT_ROW,
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

FOREST_RULE = Rule(
    id="forest.anomaly", title="Unusual key activity (IsolationForest)", kind="forest",
    severity=Severity.WARNING, signal=Signal.ANOMALY,
    description="A one-minute window unlike the key's normal traffic.",
    action="Review the key's recent activity; if you did not make these calls, revoke the key "
           "immediately, check other account settings and inspect your other API keys.",
    params={}, tags=("forest",), cooldown_ms=30 * MINUTE_MS, where="(built in)")
# One unusual minute is a note for the digest; unusual minutes that keep coming back for hours
# are how a slow, low-rate misuse looks (a few orders an hour that stay under every threshold),
# so they page. "Keep coming back": at least PERSIST_MIN anomalous windows of one key within
# PERSIST_SPAN_MS, the first and the last at least PERSIST_SPREAD_MS apart (one burst of
# adjacent odd minutes is not persistence; the rules judge bursts).
PERSIST_MIN, PERSIST_SPAN_MS, PERSIST_SPREAD_MS = 3, 180 * MINUTE_MS, 30 * MINUTE_MS
FOREST_PERSISTENT_RULE = Rule(
    id="forest.persistent", title="Unusual key activity for hours (IsolationForest)",
    kind="forest", severity=Severity.HIGH, signal=Signal.ANOMALY,
    description="The key's one-minute windows keep scoring as anomalous over hours: the shape "
                "of a slow, low-rate misuse that stays under every rule's threshold.",
    action=FOREST_RULE.action, params={}, tags=("forest",), cooldown_ms=360 * MINUTE_MS,
    where="(built in)")
EVENT_EVIDENCE = ("ip", "method", "endpoint", "status", "code", "symbol", "side", "qty", "price",
                  "notional", "free_value", "notional_to_free", "usual_notional",
                  "notional_to_usual", "client_order_id", "order_id", "exec_type", "asset",
                  "fclass", "trading_ratio", "source", "kind", "placed_by", "provenance",
                  "ref_price")


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
                 *, use_rules: bool = True, provenance_grace_ms: int | None = None) -> None:
        if provenance_grace_ms is not None:
            ctx = dataclasses.replace(ctx, provenance_grace_ms=int(provenance_grace_ms))
        self.ctx, self.forest = ctx, forest
        rules = rules if use_rules else []
        self.window_rules = [r for r in rules if KINDS[r.kind].stage == "window"]
        self.event_rules = [r for r in rules if KINDS[r.kind].stage == "event"]
        self.posture_rules = [r for r in rules if KINDS[r.kind].stage == "posture"]
        self.rules = {r.id: r for r in rules} | {
            r.id: r for r in (FOREST_RULE, FOREST_PERSISTENT_RULE)}
        self._event_tests = [(r, KINDS[r.kind].row_test(r.params))  # type: ignore[attr-defined]
                             for r in self.event_rules]
        self._baselines = [r for r in self.window_rules if r.kind == "baseline_ratio"]
        self._history_len = 1 + max([r.params.get("baseline_windows", 0)
                                     for r in self.window_rules] + [CONTEXT_MINUTES])
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
        self.fstate = FeatureState()
        self.pstates: dict[str, posture.PostureState] = {}
        self.last_fire: dict[tuple[str, str, str, str, str | None], int] = {}
        self.anomalies: dict[tuple[str, str], deque[int]] = {}  # anomalous window starts
        self.live = LiveFeatures(self.ctx, self.fstate)
        self.key_history: dict[tuple[str, str], dict[str, deque[Any]]] = {}
        self.history = pd.DataFrame()
        self.last_windows = pd.DataFrame()  # the windows the last tick/replay closed
        self._seen_ips: frozenset[tuple[str, str, str]] = frozenset()

    def seen_ips(self) -> frozenset[tuple[str, str, str]]:
        """(account, key, ip) of every address a key was seen calling from, as of the last
        batch. The feature state's own set grows inside `process` on the detection thread; this
        is an immutable copy swapped in after each batch, so the alert renderer can read it
        from the event loop without a lock."""
        return self._seen_ips

    # live ---------------------------------------------------------------------------------
    # The live path runs the same definitions as replay in plain Python, one event at a time
    # (monitor/features/live.py): a pandas frame per small batch costs milliseconds of fixed
    # overhead. tests/detect/test_live_replay.py proves both give identical windows and findings.
    def process(self, events: list[Event]) -> list[Finding]:
        """Enrich a batch (in time order), count it into its windows, fire event rules and
        posture immediately."""
        if not events:
            return []
        if any(a.ts > b.ts for a, b in zip(events, events[1:], strict=False)):
            events = sorted(events, key=lambda e: e.ts)  # stable, as `normalise`
        live = self.live
        cands: list[dict[str, Any]] = []
        polls: list[tuple[int, str, Any, str, str]] = []
        for ev in events:
            for r in live.feed(ev):
                self._live_row(r, cands, polls)
        if polls and self.posture_rules:
            cands.extend(posture.evaluate_polls(self.posture_rules, polls, self.ctx,
                                                self.pstates))
        return self._finalise(cands)

    def _live_row(self, r: dict[str, Any], cands: list[dict[str, Any]],
                  polls: list[tuple[int, str, Any, str, str]]) -> None:
        self.live.add(r)
        for rule, test in self._event_tests:
            if test(r):
                cands.append(self._event_cand(rule, r))
        if r["kind"] == "key_config" and r["raw"] is not None:
            polls.append((r["ts"], r["account"], r["key"], r["event_id"], r["raw"]))

    def settle(self, now_ms: int) -> list[Finding]:
        """Decide the held reports whose grace ended before `now_ms` (event time): no record
        explained them, so they are foreign; event rules fire on them now."""
        cands: list[dict[str, Any]] = []
        for r in self.live.expire(now_ms):
            self._live_row(r, cands, [])
        return self._finalise(cands)

    def next_due_ms(self) -> int | None:
        """Event time after which `settle` has a held report to decide (None: nothing held)."""
        return self.live.prov.next_due()

    def tick(self, now_ms: int) -> list[Finding]:
        """Settle held reports due before `now_ms`, then close every window that ended at or
        before it; run windowed rules + forest."""
        self.last_windows = pd.DataFrame()
        found = self.settle(now_ms)
        rows = self.live.close(now_ms)
        if not rows:
            return found
        return found + self._finalise(self._live_window_candidates(rows))

    def _live_window_candidates(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`_window_candidates` for closed live windows, with per-key history in deques:
        the last hour of untapped orders and each baseline rule's previous values."""
        bases: list[dict[str, float | None]] = []
        span = (CONTEXT_MINUTES - 1) * MINUTE_MS
        for row in rows:
            h = self.key_history.get((row["account"], row["key"]))
            if h is None:
                h = self.key_history[(row["account"], row["key"])] = {"untapped": deque()} | {
                    r.id: deque(maxlen=r.params["baseline_windows"]) for r in self._baselines}
            dq = h["untapped"]
            while dq and dq[0][0] < row["minute"] - span:
                dq.popleft()
            dq.append((row["minute"], row["untapped_orders"]))
            row["untapped_1h"] = float(sum(u for _, u in dq))
            b: dict[str, float | None] = {}
            for rule in self._baselines:
                prev = h[rule.id]
                b[rule.id] = (BaselineRatio.median(list(prev))
                              if len(prev) >= rule.params["min_history"] else None)
                prev.append(row[rule.params["metric"]])
            bases.append(b)
        out: list[dict[str, Any]] = []
        for rule in self.window_rules:
            kind, p = KINDS[rule.kind], rule.params
            m, scope = p["metric"], p.get("scope")
            for row, b in zip(rows, bases, strict=True):
                if (scope == "key" and row["key"] == ACCOUNT_ROW) or (
                        scope == "account" and row["key"] != ACCOUNT_ROW):
                    continue
                v, base = float(row[m]), b.get(rule.id)
                if kind.row_hit(p, v, base):  # type: ignore[attr-defined]
                    out.append(self._window_cand(rule, row, {m: v, "baseline": base},
                                                 self._window_summary(rule, row, v, base)))
        new = pd.DataFrame.from_records(rows, columns=["account", "key", "minute", *FEATURES])
        self.last_windows = new
        out.extend(self._forest_candidates(new))
        return out

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
                out.append(self._event_cand(rule, row))
        out.extend(posture.evaluate(self.posture_rules, e, self.ctx, self.pstates))
        return out

    def _event_cand(self, rule: Rule, row: Any) -> dict[str, Any]:
        """One event rule hit (row: a frame row or a live dict) -> candidate finding."""
        # tapped label or the report's origin; a foreign report names its suspect key
        key = row["wkey"] or (row["placed_by"] if _present(row["placed_by"]) else "")
        group = {g: str(row[g]) for g in rule.params.get("group_by", []) if _present(row[g])}
        if rule.kind == "new_value":
            f = rule.params["field"]
            group = {f: str(row[f])}
        ev = {k: _clean(row[k]) for k in EVENT_EVIDENCE if _present(row[k]) and row[k] != ""}
        ev["event_id"] = row["event_id"]
        return {"rule": rule, "ts": int(row["ts"]), "account": row["account"], "key": key,
                "group": group, "anchor": row["event_id"],
                "summary": self._event_summary(rule, row, key), "evidence": ev}

    @staticmethod
    def _event_summary(rule: Rule, row: Any, key: str) -> str:
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
        out = f"{rule.title} on {who} at {_iso(int(row['ts']))}" + (f" ({detail})." if bits
                                                                     else ".")
        if rule.params.get("while_learning") and _present(row["ip"]):
            out += (f" If {row['ip']} is yours, confirm it: add it to ip_whitelist of key "
                    f"{key}, or `keywatch silence add --rule {rule.id} --account "
                    f"{row['account']} --key {key} --ip {row['ip']} --for 30d --reason "
                    "'known address'`.")
        return out

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
                out.append(self._window_cand(rule, row, {m: v, "baseline": b},
                                             self._window_summary(rule, row, v, b)))
        new = w[w["_new"]]
        self.last_windows = new.drop(columns="_new").reset_index(drop=True)
        out.extend(self._forest_candidates(new))
        return out

    @staticmethod
    def _window_summary(rule: Rule, row: Any, v: float, b: float | None) -> str:
        m = rule.params["metric"]
        if b is None:
            return (f"{m} reached {v:g} in the minute from {_iso(int(row['minute']))} "
                    f"(threshold {rule.params['op']} {rule.params['value']:g}).")
        ref = max(b, rule.params["floor"])
        return (f"{m} was {v:g} in the minute from {_iso(int(row['minute']))}, "
                f"{v / ref:.1f}x its baseline of {b:g}.")

    def _forest_candidates(self, new: pd.DataFrame) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.forest is None or not len(new):
            return out
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
    def _window_cand(rule: Rule, row: Any, extra: dict[str, Any], summary: str
                     ) -> dict[str, Any]:
        minute = int(row["minute"])
        ev = {"window_start_ms": minute, "window_end_ms": minute + MINUTE_MS, **extra,
              "features": {f: _clean(row[f]) for f in FEATURES if row[f]}}
        return {"rule": rule, "ts": minute + MINUTE_MS, "account": row["account"],
                "key": row["key"], "group": {}, "anchor": minute, "summary": summary,
                "evidence": ev}

    def _persistent(self, c: dict[str, Any]) -> dict[str, Any] | None:
        """Count a forest candidate's window; a persistent-anomaly candidate when due."""
        dq = self.anomalies.setdefault((c["account"], c["key"]), deque())
        minute = int(c["anchor"])
        while dq and dq[0] <= minute - PERSIST_SPAN_MS:
            dq.popleft()
        dq.append(minute)
        if len(dq) < PERSIST_MIN or dq[-1] - dq[0] < PERSIST_SPREAD_MS:
            return None
        hours = (dq[-1] + MINUTE_MS - dq[0]) / 3_600_000
        ev = {**c["evidence"], "anomalous_windows": len(dq),
              "anomalous_window_starts_ms": list(dq)}
        summary = (f"{len(dq)} unusual minutes for this key over the last {hours:.1f} h, "
                   f"latest from {_iso(minute)}: {c['evidence']['reasons'][0]}.")
        return {**c, "rule": FOREST_PERSISTENT_RULE, "evidence": ev, "summary": summary}

    def _finalise(self, cands: list[dict[str, Any]]) -> list[Finding]:
        seen = self.fstate.seen["ip"]
        if len(seen) != len(self._seen_ips):  # it only grows (`reset` starts both afresh)
            self._seen_ips = frozenset(seen)
        cands.sort(key=lambda c: (c["ts"], c["rule"].id, str(c["anchor"])))
        expanded: list[dict[str, Any]] = []
        for c in cands:
            expanded.append(c)
            if c["rule"] is FOREST_RULE:
                p = self._persistent(c)
                if p is not None:
                    expanded.append(p)
        out = []
        for c in expanded:
            rule: Rule = c["rule"]
            group = {k: str(v) for k, v in c["group"].items()}
            if rule.excepted(c["account"], c["key"], group):
                continue
            state = c.get("state", "firing")
            # the cooldown holds back the same incident only (findings.INCIDENT_FIELDS)
            tag = (rule.id, c["account"], c["key"], repr(sorted(group.items())),
                   incident_id(rule.signal, c["evidence"]))
            last = self.last_fire.get(tag)
            if state == "firing" and last is not None and c["ts"] - last < rule.cooldown_ms:
                continue
            if state == "firing":
                self.last_fire[tag] = c["ts"]
            out.append(Finding(
                finding_id=finding_id(rule.id, c["account"], c["key"] or None, c["anchor"]),
                ts=c["ts"], rule_id=rule.id, detector="forest" if rule.kind == "forest" else "rule",
                signal=rule.signal, severity=rule.severity, account=c["account"],
                key=c["key"] or None, title=rule.title, summary=c["summary"],
                evidence=c["evidence"], group=group, action=rule.action, tags=rule.tags,
                state=state,
            ))
        return out
