"""Derived facts that need history: each step holds both forms of one definition, side by side.

Every step reads and advances its own fields of `FeatureState` (named there). `replay` runs over
a whole time-ordered frame, vectorised where the rows are many (numpy over integer codes, a
Python pass only over the few rows that need one); `row` is the same definition for one live
event. Order-dependent parts (sums of order sizes, the balance before a reject) are defined in
event order so both forms give the same floats: tests/features prove live == replay per fact.
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
import pandas as pd

from monitor.core.framecodes import combine, isin_codes, quote_base, text_codes
from monitor.features.base import (
    ACCOUNT_ROW,
    NEW_VALUE_FIELDS,
    Fact,
    FeatureContext,
    FeatureState,
    Row,
)
from monitor.features.provenance import Verdict

NAN = float("nan")
TAPPED_ONLY = ("ip", "endpoint")  # first sightings counted on tapped calls only


def fdiv(a: float, b: float) -> float:
    """a / b with numpy's IEEE semantics (x/0 = +-inf, 0/0 = nan), as the vectorised form."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


class StepBase:
    """What the history steps share: the context they read and the state they advance."""

    facts: ClassVar[tuple[Fact, ...]] = ()

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        self.ctx, self.state = ctx, state


class Whitelist(StepBase):
    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("ip_whitelisted", "the caller's address against the key's declared whitelist: "
                               "True/False, None when none is declared", public=True),
    )

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        super().__init__(ctx, state)
        self._wl: dict[tuple[str, str, str], bool | None] = {}

    def row(self, r: Row, verdict: Verdict | None) -> None:
        ip, wl = r["ip"], None
        if r["tapped"] and ip is not None:
            t = (r["account"], r["wkey"], ip)
            if t in self._wl:
                wl = self._wl[t]
            else:
                wl = self._wl[t] = self.ctx.whitelisted(*t)
        r["ip_whitelisted"] = wl

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        out = np.full(len(df), None, dtype=object)
        ips, ipu = text_codes(df["ip"])
        rows = np.flatnonzero(df["tapped"].to_numpy() & (ips >= 0))
        if len(rows):
            acs, acu = text_codes(df["account"])
            wks, wku = text_codes(df["wkey"])
            inv, _ = pd.factorize(combine((acs[rows], acu), (wks[rows], wku), (ips[rows], ipu)))
            first = np.flatnonzero(~pd.Series(inv).duplicated().to_numpy())
            look = [self.ctx.whitelisted(str(acu[acs[rows[i]]]), str(wku[wks[rows[i]]]),
                                         str(ipu[ips[rows[i]]])) for i in first]
            out[rows] = np.array(look + [None], dtype=object)[inv]
        df["ip_whitelisted"] = out
        return df


class FirstSeen(StepBase):
    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("key_first_ts", "when this (account, key) was first seen (ms; -1: account row)"),
        *(Fact(f"first_{f}", f"first sighting ever of this {f} for this (account, key)")
          for f in NEW_VALUE_FIELDS),
    )

    def row(self, r: Row, verdict: Verdict | None) -> None:
        st, wkey, ak = self.state, r["wkey"], r["ak"]
        has_key = wkey != ACCOUNT_ROW
        if has_key:
            st.key_first_ts.setdefault(ak, r["ts"])
        r["key_first_ts"] = st.key_first_ts.get(ak, -1)
        for f in NEW_VALUE_FIELDS:
            first = False
            v = r[f]
            if has_key and v is not None and (r["tapped"] or f not in TAPPED_ONLY):
                t = (r["account"], wkey, v)
                seen = st.seen[f]
                if t not in seen:
                    seen.add(t)
                    first = True
            r[f"first_{f}"] = first

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        state, tapped = self.state, df["tapped"].to_numpy()
        has_key = df["wkey"].ne(ACCOUNT_ROW).to_numpy()
        akc, aku = text_codes(df["ak"])
        ts = df["ts"].to_numpy()
        rows = np.flatnonzero(has_key)
        # frames are in time order: a key's first row holds its min ts
        for i in rows[~pd.Series(akc[rows]).duplicated().to_numpy()]:
            state.key_first_ts.setdefault(aku[akc[i]], int(ts[i]))
        look = np.array([state.key_first_ts.get(k, -1) for k in aku] + [-1], dtype=np.int64)
        df["key_first_ts"] = look[akc]
        acs, acu = text_codes(df["account"])
        wks, wku = text_codes(df["wkey"])
        for f in NEW_VALUE_FIELDS:
            vc, vu = text_codes(df[f])
            elig = has_key & (vc >= 0)
            if f in TAPPED_ONLY:
                elig &= tapped
            col = np.zeros(len(df), dtype=bool)
            rows = np.flatnonzero(elig)
            combo = combine((acs[rows], acu), (wks[rows], wku), (vc[rows], vu))
            seen = state.seen[f]
            for i in rows[~pd.Series(combo).duplicated().to_numpy()]:
                t = (acu[acs[i]], wku[wks[i]], vu[vc[i]])
                if t not in seen:
                    col[i] = True
                    seen.add(t)
            df[f"first_{f}"] = col
        return df


class PriceOrders(StepBase):
    """Notional of a tapped order that carries none (a MARKET order by quantity, refused or
    answered with ACK): its quantity at the symbol's last price the exchange reported before
    it, in event order (`ref_price`): the account's fills and the poller's `price` events
    (ticker/price of the watched symbols), never a caller's limit price, which an attacker
    chooses. No price of the symbol yet: the notional stays unknown."""

    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("ref_price", "the exchange price an unpriced order was valued at", public=True),
    )

    def row(self, r: Row, verdict: Verdict | None) -> None:
        ref, st = NAN, self.state
        if r["kind"] in ("fill", "price"):
            if r["symbol"] is not None and r["price"] > 0:
                st.last_price[r["symbol"]] = r["price"]
        elif r["is_order_req"] and r["notional"] != r["notional"] and r["qty"] > 0 and (
                r["symbol"] is not None):
            ref = st.last_price.get(r["symbol"], NAN)
            r["notional"] = r["qty"] * ref
        r["ref_price"] = ref

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        n, state = len(df), self.state
        ref = np.full(n, np.nan)
        symc, symu = text_codes(df["symbol"])
        price = df["price"].to_numpy(dtype=float)
        frows = np.flatnonzero(isin_codes(df["kind"], ("fill", "price")) & (symc >= 0)
                               & (price > 0))
        notional = df["notional"].to_numpy(dtype=float)
        qty = df["qty"].to_numpy(dtype=float)
        need = np.flatnonzero(df["is_order_req"].to_numpy() & np.isnan(notional) & (qty > 0)
                              & (symc >= 0))
        if len(need):
            fsym = symc[frows]
            new_notional = notional.copy()
            for i in need:
                c = symc[i]
                rows = frows[fsym == c]
                k = int(np.searchsorted(rows, i)) - 1  # fills strictly before the order
                px = price[rows[k]] if k >= 0 else state.last_price.get(str(symu[c]), np.nan)
                ref[i] = px
                new_notional[i] = qty[i] * px
            df["notional"] = new_notional
        df["ref_price"] = ref
        for c in pd.unique(symc[frows]):
            state.last_price[str(symu[c])] = float(price[frows[symc[frows] == c][-1]])
        return df


class OrderSizes(StepBase):
    """Usual order size: mean notional of the key's own earlier orders (exclusive of this one).
    Sums run strictly in event order from the carried state (np.cumsum is sequential), so a
    replay and live batches of any size add the same floats in the same order."""

    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("usual_notional", "mean notional of the key's own earlier orders", public=True),
        Fact("notional_to_usual", "this order's notional / usual_notional", public=True),
    )

    def row(self, r: Row, verdict: Verdict | None) -> None:
        st, ak, notional = self.state, r["ak"], r["notional"]
        cnt = st.own_cnt.get(ak, 0.0)
        usual = st.own_sum.get(ak, 0.0) / cnt if cnt > 0 else NAN
        r["usual_notional"] = usual
        r["notional_to_usual"] = fdiv(notional, usual)
        if ((r["accepted_order"] or (r["is_new_order"] and not r["foreign"]))
                and notional == notional and r["wkey"] != ACCOUNT_ROW):
            st.own_sum[ak] = st.own_sum.get(ak, 0.0) + notional
            st.own_cnt[ak] = cnt + 1.0

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        state = self.state
        own = ((df["accepted_order"] | (df["is_new_order"] & ~df["foreign"]))
               & df["notional"].notna()).to_numpy() & df["wkey"].ne(ACCOUNT_ROW).to_numpy()
        notional = df["notional"].to_numpy(dtype=float)
        n = len(df)
        excl_sum, excl_cnt = np.zeros(n), np.zeros(n)
        if n:
            v = np.where(own, notional, 0.0)
            codes, names = df["ak"].cat.codes.to_numpy(), df["ak"].cat.categories
            order = np.argsort(codes, kind="stable")
            cuts = np.flatnonzero(np.diff(codes[order])) + 1
            for idx in np.split(order, cuts):
                k = names[codes[idx[0]]]
                cs = np.cumsum(np.concatenate(([state.own_sum.get(k, 0.0)], v[idx])))
                cc = np.cumsum(np.concatenate(([state.own_cnt.get(k, 0.0)],
                                               own[idx].astype(float))))
                excl_sum[idx], excl_cnt[idx] = cs[:-1], cc[:-1]
                if own[idx].any():
                    state.own_sum[k], state.own_cnt[k] = float(cs[-1]), float(cc[-1])
        with np.errstate(invalid="ignore", divide="ignore"):
            usual = np.where(excl_cnt > 0, excl_sum / np.maximum(excl_cnt, 1), np.nan)
            df["usual_notional"] = usual
            df["notional_to_usual"] = notional / usual
        return df


class RejectVsBalance(StepBase):
    """Free balance (in quote) of the asset a rejected order would have spent: the last balance
    update for it that came before the reject, in event order (the state holds earlier ones)."""

    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("free_value", "free balance of the asset a rejected order needed, in quote",
             public=True),
        Fact("notional_to_free", "a rejected order's notional / free_value (inf: none free)",
             public=True),
    )

    def row(self, r: Row, verdict: Verdict | None) -> None:
        st, fv, notional = self.state, NAN, r["notional"]
        if r["is_order_req"] and r["fclass"] != "ok" and notional == notional:
            quote, base = quote_base(r["symbol"])
            sell = r["side"] == "SELL"
            need = base if sell else quote
            if need is not None:
                free = st.balance.get((r["account"], need), NAN)
                fv = free * (fdiv(notional, r["qty"]) if sell else 1.0)
        r["free_value"] = fv
        if fv > 0:
            r["notional_to_free"] = notional / fv
        elif fv == 0 and notional > 0:
            r["notional_to_free"] = math.inf
        else:
            r["notional_to_free"] = NAN
        if r["kind"] == "balance" and r["asset"] is not None:
            st.balance[(r["account"], r["asset"])] = r["free"]

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        n, state = len(df), self.state
        fv = np.full(n, np.nan)
        acs, acu = text_codes(df["account"])
        ascs, asu = text_codes(df["asset"])
        free = df["free"].to_numpy(dtype=float)
        brows = np.flatnonzero(df["kind"].eq("balance").to_numpy() & (ascs >= 0))
        bkey = acs[brows] * (len(asu) + 1) + ascs[brows]
        notional = df["notional"].to_numpy(dtype=float)
        rej = np.flatnonzero(df["is_order_req"].to_numpy() & df["fclass"].ne("ok").to_numpy()
                             & ~np.isnan(notional))
        if len(rej):
            series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
            for k in pd.unique(bkey):  # each (account, asset): its balance rows, in order
                rows = brows[bkey == k]
                series[(str(acu[acs[rows[0]]]), str(asu[ascs[rows[0]]]))] = (rows, free[rows])
            sym, side = df["symbol"].to_numpy()[rej], df["side"].to_numpy()[rej]
            with np.errstate(invalid="ignore", divide="ignore"):
                px = notional[rej] / df["qty"].to_numpy(dtype=float)[rej]
            for j, i in enumerate(rej):
                quote, base = quote_base(sym[j] if isinstance(sym[j], str) else None)
                sell = side[j] == "SELL"
                need = base if sell else quote
                if need is None:
                    continue
                key = (str(acu[acs[i]]), need)
                f = state.balance.get(key, np.nan)
                if key in series:
                    rows, vals = series[key]
                    k = int(np.searchsorted(rows, i)) - 1  # balance rows strictly before it
                    if k >= 0:
                        f = vals[k]
                fv[i] = f * (px[j] if sell else 1.0)
        df["free_value"] = fv
        with np.errstate(invalid="ignore", divide="ignore"):
            ntf = np.where(fv > 0, notional / np.where(fv > 0, fv, 1.0), np.nan)
        ntf[(fv == 0) & (notional > 0)] = np.inf
        df["notional_to_free"] = ntf
        for k in pd.unique(bkey):
            last = brows[bkey == k][-1]
            state.balance[(str(acu[acs[last]]), str(asu[ascs[last]]))] = float(free[last])
        return df
