"""Window features over a key's earlier windows (`Rolling` in `catalog.WINDOWS`), both paths.

`aggregate` and the live accumulator see one minute at a time and leave every `Rolling` feature
0; `add_context` fills them from the key's earlier windows, driven by the declarations. Replay
calls it over every window; the live engine over each close's new windows after the history it
keeps per key (detect/engine.py), so one function serves both; tests/detect/test_live_replay.py
proves the live windows equal replay's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.features.catalog import WINDOWS, Window
from monitor.features.reducers import Rolling

ROLLING: tuple[tuple[Window, Rolling], ...] = tuple(
    (w, w.reducer) for w in WINDOWS if isinstance(w.reducer, Rolling))


def add_context(w: pd.DataFrame) -> pd.DataFrame:
    """Every `Rolling` feature of a windows frame (sorted here by account, key,
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
