"""Column-wise event building: many numpy blocks -> one events DataFrame, no per-event Python.

The synthetic generator writes events as blocks of equal-length arrays (one block per bot and
event type); `FrameBuilder.frame()` stitches them into the column layout of `monitor.core.events`,
filling absent columns with None/NaN, so the result feeds `features.normalise` like a store load.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from monitor.core.events import EVENT_COLUMNS

CATEGORICAL = ("account", "key", "source", "kind", "ip", "method", "endpoint", "symbol", "side",
               "order_type", "exec_type", "order_status", "asset", "reject_reason")
NUMERIC = {"ts", "received_ts", "status", "code", "weight_1m", "orders_10s", "orders_1d",
           "order_id", "latency_ms", "qty", "price", "notional", "free", "locked"}


class FrameBuilder:
    def __init__(self) -> None:
        self.blocks: list[tuple[int, dict[str, Any]]] = []
        self._serial = 0
        self.cuts: list[tuple[str, int, int, str]] = []  # (key label, t0, t1, order prefix)

    def cut(self, key: str, t0: int, t1: int, prefix: str) -> None:
        """Drop a key's tapped calls and its orders' stream reports in [t0, t1)."""
        self.cuts.append((key, t0, t1, prefix))

    def add(self, n: int, **cols: Any) -> None:
        """Add n events; each column is a scalar (broadcast) or an array of length n."""
        if n <= 0:
            return
        self.blocks.append((n, cols))

    def ids(self, source: str, n: int, tag: str = "g") -> np.ndarray:
        """Unique, deterministic event ids `<source>:<tag><serial>` (tag "x": episode events)."""
        start = self._serial
        self._serial += n
        return (f"{source}:{tag}" + pd.Series(np.arange(start, start + n)).astype(str)).to_numpy(
            dtype=object)

    def _categorical(self, c: str) -> pd.Categorical:
        """Build a text column as category codes block by block (no 10M-string factorize)."""
        cats: dict[Any, int] = {}
        parts = []
        for n, cols in self.blocks:
            v = cols.get(c)
            if v is None:
                parts.append(np.full(n, -1, dtype=np.int32))
            elif np.ndim(v) == 0:
                parts.append(np.full(n, cats.setdefault(v, len(cats)), dtype=np.int32))
            else:
                codes, uniq = pd.factorize(np.asarray(v, dtype=object), use_na_sentinel=True)
                lookup = np.array([cats.setdefault(u, len(cats)) for u in uniq] + [-1],
                                  dtype=np.int32)
                parts.append(lookup[codes])
        codes = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)
        return pd.Categorical.from_codes(codes, categories=list(cats))

    def frame(self) -> pd.DataFrame:
        out: dict[str, Any] = {}
        for c in EVENT_COLUMNS:
            if c in CATEGORICAL:
                out[c] = self._categorical(c)
                continue
            parts = []
            for n, cols in self.blocks:
                v = cols.get(c)
                if v is None:
                    parts.append(np.full(n, np.nan) if c in NUMERIC else np.full(n, None, object))
                elif np.ndim(v) == 0:
                    parts.append(np.full(n, v, dtype=float if c in NUMERIC else object))
                else:
                    arr = np.asarray(v)
                    parts.append(arr.astype(float) if c in NUMERIC else arr.astype(object))
            out[c] = np.concatenate(parts) if parts else np.zeros(0)
        df = pd.DataFrame(out)
        for key, t0, t1, prefix in self.cuts:
            inside = (df["ts"] >= t0) & (df["ts"] < t1)
            mine = df["source"].isin(["tap", "log", "stream"]) & (
                df["key"].eq(key) | df["client_order_id"].astype(object).fillna("")
                .astype(str).str.startswith(prefix))
            df = df[~(inside & mine & ~df["event_id"].str.contains(":x", regex=False))]
        df["ts"] = df["ts"].astype("int64")
        df["received_ts"] = df["received_ts"].fillna(df["ts"]).astype("int64")
        df = df.sort_values("ts", kind="stable").reset_index(drop=True)
        return df
