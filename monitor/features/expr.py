"""Row predicates and per-row values written once, run two ways: over a frame and over one row.

A window feature's mask ("tapped and failed") or a row-local derived fact ("is this a placed
order?") is an `Expr` tree. `values(frame)` evaluates it vectorised for replay (text columns
compared on categorical codes, see `framecodes`); `src()` renders it as one Python expression
over a row dict `r`, which `history.Facts` and the live window accumulator compile into plain
functions for the live path (no per-node call per event: live stays at hand-written speed).
Numbers (`Col`, `Div`, `Where`, ...) are in `arith`. Both renderings come from the same
node, so the two paths cannot drift; tests/features prove they agree on generated traffic.

Missing values follow the frame's conventions: numbers are NaN (never None), text is None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.core.framecodes import isin_codes

# what generated source refers to by name (constants, functions, state): opaque values
Namespace = dict[str, object]


class Expr:
    """A value per row: `values` for a frame, `src` for one row dict named `r`."""

    def values(self, df: pd.DataFrame) -> Any:
        raise NotImplementedError

    def src(self) -> str:
        raise NotImplementedError

    def names(self) -> Namespace:
        """Constants the rendered source refers to (the live namespace)."""
        return {}

    def __and__(self, other: Expr) -> Expr:
        return All((self, other))

    def __or__(self, other: Expr) -> Expr:
        return AnyOf((self, other))

    def __invert__(self) -> Expr:
        return Not(self)


@dataclass(frozen=True)
class Flag(Expr):
    """A boolean column (a derived fact computed earlier)."""

    col: str

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(df[self.col].to_numpy(), dtype=bool)

    def src(self) -> str:
        return f"r[{self.col!r}]"


@dataclass(frozen=True)
class In(Expr):
    """A text column holding one of `options` (missing: False)."""

    col: str
    options: tuple[str, ...]

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return isin_codes(df[self.col], self.options)

    def src(self) -> str:
        if len(self.options) == 1:
            return f"r[{self.col!r}] == {self.options[0]!r}"
        return f"r[{self.col!r}] in {tuple(self.options)!r}"


@dataclass(frozen=True)
class IsFalse(Expr):
    """An optional boolean column that is False (None, unknown, is not False)."""

    col: str

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return np.asarray(np.equal(df[self.col].to_numpy(), False), dtype=bool)

    def src(self) -> str:
        return f"r[{self.col!r}] is False"


@dataclass(frozen=True)
class Present(Expr):
    """A numeric column that is not NaN."""

    col: str

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return ~np.isnan(df[self.col].to_numpy(dtype=float))

    def src(self) -> str:
        return f"r[{self.col!r}] == r[{self.col!r}]"


@dataclass(frozen=True)
class AtLeast(Expr):
    """A numeric column >= `bound` (NaN: False)."""

    col: str
    bound: float

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return np.nan_to_num(df[self.col].to_numpy(dtype=float), nan=-np.inf) >= self.bound

    def src(self) -> str:
        return f"r[{self.col!r}] >= {float(self.bound)!r}"


@dataclass(frozen=True)
class FloorTo(Expr):
    """An integer column rounded down to a multiple of `step` (the window start)."""

    col: str
    step: int

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return (df[self.col].to_numpy() // self.step) * self.step

    def src(self) -> str:
        return f"(r[{self.col!r}] // {self.step}) * {self.step}"


@dataclass(frozen=True)
class Not(Expr):
    arg: Expr

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return ~self.arg.values(df)

    def src(self) -> str:
        return f"(not ({self.arg.src()}))"

    def names(self) -> Namespace:
        return self.arg.names()


@dataclass(frozen=True)
class All(Expr):
    args: tuple[Expr, ...]

    def values(self, df: pd.DataFrame) -> np.ndarray:
        out = self.args[0].values(df)
        for a in self.args[1:]:
            out = out & a.values(df)
        return np.asarray(out, dtype=bool)

    def src(self) -> str:
        return "(" + " and ".join(f"({a.src()})" for a in self.args) + ")"

    def names(self) -> Namespace:
        return {k: v for a in self.args for k, v in a.names().items()}


@dataclass(frozen=True)
class AnyOf(Expr):
    args: tuple[Expr, ...]

    def values(self, df: pd.DataFrame) -> np.ndarray:
        out = self.args[0].values(df)
        for a in self.args[1:]:
            out = out | a.values(df)
        return np.asarray(out, dtype=bool)

    def src(self) -> str:
        return "(" + " or ".join(f"({a.src()})" for a in self.args) + ")"

    def names(self) -> Namespace:
        return {k: v for a in self.args for k, v in a.names().items()}


@dataclass(frozen=True)
class Classify(Expr):
    """A label per row: `ok` unless `when`; then the first of `by_code[code]`,
    `by_status[status]`, `other` (a categorical over the sorted labels in replay)."""

    when: Expr
    by_code: Mapping[int, str]
    by_status: Mapping[int, str]
    ok: str = "ok"
    other: str = "other"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(sorted({self.ok, self.other, *self.by_code.values(),
                             *self.by_status.values()}))

    def values(self, df: pd.DataFrame) -> pd.Categorical:
        labels = self.labels
        hit = self.when.values(df)
        code = df["code"].to_numpy(dtype=float)
        status = df["status"].to_numpy(dtype=float)
        out = np.full(len(df), labels.index(self.ok), dtype=np.int8)
        out[hit] = labels.index(self.other)
        for s, cls in self.by_status.items():
            out[hit & (status == s)] = labels.index(cls)
        for c, cls in self.by_code.items():  # a code outranks the HTTP status
            out[hit & (code == c)] = labels.index(cls)
        return pd.Categorical.from_codes(out, categories=pd.Index(labels, dtype=object),
                                         validate=False)

    def src(self) -> str:
        statuses = {float(s): c for s, c in self.by_status.items()}
        return (f"({self.ok!r} if not ({self.when.src()}) else (_by_code_{id(self)}.get(r['code'])"
                f" or {statuses!r}.get(r['status'], {self.other!r})))")

    def names(self) -> Namespace:
        return {f"_by_code_{id(self)}": {float(k): v for k, v in self.by_code.items()},
                **self.when.names()}


@dataclass(frozen=True)
class Known(Expr):
    """A text column that is not missing."""

    col: str

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return df[self.col].notna().to_numpy()

    def src(self) -> str:
        return f"r[{self.col!r}] is not None"
