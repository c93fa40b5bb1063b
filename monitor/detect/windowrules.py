"""Window rules: a threshold on one feature of a closed minute, or a jump over the key's own
baseline (the median of its previous windows).

Each kind's parameters are a typed record built from the rule's validated `params`; its test
is one vectorised function over the windows frame, so the live path (a frame of the minute's
closed windows after the kept history) and replay (every window at once) run the same code.
`score` is the detector contract's number: higher = more anomalous, >= 1 exactly where it fires.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.core.clock import utc_minute, utc_second
from monitor.detect.candidate import Candidate, Quiet, Row, Windows, window_candidate
from monitor.detect.rules import Rule
from monitor.features import ACCOUNT_ROW, MINUTE_MS, WINDOWS
from monitor.features.live import OpenWindow
from monitor.features.reducers import Count

REDUCERS = {w.name: w.reducer for w in WINDOWS}

GATHER_MAX = 5_000  # new windows up to which a baseline gathers each one's predecessors


@dataclass(frozen=True, slots=True)
class Scope:
    """Which windows a rule judges: a key's own ("key"), the account row ("account"), any."""

    name: str = "any"

    def mask(self, w: Windows) -> np.ndarray:
        if self.name == "key":
            return w.col("key") != ACCOUNT_ROW
        if self.name == "account":
            return w.col("key") == ACCOUNT_ROW
        return np.ones(len(w), dtype=bool)


@dataclass(frozen=True, slots=True)
class ThresholdParams:
    metric: str
    value: float
    strict: bool  # op ">" (else ">=")
    scope: Scope

    @classmethod
    def of(cls, rule: Rule) -> ThresholdParams:
        p = rule.params
        return cls(p["metric"], float(p["value"]), p["op"] == ">", Scope(p["scope"]))


@dataclass(frozen=True, slots=True)
class BaselineParams:
    metric: str
    ratio: float
    min_count: float
    windows: int  # baseline_windows: how many previous windows the median reads
    min_history: int
    floor: float
    scope: Scope

    @classmethod
    def of(cls, rule: Rule) -> BaselineParams:
        p = rule.params
        return cls(p["metric"], float(p["ratio"]), float(p["min_count"]),
                   int(p["baseline_windows"]), int(p["min_history"]), float(p["floor"]),
                   Scope(p["scope"]))


class WindowRule(Quiet):
    """Shared by both window kinds: hits among the new windows -> candidates. `fires` and
    `score` also take a plain windows frame (every row judged), for evaluation and tests."""

    metric: str
    scope: Scope

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.rules = (rule,)

    def hits(self, w: Windows) -> tuple[np.ndarray, np.ndarray | None]:
        """(fires, baseline or None) per window row, before the scope."""
        raise NotImplementedError

    def fires(self, w: pd.DataFrame | Windows) -> np.ndarray:
        w = w if isinstance(w, Windows) else Windows(w)
        return self.hits(w)[0] & self.scope.mask(w)

    def on_windows(self, w: Windows) -> list[Candidate]:
        hit, base = self.hits(w)
        out = []
        for i in np.flatnonzero(hit & self.scope.mask(w) & w.new):
            row = w.row(int(i))
            v = float(row[self.metric])
            b = None if base is None else float(base[i])
            out.append(window_candidate(self.rule, row, {self.metric: v, "baseline": b},
                                        self.summary(row, v, b)))
        return out

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        raise NotImplementedError


class Threshold(WindowRule):
    """A line on one feature of a minute. On a feature that never falls within its minute (a
    count, a maximum: `Reducer.monotone`) the rule fires on the event that crosses the line,
    seconds into the minute, instead of waiting for the close (`crossing`); the close adds
    nothing (its window crossed on some event, already reported). Other features are judged
    at the close."""

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.p = ThresholdParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope
        self.reducer = REDUCERS[self.metric]
        self.crossing = self.reducer.monotone
        self._fired = f"\x00crossed:{rule.id}"  # kept in the open window: once per window

    def passes(self, v: np.ndarray) -> np.ndarray:
        return v > self.p.value if self.p.strict else v >= self.p.value

    def hits(self, w: Windows) -> tuple[np.ndarray, np.ndarray | None]:
        return self.passes(w.num(self.metric)), None

    def on_windows(self, w: Windows) -> list[Candidate]:
        return [] if self.crossing else super().on_windows(w)

    def on_count(self, r: Row, w: OpenWindow) -> Candidate | None:
        """Live: `r` was just folded into its open window `w`."""
        v = w[self.metric]
        if not isinstance(v, float) or not (v > self.p.value if self.p.strict
                                             else v >= self.p.value):
            return None
        if self._fired in w or not self._judged(r["wkey"]):
            return None
        w[self._fired] = 1.0
        return self._crossed(r, v)

    def on_frame(self, e: pd.DataFrame) -> list[Candidate]:
        """Replay: the same rows `on_count` fires on, found over the whole frame."""
        if not self.crossing or e.empty:
            return []
        mask = self.reducer.mask.values(e) if self.reducer.mask is not None else None
        rows = self.reducer.first_passing(e, mask, self.passes)
        wkey = e["wkey"].to_numpy()
        out = []
        for i in rows.tolist():
            if self._judged(wkey[i]):
                r = e.iloc[i]
                out.append(self._crossed(r, self._value_at(e, i, mask)))
        return out

    def _value_at(self, e: pd.DataFrame, i: int, mask: np.ndarray | None) -> float:
        """The window's value on crossing row `i`: its own value for a maximum (the first to
        pass), the line itself for a count (it crossed by one)."""
        if isinstance(self.reducer, Count):
            return float(np.floor(self.p.value) + 1 if self.p.strict
                         else np.ceil(self.p.value))
        return float(e[self.reducer.col].iloc[i])  # type: ignore[attr-defined]

    def _judged(self, wkey: str) -> bool:
        if self.scope.name == "key":
            return bool(wkey != ACCOUNT_ROW)
        if self.scope.name == "account":
            return bool(wkey == ACCOUNT_ROW)
        return True

    def _crossed(self, r: Row | pd.Series, v: float) -> Candidate:
        minute, ts = int(r["minute"]), int(r["ts"])
        op = ">" if self.p.strict else ">="
        ev = {"window_start_ms": minute, "window_end_ms": minute + MINUTE_MS, self.metric: v,
              "threshold": self.p.value, "crossed_at_ms": ts, "crossing_event_id":
              r["event_id"], "seconds_into_window": round((ts - minute) / 1000, 3)}
        summary = (f"{self.metric} reached {v:g} at {utc_second(ts)}, "
                   f"{ev['seconds_into_window']:g} s into the minute from {utc_minute(minute)} "
                   f"(threshold {op} {self.p.value:g}); reported on the event that crossed it, "
                   "before the minute closed.")
        return Candidate(rule=self.rule, ts=ts, account=r["account"], key=r["wkey"],
                         anchor=minute, summary=summary, evidence=ev)

    def score(self, w: pd.DataFrame | Windows) -> np.ndarray:
        w = w if isinstance(w, Windows) else Windows(w)
        return w.num(self.metric) / self.p.value

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        op = ">" if self.p.strict else ">="
        return (f"{self.metric} reached {v:g} in the minute from {utc_minute(int(row['minute']))} "
                f"(threshold {op} {self.p.value:g}).")


class BaselineRatio(WindowRule):
    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.p = BaselineParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope
        self.history = self.p.windows

    def baseline(self, w: Windows, judged: np.ndarray | None = None) -> np.ndarray:
        """Robust baseline: median of the key's previous N windows (the current excluded), for
        the new windows (NaN for the history rows before them, which are not judged), or only
        for the `judged` ones among them. A few windows (a live close's new windows after a
        long history, the few a replay's windows that reach `min_count`) each gather their N
        predecessors (numpy); many at once take pandas' rolling median. Both are the exact
        median of the same values (tests/detect/test_live_replay.py)."""
        sel = w.new if judged is None else w.new & judged
        targets = np.flatnonzero(sel)
        if len(targets) <= GATHER_MAX:
            return self._gathered(w, targets)
        f = w.frame
        keys = [f["account"], f["key"]]
        prev = f[self.metric].groupby(keys, sort=False, observed=True).shift(1)
        base = (prev.groupby(keys, sort=False, observed=True)
                .rolling(self.p.windows, min_periods=self.p.min_history).median()
                .droplevel([0, 1]).reindex(f.index)).to_numpy(dtype=float)
        return np.where(sel, base, np.nan)

    def _gathered(self, w: Windows, targets: np.ndarray) -> np.ndarray:
        """The baseline of rows `targets` (of the sorted frame)."""
        out = np.full(len(w), np.nan)
        if not len(targets):
            return out
        vals = w.num(self.metric)
        idx = targets[:, None] - 1 - np.arange(self.p.windows)[None, :]
        valid = idx >= w.key_start[targets][:, None]
        prev = np.where(valid, vals[np.clip(idx, 0, None)], np.nan)
        enough = valid.sum(axis=1) >= self.p.min_history
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: too little history
            med = np.nanmedian(prev, axis=1)
        out[targets] = np.where(enough, med, np.nan)
        return out

    def hits(self, w: Windows) -> tuple[np.ndarray, np.ndarray | None]:
        v = w.num(self.metric)
        base = self.baseline(w, v >= self.p.min_count)  # no other window can fire
        with np.errstate(invalid="ignore"):
            hit = (v >= self.p.min_count) & (v >= self.p.ratio * np.maximum(base, self.p.floor))
        return hit & ~np.isnan(base), base

    def score(self, w: pd.DataFrame | Windows) -> np.ndarray:
        w = w if isinstance(w, Windows) else Windows(w)
        base = self.baseline(w)
        v = w.num(self.metric)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.minimum(v / self.p.min_count,
                           v / (self.p.ratio * np.maximum(base, self.p.floor)))
        return np.where(np.isnan(s), 0.0, s)

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        assert b is not None  # a baseline hit always has its baseline
        ref = max(b, self.p.floor)
        return (f"{self.metric} was {v:g} in the minute from {utc_minute(int(row['minute']))}, "
                f"{v / ref:.1f}x its baseline of {b:g}.")
