"""Numbers and choices over a row, the values of the facts with history (`catalog`), both forms.

The same `Expr` contract as `expr` (`values` over a frame, `src` over one row dict `r`), for
arithmetic: IEEE semantics in both (x/0 = +-inf, 0/0 = NaN, NaN compares False; live divides
through `fdiv`), numpy's floating-point warnings silenced in the vectorised form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from monitor.features.expr import Expr, Namespace

NAN = float("nan")


class Arith(Expr):
    """Arithmetic and choices over numbers (the values of history facts): IEEE semantics in
    both forms (x/0 = +-inf, 0/0 = NaN, NaN compares False), numpy's warnings silenced."""

    def values(self, df: pd.DataFrame) -> Any:
        with np.errstate(all="ignore"):
            return self._values(df)

    def _values(self, df: pd.DataFrame) -> Any:
        raise NotImplementedError


def _num(e: Expr, df: pd.DataFrame) -> Any:
    return e._values(df) if isinstance(e, Arith) else e.values(df)


@dataclass(frozen=True)
class Col(Arith):
    """A numeric column's value (NaN: missing)."""

    col: str

    def _values(self, df: pd.DataFrame) -> np.ndarray:
        return df[self.col].to_numpy(dtype=float)

    def src(self) -> str:
        return f"r[{self.col!r}]"


@dataclass(frozen=True)
class Const(Arith):
    value: float

    def _values(self, df: pd.DataFrame) -> np.ndarray:
        return np.full(len(df), self.value)

    def src(self) -> str:
        v = float(self.value)
        return repr(v) if math.isfinite(v) else f"_const_{id(self)}"

    def names(self) -> Namespace:
        v = float(self.value)
        return {} if math.isfinite(v) else {f"_const_{id(self)}": v}


@dataclass(frozen=True)
class Binary(Arith):
    """`a <op> b` over numbers, the same operator in both forms."""

    a: Expr
    b: Expr
    op: ClassVar[str] = ""
    vec: ClassVar[Any]  # the numpy ufunc

    def _values(self, df: pd.DataFrame) -> Any:
        return type(self).vec(_num(self.a, df), _num(self.b, df))

    def src(self) -> str:
        return f"({self.a.src()} {self.op} {self.b.src()})"

    def names(self) -> Namespace:
        return {**self.a.names(), **self.b.names()}


class Mul(Binary):
    op, vec = "*", np.multiply


class Sub(Binary):
    op, vec = "-", np.subtract


class Gt(Binary):
    op, vec = ">", np.greater


class Ge(Binary):
    op, vec = ">=", np.greater_equal


class Eq(Binary):
    op, vec = "==", np.equal


@dataclass(frozen=True)
class Div(Arith):
    """a / b; live through `_fdiv`, numpy's division as a function (x/0 = +-inf, 0/0 = NaN)."""

    a: Expr
    b: Expr

    def _values(self, df: pd.DataFrame) -> Any:
        return _num(self.a, df) / _num(self.b, df)

    def src(self) -> str:
        return f"_fdiv({self.a.src()}, {self.b.src()})"

    def names(self) -> Namespace:
        return {"_fdiv": fdiv, **self.a.names(), **self.b.names()}


@dataclass(frozen=True)
class Where(Arith):
    """`then` where `cond` holds, else `other` (live evaluates only the branch taken)."""

    cond: Expr
    then: Expr
    other: Expr

    def _values(self, df: pd.DataFrame) -> Any:
        return np.where(self.cond.values(df), _num(self.then, df), _num(self.other, df))

    def src(self) -> str:
        return f"({self.then.src()} if ({self.cond.src()}) else {self.other.src()})"

    def names(self) -> Namespace:
        return {**self.cond.names(), **self.then.names(), **self.other.names()}


@dataclass(frozen=True)
class AtLeastOf(Arith):
    """max(`low`, x), NaN counting as `low` (np.fmax; Python's max keeps `low` first)."""

    x: Expr
    low: float

    def _values(self, df: pd.DataFrame) -> Any:
        return np.fmax(self.low, _num(self.x, df))

    def src(self) -> str:
        return f"max({float(self.low)!r}, {self.x.src()})"

    def names(self) -> Namespace:
        return self.x.names()


@dataclass(frozen=True)
class Apply(Expr):
    """A plain function of some columns' values (text missing: None), for the few rows that
    need it: `values_at` calls it per row (replay), the live source calls it on the row."""

    fn: Callable[..., Any]
    cols: tuple[str, ...]

    def values(self, df: pd.DataFrame) -> np.ndarray:
        return self.values_at(df, np.arange(len(df)))

    def values_at(self, df: pd.DataFrame, rows: np.ndarray) -> np.ndarray:
        cols = [[v if isinstance(v, str) else None for v in df[c].to_numpy(dtype=object)[rows]]
                if not pd.api.types.is_numeric_dtype(df[c].dtype)
                else df[c].to_numpy()[rows] for c in self.cols]
        out = np.empty(len(rows), dtype=object)
        out[:] = [self.fn(*vs) for vs in zip(*cols, strict=True)] if len(rows) else []
        return out

    def src(self) -> str:
        return f"_fn_{id(self)}({', '.join(f'r[{c!r}]' for c in self.cols)})"

    def names(self) -> Namespace:
        return {f"_fn_{id(self)}": self.fn}


def fdiv(a: float, b: float) -> float:
    """a / b with numpy's IEEE semantics (x/0 = +-inf, 0/0 = nan), as the vectorised form."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
