"""The rules' predicate language: `{field: {op: value}}` over enriched event fields.

One language, two evaluations of it: `match_where` over a frame (replay, vectorised) and
`row_matcher` over one row (live, plain Python); tests/detect/test_live_replay.py proves them
equal. No expression strings and no `eval`: a fixed set of fields and operators.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from monitor.core.events import EVENT_COLUMNS
from monitor.features import DERIVED_FIELDS

EVENT_FIELDS = tuple(c for c in EVENT_COLUMNS if c != "raw") + DERIVED_FIELDS
OPS = ("eq", "ne", "in", "not_in", "gt", "ge", "lt", "le", "exists")

Errors = list[tuple[str, str]]  # (field the problem is on, message with the fix)
Where = dict[str, dict[str, Any]]  # validated: field -> {op: value}


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def validate_where(where: Any, lists: dict[str, list[Any]], errs: Errors) -> Where:
    """`{field: value}` or `{field: {op: value}}`; list names expand for in/not_in."""
    out: Where = {}
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


def match_where(df: pd.DataFrame, where: Where) -> pd.Series:
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


Row = dict[str, Any]  # one enriched event, live
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


def row_matcher(where: Where) -> RowTest:
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
