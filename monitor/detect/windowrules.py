"""Window rules: a threshold on one feature of a closed minute, or a jump over the key's own
baseline (the median of its previous windows).

Each kind's parameters are a typed record built from the rule's validated `params`; its test
is one vectorised function over the windows frame, so the live path (a frame of the minute's
closed windows after the kept history) and replay (every window at once) run the same code.
`score` is the detector contract's number: higher = more anomalous, >= 1 exactly where it fires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from monitor.detect.candidate import Candidate, Quiet, iso, window_candidate
from monitor.detect.rules import Rule
from monitor.features import ACCOUNT_ROW


@dataclass(frozen=True, slots=True)
class Scope:
    """Which windows a rule judges: a key's own ("key"), the account row ("account"), any."""

    name: str = "any"

    def mask(self, w: pd.DataFrame) -> pd.Series:
        if self.name == "key":
            return w["key"].ne(ACCOUNT_ROW)
        if self.name == "account":
            return w["key"].eq(ACCOUNT_ROW)
        return pd.Series(True, index=w.index)


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
    """Shared by both window kinds: hits among the new windows -> candidates."""

    metric: str
    scope: Scope

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.rules = (rule,)

    def hits(self, w: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
        """(fires, baseline or None) per window row, before the scope."""
        raise NotImplementedError

    def fires(self, w: pd.DataFrame) -> pd.Series:
        return self.hits(w)[0] & self.scope.mask(w)

    def on_windows(self, w: pd.DataFrame) -> list[Candidate]:
        hit, base = self.hits(w)
        hit = hit & self.scope.mask(w) & w["_new"]
        out = []
        for i in np.flatnonzero(hit.to_numpy()):
            row = w.iloc[i]
            v = float(row[self.metric])
            b = None if base is None else float(base.iloc[i])
            out.append(window_candidate(self.rule, row, {self.metric: v, "baseline": b},
                                        self.summary(row, v, b)))
        return out

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        raise NotImplementedError


class Threshold(WindowRule):
    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.p = ThresholdParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope

    def hits(self, w: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
        v = w[self.metric]
        return (v > self.p.value if self.p.strict else v >= self.p.value), None

    def score(self, w: pd.DataFrame) -> np.ndarray:
        return (w[self.metric] / self.p.value).to_numpy(dtype=float)

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        op = ">" if self.p.strict else ">="
        return (f"{self.metric} reached {v:g} in the minute from {iso(int(row['minute']))} "
                f"(threshold {op} {self.p.value:g}).")


class BaselineRatio(WindowRule):
    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.p = BaselineParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope
        self.history = self.p.windows

    def baseline(self, w: pd.DataFrame) -> pd.Series:
        """Robust baseline: median of the key's previous N windows (the current excluded)."""
        keys = [w["account"], w["key"]]
        prev = w[self.metric].groupby(keys, sort=False, observed=True).shift(1)
        return (prev.groupby(keys, sort=False, observed=True)
                .rolling(self.p.windows, min_periods=self.p.min_history).median()
                .droplevel([0, 1]).reindex(w.index))

    def hits(self, w: pd.DataFrame) -> tuple[pd.Series, pd.Series | None]:
        base = self.baseline(w)
        v = w[self.metric]
        hit = (v >= self.p.min_count) & (v >= self.p.ratio * base.clip(lower=self.p.floor)) \
            & base.notna()
        return hit, base

    def score(self, w: pd.DataFrame) -> np.ndarray:
        base = self.baseline(w)
        v = w[self.metric]
        s = np.minimum(v / self.p.min_count,
                       v / (self.p.ratio * base.clip(lower=self.p.floor)))
        return s.fillna(0.0).to_numpy(dtype=float)

    def summary(self, row: pd.Series, v: float, b: float | None) -> str:
        assert b is not None  # a baseline hit always has its baseline
        ref = max(b, self.p.floor)
        return (f"{self.metric} was {v:g} in the minute from {iso(int(row['minute']))}, "
                f"{v / ref:.1f}x its baseline of {b:g}.")
