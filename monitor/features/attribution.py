"""Whose window an event counts in: the provenance step of enrichment, both forms.

Tap/log requests carry the key label; stream/REST order events carry the monitor's label (the
stream is per account), so they are re-attributed by provenance first (the tap or log record of
the call that placed or cancelled them: `provenance`), by the registered clientOrderId prefixes
of untapped bots second. Orders nothing explains are "foreign" (cancels: "foreign_cancel") and
land on the account-level row (key ""); `placed_by` names the suspect key. A report waiting for
its record (its grace, `provenance_grace_ms`) is enriched once decided: replay places a report
explained by a later record right after that record, where live enriches it, so both see the
same state order. The state machine (`provenance.Provenance`) decides live; replay decides
with its vectorised form (`provenance_frame`), or runs the machine where that does not apply.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from monitor.core.framecodes import combine, isin_codes, joined, text_codes
from monitor.core.orderpaths import endpoint
from monitor.features import provenance_frame
from monitor.features.base import ACCOUNT_ROW, Fact, FeatureContext, FeatureState, Row
from monitor.features.provenance import Held, Provenance, Verdict

_COLS = ("account", "key", "source", "ts", "ip", "method", "endpoint", "status", "code",
         "symbol", "order_id", "client_order_id", "raw", "kind", "exec_type")


def _text(v: Any) -> Any:
    return v if isinstance(v, str) else None


class Attribution:
    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("wkey", "the window key: the key that placed it (tapped label or provenance), "
                     "or '' (the account row)", public=True),
        Fact("ak", "account and window key joined (the per-key state's index)"),
        Fact("foreign", "a NEW order report no registered bot placed", public=True),
        Fact("foreign_cancel", "a CANCELED report no registered bot asked for", public=True),
        Fact("placed_by", "the key that placed the order (when foreign: the suspect)",
             public=True),
        Fact("provenance", "what told whose it is: tap | log | prefix | owner | ''",
             public=True),
    )

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        self.ctx, self.state = ctx, state

    def row(self, r: Row, verdict: Verdict | None) -> None:
        wkey = ACCOUNT_ROW
        if r["tapped"] and r["key"] is not None:
            wkey = r["key"]
        if verdict is not None:
            wkey = verdict.wkey
        r["wkey"] = wkey
        r["ak"] = f"{r['account']}\x1f{wkey}"
        order_evt = r["source"] in ("stream", "rest") and r["kind"] == "order"
        r["foreign"] = r["is_new_order"] and verdict is not None and verdict.foreign
        r["foreign_cancel"] = order_evt and verdict is not None and verdict.foreign_cancel
        r["placed_by"] = verdict.placed_by if verdict is not None else wkey
        r["provenance"] = verdict.how if verdict is not None else ""

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        df, pv = self._verdicts(df)
        wcodes, cats = pv.pop("wcode"), pv.pop("wcats")
        df["wkey"] = pd.Categorical.from_codes(
            wcodes, validate=False,
            categories=pd.Index(cats.astype(object), dtype=object))
        df["ak"] = joined(df, ["account", "wkey"])  # categorical: lookups per key, not per row
        order_evt = isin_codes(df["source"], ("stream", "rest")) & isin_codes(df["kind"],
                                                                             ("order",))
        df["foreign"] = df["is_new_order"].to_numpy() & pv["foreign"]
        df["foreign_cancel"] = order_evt & pv["foreign_cancel"]
        df["placed_by"] = pv["placed_by"]
        df["provenance"] = pv["how"]
        return df

    def _verdicts(self, df: pd.DataFrame, machine: bool = False
                  ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
        """Each row's window key and origin verdict, in event order.

        Only stream/REST order and fill reports and the tapped rows that can change what the
        state machine decides take part (everything else keeps its label): calls to an
        endpoint that acts on orders, and each (account, key, address)'s first call (it marks
        the key tapped and the address known; later calls of the same triple change nothing).
        They are decided all at once by `provenance_frame.verdicts` or, where it does not
        apply (and with `machine`), one at a time by the state machine itself. The frame is
        taken as complete: reports still waiting at its end are decided foreign. A report a
        later record explains moves to just after that record (where live enriches it); all
        else keeps its place.
        """
        n = len(df)
        exchange = isin_codes(df["source"], ("stream", "rest")) & isin_codes(df["kind"],
                                                                            ("order", "fill"))
        tapped = df["tapped"].to_numpy()
        keyed = tapped & df["key"].notna().to_numpy()
        kc, ku = text_codes(df["key"])
        base = np.where(keyed, kc, len(ku))  # the key's code, or the account row's
        wkey = np.append(np.asarray(ku, dtype=object), ACCOUNT_ROW).astype(object)[base]
        placed_by = wkey.copy()
        how = np.full(n, "", dtype=object)
        foreign = np.zeros(n, dtype=bool)
        fcancel = np.zeros(n, dtype=bool)
        rows = np.flatnonzero(exchange | (keyed & (_acts_on_orders(df) | _first_calls(df, keyed))))
        major = np.arange(n)
        minor = np.zeros(n, dtype=np.int64)
        moved = 0
        if len(rows):
            out = {"wkey": wkey, "placed_by": placed_by, "how": how, "foreign": foreign,
                   "foreign_cancel": fcancel, "major": major, "minor": minor}
            prov = Provenance(self.ctx, self.state.provenance)
            got = None if machine else provenance_frame.verdicts(prov, df, rows, tapped[rows],
                                                                 out)
            moved = _machine(prov, df, rows, tapped, out) if got is None else got
        wcode, wcats = _wkey_codes(base, ku, wkey, rows)
        pv = {"wkey": wkey, "placed_by": placed_by, "how": how, "foreign": foreign,
              "foreign_cancel": fcancel, "wcode": wcode}
        if moved:
            perm = np.lexsort((minor, major))
            df = df.iloc[perm].reset_index(drop=True)
            pv = {k: v[perm] for k, v in pv.items()}
        pv["wcats"] = wcats
        return df, pv


def _machine(prov: Provenance, df: pd.DataFrame, rows: np.ndarray, tapped: np.ndarray,
             out: dict[str, np.ndarray]) -> int:
    """The state machine over the selected rows, one at a time (the definition the
    vectorised `provenance_frame.verdicts` is checked against, and its fallback)."""
    wkey, placed_by, how = out["wkey"], out["placed_by"], out["how"]
    foreign, fcancel, major, minor = (out["foreign"], out["foreign_cancel"], out["major"],
                                      out["minor"])
    pst = prov.st
    pst.settle()
    moved = 0
    cols = {c: df[c].to_numpy()[rows].tolist() for c in _COLS}
    is_tap = tapped[rows].tolist()

    def put(i: int, v: Verdict) -> None:
        wkey[i], placed_by[i], how[i] = v.wkey, v.placed_by, v.how
        foreign[i], fcancel[i] = v.foreign, v.foreign_cancel

    for j, i in enumerate(rows.tolist()):
        ts = int(cols["ts"][j])
        if pst.dues and pst.dues[0][0] < ts:
            for h, v in prov.expire(ts):
                put(h.seq, v)
        a = cols["account"][j]
        if is_tap[j]:
            for h, v in prov.record(
                    a, _text(cols["key"][j]), cols["source"][j], ts,
                    _text(cols["ip"][j]), _text(cols["method"][j]),
                    _text(cols["endpoint"][j]), cols["status"][j], cols["code"][j],
                    _text(cols["symbol"][j]), cols["order_id"][j],
                    _text(cols["client_order_id"][j]), _text(cols["raw"][j])):
                put(h.seq, v)
                moved += 1
                major[h.seq], minor[h.seq] = i, moved
            continue
        got = prov.arrive(i, a, ts, cols["kind"][j], _text(cols["exec_type"][j]),
                          _text(cols["symbol"][j]), cols["order_id"][j],
                          _text(cols["client_order_id"][j]))
        if not isinstance(got, Held):
            put(i, got)
    for h, v in prov.expire(2**62):
        put(h.seq, v)
    return moved


def _wkey_codes(base: np.ndarray, ku: np.ndarray, wkey: np.ndarray, rows: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(wkey.astype(str), return_inverse=True)` without hashing or sorting every
    row: the undecided rows' window key is their key's category (or the account row)."""
    names = [str(u) for u in ku] + [str(ACCOUNT_ROW)]
    codes = base.copy()
    if len(rows):
        rc, ru = pd.factorize(wkey[rows])
        if (rc < 0).any():  # a missing window key: as np.unique would spell it
            cats, inv = np.unique(wkey.astype(str), return_inverse=True)
            return inv.reshape(-1), cats
        codes[rows] = rc + len(names)
        names += [str(u) for u in ru]
    present = np.bincount(codes, minlength=len(names)) > 0
    cats = np.array(sorted({n for n, p in zip(names, present.tolist(), strict=True) if p}))
    rank = {c: i for i, c in enumerate(cats.tolist())}
    return np.array([rank.get(n, -1) for n in names], dtype=np.int64)[codes], cats


TABLED = 1 << 22  # code spaces up to this size are looked up in a table, not hashed


def _acts_on_orders(df: pd.DataFrame) -> np.ndarray:
    """Rows calling an endpoint that places or cancels orders (one lookup per distinct pair)."""
    mc, mu = text_codes(df["method"])
    ec, eu = text_codes(df["endpoint"])
    combo = combine((mc, mu), (ec, eu))  # (method + 1) * (len(eu) + 1) + endpoint + 1
    size = (len(mu) + 1) * (len(eu) + 1)
    present = (np.flatnonzero(np.bincount(combo, minlength=size)) if size <= TABLED
               else pd.unique(combo))
    acts = {}
    for cb in present.tolist():
        mi, ei = divmod(cb, len(eu) + 1)
        ep = endpoint(_text(mu[mi - 1]) if mi else None, _text(eu[ei - 1]) if ei else None)
        acts[cb] = ep is not None and bool(ep.actions)
    if size <= TABLED:
        tab = np.zeros(size, dtype=bool)
        tab[list(acts)] = list(acts.values())
        return tab[combo]
    return np.asarray(pd.Series(combo).map(acts).to_numpy(), dtype=bool)


def _first_calls(df: pd.DataFrame, keyed: np.ndarray) -> np.ndarray:
    """Keyed tapped rows that are the frame's first of their (account, key, address)."""
    out = np.zeros(len(df), dtype=bool)
    rows = np.flatnonzero(keyed)
    if len(rows):
        parts = [_codes(df, c, rows) for c in ("account", "key", "ip")]
        combo = combine(*parts)
        size = int(np.prod([len(u) + 1 for _, u in parts], dtype=float))
        if size <= TABLED:
            first = np.full(size, len(rows), dtype=np.int64)
            np.minimum.at(first, combo, np.arange(len(rows), dtype=np.int64))
            out[rows[first[first < len(rows)]]] = True
        else:
            out[rows[~pd.Series(combo).duplicated().to_numpy()]] = True
    return out


def _codes(df: pd.DataFrame, col: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, u = text_codes(df[col])
    return c[rows], u
