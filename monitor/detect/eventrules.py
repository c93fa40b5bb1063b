"""Event rules: fire on one enriched event, at once (a first sighting, a matching event).

Each kind holds its test in two forms of one predicate: a frame mask (replay) and a row test
(live), proven equal by tests/detect/test_live_replay.py. `event_candidate` is the one place an
event hit becomes a candidate, in both paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.core.clock import utc_minute
from monitor.detect.candidate import Candidate, Quiet, Row, clean, present
from monitor.detect.rules import Rule
from monitor.detect.where import RowTest, Where, match_where, row_matcher

EVENT_EVIDENCE = ("ip", "method", "endpoint", "status", "code", "symbol", "side", "qty", "price",
                  "notional", "free_value", "notional_to_free", "usual_notional",
                  "notional_to_usual", "client_order_id", "order_id", "exec_type", "asset",
                  "fclass", "trading_ratio", "source", "kind", "placed_by", "provenance",
                  "ref_price")


def event_candidate(rule: Rule, row: Any, group_by: Sequence[str]) -> Candidate:
    """One event hit (row: a frame row or a live dict) -> its candidate. The key is the tapped
    label or, for a report no bot explains, the key it names as suspect."""
    key = row["wkey"] or (row["placed_by"] if present(row["placed_by"]) else "")
    group = {g: str(row[g]) for g in group_by if present(row[g])}
    ev = {k: clean(row[k]) for k in EVENT_EVIDENCE if present(row[k]) and row[k] != ""}
    ev["event_id"] = row["event_id"]
    return Candidate(rule=rule, ts=int(row["ts"]), account=row["account"], key=key,
                     anchor=row["event_id"], summary=event_summary(rule, row, key),
                     evidence=ev, group=group)


def event_summary(rule: Rule, row: Any, key: str) -> str:
    who = f"key {key}" if key else f"account {row['account']}"
    bits = []
    if present(row["ip"]):
        bits.append(f"from {row['ip']}")
    if present(row["code"]):
        bits.append(f"code {int(row['code'])}")
    if present(row["notional"]):
        bits.append(f"notional {row['notional']:.2f}")
    if present(row["free_value"]):
        bits.append(f"free balance {row['free_value']:.2f}")
    detail = ", ".join(bits)
    at = utc_minute(int(row["ts"]))
    out = f"{rule.title} on {who} at {at}" + (f" ({detail})." if bits else ".")
    if rule.params.get("while_learning") and present(row["ip"]):
        out += (f" If {row['ip']} is yours, confirm it: add it to ip_whitelist of key "
                f"{key}, or `keywatch silence add --rule {rule.id} --account "
                f"{row['account']} --key {key} --ip {row['ip']} --for 30d --reason "
                "'known address'`.")
    return out


class EventRule(Quiet):
    """Shared by the event kinds: the mask picks rows, `event_candidate` builds each hit."""

    group_by: tuple[str, ...] = ()

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.rules = (rule,)

    def mask(self, e: pd.DataFrame) -> pd.Series:
        raise NotImplementedError

    test: RowTest

    def on_frame(self, e: pd.DataFrame) -> list[Candidate]:
        hit = self.mask(e)
        return [event_candidate(self.rule, row, self.group_by) for _, row in e[hit].iterrows()]

    def on_rows(self, rows: Sequence[Row]) -> list[Candidate]:
        test = self.test
        return [event_candidate(self.rule, r, self.group_by) for r in rows if test(r)]


@dataclass(frozen=True, slots=True)
class NewValueParams:
    field: str
    learn_ms: int
    while_learning: bool
    where: Where | None


class NewValue(EventRule):
    """First sighting for the key, outside the whitelist; learned silently while learning.

    With a declared whitelist the whitelist is the truth (no learning); without one the
    first `learn_minutes` of a key's history teach the usual set. `while_learning: true`
    reports exactly those learned ones (first sightings with no declared whitelist inside
    the learning time) and nothing else, so learning never absorbs a caller unseen. The
    finding is grouped by the new value itself.
    """

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        p = rule.params
        self.p = NewValueParams(p["field"], int(p["learn_minutes"] * 60_000),
                                bool(p["while_learning"]), p.get("where"))
        self.group_by = (self.p.field,)
        self.test = self._row_test()

    def mask(self, e: pd.DataFrame) -> pd.Series:
        f = self.p.field
        rows = np.flatnonzero(e[f"first_{f}"].to_numpy(dtype=bool))  # few: judge only those
        hit_rows = np.zeros(len(e), dtype=bool)
        if len(rows):
            wl = e["ip_whitelisted"].to_numpy()[rows] if f == "ip" else [None] * len(rows)
            learned = (e["ts"].to_numpy()[rows] - e["key_first_ts"].to_numpy()[rows]
                       ) < self.p.learn_ms
            is_true = np.array([v is not None and bool(v == True) for v in wl],  # noqa: E712
                               dtype=bool)
            is_false = np.array([v is not None and bool(v == False) for v in wl],  # noqa: E712
                                dtype=bool)
            if self.p.while_learning:
                hit_rows[rows] = ~is_true & ~is_false & learned
            else:
                hit_rows[rows] = ~is_true & (is_false | ~learned)
        hit = pd.Series(hit_rows, index=e.index)
        if self.p.where is not None:
            hit &= match_where(e, self.p.where)
        return hit

    def _row_test(self) -> RowTest:
        f, learn, while_learning = self.p.field, self.p.learn_ms, self.p.while_learning
        where = row_matcher(self.p.where) if self.p.where is not None else None

        def test(r: Row) -> bool:
            if not r[f"first_{f}"]:
                return False
            wl = r["ip_whitelisted"] if f == "ip" else None
            if wl is True:
                return False
            learned = wl is not False and (r["ts"] - r["key_first_ts"]) < learn
            if learned != while_learning:
                return False
            return where is None or where(r)
        return test


class EventMatch(EventRule):
    """Any event matching the rule's `where`, grouped by its `group_by` fields."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.where: Where = rule.params["where"]
        self.group_by = tuple(rule.params.get("group_by", ()))
        self.test = row_matcher(self.where)

    def mask(self, e: pd.DataFrame) -> pd.Series:
        return match_where(e, self.where)
