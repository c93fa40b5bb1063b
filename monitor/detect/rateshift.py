"""A rise in a count's rate, with memory: a Poisson CUSUM against the key's own long-run rate.

The window rules ask about one minute ("5 refused calls in a minute"). Slow probing stays under
them: one refused call every 90 s never makes a minute stand out, yet on a key that fails less
than once an hour it is twenty times the usual. This detector keeps, per key, the count's rate
learned over `horizon_days` (exponentially forgotten, so a key's own habits become normal) and
the cumulative evidence that the rate is now `ratio` times higher: each window with x counts
adds x*ln(ratio), each minute subtracts the (ratio - 1) * rate the higher rate would add. A
usual failure now and then decays away within minutes; ten failures in fifteen minutes on a
quiet key cross `threshold` (the log-likelihood ratio, ~ ln of the odds against chance).

Only windows with a count change the state, so replay walks those few rows in time order
(live closes them one minute at a time through the same function): minutes with no count are
accounted for by the elapsed time. Warm-up: none beyond a prior of `floor_per_hour` (a key with
no history is taken to fail that often), so it judges from the key's first minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.core.clock import utc_minute
from monitor.detect.candidate import Candidate, Quiet, Windows, window_candidate
from monitor.detect.rules import Rule
from monitor.detect.windowrules import Scope
from monitor.features import MINUTE_MS

PRIOR_MINUTES = 60.0  # the prior's weight: one hour at `floor_per_hour`


@dataclass(frozen=True, slots=True)
class RateShiftParams:
    metric: str
    ratio: float
    threshold: float
    floor: float  # per minute
    horizon: float  # minutes
    scope: Scope

    @classmethod
    def of(cls, rule: Rule) -> RateShiftParams:
        p = rule.params
        return cls(p["metric"], float(p["ratio"]), float(p["threshold"]),
                   float(p["floor_per_hour"]) / 60.0, float(p["horizon_days"]) * 1440.0,
                   Scope(p["scope"]))


@dataclass(slots=True)
class KeyRate:
    """One key's learned count (`n`) over exposure minutes (`t`), both forgotten over the
    horizon, the CUSUM statistic `s`, and when each was last brought up to date."""

    at: float  # minute index of the last update
    n: float = 0.0
    t: float = 0.0
    s: float = 0.0
    run: list[tuple[int, float]] = field(default_factory=list)  # (window start, count) in s


class RateShift(Quiet):
    def __init__(self, rule: Rule) -> None:
        self.rule, self.rules = rule, (rule,)
        self.p = RateShiftParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope
        self.keys: dict[tuple[str, str], KeyRate] = {}
        self.log_ratio = math.log(self.p.ratio)

    def rate(self, k: KeyRate) -> float:
        """The learned rate per minute (the prior keeps a new key at `floor`)."""
        return max(self.p.floor, (k.n + self.p.floor * PRIOR_MINUTES) / (k.t + PRIOR_MINUTES))

    def _advance(self, k: KeyRate, minute: float) -> None:
        """Bring the key to `minute`: exposure grows, old counts fade, the statistic decays."""
        d = minute - k.at
        if d <= 0:
            return
        lam0 = self.rate(k)
        k.s = max(0.0, k.s - (self.p.ratio - 1.0) * lam0 * d)
        if k.s == 0.0:
            k.run.clear()
        keep = math.exp(-d / self.p.horizon)
        k.n *= keep
        k.t = k.t * keep + self.p.horizon * (1.0 - keep)
        k.at = minute

    def on_windows(self, w: Windows) -> list[Candidate]:
        judged = w.new & self.scope.mask(w)
        if not judged.any():
            return []
        acct, key, minute = w.col("account"), w.col("key"), w.col("minute")
        rows = np.arange(len(w))
        after_old = np.concatenate([[True], ~w.new[:-1]])  # the row before is history
        first_new = judged & ((w.key_start == rows) | after_old)
        for i in np.flatnonzero(first_new):  # a key seen for the first time starts here
            self.keys.setdefault((acct[i], key[i]), KeyRate(at=int(minute[i]) / MINUTE_MS))
        values = w.num(self.metric)
        counted = np.flatnonzero(judged & (values > 0))
        counted = counted[np.argsort(minute[counted], kind="stable")]
        out = []
        for i in counted:
            row_key = (acct[i], key[i])
            k = self.keys[row_key]
            m = int(minute[i])
            x = float(values[i])
            self._advance(k, m / MINUTE_MS)
            lam0 = self.rate(k)
            k.s += x * self.log_ratio
            k.run.append((m, x))
            k.n += x
            if k.s >= self.p.threshold:
                out.append(self._candidate(w.row(int(i)), k, lam0))
                k.s = 0.0
                k.run.clear()
        return out

    def _candidate(self, row: pd.Series, k: KeyRate, lam0: float) -> Candidate:
        total = sum(x for _, x in k.run)
        span = (k.run[-1][0] - k.run[0][0]) / MINUTE_MS + 1
        extra = {self.metric: float(row[self.metric]), "statistic": round(k.s, 3),
                 "usual_per_hour": round(lam0 * 60, 3), "run_count": total,
                 "run_minutes": span, "run_start_ms": k.run[0][0]}
        summary = (f"{self.metric}: {total:g} in the {span:g} minutes from "
                   f"{utc_minute(k.run[0][0])}, where this key usually has {lam0 * 60:.2g} an hour "
                   f"({total / span / lam0:.0f}x its usual rate).")
        return window_candidate(self.rule, row, extra, summary)
