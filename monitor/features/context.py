"""Window features over a key's earlier windows (`Rolling` in `catalog.WINDOWS`), both paths.

`aggregate` and the live accumulator see one minute at a time and leave every `Rolling` feature
0; this step fills them from the key's earlier windows, driven by the same declarations:
`add_context` over a whole windows frame (replay), `LiveContext` over the windows each live
`close` returns, with its own per-key history (the last `minutes` windows of each key).
tests/features prove the two agree per feature.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import pandas as pd

from monitor.features.base import MINUTE_MS, WindowRow
from monitor.features.catalog import WINDOWS, Window
from monitor.features.reducers import Rolling

ROLLING: tuple[tuple[Window, Rolling], ...] = tuple(
    (w, w.reducer) for w in WINDOWS if isinstance(w.reducer, Rolling))
CONTEXT_FEATURES: tuple[str, ...] = tuple(w.name for w, _ in ROLLING)
_SPAN = max((r.minutes for _, r in ROLLING), default=1)  # the longest look-back, in windows


def add_context(w: pd.DataFrame) -> pd.DataFrame:
    """Replay: every `Rolling` feature of a windows frame (sorted here by account, key,
    minute) from the key's windows in the frame. Vectorised (`Rolling.replay_context`)."""
    if w.empty:
        return w
    # sort_values over the string columns, by sorted integer codes instead (a live close sorts
    # its kept history with the new windows every minute: pandas' object sort was its cost)
    acct, _ = pd.factorize(w["account"], sort=True)
    key, _ = pd.factorize(w["key"], sort=True)
    minute = w["minute"].to_numpy(dtype=np.int64)
    order = np.lexsort((minute, key, acct))  # stable, as sort_values(kind="stable")
    w = w.iloc[order].reset_index(drop=True)
    a, k = acct[order], key[order]
    codes = np.concatenate([[0], np.cumsum((a[1:] != a[:-1]) | (k[1:] != k[:-1]))])
    order_key = codes.astype(np.int64) * (1 << 45) + minute[order]
    for f, r in ROLLING:
        w[f.name] = r.replay_context(w[r.col].to_numpy(dtype=float), order_key)
    return w


class LiveContext:
    """Live: `add_context` for the windows `LiveFeatures.close` returns, close after close.

    `apply(rows)` fills every `Rolling` feature of each row in place, from the key's earlier
    windows (rows of earlier calls included) and the row itself; it keeps, per (account, key),
    only the windows the longest look-back can still reach. Rows come as `close` returns them
    (sorted by account, key, minute; later calls hold later minutes).
    """

    def __init__(self) -> None:
        self._hist: dict[tuple[str, str], deque[tuple[int, tuple[float, ...]]]] = {}

    def apply(self, rows: list[WindowRow]) -> None:
        for row in rows:
            k, minute = (str(row["account"]), str(row["key"])), int(row["minute"])
            dq = self._hist.get(k)
            if dq is None:
                dq = self._hist[k] = deque()
            dq.append((minute, tuple(float(row[r.col]) for _, r in ROLLING)))
            while dq[0][0] <= dq[-1][0] - _SPAN * MINUTE_MS:
                dq.popleft()
            for j, (f, r) in enumerate(ROLLING):
                row[f.name] = r.live_context(minute, [(m, v[j]) for m, v in dq])
