"""Sorted-array lookups over rows in order, for the replay forms of per-row state machines.

A machine's dictionary, read at a row, is "the last entry of that key before the row": with the
entries as (code, position) pairs sorted once, every row's question is one `searchsorted`
(`RowIndex`). `Codes` keeps dense codes for values met in bulk plus the few met one by one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

I64 = np.int64


def firsts(x: np.ndarray) -> np.ndarray:
    """Positions of the first occurrence of each value (in order)."""
    return np.flatnonzero(~pd.Series(x).duplicated().to_numpy())


class RowIndex:
    """Entries (code, position in row order): the last before / first after a row."""

    def __init__(self, code: np.ndarray, pos: np.ndarray, erow: np.ndarray) -> None:
        self.n = len(erow) + 1
        comp = code * self.n + pos
        order = np.argsort(comp, kind="stable")
        self.comp, self.pos, self.code = comp[order], pos[order], code[order]
        self.erow = erow  # the row of every entry, in position order

    def _at(self, q: np.ndarray, bound: np.ndarray, before: bool) -> np.ndarray:
        out = np.full(len(q), -1, dtype=I64)
        if not len(self.comp):
            return out
        has = q >= 0
        i = np.searchsorted(self.comp, np.where(has, q, 0) * self.n + bound, "left")
        i = i - 1 if before else i
        ok = has & (i >= 0) & (i < len(self.comp))
        i = np.clip(i, 0, len(self.comp) - 1)
        ok &= self.code[i] == q
        out[ok] = self.pos[i[ok]]
        return out

    def last_before(self, q: np.ndarray, row: np.ndarray) -> np.ndarray:
        """Per query: the last entry of code q at a row < `row` (-1: none)."""
        return self._at(q, np.searchsorted(self.erow, row, "left"), True)

    def last_upto(self, q: np.ndarray, row: np.ndarray) -> np.ndarray:
        return self._at(q, np.searchsorted(self.erow, row, "right"), True)

    def first_after(self, q: np.ndarray, row: np.ndarray) -> np.ndarray:
        return self._at(q, np.searchsorted(self.erow, row, "right"), False)


def first_valid(cands: list[np.ndarray], ok: list[np.ndarray]) -> np.ndarray:
    """Per row, the first candidate (in key order) that is valid; -1 when none is."""
    out = np.full(len(cands[0]), -1, dtype=I64)
    for c, o in zip(reversed(cands), reversed(ok), strict=True):
        out = np.where(o, c, out)
    return out


class Codes:
    """Dense codes of values (order ids, clientOrderIds, symbols) across records and reports;
    values only a multi-order answer names are added one by one."""

    def __init__(self, codes: np.ndarray, uniq: Any) -> None:
        self.codes, self.values = codes, list(uniq)
        self._index: dict[Any, int] | None = None

    def of(self, v: Any) -> int:
        if self._index is None:
            self._index = {u: i for i, u in enumerate(self.values)}
        got = self._index.get(v)
        if got is None:
            got = self._index[v] = len(self.values)
            self.values.append(v)
        return got
