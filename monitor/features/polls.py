"""Derived facts read off the poller's usage events: the account's order counter against the
orders the tapped bots placed, and apiTradingStatus. Both forms side by side, as in `history`.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from monitor.core.framecodes import text_codes, trading_status
from monitor.features.base import Fact, FeatureContext, FeatureState, Row
from monitor.features.history import StepBase
from monitor.features.provenance import Verdict


class CounterGrowth(StepBase):
    """At each usage poll: account order-counter growth minus tapped bots' orders since the last."""

    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("orders_1d_growth", "growth of the account's order counter since the last poll"),
        Fact("unexplained_orders", "that growth minus the orders tapped bots placed"),
    )

    def row(self, r: Row, verdict: Verdict | None) -> None:
        st, acct = self.state, r["account"]
        if r["accepted_order"]:
            st.bot_orders[acct] = st.bot_orders.get(acct, 0) + 1
        growth = unexpl = 0.0
        o1d = r["orders_1d"]
        if r["kind"] == "usage" and o1d == o1d:
            bots = st.bot_orders.get(acct, 0)
            last = st.last_usage.get(acct)
            if last is not None:
                growth = float(o1d - last[0]) if o1d >= last[0] else float(o1d)
                unexpl = max(0.0, growth - (bots - last[1]))
            st.last_usage[acct] = (int(o1d), bots)
        r["orders_1d_growth"], r["unexplained_orders"] = growth, unexpl

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        state = self.state
        acc_order = df["accepted_order"].to_numpy().astype(np.int64)
        acs, acu = text_codes(df["account"])
        cum_bots = np.zeros(len(df), dtype=np.int64)
        totals: dict[str, int] = {}
        for a in np.unique(acs[acc_order > 0]) if acc_order.any() else []:
            rows = np.flatnonzero(acs == a)
            cum_bots[rows] = np.cumsum(acc_order[rows])
            totals[str(acu[a])] = int(cum_bots[rows[-1]])
        growth = np.zeros(len(df))
        unexpl = np.zeros(len(df))
        o1d_all = df["orders_1d"].to_numpy()
        usage = np.flatnonzero(df["kind"].eq("usage").to_numpy() & ~np.isnan(o1d_all))
        for i in usage:
            acct, o1d = str(acu[acs[i]]), o1d_all[i]
            bots = int(cum_bots[i]) + state.bot_orders.get(acct, 0)
            last = state.last_usage.get(acct)
            if last is not None:
                growth[i] = float(o1d - last[0]) if o1d >= last[0] else float(o1d)
                unexpl[i] = max(0.0, growth[i] - (bots - last[1]))
            state.last_usage[acct] = (int(o1d), bots)
        df["orders_1d_growth"] = growth
        df["unexplained_orders"] = unexpl
        for acct, c in totals.items():
            state.bot_orders[acct] = state.bot_orders.get(acct, 0) + c
        return df


class TradingStatus(StepBase):
    """Per usage event with a raw body: `framecodes.trading_status` (each text parsed once)."""

    facts: ClassVar[tuple[Fact, ...]] = (
        Fact("trading_ratio", "apiTradingStatus: the highest indicator/trigger ratio",
             public=True),
        Fact("trading_locked", "apiTradingStatus: the account is locked from trading",
             public=True),
    )

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        super().__init__(ctx, state)
        self._seen: dict[str, tuple[float, bool]] = {}

    def _parse(self, raw: str) -> tuple[float, bool]:
        got = self._seen.get(raw)
        if got is None:
            if len(self._seen) >= 256:  # polls carry changing counts: stay bounded
                self._seen.clear()
            got = self._seen[raw] = trading_status(raw)
        return got

    def row(self, r: Row, verdict: Verdict | None) -> None:
        ratio, locked = 0.0, False
        if r["kind"] == "usage" and r["raw"] is not None:
            ratio, locked = self._parse(r["raw"])
        r["trading_ratio"], r["trading_locked"] = ratio, locked

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        ratio = np.zeros(len(df))
        locked = np.zeros(len(df), dtype=bool)
        rows = np.flatnonzero((df["kind"].eq("usage") & df["raw"].notna()).to_numpy())
        raws = df["raw"].to_numpy()
        for i in rows:
            ratio[i], locked[i] = self._parse(raws[i])
        df["trading_ratio"], df["trading_locked"] = ratio, locked
        return df
