"""What the forest sees: window features grouped by what they tell, each scaled against the
key's own recent level, and how an input is said in words.

Groups: calls (rate, endpoint mix), failures (by class), callers (address novelty) and
orders (flow, provenance, notional). Each group has its own forest; the model's score is the
mean plus the highest of the groups' scores, each divided by its own threshold, so a loud group
(a failure burst) cannot drown a quiet one (three orders the tap never saw): each is judged on
its own, and one extreme group counts in full.

A count input is `max(log1p(x + u) - max(level, peak), 0)` (less than usual is no misuse;
peak = the key's highest over its previous PEAK_WINDOWS windows, so a burst that recurs within
them, an hourly job, is its normal), level = the
mean of `log1p(x + 0.5)` over the key's previous LEVEL_WINDOWS windows (its recent level, in
log space): the log of the window's value over the key's usual, so one model serves a key
making 3 calls a minute and one making 3,000. A key's first MIN_LEVEL_WINDOWS windows have
no level yet and read 0 (no deviation known: the forest's warm-up). The level is summed in
integers (log values rounded to 1/1024), so replay (every window at once) and live (a close
after the kept history) compute it bit for bit alike. Ratio inputs (order share, failure
ratio, order size to the key's usual) are already relative: `log1p(x)`. Counts whose usual
is none for every key (orders the tap never saw, addresses never seen) are read against none:
`log1p(x + u) - log1p(0.5)`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LEVEL_WINDOWS = 30  # previous windows of the key its level is the mean over
MIN_LEVEL_WINDOWS = 10  # fewer: the key's level is not known yet, its counts read 0
PEAK_WINDOWS = 90  # a count at or under the key's peak over this many windows reads 0
_Q = 1024.0  # level quantum: log values in 1/1024ths, summed exactly as integers

GROUPS: dict[str, tuple[str, ...]] = {
    # not weight_max: the exchange's used weight is per address, shared by every client behind
    # it, so it moves with other keys' calls (the weight_near_limit rule watches it)
    "calls": ("requests", "distinct_endpoints", "order_share"),
    "failures": ("fail_auth", "fail_timestamp", "fail_rate", "fail_balance", "fail_filter",
                 "fail_other", "rejects", "failure_ratio"),
    "callers": ("distinct_ips", "new_ips", "off_whitelist_ips"),
    "orders": ("stream_orders", "accepted_orders", "untapped_orders", "max_order_to_usual",
               "untapped_1h", "reject_to_usual", "foreign_orders"),
}
RATIOS = frozenset({"order_share", "failure_ratio", "max_order_to_usual", "reject_to_usual"})
# counts whose usual is none by construction, for every key: against 0, not the key's level
# (a key's level would learn an hour of untapped orders as its usual within LEVEL_WINDOWS)
ABSOLUTE = frozenset({"untapped_orders", "untapped_1h", "new_ips", "off_whitelist_ips",
                      "foreign_orders"})
INPUTS: tuple[str, ...] = tuple(f for g in GROUPS.values() for f in g)
SCALED = np.array([f not in RATIOS for f in INPUTS])  # counts: dithered, against a level
AGAINST_NONE = np.array([f in ABSOLUTE for f in INPUTS])
NONE_LEVEL = float(np.log1p(0.5))  # the level of a count that is always 0
_LEVELLED = np.flatnonzero(SCALED & ~AGAINST_NONE)  # the columns read against the key's level
GROUP_COLS: dict[str, np.ndarray] = {}
_i = 0
for _g, _fs in GROUPS.items():
    GROUP_COLS[_g] = np.arange(_i, _i + len(_fs))
    _i += len(_fs)

# how each input is said: a noun phrase for its count, or a template for a ratio
NOUNS = {
    "requests": "calls to the API", "weight_max": "request weight used",
    "distinct_endpoints": "different endpoints called",
    "fail_auth": "calls refused for their signature, key or permission",
    "fail_timestamp": "calls refused for their timestamp",
    "fail_rate": "calls refused by the rate limit",
    "fail_balance": "orders refused for insufficient balance",
    "fail_filter": "orders refused by the symbol's filters", "fail_other": "other failed calls",
    "rejects": "failed order placements", "distinct_ips": "addresses calling",
    "new_ips": "addresses this key was never seen calling from",
    "off_whitelist_ips": "new addresses outside the key's whitelist",
    "stream_orders": "orders the stream reported", "accepted_orders": "orders placed through "
    "the tap", "untapped_orders": "orders the tap never saw",
    "untapped_1h": "orders the tap never saw in the key's last hour",
    "foreign_orders": "new orders no registered bot placed",
}
RATIO_WORDS = {
    "order_share": "{v:.0%} of calls placed orders",
    "failure_ratio": "{v:.0%} of calls failed",
    "max_order_to_usual": "an order {v:.1f}x the key's usual size",
    "reject_to_usual": "a refused order {v:.1f}x the key's usual size",
}


def raw(frame: pd.DataFrame) -> np.ndarray:
    return np.clip(frame[list(INPUTS)].to_numpy(dtype=float), 0, 1e6)


def levels(x: np.ndarray, key_start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the mean of log1p(x + 0.5) over its key's previous LEVEL_WINDOWS rows (rows
    sorted by key then minute; `key_start` the row where each row's key begins), and how many
    rows that mean is over (0: the key's first row)."""
    n = len(x)
    q = np.rint(np.log1p(x + 0.5) * _Q).astype(np.int64)
    c = np.zeros((n + 1, x.shape[1]), dtype=np.int64)
    np.cumsum(q, axis=0, out=c[1:])
    rows = np.arange(n)
    lo = np.maximum(rows - LEVEL_WINDOWS, key_start)
    count = rows - lo
    total = c[rows] - c[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        lvl = total / np.maximum(count, 1)[:, None] / _Q
    return lvl, count


def peaks(x: np.ndarray, key_start: np.ndarray) -> np.ndarray:
    """Per row: the max of log1p(x + 0.5) over its key's previous PEAK_WINDOWS rows (-inf for
    a key's first row), by a sparse table of doubling maxima (exact: a max has no rounding)."""
    n = len(x)
    q = np.log1p(x + 0.5)
    rows = np.arange(n)
    tables = [q]
    span = 1
    while span * 2 <= PEAK_WINDOWS:
        prev = tables[-1]
        j = np.maximum(rows - span, key_start)
        tables.append(np.maximum(prev, prev[j]))
        span *= 2
    lo = np.maximum(rows - PEAK_WINDOWS, key_start)
    length = rows - lo
    out = np.full(x.shape, -np.inf)
    has = length > 0
    k = np.zeros(n, dtype=np.int64)
    k[has] = np.floor(np.log2(length[has])).astype(np.int64)
    stack = np.stack(tables)
    hi_end = np.maximum(rows - 1, 0)
    lo_end = np.minimum(lo + (1 << k) - 1, hi_end)
    a = stack[k, hi_end]
    b = stack[k, lo_end]
    out[has] = np.maximum(a, b)[has]
    return out


def scaled(x: np.ndarray, key_start: np.ndarray, u: np.ndarray | float = 0.5) -> np.ndarray:
    """The model's inputs for rows `x` (raw, sorted by key then minute): see the docstring."""
    lvl, count = levels(x, key_start)
    own = np.log1p(x + u)
    ref = lvl.copy()
    ref[:, _LEVELLED] = np.maximum(lvl[:, _LEVELLED], peaks(x[:, _LEVELLED], key_start))
    dev = np.where(count[:, None] >= MIN_LEVEL_WINDOWS, np.maximum(own - ref, 0.0), 0.0)
    return np.where(AGAINST_NONE, own - NONE_LEVEL, np.where(SCALED, dev, np.log1p(x)))


def usual(level: float) -> float:
    """A level (mean log1p(x + 0.5)) back to a count: the key's usual."""
    return max(float(np.expm1(level)) - 0.5, 0.0)


def words(name: str, value: float, level: float | None) -> str:
    """One input in words: '3 orders the tap never saw (usually none)', 'calls to the API 40x
    the usual for this key (400 in the minute, usually about 10)'."""
    if name in RATIO_WORDS:
        return RATIO_WORDS[name].format(v=value)
    noun = NOUNS[name]
    when = "" if name == "untapped_1h" else " in the minute"
    if level is None:  # the key's usual is not known
        return f"{value:g} {noun}{when}"
    u = usual(level)
    if u < 1:
        was = "none" if u < 0.05 else f"about {u:.2g}"
        return f"{value:g} {noun}{when} (usually {was})"
    times = (value + 0.5) / (u + 0.5)
    if times >= 1:
        return f"{noun} {times:.3g}x the usual for this key ({value:g} in the minute, usually " \
               f"about {u:.3g})"
    return f"{noun} {1 / times:.3g}x below the usual for this key ({value:g} in the minute, " \
           f"usually about {u:.3g})"  # not fed to the model (clipped at 0), said if asked
