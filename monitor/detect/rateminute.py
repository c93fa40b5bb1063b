"""`rate_memory`'s test of one key's one minute, in plain Python: the live close's form.

A live close brings each key one new minute. `RateMemory._judge` handles any number of a key's
minutes with numpy (replay hands it a key's whole day); on one minute its forty-odd array
operations on arrays of one cost about 150 us a key, most of a 100-key close. This is the same
arithmetic on floats, operation for operation (sums in the same order, the same size edges), so
its decisions and the state it leaves are equal to `_judge`'s on that minute
(tests/detect/test_rate_memory.py drives both).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import TYPE_CHECKING, Any

import numpy as np

import monitor.detect.ratememory as rm

if TYPE_CHECKING:
    from monitor.detect.candidate import Evidence
    from monitor.detect.ratememory import KeyMemory, RateMemory


def judge_minute(det: RateMemory, k: KeyMemory, m: int, x: float
                 ) -> list[tuple[int, Evidence, str]]:
    """`det._judge(k, [m], [x])`, for one minute (index `m`) with count `x` > 0."""
    p = det.p
    h = m // 60
    if h != k.hour:
        det._move_to(k, h)
    lam = det.level(k, h)
    own = bool(k.level_w[rm.slot(h)] >= rm.OWN_WEIGHT)
    k.hour_x.append(x)
    hits: dict[int, tuple[Evidence, str]] = {}
    bins = _spike_bins(det, k, m, x, lam, hits)
    if own:
        hit = _cusum_one(det, k, m, x, lam)
        if hit is not None:
            hits.setdefault(0, hit)
    else:
        k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
    drop = bisect_right(k.recent_m.tolist(), m - rm.RECENT)  # older: only sizes' last sighting
    if drop:
        old_m = k.recent_m[:drop].astype(float)
        for wi in range(len(p.windows)):
            np.maximum.at(k.seen[wi], k.recent_b[wi][:drop], old_m)
    k.recent_m = np.append(k.recent_m[drop:], np.int64(m))
    k.recent_x = np.append(k.recent_x[drop:], x)
    k.recent_b = np.concatenate([k.recent_b[:, drop:],
                                 np.array(bins, dtype=np.int64)[:, None]], axis=1)
    k.last = m
    return [(0, *hits[0])] if hits else []


def _spike_bins(det: RateMemory, k: KeyMemory, m: int, x: float, lam: float,
                hits: dict[int, tuple[Evidence, str]]) -> list[int]:
    """The spike test on the minute (a hit into `hits`); its count's size bin per window."""
    p = det.p
    cm = k.recent_m.tolist() + [m]
    pref, c = [0.0], 0.0
    for v in k.recent_x.tolist():  # np.cumsum's order: one addition at a time
        c += v
        pref.append(c)
    pref.append(c + x)
    off = len(cm) - 1
    warm = spikes_warm(m, k.born)
    bins: list[int] = []
    for wi, span in enumerate(p.windows):
        lo = bisect_left(cm, m - span + 1)
        v = pref[off + 1] - pref[lo]
        mu = lam * span
        b = min(max(bisect_right(rm.EDGE_LIST, max(v, 1.0)) - 1, 0), rm.BINS - 1)
        bins.append(b)
        if not (warm and v >= p.ratio * mu and v - mu >= p.min_excess) or 0 in hits:
            continue
        rb = k.recent_b[wi]
        old = (k.recent_m <= m - rm.RECUR_GAP) & (k.recent_m >= m - p.horizon)
        sizes = np.concatenate([np.flatnonzero(k.seen[wi] >= m - p.horizon), rb[old]])
        peak = int(sizes.max()) if len(sizes) else -1
        if peak >= b - 1:
            continue  # a burst this size recurred: the key's normal
        hits[0] = det._spike(m, float(v), float(mu), span, peak)
    return bins


def spikes_warm(m: Any, born: int) -> Any:
    """A full clock hour learned since the key's first count (spikes are judged from then);
    `m` a minute index or an array of them (the numpy form asks for all its rows at once)."""
    return m // 60 - born // 60 >= 2


def _cusum_one(det: RateMemory, k: KeyMemory, m: int, x: float, lam: float
               ) -> tuple[Evidence, str] | None:
    """`RateMemory._cusum` over one minute: s = max(s_prev + a, c)."""
    p = det.p
    lamc = max(lam, p.rise_floor)
    z = min(x / lamc, p.clip) - p.rise_ratio
    a = z - p.rise_ratio * (m - k.last - 1)
    c = max(z, 0.0)
    cx = min(x, p.clip * lamc)  # a burst minute counts as clip x
    best = c - a
    s = a + max(k.rise, best)
    if k.rise >= best and k.run_start >= 0:
        start, count = k.run_start, k.run_n + cx
    else:
        start, count = m, cx
    if s < p.rise_threshold:
        k.rise = float(s)
        k.run_start, k.run_n = (start, float(count)) if k.rise > 0 else (-1, 0.0)
        return None
    k.rise, k.run_start, k.run_n = 0.0, -1, 0.0
    return det._rise(m, start, float(count), float(lamc), float(s))
