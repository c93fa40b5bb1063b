"""A count's rate against the key's own rhythm, with a week of memory (kind `rate_memory`).

Per (account, key) it learns, over `horizon_days` (exponentially forgotten):
- a level (counts per minute) for each hour of the day, weekdays and weekends apart (48 slots;
  a weekend slot with no data yet borrows the weekday's same hour, and any slot borrows the
  key's all-day level, with a tenth of an hour-sample of weight). Each closed clock hour gives one
  sample: the mean of its minutes with every minute clipped at `clip` times the larger of the
  hour's median minute and the slot's level, so a burst moves the level by a few calls only;
- a memory of peaks: per window length, the last minute each size of count was seen (sizes in
  bins of 1.25x). A count that a size at least 1/1.25 of it reached 30 minutes or more before,
  within the horizon, is a recurring burst: normal. An hourly 200-call burst pages once, the
  first time, and not again while it keeps recurring.

It pages when
- spike: the count in the last L minutes (each of `windows`, default 1 and 10) is at least
  `ratio` times the expected count for the slot and `min_excess` above it, and no such peak
  recurred. The expected count is at least `floor_per_hour` (the statistical floor: on a key
  that makes 3 calls an hour, the 4th call never pages, 30 calls in 10 minutes do; a restart's
  18 calls in a minute on a 2-a-minute key stay under `min_excess`: a one-minute flurry of a
  couple of dozen calls is a bot starting, a flood is hundreds);
- rise: a CUSUM of each minute's count over the slot's level, clipped at `clip` (so a burst
  adds a bounded amount), minus `rise_ratio`, crosses `rise_threshold`: a sustained rise to 3x
  crosses within about ten minutes, a recurring burst decays away. The level is taken as at
  least `rise_floor_per_minute` here: below it a minute is too sparse for a ratio.

Warm-up: until then a key's minutes are only learned (its level starts at the floor). Spikes
are judged from the second clock hour after its first count (60 to 120 minutes: one full hour
learned; later hours borrow the all-day level until their own slot has a sample); the rise is
judged in hours whose slot has a quarter hour-sample of its own: from the key's second day, and
on its first weekend (or first weekday after a weekend) from the second such day.

Only minutes with a count change the state: minutes between are accounted for by elapsed time,
and an hour is closed when a later minute arrives. Replay hands each key's minutes at once
(numpy over rows, a Python step per hour); a live close hands one minute per key: the same
function (tests/detect/test_rate_memory.py proves them equal). `snapshot`/`restore` carry the
learned state through a restart (the service keeps it in the store).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from monitor.core.clock import utc_minute
from monitor.detect import rateminute, ratestate
from monitor.detect.candidate import Candidate, Evidence, Quiet, Windows, window_candidate
from monitor.detect.ratestate import MemoryRow
from monitor.detect.rules import Rule
from monitor.detect.windowrules import Scope
from monitor.features import MINUTE_MS

SLOTS = 48  # hour of day x (weekday, weekend)
PRIOR_WEIGHT = 0.1  # a slot's borrowed level counts as a tenth of an hour-sample
BINS, BIN_BASE = 64, 1.25  # peak sizes: 1.25 ** 64 ~ 1.6 M calls
RECUR_GAP = 30  # minutes: a peak recurs only if seen at least this long before
OWN_WEIGHT = 0.25  # hour-samples a slot needs of its own before the rise is judged there
RECENT = max(RECUR_GAP, 60)  # minutes of counted minutes kept one by one
NEVER = -1e18


@dataclass(frozen=True, slots=True)
class RateMemoryParams:
    metric: str
    windows: tuple[int, ...]
    ratio: float
    min_excess: float
    floor: float  # per minute
    horizon: float  # minutes
    rise_ratio: float
    rise_threshold: float
    rise_floor: float  # per minute
    clip: float
    scope: Scope

    @classmethod
    def of(cls, rule: Rule) -> RateMemoryParams:
        p = rule.params
        return cls(p["metric"], tuple(int(x) for x in p["windows"]), float(p["ratio"]),
                   float(p["min_excess"]), float(p["floor_per_hour"]) / 60.0,
                   float(p["horizon_days"]) * 1440.0, float(p["rise_ratio"]),
                   float(p["rise_threshold"]), float(p["rise_floor_per_minute"]),
                   float(p["clip"]), Scope(p["scope"]))


@dataclass(slots=True)
class KeyMemory:
    """One key's state; minutes are minute indices (epoch ms // 60 000)."""

    born: int  # first minute with a count
    last: int  # last minute with a count
    hour: int  # the open clock hour (minute // 60)
    ref: int  # the minute `level_sum`/`level_w` are forgotten up to
    level_sum: np.ndarray  # per slot: forgotten sum of hour samples
    level_w: np.ndarray  # per slot: forgotten number of hour samples
    seen: np.ndarray  # (windows, BINS): last minute each size was seen, before `recent`
    recent_b: np.ndarray  # (windows, n): the recent minutes' sizes, one row per window
    hour_x: list[float] = field(default_factory=list)  # the open hour's counted minutes
    recent_m: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # the last
    recent_x: np.ndarray = field(default_factory=lambda: np.zeros(0))  # RECENT minutes' counts
    rise: float = 0.0  # the CUSUM statistic
    run_start: int = -1  # minute the current rise began (-1: none)
    run_n: float = 0.0  # counts since then

    @classmethod
    def new(cls, minute: int, windows: int) -> KeyMemory:
        return cls(born=minute, last=minute - 1, hour=minute // 60, ref=minute,
                   level_sum=np.zeros(SLOTS), level_w=np.zeros(SLOTS),
                   seen=np.full((windows, BINS), NEVER),
                   recent_b=np.zeros((windows, 0), np.int64))


def slot(hour: int) -> int:
    """Hour of day, +24 on Saturdays and Sundays (UTC; 1970-01-01 was a Thursday)."""
    weekend = (hour // 24 + 3) % 7 >= 5
    return hour % 24 + (24 if weekend else 0)


def slot_name(hour: int) -> str:
    return f"{hour % 24:02d}:00 UTC on a {'weekend day' if slot(hour) >= 24 else 'weekday'}"


EDGES = BIN_BASE ** np.arange(BINS, dtype=float)  # a size's bin: the last edge at or below it
EDGE_LIST: list[float] = EDGES.tolist()  # the same edges for the one-minute form (bisect)


def size_bin(v: np.ndarray) -> np.ndarray:
    b = np.searchsorted(EDGES, np.maximum(v, 1.0), side="right") - 1
    return np.clip(b, 0, BINS - 1).astype(np.int64)


def surprise(x: float, mu: float) -> float:
    """Chernoff bound on -ln P(X >= x) for X ~ Poisson(mu): the count's evidence, in nats."""
    return 0.0 if x <= mu else x * math.log(x / mu) - x + mu


class RateMemory(Quiet):
    def __init__(self, rule: Rule) -> None:
        self.rule, self.rules = rule, (rule,)
        self.p = RateMemoryParams.of(rule)
        self.metric, self.scope = self.p.metric, self.p.scope
        self.keys: dict[tuple[str, str], KeyMemory] = {}
        self.span = max(self.p.windows)

    # levels -------------------------------------------------------------------------------
    def level(self, k: KeyMemory, hour: int) -> float:
        """Expected counts per minute in `hour` (at least the floor), from closed hours."""
        s = slot(hour)
        o = s - 24 if s >= 24 else s + 24
        w_all = k.level_w.sum()
        overall = k.level_sum.sum() / w_all if w_all > 0 else self.p.floor
        prior = (k.level_sum[o] + PRIOR_WEIGHT * overall) / (k.level_w[o] + PRIOR_WEIGHT)
        lvl = (k.level_sum[s] + PRIOR_WEIGHT * prior) / (k.level_w[s] + PRIOR_WEIGHT)
        return max(float(lvl), self.p.floor)

    def _learn(self, k: KeyMemory, hour: int, xs: list[float]) -> None:
        """Close `hour` (its counted minutes `xs`, the rest zero) into its slot's level."""
        end = (hour + 1) * 60
        exposed = end - max(hour * 60, k.born)  # the key's first hour: from its first count
        lvl = self.level(k, hour)
        sample = 0.0
        if xs:  # plain Python: at most 60 values, once an hour per key
            full = [0.0] * max(exposed - len(xs), 0) + sorted(xs)
            half = len(full) // 2
            med = full[half] if len(full) % 2 else (full[half - 1] + full[half]) / 2
            cap = max(self.p.clip * max(med, lvl), 1.0)
            sample = sum(min(x, cap) for x in xs) / exposed
        keep = math.exp(-(end - k.ref) / self.p.horizon)
        k.level_sum *= keep
        k.level_w *= keep
        k.ref = end
        s = slot(hour)
        k.level_sum[s] += sample * exposed / 60.0
        k.level_w[s] += exposed / 60.0

    def _move_to(self, k: KeyMemory, hour: int) -> None:
        """Close the open hour and the empty hours up to `hour` (at most two horizons)."""
        self._learn(k, k.hour, k.hour_x)
        first = max(k.hour + 1, hour - int(2 * self.p.horizon / 60))
        for h in range(first, hour):
            self._learn(k, h, [])
        k.hour, k.hour_x = hour, []

    def _levels(self, k: KeyMemory, m: np.ndarray, x: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Each counted minute's expected rate, learning the hours as they close, and whether
        its slot has samples of its own (not only borrowed: the rise is judged then)."""
        hours = m // 60
        starts = np.flatnonzero(np.r_[True, hours[1:] != hours[:-1]])
        ends = np.r_[starts[1:], len(m)]
        lam = np.empty(len(m))
        own = np.zeros(len(m), dtype=bool)
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            h = int(hours[a])
            if h != k.hour:
                self._move_to(k, h)
            lam[a:b] = self.level(k, h)
            own[a:b] = k.level_w[slot(h)] >= OWN_WEIGHT
            k.hour_x.extend(x[a:b].tolist())
        return lam, own

    # the tests ----------------------------------------------------------------------------
    def on_windows(self, w: Windows) -> list[Candidate]:
        values = w.num(self.metric)
        judged = w.new & self.scope.mask(w) & (values > 0)
        if not judged.any():
            return []
        acct, key = w.col("account"), w.col("key")
        minute = w.col("minute").astype(np.int64) // MINUTE_MS
        rows = np.flatnonzero(judged)
        starts = w.key_start[rows]
        cut = np.flatnonzero(np.r_[True, starts[1:] != starts[:-1]])
        out: list[Candidate] = []
        for a, b in zip(cut.tolist(), np.r_[cut[1:], len(rows)].tolist(), strict=True):
            idx = rows[a:b]
            i0 = int(idx[0])
            name = (str(acct[i0]), str(key[i0]))
            k = self.keys.get(name)
            if k is None:
                k = self.keys[name] = KeyMemory.new(int(minute[i0]), len(self.p.windows))
            if len(idx) == 1:  # a live close: one minute, in plain Python (rateminute.py)
                hits = rateminute.judge_minute(self, k, int(minute[i0]), float(values[i0]))
            else:
                hits = self._judge(k, minute[idx], values[idx])
            for pos, extra, summary in hits:
                out.append(window_candidate(self.rule, w.row(int(idx[pos])), extra, summary))
        return out

    def _judge(self, k: KeyMemory, m: np.ndarray, x: np.ndarray
               ) -> list[tuple[int, Evidence, str]]:
        lam, own = self._levels(k, m, x)
        hits: dict[int, tuple[Evidence, str]] = {}
        bins = self._spikes(k, m, x, lam, hits)
        for pos, hit in self._rises(k, m, x, lam, own):
            hits.setdefault(pos, hit)
        rm, rx = np.concatenate([k.recent_m, m]), np.concatenate([k.recent_x, x])
        rb = np.concatenate([k.recent_b, bins], axis=1)
        keep = rm > m[-1] - RECENT  # older minutes: only their sizes' last sighting is kept
        for wi in range(len(self.p.windows)):
            np.maximum.at(k.seen[wi], rb[wi][~keep], rm[~keep].astype(float))
        k.recent_m, k.recent_x, k.recent_b = rm[keep], rx[keep], rb[:, keep]
        k.last = int(m[-1])
        return [(pos, *hits[pos]) for pos in sorted(hits)]

    def _spikes(self, k: KeyMemory, m: np.ndarray, x: np.ndarray, lam: np.ndarray,
                hits: dict[int, tuple[Evidence, str]]) -> np.ndarray:
        """Spike hits into `hits`; returns each row's count size per window (its bins)."""
        cm = np.concatenate([k.recent_m, m])
        cum = np.concatenate([[0.0], np.cumsum(np.concatenate([k.recent_x, x]))])
        off = len(k.recent_m)
        at = np.arange(off, len(cm))
        warm = rateminute.spikes_warm(m, k.born)
        out = np.zeros((len(self.p.windows), len(m)), np.int64)
        for wi, span in enumerate(self.p.windows):
            lo = np.searchsorted(cm, cm[at] - span + 1, side="left")
            v = cum[at + 1] - cum[lo]
            mu = lam * span
            out[wi] = bins = size_bin(v)
            hit = warm & (v >= self.p.ratio * mu) & (v - mu >= self.p.min_excess)
            if not hit.any():
                continue
            cb = np.concatenate([k.recent_b[wi], bins])
            for i in np.flatnonzero(hit).tolist():
                mi = int(m[i])
                # earlier minutes at least RECUR_GAP before, within the horizon: their sizes
                j = slice(0, off + i)
                old = (cm[j] <= mi - RECUR_GAP) & (cm[j] >= mi - self.p.horizon)
                sizes = np.concatenate([np.flatnonzero(k.seen[wi] >= mi - self.p.horizon),
                                        cb[j][old]])
                peak = int(sizes.max()) if len(sizes) else -1
                if peak >= bins[i] - 1 or i in hits:
                    continue  # a burst this size recurred: the key's normal
                hits[i] = self._spike(mi, float(v[i]), float(mu[i]), span, peak)
        return out

    def _spike(self, m: int, v: float, mu: float, span: int, peak_bin: int
               ) -> tuple[Evidence, str]:
        peak = float(BIN_BASE ** peak_bin) if peak_bin >= 0 else 0.0
        where = "minute" if span == 1 else f"{span} minutes"
        ev: Evidence = {"test": "spike", "window_minutes": span, "observed": v,
                        "expected": round(mu, 3), "ratio": round(v / mu, 2),
                        "statistic": round(surprise(v, mu), 3),
                        "usual_peak": round(peak, 1), "slot": slot_name(int(m) // 60)}
        start = (int(m) - span + 1) * MINUTE_MS
        summary = (f"{self.metric} {v / mu:.0f}x the usual for this hour "
                   f"({slot_name(int(m) // 60)}): {v:g} in the {where} from "
                   f"{utc_minute(start)} against {mu:.2g} expected, and no burst this size "
                   f"recurred in the last {self.p.horizon / 1440:g} days.")
        return ev, summary

    def _rises(self, k: KeyMemory, m: np.ndarray, x: np.ndarray, lam: np.ndarray,
               own: np.ndarray) -> list[tuple[int, tuple[Evidence, str]]]:
        """The rise, judged in runs of minutes whose slot has its own samples (elsewhere the
        level is borrowed, and the statistic restarts from zero after)."""
        out: list[tuple[int, tuple[Evidence, str]]] = []
        edges = np.flatnonzero(np.diff(np.r_[0, own.astype(np.int8), 0]))
        if not own[0]:
            k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
        for a, b in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
            prev = k.last if a == 0 else int(m[a - 1])
            out += [(a + i, hit) for i, hit in self._cusum(k, m[a:b], x[a:b], lam[a:b], prev)]
            if b < len(m):
                k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
        return out

    def _cusum(self, k: KeyMemory, m: np.ndarray, x: np.ndarray, lam: np.ndarray, last: int
               ) -> list[tuple[int, tuple[Evidence, str]]]:
        """The CUSUM, in closed form over the rows: s_i = max(c_i, s_(i-1) + a_i), where a_i
        is the minute's step after the empty minutes before it (each -rise_ratio) and c_i the
        step from zero; so s_n = A_n + max(s_0, max_j (c_j - A_j)), A the running sum of a."""
        out: list[tuple[int, tuple[Evidence, str]]] = []
        lamc = np.maximum(lam, self.p.rise_floor)
        z = np.minimum(x / lamc, self.p.clip) - self.p.rise_ratio
        prev = np.r_[last, m[:-1]]
        a = z - self.p.rise_ratio * (m - prev - 1)
        c = np.maximum(z, 0.0)
        cx = np.cumsum(np.minimum(x, self.p.clip * lamc))  # a burst minute counts as clip x
        i0 = 0
        while i0 < len(m):
            A = np.cumsum(a[i0:])
            v = c[i0:] - A
            best = np.maximum.accumulate(v)
            s = A + np.maximum(k.rise, best)
            idx = np.arange(len(v))
            arg = np.maximum.accumulate(np.where(v >= best, idx, -1))
            from_state = k.rise >= best
            base = cx[i0 - 1] if i0 else 0.0
            crossed = np.flatnonzero(s >= self.p.rise_threshold)
            n = int(crossed[0]) if len(crossed) else len(v) - 1
            j = int(arg[n])
            if from_state[n] and k.run_start >= 0:
                start, count = k.run_start, k.run_n + cx[i0 + n] - base
            else:
                start = int(m[i0 + j])
                count = cx[i0 + n] - (cx[i0 + j - 1] if i0 + j else 0.0)
            if not len(crossed):
                k.rise = float(s[n])
                k.run_start, k.run_n = (start, float(count)) if k.rise > 0 else (-1, 0.0)
                break
            out.append((i0 + n,
                        self._rise(int(m[i0 + n]), start, float(count), float(lamc[i0 + n]),
                                   float(s[n]))))
            k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
            i0 += n + 1
        else:
            k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
        return out

    def _rise(self, m: int, start: int, count: float, lam: float, s: float
              ) -> tuple[Evidence, str]:
        minutes = m - start + 1
        expected = lam * minutes
        ev: Evidence = {"test": "rise", "window_minutes": minutes, "observed": round(count, 3),
                        "expected": round(expected, 3), "ratio": round(count / expected, 2),
                        "minute_counted_up_to": f"{self.p.clip:g}x the usual",
                        "statistic": round(s, 3), "rise_start_ms": start * MINUTE_MS,
                        "slot": slot_name(m // 60)}
        summary = (f"{self.metric} {count / expected:.1f}x the usual for this hour "
                   f"({slot_name(m // 60)}), sustained for {minutes} minutes since "
                   f"{utc_minute(start * MINUTE_MS)}: about {count:.0f} against {expected:.0f} "
                   f"expected (a minute counted up to {self.p.clip:g}x the usual).")
        return ev, summary

    # persistence (detect/ratestate.py) -------------------------------------------------
    def snapshot(self) -> list[MemoryRow]:
        return ratestate.snapshot(self)

    def restore(self, rows: list[MemoryRow]) -> int:
        """Replace the state of every key the rows hold; returns the keys restored."""
        return ratestate.restore(self, rows)
