"""The registry of rule kinds: each declares its parameters, validates them, and evaluates.

Window kinds (threshold, baseline_ratio) read the feature windows; event kinds (new_value,
event_match) read enriched events and fire at once; posture reads key_config polls (its checks
live in `posture.py`). Evaluation is vectorised: a kind returns the rows that match, never loops
over events, so replay of millions of events stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from monitor.core.events import EVENT_COLUMNS
from monitor.features import DERIVED_FIELDS, FEATURES, NEW_VALUE_FIELDS

EVENT_FIELDS = tuple(c for c in EVENT_COLUMNS if c != "raw") + DERIVED_FIELDS
OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "exists")
SCOPES = ("key", "account", "any")

Errors = list[tuple[str, str]]  # (field the problem is on, message with the fix)


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_metric(p: dict[str, Any], errs: Errors) -> None:
    m = p.get("metric")
    if m not in FEATURES:
        errs.append(("metric", f"unknown metric {m!r}; known: {', '.join(FEATURES)}"))


def _check_scope(p: dict[str, Any], errs: Errors) -> None:
    p.setdefault("scope", "any")
    if p["scope"] not in SCOPES:
        errs.append(("scope", f"scope {p['scope']!r} is not one of {', '.join(SCOPES)}"))


def validate_where(where: Any, lists: dict[str, list[Any]], errs: Errors) -> dict[str, Any]:
    """`{field: value}` or `{field: {op: value}}`; list names expand for in/not_in."""
    out: dict[str, Any] = {}
    if not isinstance(where, dict) or not where:
        errs.append(("where", "where must be a non-empty mapping of field: {op: value}"))
        return out
    for fld, cond in where.items():
        if fld not in EVENT_FIELDS:
            errs.append(("where", f"unknown field {fld!r} in where; known: "
                                  f"{', '.join(EVENT_FIELDS)}"))
            continue
        conds = cond if isinstance(cond, dict) else {"eq": cond}
        clean = {}
        for op, val in conds.items():
            if op not in OPS:
                errs.append(("where", f"unknown operator {op!r} on {fld}; known: "
                                      f"{', '.join(OPS)}"))
                continue
            if op in ("in", "not_in"):
                if isinstance(val, str):
                    if val not in lists:
                        errs.append(("where", f"list {val!r} is not defined; add it under "
                                              "`lists:` in the same file"))
                        continue
                    val = lists[val]
                if not isinstance(val, list):
                    errs.append(("where", f"{fld}.{op} needs a list or a list name"))
                    continue
            if op in ("gt", "ge", "lt", "le") and not _num(val):
                errs.append(("where", f"{fld}.{op} needs a number, got {val!r}"))
                continue
            clean[op] = val
        out[fld] = clean
    return out


def match_where(df: pd.DataFrame, where: dict[str, Any]) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for fld, conds in where.items():
        col = df[fld]
        for op, val in conds.items():
            if op == "exists":
                m = col.notna() if val else col.isna()
            elif op in ("gt", "ge", "lt", "le"):
                x = pd.to_numeric(col, errors="coerce")
                m = getattr(x, op)(val).fillna(False).astype(bool)
            elif op == "eq":
                m = col.eq(val).fillna(False).astype(bool) if val is not None else col.isna()
            elif op == "ne":
                m = ~col.eq(val).fillna(False).astype(bool)
            elif op == "in":
                m = col.isin(val)
            else:
                m = ~col.isin(val)
            mask &= m
        if not mask.any():
            break
    return mask


Row = dict[str, Any]
RowTest = Callable[[Row], bool]


def _missing(v: Any) -> bool:
    return v is None or v != v


def _to_num(v: Any) -> float:
    """pd.to_numeric(errors="coerce") for one value."""
    if _missing(v):
        return float("nan")
    if isinstance(v, (bool, int, float)):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _row_op(fld: str, op: str, val: Any) -> RowTest:
    """One `{op: value}` predicate of `match_where`, for one enriched row (the live path)."""
    if op == "exists":
        return (lambda r: not _missing(r[fld])) if val else (lambda r: _missing(r[fld]))
    if op in ("gt", "ge", "lt", "le"):
        cmp = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}[op]
        fval = float(val)
        return lambda r: bool(cmp(_to_num(r[fld]), fval))
    if op in ("eq", "ne"):
        if val is None:
            eq: RowTest = lambda r: _missing(r[fld])  # noqa: E731
        else:  # None and nan never equal a value
            eq = lambda r: r[fld] == val  # noqa: E731
        return eq if op == "eq" else (lambda r: not eq(r))
    vals = list(val)
    isin: RowTest = lambda r: not _missing(r[fld]) and r[fld] in vals  # noqa: E731
    return isin if op == "in" else (lambda r: not isin(r))


def row_matcher(where: dict[str, Any]) -> RowTest:
    """`match_where` for a single row (dict): all predicates hold."""
    tests = [_row_op(fld, op, val) for fld, conds in where.items() for op, val in conds.items()]
    if len(tests) == 1:
        return tests[0]

    def test(r: Row) -> bool:
        for t in tests:
            if not t(r):
                return False
        return True
    return test


@dataclass(frozen=True)
class Kind:
    name: str
    params: tuple[str, ...]
    stage: str  # "window", "event" or "posture"

    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        raise NotImplementedError


class Threshold(Kind):
    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        p, errs = dict(raw), cast(Errors, [])
        _check_metric(p, errs)
        _check_scope(p, errs)
        p.setdefault("op", ">=")
        if p["op"] not in (">=", ">"):
            errs.append(("op", "op must be '>=' or '>'"))
        if not _num(p.get("value")):
            errs.append(("value", "threshold needs `value: <number>`"))
        return p, errs

    def mask(self, p: dict[str, Any], w: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
        v = w[p["metric"]]
        return (v > p["value"] if p["op"] == ">" else v >= p["value"]), None

    def row_hit(self, p: dict[str, Any], v: float, base: float | None) -> bool:
        """`mask` for one window value (the live path)."""
        return v > p["value"] if p["op"] == ">" else v >= p["value"]

    def score(self, p: dict[str, Any], w: pd.DataFrame) -> np.ndarray:
        """Detector contract: higher = more anomalous; >= 1 at the threshold."""
        return (w[p["metric"]] / p["value"]).to_numpy(dtype=float)


class BaselineRatio(Kind):
    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        p, errs = dict(raw), cast(Errors, [])
        _check_metric(p, errs)
        _check_scope(p, errs)
        p.setdefault("baseline_windows", 60)
        p.setdefault("min_history", 10)
        p.setdefault("floor", 1.0)
        if not _num(p.get("ratio")) or p.get("ratio", 0) <= 1:
            errs.append(("ratio", "baseline_ratio needs `ratio: <number > 1>`"))
        if not _num(p.get("min_count")) or p.get("min_count", 0) <= 0:
            errs.append(("min_count", "baseline_ratio needs `min_count: <number > 0>` so one "
                                      "event in a quiet hour is not a jump"))
        for k in ("baseline_windows", "min_history"):
            if not isinstance(p[k], int) or p[k] < 1:
                errs.append((k, f"{k} must be an integer >= 1"))
        if not _num(p["floor"]) or p["floor"] <= 0:
            errs.append(("floor", "floor must be a number > 0"))
        return p, errs

    def mask(self, p: dict[str, Any], w: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
        """Robust baseline: median of the group's previous N windows (the current excluded)."""
        m = p["metric"]
        keys = [w["account"], w["key"]]
        prev = w[m].groupby(keys, sort=False, observed=True).shift(1)
        base = (prev.groupby(keys, sort=False, observed=True)
                .rolling(p["baseline_windows"], min_periods=p["min_history"]).median()
                .droplevel([0, 1]).reindex(w.index))
        ref = base.clip(lower=p["floor"])
        hit = (w[m] >= p["min_count"]) & (w[m] >= p["ratio"] * ref) & base.notna()
        return hit, base

    @staticmethod
    def median(prev: list[float]) -> float:
        """The rolling median `mask` takes, over the previous windows' values."""
        s = sorted(prev)
        n, mid = len(s), len(s) // 2
        return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2

    def row_hit(self, p: dict[str, Any], v: float, base: float | None) -> bool:
        """`mask` for one window value and its baseline (None: too little history)."""
        if base is None:
            return False
        return v >= p["min_count"] and v >= p["ratio"] * max(base, p["floor"])

    def score(self, p: dict[str, Any], w: pd.DataFrame) -> np.ndarray:
        """Detector contract: higher = more anomalous; >= 1 exactly where the rule fires."""
        _, base = self.mask(p, w)
        assert base is not None
        v = w[p["metric"]]
        s = np.minimum(v / p["min_count"], v / (p["ratio"] * base.clip(lower=p["floor"])))
        return s.fillna(0.0).to_numpy(dtype=float)


class NewValue(Kind):
    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        p, errs = dict(raw), cast(Errors, [])
        if p.get("field") not in NEW_VALUE_FIELDS:
            errs.append(("field", f"new_value field must be one of {', '.join(NEW_VALUE_FIELDS)}"))
        p.setdefault("learn_minutes", 1440)
        if not _num(p["learn_minutes"]) or p["learn_minutes"] < 0:
            errs.append(("learn_minutes", "learn_minutes must be a number >= 0"))
        p.setdefault("while_learning", False)
        if not isinstance(p["while_learning"], bool):
            errs.append(("while_learning", "while_learning must be true or false"))
        if "where" in p:
            p["where"] = validate_where(p["where"], lists, errs)
        return p, errs

    def mask(self, p: dict[str, Any], e: pd.DataFrame) -> pd.Series:
        """First sighting for the key, outside the whitelist; learned silently while learning.

        With a declared whitelist the whitelist is the truth (no learning); without one the
        first `learn_minutes` of a key's history teach the usual set. `while_learning: true`
        reports exactly those learned ones (first sightings with no declared whitelist inside
        the learning time) and nothing else, so learning never absorbs a caller unseen.
        """
        f = p["field"]
        rows = np.flatnonzero(e[f"first_{f}"].to_numpy(dtype=bool))  # few: judge only those
        hit_rows = np.zeros(len(e), dtype=bool)
        if len(rows):
            wl = e["ip_whitelisted"].to_numpy()[rows] if f == "ip" else [None] * len(rows)
            learned = ((e["ts"].to_numpy()[rows] - e["key_first_ts"].to_numpy()[rows])
                       < p["learn_minutes"] * 60_000)
            is_true = np.array([v is not None and bool(v == True) for v in wl],  # noqa: E712
                               dtype=bool)
            is_false = np.array([v is not None and bool(v == False) for v in wl],  # noqa: E712
                                dtype=bool)
            if p["while_learning"]:
                hit_rows[rows] = ~is_true & ~is_false & learned
            else:
                hit_rows[rows] = ~is_true & (is_false | ~learned)
        hit = pd.Series(hit_rows, index=e.index)
        if "where" in p:
            hit &= match_where(e, p["where"])
        return hit

    def row_test(self, p: dict[str, Any]) -> RowTest:
        """`mask` for one enriched row (the live path)."""
        f, learn = p["field"], p["learn_minutes"] * 60_000
        where = row_matcher(p["where"]) if "where" in p else None
        while_learning = p["while_learning"]

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


class EventMatch(Kind):
    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        p, errs = dict(raw), cast(Errors, [])
        p["where"] = validate_where(p.get("where"), lists, errs)
        gb = p.setdefault("group_by", [])
        if not isinstance(gb, list) or any(g not in EVENT_FIELDS for g in gb):
            errs.append(("group_by", f"group_by must list event fields; known: "
                                     f"{', '.join(EVENT_FIELDS)}"))
        return p, errs

    def mask(self, p: dict[str, Any], e: pd.DataFrame) -> pd.Series:
        return match_where(e, p["where"])

    def row_test(self, p: dict[str, Any]) -> RowTest:
        return row_matcher(p["where"])


class Posture(Kind):
    def validate(self, raw: dict[str, Any], lists: dict[str, list[Any]]
                 ) -> tuple[dict[str, Any], Errors]:
        from monitor.detect.posture import CHECKS

        p, errs = dict(raw), cast(Errors, [])
        if p.get("check") not in CHECKS:
            errs.append(("check", f"unknown posture check {p.get('check')!r}; known: "
                                  f"{', '.join(sorted(CHECKS))}"))
        for k, v in p.items():
            if k != "check" and not _num(v):
                errs.append((k, f"{k} must be a number"))
        return p, errs


KINDS: dict[str, Kind] = {
    "threshold": Threshold("threshold", ("metric", "op", "value", "scope"), "window"),
    "baseline_ratio": BaselineRatio(
        "baseline_ratio",
        ("metric", "ratio", "min_count", "baseline_windows", "min_history", "floor", "scope"),
        "window"),
    "new_value": NewValue("new_value", ("field", "learn_minutes", "while_learning", "where"),
                          "event"),
    "event_match": EventMatch("event_match", ("where", "group_by"), "event"),
    "posture": Posture("posture", ("check", "days", "max_ips"), "posture"),
}


def scope_mask(p: dict[str, Any], w: pd.DataFrame) -> pd.Series:
    if p.get("scope") == "key":
        return w["key"].ne("")
    if p.get("scope") == "account":
        return w["key"].eq("")
    return pd.Series(True, index=w.index)


def as_float(v: Any) -> float:
    x = float(v)
    return x if np.isfinite(x) else 1e9
