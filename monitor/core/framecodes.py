"""Small vectorised helpers the window features are built from: integer codes for text columns
(so replay compares and groups on ints, never on millions of strings) and the per-value parsers
both feature paths share (`quote_base`, `trading_status`)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")


def quote_base(symbol: str | None) -> tuple[str | None, str | None]:
    """The first of QUOTES the symbol ends with (and is longer than), and the rest."""
    s = symbol or ""
    for q in QUOTES:
        if s.endswith(q) and len(s) > len(q):
            return q, s[: len(s) - len(q)]
    return None, None


def text_codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes (-1 = missing) and the values they stand for, without hashing strings
    again when the column is already categorical (as `normalise` leaves the text columns)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return (s.cat.codes.to_numpy().astype(np.int64),
                np.asarray(s.cat.categories, dtype=object))
    codes, uniq = pd.factorize(s.to_numpy(dtype=object))
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


def isin_codes(s: pd.Series, values: tuple[str, ...] | list[str]) -> np.ndarray:
    """`s.isin(values)` as a bool array, compared on codes (one lookup per distinct value)."""
    c, u = text_codes(s)
    want = np.array([v in values for v in u] + [False], dtype=bool)
    return want[c]


def combine(*parts: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """One int64 code per distinct combination of several code columns (missing = its own)."""
    out = np.zeros(len(parts[0][0]), dtype=np.int64)
    for codes, uniq in parts:
        out = out * (len(uniq) + 1) + (codes + 1)
    return out


def joined(df: pd.DataFrame, cols: list[str]) -> pd.Categorical:
    """One string per row joining `cols`, built once per distinct combination (fast)."""
    parts = [text_codes(df[c]) for c in cols]
    inv, uniq = pd.factorize(combine(*parts))
    first = np.flatnonzero(~pd.Series(inv).duplicated().to_numpy())
    names = ["\x1f".join("" if c[i] < 0 or (v := u[c[i]]) is None or v != v else str(v)
                         for c, u in parts) for i in first]
    return pd.Categorical.from_codes(inv, categories=pd.Index(names, dtype=object),
                                     validate=False)


def trading_status(raw: str) -> tuple[float, bool]:
    """apiTradingStatus in a usage event's raw: max indicator/trigger ratio, locked flag."""
    try:
        data = json.loads(raw)
    except ValueError:
        return 0.0, False
    data = data.get("data", data) if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        return 0.0, False
    locked = bool(data.get("isLocked", False))
    trig = data.get("triggerCondition") or {}
    counts = data.get("counts") or {}
    best = 0.0
    for name, limit in trig.items():
        c = counts.get(name)
        if isinstance(c, (int, float)) and isinstance(limit, (int, float)) and limit > 0:
            best = max(best, c / limit)
    for items in (data.get("indicators") or {}).values():
        for it in items if isinstance(items, list) else []:
            v, t = it.get("v"), it.get("t")
            if isinstance(v, (int, float)) and isinstance(t, (int, float)) and t > 0:
                best = max(best, v / t)
    return best, locked


def group_codes(s: pd.Series) -> tuple[np.ndarray, pd.Index | np.ndarray]:
    """Codes in groupby(sort=True) order: category order for categoricals, else sorted."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return s.cat.codes.to_numpy().astype(np.int64), s.cat.categories
    codes, uniq = pd.factorize(s.to_numpy(dtype=object), sort=True)
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)
