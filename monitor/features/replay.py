"""The replay path: a whole events frame -> enriched events -> one-minute windows, vectorised.

`enrich` runs the `catalog.ENRICH` steps' vectorised forms over the frame (advancing a
`FeatureState`), `aggregate` folds enriched rows into `catalog.WINDOWS` with each reducer's
vectorised form, `context.add_context` fills the features that need earlier windows (`Rolling`).
Text columns are compared and grouped as integer codes (`framecodes`): most of the speed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitor.core.framecodes import group_codes
from monitor.features.base import MINUTE_MS, FeatureContext, FeatureState
from monitor.features.catalog import ENRICH, FEATURES, WINDOWS
from monitor.features.context import add_context
from monitor.features.expr import Expr
from monitor.features.frame import normalise
from monitor.features.reducers import Group, clean


def enrich(df: pd.DataFrame, ctx: FeatureContext, state: FeatureState) -> pd.DataFrame:
    """Add every derived fact to a normalised frame; advance `state` past it. A report that a
    later tap/log record explains moves to just after that record (see `attribution`)."""
    df = df.copy(deep=False)  # only adds columns: copy-on-write keeps the input intact
    for step in ENRICH:
        df = step(ctx, state).replay(df)
    return df


def _windows_of(e: pd.DataFrame) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, object,
                                          np.ndarray, object]:
    """Each row's window number, ranked by (account, key, minute) as groupby(sort=True)."""
    ac, acu = group_codes(e["account"])
    kc, kcu = group_codes(e["wkey"])
    minute = e["minute"].to_numpy(dtype=np.int64)
    mi = (minute - int(minute.min())) // MINUTE_MS
    nak = len(acu) * (len(kcu) + 1)
    # hash the (minute, account, key) triples (cheap: rows come in time order), then rank the
    # few distinct windows by (account, key, minute)
    codes, uniq = pd.factorize(mi * nak + ac * (len(kcu) + 1) + kc)
    ng = len(uniq)
    rank = np.empty(ng, dtype=np.int64)
    rank[np.lexsort((uniq // nak, uniq % nak))] = np.arange(ng)
    return rank[codes], ng, minute, ac, acu, kc, kcu


def aggregate(e: pd.DataFrame) -> pd.DataFrame:
    """Enriched events -> one row per (account, key, minute) with FEATURES, in a stable order.

    Each mask is evaluated once however many features share it; row reducers first, then the
    features computed from other features (`reads`), then `reducers.clean`.
    """
    cols = ["account", "key", "minute", *FEATURES]
    if e.empty:
        return pd.DataFrame(columns=cols)
    inv, ng, minute, ac, acu, kc, kcu = _windows_of(e)
    g = Group(e, inv, ng)
    masks: dict[Expr, np.ndarray] = {}
    for w in WINDOWS:
        m = w.reducer.mask
        if m is not None and m not in masks:
            masks[m] = m.values(e)
    out: dict[str, np.ndarray] = {}
    for w in sorted(WINDOWS, key=lambda w: bool(w.reducer.reads)):  # stable: rows, then derived
        out[w.name] = w.reducer.replay(g, masks, out)
    first = np.empty(ng, dtype=np.int64)
    first[inv] = np.arange(len(inv))  # a row of each window (they share account, key, minute)
    acct = (pd.Categorical.from_codes(ac[first], categories=acu)
            if isinstance(acu, pd.Index) else acu[ac[first]])  # type: ignore[index]
    key = (pd.Categorical.from_codes(kc[first], categories=kcu)
           if isinstance(kcu, pd.Index) else kcu[kc[first]])  # type: ignore[index]
    return pd.DataFrame({"account": acct, "key": key, "minute": minute[first],
                         **{f: clean(out[f]) for f in FEATURES}})[cols]


def windows(df: pd.DataFrame, ctx: FeatureContext) -> pd.DataFrame:
    """Replay path: a whole events frame -> its windows with context (fresh state)."""
    return add_context(aggregate(enrich(normalise(df), ctx, FeatureState())))
