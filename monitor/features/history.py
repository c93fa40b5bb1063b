"""How a derived fact with history is computed: a few kinds (`How`), each in both forms once.

A fact is declared once in `catalog` as `Fact(name, doc, how=...)` (or `expr=...` when it needs
only its row, including earlier facts of the same step); `Facts` is the enrichment step made of
such declarations, in order. Each `How` below holds its two forms over its own state (kept in
`FeatureState.facts` under the fact's name): `replay` vectorised over a time-ordered frame (numpy
over integer codes, a Python pass only over the few rows that need one) and `live`, Python
source for one row that `Facts` compiles with the step's other facts into one function (no
per-node call per event). Order-dependent values (the last balance before a reject, running
sums) are defined in event order, so both forms give the same floats; tests/features prove
live == replay per fact.

- `Lookup`: a plain function of some columns (memoised), e.g. the whitelist verdict
- `FirstValue`: a column's value at the key's first row, e.g. when a key was first seen
- `FirstSighting`: True at the first row ever of a combination, e.g. a new caller address
- `LastValue`: a column's value at the key's last update row strictly before, e.g. the price
- `RunningMean`: mean of a column over the key's earlier included rows (exclusive)
- `RunningCount`: included rows of the key so far (inclusive)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from monitor.core.framecodes import combine, text_codes
from monitor.features.arith import Apply
from monitor.features.base import Fact, FeatureContext, FeatureState, Row
from monitor.features.expr import Expr, Namespace
from monitor.features.provenance import Verdict

NAN = float("nan")
KeyPart = str | Apply  # a text column, or a function of some (the key a row reads)
Values = Callable[[Expr], Any]  # a mask's values over the step's frame, each computed once


def _codes_at(df: pd.DataFrame, col: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes (-1: missing) of a text column at `rows` and the values they stand for."""
    s = df[col]
    if isinstance(s.dtype, pd.CategoricalDtype):  # its own small codes: sorted fastest
        c = s.cat.codes.to_numpy()
        return (c if len(rows) == len(c) else c[rows]), np.asarray(s.cat.categories,
                                                                     dtype=object)
    codes, uniq = pd.factorize(s.to_numpy(dtype=object)[rows])
    return codes.astype(np.int64), np.asarray(uniq, dtype=object)


def _combined(df: pd.DataFrame, cols: tuple[str, ...], rows: np.ndarray
              ) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]]]:
    parts = [_codes_at(df, c, rows) for c in cols]
    if len(parts) == 1:
        return parts[0][0], parts
    return combine(*((c.astype(np.int64), u) for c, u in parts)), parts


def _key(parts: list[tuple[np.ndarray, np.ndarray]], j: Any) -> Any:
    """The key of the j-th row: the value itself for one column, else a tuple (None: missing)."""
    key = tuple(None if c[j] < 0 else u[c[j]] for c, u in parts)
    return key[0] if len(parts) == 1 else key


def _groups(df: pd.DataFrame, cols: tuple[str, ...], rows: np.ndarray
            ) -> list[tuple[Any, np.ndarray]]:
    """`rows` grouped by the values of `cols`: (key, its rows ascending) per distinct key."""
    if not len(rows):
        return []
    comb, parts = _combined(df, cols, rows)
    order = np.argsort(comb, kind="stable")
    cuts = np.flatnonzero(np.diff(comb[order])) + 1
    return [(_key(parts, idx[0]), rows[idx]) for idx in np.split(order, cuts)]


def _firsts(df: pd.DataFrame, cols: tuple[str, ...], rows: np.ndarray
            ) -> list[tuple[Any, int]]:
    """(key, its first row) per distinct key of `cols` among `rows`, in order of appearance."""
    if not len(rows):
        return []
    comb, parts = _combined(df, cols, rows)
    first = np.flatnonzero(~pd.Series(comb).duplicated().to_numpy())
    return [(_key(parts, j), int(rows[j])) for j in first]


def _keys_at(df: pd.DataFrame, key: tuple[KeyPart, ...], rows: np.ndarray) -> list[Any]:
    """The key of each row in `rows`, as the live source builds it."""
    cols = []
    for k in key:
        if isinstance(k, Apply):
            cols.append(list(k.values_at(df, rows)))
        else:
            c, u = _codes_at(df, k, rows)
            cols.append([None if x < 0 else u[x] for x in c])
    return cols[0] if len(key) == 1 else list(zip(*cols, strict=True))


def _key_src(key: tuple[KeyPart, ...]) -> tuple[str, Namespace]:
    parts = [k.src() if isinstance(k, Apply) else f"r[{k!r}]" for k in key]
    names = {n: v for k in key if isinstance(k, Apply) for n, v in k.names().items()}
    return (parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ")"), names


class How:
    """One way of computing a fact with history; `live` renders lines for row `r` that set
    `r[out]` (`v`: a prefix unique to this fact for the names it adds to the namespace)."""

    keeps_history: ClassVar[bool] = True  # its state lives in `FeatureState.facts`

    def new_state(self) -> Any:
        return {}

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        raise NotImplementedError

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        raise NotImplementedError


@dataclass(frozen=True)
class Lookup(How):
    """`fn(*cols)` (`fn(ctx, *cols)` with `with_ctx`) on the rows `when` holds, else `default`;
    each distinct input computed once (a cache, not history: at most `bound` entries live)."""

    fn: Callable[..., Any]
    cols: tuple[str, ...]
    when: Expr
    default: Any = None
    with_ctx: bool = False
    bound: int | None = None
    keeps_history: ClassVar[bool] = False

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        dtype = np.asarray([self.default]).dtype
        out = np.full(len(df), self.default, dtype=dtype)
        pre = (ctx,) if self.with_ctx else ()
        rows = np.flatnonzero(ev(self.when))
        if len(rows):
            comb, parts = _combined(df, self.cols, rows)
            inv, _ = pd.factorize(comb)
            first = np.flatnonzero(~pd.Series(inv).duplicated().to_numpy())  # code order
            keys = [_key(parts, j) for j in first]
            look = [self.fn(*pre, *(k if len(self.cols) > 1 else (k,))) for k in keys]
            out[rows] = np.array([*look, self.default], dtype=dtype)[inv]
        return out

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        key, names = _key_src(tuple(self.cols))
        call = f"{v}fn({v}ctx, {'*' if len(self.cols) > 1 else ''}_t)" if self.with_ctx else (
            f"{v}fn({'*' if len(self.cols) > 1 else ''}_t)")
        clear = ([f"        if len({v}memo) >= {self.bound}:", f"            {v}memo.clear()"]
                 if self.bound else [])
        lines = [f"if {self.when.src()}:", f"    _t = {key}",
                 f"    _v = {v}memo.get(_t, _MISS)", "    if _v is _MISS:", *clear,
                 f"        _v = {v}memo[_t] = {call}", f"    r[{out!r}] = _v", "else:",
                 f"    r[{out!r}] = {v}default"]
        return lines, {**names, **self.when.names(), f"{v}fn": self.fn, f"{v}ctx": ctx,
                       f"{v}memo": {}, f"{v}default": self.default, "_MISS": _MISS}


_MISS = object()


@dataclass(frozen=True)
class FirstValue(How):
    """`value` at the first row of its `key` where `when` holds (state: key -> that value);
    `default` for a key without one."""

    key: str
    value: str
    when: Expr
    default: Any = None

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        kc, ku = text_codes(df[self.key])
        vals = df[self.value].to_numpy()
        for k, i in _firsts(df, (self.key,), np.flatnonzero(ev(self.when))):
            st.setdefault(k, vals[i].item())  # frames are in time order
        look = np.array([st.get(k, self.default) for k in ku] + [self.default],
                        dtype=vals.dtype)
        return look[kc]

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        lines = [f"if {self.when.src()}:",
                 f"    {v}st.setdefault(r[{self.key!r}], r[{self.value!r}])",
                 f"r[{out!r}] = {v}st.get(r[{self.key!r}], {v}default)"]
        return lines, {**self.when.names(), f"{v}st": st, f"{v}default": self.default}


@dataclass(frozen=True)
class FirstSighting(How):
    """True at the first row ever (state included) where `when` holds for its `cols` values
    (state: the set of those tuples)."""

    cols: tuple[str, ...]
    when: Expr

    def new_state(self) -> Any:
        return set()

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        out = np.zeros(len(df), dtype=bool)
        for k, i in _firsts(df, self.cols, np.flatnonzero(ev(self.when))):
            if k not in st:
                st.add(k)
                out[i] = True
        return out

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        key, names = _key_src(tuple(self.cols))
        lines = ["_f = False", f"if {self.when.src()}:", f"    _t = {key}",
                 f"    if _t not in {v}st:", f"        {v}st.add(_t)", "        _f = True",
                 f"r[{out!r}] = _f"]
        return lines, {**names, **self.when.names(), f"{v}st": st}


@dataclass(frozen=True)
class LastValue(How):
    """At rows where `read` holds: `value` at the last earlier row where `update` held with the
    same key (`key` on update rows; `read_key`, default `key`, on read rows), else NaN
    (state: key -> last value). Update rows must have every key part known."""

    value: str
    key: tuple[str, ...]
    update: Expr
    read: Expr
    read_key: tuple[KeyPart, ...] | None = None

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        out = np.full(len(df), np.nan)
        vals = df[self.value].to_numpy(dtype=float)
        groups = _groups(df, self.key, np.flatnonzero(ev(self.update)))
        rr = np.flatnonzero(ev(self.read))
        if len(rr):
            by_key = dict(groups)
            reads: dict[Any, list[int]] = {}
            for p, k in enumerate(_keys_at(df, self.read_key or self.key, rr)):
                reads.setdefault(k, []).append(p)
            for k, at in reads.items():
                ri, before = rr[at], st.get(k, NAN)
                rows = by_key.get(k)
                if rows is None:
                    out[ri] = before
                else:
                    j = np.searchsorted(rows, ri) - 1  # update rows strictly before
                    out[ri] = np.where(j >= 0, vals[rows[np.maximum(j, 0)]], before)
        for k, rows in groups:
            st[k] = float(vals[rows[-1]])
        return out

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        rkey, rnames = _key_src(self.read_key or self.key)
        ukey, unames = _key_src(self.key)
        lines = [f"r[{out!r}] = {v}st.get({rkey}, _NAN) if {self.read.src()} else _NAN",
                 f"if {self.update.src()}:", f"    {v}st[{ukey}] = r[{self.value!r}]"]
        return lines, {**rnames, **unames, **self.read.names(), **self.update.names(),
                       f"{v}st": st, "_NAN": NAN}


@dataclass
class MeanState:
    sums: dict[Any, float] = field(default_factory=dict)
    counts: dict[Any, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunningMean(How):
    """Mean of `value` over the key's earlier rows where `include` held (this one excluded;
    NaN before the first). Sums run strictly in event order from the state (np.cumsum is
    sequential), so a replay and live batches of any size add the same floats in order."""

    key: str
    value: str
    include: Expr

    def new_state(self) -> Any:
        return MeanState()

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        inc = np.asarray(ev(self.include), dtype=bool)
        x = df[self.value].to_numpy(dtype=float)
        n = len(df)
        excl_sum, excl_cnt = np.zeros(n), np.zeros(n)
        v = np.where(inc, x, 0.0)
        for k, idx in _groups(df, (self.key,), np.arange(n)):
            cs = np.cumsum(np.concatenate(([st.sums.get(k, 0.0)], v[idx])))
            cc = np.cumsum(np.concatenate(([st.counts.get(k, 0.0)], inc[idx].astype(float))))
            excl_sum[idx], excl_cnt[idx] = cs[:-1], cc[:-1]
            if inc[idx].any():
                st.sums[k], st.counts[k] = float(cs[-1]), float(cc[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(excl_cnt > 0, excl_sum / np.maximum(excl_cnt, 1), np.nan)

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        lines = [f"_k = r[{self.key!r}]", f"_c = {v}cnt.get(_k, 0.0)",
                 f"r[{out!r}] = {v}sum.get(_k, 0.0) / _c if _c > 0 else _NAN",
                 f"if {self.include.src()}:",
                 f"    {v}sum[_k] = {v}sum.get(_k, 0.0) + r[{self.value!r}]",
                 f"    {v}cnt[_k] = _c + 1.0"]
        return lines, {**self.include.names(), f"{v}sum": st.sums, f"{v}cnt": st.counts,
                       "_NAN": NAN}


@dataclass(frozen=True)
class RunningCount(How):
    """Rows of the key where `when` held so far, this one included (state: key -> count)."""

    key: str
    when: Expr

    def replay(self, df: pd.DataFrame, st: Any, ctx: FeatureContext, ev: Values) -> Any:
        w = np.asarray(ev(self.when), dtype=np.int64)
        kc, ku = text_codes(df[self.key])
        start = np.array([st.get(k, 0) for k in ku] + [0], dtype=np.int64)
        out = start[kc]
        for k, rows in _groups(df, (self.key,), np.flatnonzero(w)):
            idx = np.flatnonzero(kc == kc[rows[0]])
            cs = np.cumsum(w[idx])
            out[idx] += cs
            st[k] = st.get(k, 0) + int(cs[-1])
        return out

    def live(self, out: str, v: str, st: Any, ctx: FeatureContext
             ) -> tuple[list[str], Namespace]:
        lines = [f"_k = r[{self.key!r}]", f"if {self.when.src()}:",
                 f"    {v}st[_k] = {v}st.get(_k, 0) + 1", f"r[{out!r}] = {v}st.get(_k, 0)"]
        return lines, {**self.when.names(), f"{v}st": st}


class Facts:
    """An enrichment step made of declared facts, computed in order (a fact may read the ones
    before it); scratch facts (`_name`) are dropped at the step's end. `facts`: the listed ones."""

    def __init__(self, name: str, declared: tuple[Fact, ...]) -> None:
        self.name, self.declared = name, declared
        self.facts: tuple[Fact, ...] = tuple(f for f in declared if f.listed)

    def __call__(self, ctx: FeatureContext, state: FeatureState) -> BoundFacts:
        return BoundFacts(self, ctx, state)


class BoundFacts:
    """`Facts` over one context and state: `replay(df)` and the compiled `row(r, verdict)`."""

    def __init__(self, step: Facts, ctx: FeatureContext, state: FeatureState) -> None:
        self.step, self.ctx = step, ctx
        self.states: dict[str, object] = {}
        ns: Namespace = {}
        name = "_".join(step.name.split())
        lines = [f"def {name}(r, _verdict=None):"]
        for i, f in enumerate(step.declared):
            if f.expr is not None:
                ns.update(f.expr.names())
                lines.append(f"    r[{f.name!r}] = {f.expr.src()}")
                continue
            assert f.how is not None, f"{f.name}: a fact needs expr= or how="
            st = (state.facts.setdefault(f.name, f.how.new_state()) if f.how.keeps_history
                  else None)
            self.states[f.name] = st
            body, names = f.how.live(f.name, f"_p{i}_", st, ctx)
            ns.update(names)
            lines += ["    " + b for b in body]
        lines += [f"    del r[{f.name!r}]" for f in step.declared if f.scratch]
        exec("\n".join(lines), ns)  # noqa: S102 - source generated from the declarations
        self.row = cast(Callable[[Row, Verdict | None], None], ns[name])
        self.row.__doc__ = "\n".join(lines)  # what runs, readable with help()

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        cache: dict[Expr, Any] = {}  # masks over the frame as it stands (facts only add)

        def ev(e: Expr) -> Any:
            if e not in cache:
                cache[e] = e.values(df)
            return cache[e]

        for f in self.step.declared:
            if f.rewrite:
                cache.clear()  # it changes a column a mask may read
            if f.expr is not None:
                df[f.name] = f.expr.values(df)
            else:
                assert f.how is not None
                df[f.name] = f.how.replay(df, self.states[f.name], self.ctx, ev)
        for f in self.step.declared:
            if f.scratch:
                del df[f.name]
        return df
