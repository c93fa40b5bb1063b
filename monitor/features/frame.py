"""Events -> the frame layout both feature paths read: int ms times, plain dtypes, ts order.

`normalise` is the one door into replay (store loads, generator frames, live batches in tests);
the live path reads the same columns off each `Event` (`live.to_row`), with NUM_COLS as floats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitor.core.events import EVENT_COLUMNS, Event

if TYPE_CHECKING:
    from monitor.features.base import Row

NAN = float("nan")


def events_to_frame(events: list[Event]) -> pd.DataFrame:
    """Events -> the column layout `enrich` reads (no per-column validation: already valid)."""
    cols: dict[str, list[object]] = {c: [] for c in EVENT_COLUMNS}
    for e in events:
        d = e.__dict__
        for c in EVENT_COLUMNS:
            v = d[c]
            cols[c].append(v.value if hasattr(v, "value") else v)
    return normalise(pd.DataFrame(cols))


CAT_COLS = ("account", "key", "source", "kind", "ip", "method", "endpoint", "symbol", "side",
            "order_type", "exec_type", "order_status", "asset", "reject_reason")
NUM_COLS = ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id", "latency_ms",
            "qty", "price", "notional", "free", "locked")


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Any events frame (store, generator, live batch) -> int ms times, plain dtypes, ts order.

    Low-cardinality text columns become categoricals (comparisons on codes, not strings: this
    is most of replay's speed). Ties keep their input order (a store load is already ordered
    by ts, event_id), so live batches fed in that order see exactly what a replay sees.
    """
    out: dict[str, np.ndarray | pd.Series] = {}
    n = len(df)
    for c in EVENT_COLUMNS:
        s = df[c].reset_index(drop=True) if c in df.columns else pd.Series([None] * n)
        if c in ("ts", "received_ts"):
            if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
                s = s.astype("datetime64[ms, UTC]").astype("int64")
            out[c] = s.astype("int64").to_numpy()
        elif c in NUM_COLS:
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        elif c in CAT_COLS:
            out[c] = s if isinstance(s.dtype, pd.CategoricalDtype) else (
                s.astype(object).astype("category"))
        elif isinstance(s.dtype, pd.StringDtype):
            out[c] = s  # what the object round trip below would infer again (pandas 3)
        else:
            out[c] = s.astype(object).where(s.notna(), None).to_numpy()
    res = pd.DataFrame(out)
    ts = res["ts"].to_numpy()
    if n > 1 and (np.diff(ts) < 0).any():
        res = res.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)
    return res


def to_row(ev: Event) -> Row:
    """One event -> the row dict the live path enriches: a replay frame row's values
    (enum values as text, NUM_COLS as floats with NaN for missing)."""
    r = dict(ev.__dict__)
    # `_value_` is the member's value without the `.value` descriptor (a hot path: per event)
    r["source"], r["kind"] = ev.source._value_, ev.kind._value_
    for c in NUM_COLS:
        v = r[c]
        r[c] = NAN if v is None else float(v)
    return r
