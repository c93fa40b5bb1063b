"""How a window feature folds its rows: each reducer has a vectorised and an incremental form.

A window feature is declared once in `catalog` as `Window(name, reducer)`. The reducer knows
both ways to compute it: `replay` over a whole enriched frame at once (one group index `inv`
of `ng` windows; bincount sums, fmax maxima), and `live_*` as Python source for the generated
per-row accumulator (`live.WindowAccumulator`) plus its value when the window closes. The
counts are whole numbers and sums run in event order in both forms, so the floats are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.core.framecodes import text_codes
from monitor.features.base import MINUTE_MS
from monitor.features.expr import Expr


@dataclass(frozen=True)
class Group:
    """The windows of a frame: each row's window number `inv` (0..ng-1)."""

    frame: pd.DataFrame
    inv: np.ndarray
    ng: int


Passes = Callable[[np.ndarray], np.ndarray]  # window values -> whether each passes a line


class Reducer:
    mask: Expr | None = None
    # the window's value never falls as rows fold in, so a line it passes at the close it
    # passed on one row: the row a crossing trigger fires on (`first_passing`, live `w[name]`)
    monotone: bool = False

    def first_passing(self, e: pd.DataFrame, mask: np.ndarray | None, passes: Passes
                      ) -> np.ndarray:
        """Rows of an enriched frame at which their window's value first passes (replay's
        form of testing the open window after each row is folded in, live)."""
        raise NotImplementedError

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        raise NotImplementedError

    def live_init(self) -> Any:
        """The open window's starting value (for reducers that fold rows)."""
        return 0.0

    def live_step(self, name: str, m: str | None) -> list[str]:
        """Source lines folding row `r` into `w[name]` (`m`: the mask's variable, or None)."""
        return []

    def live_value(self, name: str, w: Mapping[str, Any], done: Mapping[str, float | None]
                   ) -> float | None:
        return w[name]  # type: ignore[no-any-return]

    @property
    def reads(self) -> tuple[str, ...]:
        """Earlier features this one is computed from (none for row reducers)."""
        return ()


def _guard(m: str | None, body: list[str]) -> list[str]:
    if m is None:
        return body
    return [f"if {m}:", *("    " + b for b in body)]


@dataclass(frozen=True)
class Count(Reducer):
    """Rows matching the mask."""

    mask: Expr
    monotone = True

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        return np.bincount(g.inv, weights=masks[self.mask].astype(float), minlength=g.ng)

    def first_passing(self, e: pd.DataFrame, mask: np.ndarray | None, passes: Passes
                      ) -> np.ndarray:
        assert mask is not None
        rows = np.flatnonzero(mask)  # the count moves on these rows only
        win = window_codes(e, rows)
        order = np.argsort(win, kind="stable")
        sw = win[order]
        starts = np.flatnonzero(np.r_[True, sw[1:] != sw[:-1]]) if len(sw) else sw
        size = np.diff(np.r_[starts, len(sw)])
        count = np.empty(len(rows), dtype=float)  # each row's running count in its window
        count[order] = np.arange(len(sw)) - np.repeat(starts, size) + 1.0
        return _firsts(rows, win, passes(count))

    def live_step(self, name: str, m: str | None) -> list[str]:
        return _guard(m, [f"w[{name!r}] += 1.0"])


@dataclass(frozen=True)
class Sum(Reducer):
    """Sum of a numeric column (never NaN) over the rows matching the mask (all: None)."""

    col: str
    mask: Expr | None = None

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        x = g.frame[self.col].to_numpy(dtype=float)
        if self.mask is not None:
            x = np.where(masks[self.mask], x, 0.0)
        return np.bincount(g.inv, weights=x, minlength=g.ng)

    def live_step(self, name: str, m: str | None) -> list[str]:
        return _guard(m, [f"w[{name!r}] += r[{self.col!r}]"])


@dataclass(frozen=True)
class Max(Reducer):
    """Largest value of a numeric column over the rows matching the mask, NaN skipped."""

    col: str
    mask: Expr | None = None

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        x = g.frame[self.col].to_numpy(dtype=float)
        ok = ~np.isnan(x) if self.mask is None else masks[self.mask] & ~np.isnan(x)
        res = np.full(g.ng, np.nan)
        np.fmax.at(res, g.inv[ok], x[ok])
        return res

    monotone = True

    def first_passing(self, e: pd.DataFrame, mask: np.ndarray | None, passes: Passes
                      ) -> np.ndarray:
        x = e[self.col].to_numpy(dtype=float)
        ok = ~np.isnan(x) if mask is None else mask & ~np.isnan(x)
        rows = np.flatnonzero(ok)
        rows = rows[passes(x[rows])]  # the max first passes on the first such row
        return _firsts(rows, window_codes(e, rows), np.ones(len(rows), dtype=bool))

    def live_init(self) -> Any:
        return None

    def live_step(self, name: str, m: str | None) -> list[str]:
        return _guard(m, [f"v = r[{self.col!r}]",
                          f"if v == v and (w[{name!r}] is None or v > w[{name!r}]):",
                          f"    w[{name!r}] = v"])


@dataclass(frozen=True)
class Distinct(Reducer):
    """Number of distinct values of a text column over the rows matching the mask."""

    col: str
    mask: Expr

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        vc, vu = text_codes(g.frame[self.col])
        rows = np.flatnonzero(masks[self.mask] & (vc >= 0))
        pairs = pd.unique(g.inv[rows] * (len(vu) + 1) + vc[rows])
        return np.bincount(pairs // (len(vu) + 1), minlength=g.ng).astype(float)

    def live_init(self) -> Any:
        return set()

    def live_step(self, name: str, m: str | None) -> list[str]:
        return _guard(m, [f"v = r[{self.col!r}]", "if v is not None:",
                          f"    w[{name!r}].add(v)"])

    def live_value(self, name: str, w: Mapping[str, Any], done: Mapping[str, float | None]
                   ) -> float | None:
        return float(len(w[name]))


@dataclass(frozen=True)
class Excess(Reducer):
    """`a - b` of two earlier features, never below 0 (orders the tap did not see)."""

    a: str
    b: str

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.a, self.b)

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        return np.maximum(done[self.a] - done[self.b], 0.0)

    def live_value(self, name: str, w: Mapping[str, Any], done: Mapping[str, float | None]
                   ) -> float | None:
        a, b = done[self.a], done[self.b]
        assert a is not None and b is not None  # counts, never None
        return max(a - b, 0.0)


@dataclass(frozen=True)
class Ratio(Reducer):
    """`num / den` of two earlier features; no value (0) when `den` is 0."""

    num: str
    den: str

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.num, self.den)

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        den = np.where(done[self.den] > 0, done[self.den], np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return done[self.num] / den  # type: ignore[no-any-return]

    def live_value(self, name: str, w: Mapping[str, Any], done: Mapping[str, float | None]
                   ) -> float | None:
        num, den = done[self.num], done[self.den]
        assert num is not None and den is not None
        return num / den if den > 0 else None


@dataclass(frozen=True)
class Rolling(Reducer):
    """Sum of an earlier feature over the key's last `minutes` windows (this one included).

    It needs windows before this batch, so `aggregate` and the live accumulator leave it 0 and
    the context step fills it (`context.add_context`, `replay_context` below), in both paths:
    replay over every window, live over each close's new windows after the kept history."""

    col: str
    minutes: int

    @property
    def reads(self) -> tuple[str, ...]:
        return (self.col,)

    def replay(self, g: Group, masks: Mapping[Expr, np.ndarray], done: Mapping[str, np.ndarray]
               ) -> np.ndarray:
        return np.zeros(g.ng)

    def live_value(self, name: str, w: Mapping[str, Any], done: Mapping[str, float | None]
                   ) -> float | None:
        return 0.0

    def replay_context(self, vals: np.ndarray, order_key: np.ndarray) -> np.ndarray:
        """Over windows sorted by `order_key` (key code << 45 | minute): `col` summed over each
        window's last `minutes` minutes of the same key."""
        cs = np.concatenate([[0.0], np.cumsum(vals)])
        lo = np.searchsorted(order_key, order_key - (self.minutes - 1) * MINUTE_MS, "left")
        return cs[1:] - cs[lo]  # type: ignore[no-any-return]


def window_codes(e: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
    """One integer per (account, window key, minute) for the given rows of an enriched frame
    (equal codes: the same window)."""
    ac, au = text_codes(e["account"])
    kc, ku = text_codes(e["wkey"])
    minute = e["minute"].to_numpy(dtype=np.int64)[rows] // MINUTE_MS
    pair = ac[rows] * (len(ku) + 1) + kc[rows] + 1
    return (minute - (minute.min() if len(rows) else 0)) * ((len(au) + 1) * (len(ku) + 1)) + pair


def _firsts(rows: np.ndarray, win: np.ndarray, hit: np.ndarray) -> np.ndarray:
    """The first row (in frame order) of each window among the rows where `hit`."""
    rows, win = rows[hit], win[hit]
    _, first = np.unique(win, return_index=True)
    return np.sort(rows[first])


def clean(v: np.ndarray) -> np.ndarray:
    """The last step of every window feature: +inf -> 1e9, NaN (no value) -> 0."""
    return np.nan_to_num(np.where(v == np.inf, 1e9, v), nan=0.0, posinf=1e9, neginf=-np.inf)


def clean_one(v: float | None) -> float:
    """`clean` for one value (None: no value)."""
    if v is None or v != v:
        return 0.0
    return 1e9 if v == np.inf else float(v)
