"""Orders and trades since the cursor: how a stream gap is filled exactly once.

For each watched symbol two cursors live in the store:
- `orders:<account>:<symbol>` = the lowest orderId that may still change (the oldest order
  that was open at the last look, else one past the newest order seen);
- `trades:<account>:<symbol>` = one past the newest trade id seen.
`allOrders(orderId=cursor)` and `myTrades(fromId=cursor)` then return everything that can have
changed, and `parse.order_facts_from_rest` rebuilds the stream's facts with the stream's ids,
so whatever the stream already delivered is ignored by the store. A restart resumes from the
stored cursors. Weights: 20 + 20 per symbol (binance-wire.md section 3).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.binance.parse import (
    Ctx,
    order_facts_from_rest,
    req_int,
    req_str,
    safely,
    trade_without_order,
)
from monitor.binance.rest import BinanceRest
from monitor.collect.ingest import Put
from monitor.core.events import Event, Source
from monitor.store import Store

log = logging.getLogger(__name__)
PAGE = 1000
FINAL = frozenset({"FILLED", "CANCELED", "EXPIRED", "REJECTED", "EXPIRED_IN_MATCH"})


@dataclass
class BackfillResult:
    symbols: int = 0
    orders: int = 0
    trades: int = 0
    facts: int = 0
    malformed: int = 0


class Backfill:
    def __init__(
        self,
        rest: BinanceRest,
        store: Store,
        put: Put,
        *,
        symbols: Iterable[str] = (),
        initial_lookback_ms: int = 3_600_000,
    ) -> None:
        self.rest, self.store, self.put = rest, store, put
        self.account = rest.account
        self.initial_lookback_ms = initial_lookback_ms
        self.symbols: set[str] = set(symbols)
        saved = store.get_cursor(self._symbols_cursor)
        if saved:
            self.symbols.update(json.loads(saved))
        self._lock = asyncio.Lock()

    @property
    def _symbols_cursor(self) -> str:
        return f"symbols:{self.account}"

    def learn(self, symbol: str | None) -> None:
        """A symbol seen on the stream joins the watch list (persisted)."""
        if symbol and symbol not in self.symbols and len(symbol) <= 20:
            self.symbols.add(symbol)
            self.store.set_cursor(self._symbols_cursor, json.dumps(sorted(self.symbols)))

    async def run(self) -> BackfillResult:
        """One pass over every watched symbol; concurrent callers share one pass at a time."""
        async with self._lock:
            total = BackfillResult()
            for symbol in sorted(self.symbols):
                r = await self.symbol(symbol)
                total.symbols += 1
                total.orders += r.orders
                total.trades += r.trades
                total.facts += r.facts
                total.malformed += r.malformed
            return total

    async def symbol(self, symbol: str) -> BackfillResult:
        res = BackfillResult()
        ocur, tcur = f"orders:{self.account}:{symbol}", f"trades:{self.account}:{symbol}"
        start = self.rest.server_now() - self.initial_lookback_ms
        orders = await self._pages("/api/v3/allOrders", symbol, "orderId",
                                   self.store.get_cursor(ocur), start, "orderId")
        trades = await self._pages("/api/v3/myTrades", symbol, "fromId",
                                   self.store.get_cursor(tcur), start, "id")
        ctx = Ctx(account=self.account, received_ts=self.rest.clock.now_ms())
        by_order: dict[Any, list[dict]] = {}
        loose: list[dict] = []
        order_ids = {o.get("orderId") for o in orders if isinstance(o, dict)}
        for tr in trades:
            oid = tr.get("orderId") if isinstance(tr, dict) else None
            (by_order.setdefault(oid, []) if oid in order_ids else loose).append(tr)
        events: list[Event] = []
        for o in orders:
            oid = o.get("orderId") if isinstance(o, dict) else None
            events += safely(Source.STREAM, ctx, "allOrders", o, order_facts_from_rest, o,
                             by_order.get(oid, []), ctx, "/api/v3/allOrders")  # type: ignore[arg-type]
        for tr in loose:
            events += safely(Source.STREAM, ctx, "myTrades", tr, trade_without_order, tr, ctx,
                             "/api/v3/myTrades")
        # the cursors travel with the events they cover: one transaction, never ahead of them
        await self.put(events, self._advance(ocur, tcur, orders, trades))
        res.orders, res.trades, res.facts = len(orders), len(trades), len(events)
        res.malformed = sum(1 for e in events if e.event_id.startswith("stream:malformed:"))
        return res

    async def _pages(self, path: str, symbol: str, cursor_param: str, cursor: str | None,
                     start: int, id_field: str) -> list[dict]:
        out: list[dict] = []
        params: dict[str, object] = {"symbol": symbol, "limit": PAGE}
        if cursor is None:
            params["startTime"] = start
        else:
            params[cursor_param] = int(cursor)
        while True:
            res = await self.rest.get(path, params, weight=20)
            page = res.body if isinstance(res.body, list) else []
            out.extend(p for p in page if isinstance(p, dict))
            if len(page) < PAGE:
                return out
            ids = [p[id_field] for p in page if isinstance(p, dict)
                   and isinstance(p.get(id_field), int)]
            if not ids:
                return out
            params = {"symbol": symbol, "limit": PAGE, cursor_param: max(ids) + 1}

    def _advance(self, ocur: str, tcur: str, orders: list[dict], trades: list[dict]
                 ) -> dict[str, str]:
        """The cursors after this pass (none if an answer was malformed)."""
        try:
            ids = [req_int(o, "orderId") for o in orders]
            open_ids = [req_int(o, "orderId") for o in orders if req_str(o, "status") not in FINAL]
            tids = [req_int(t, "id") for t in trades]
        except ValueError:
            log.warning("%s: malformed order/trade in the answer; cursors not advanced",
                        self.account)
            return {}
        out: dict[str, str] = {}
        if open_ids:
            out[ocur] = str(min(open_ids))
        elif ids:
            out[ocur] = str(max(ids) + 1)
        if tids:
            out[tcur] = str(max(tids) + 1)
        return out
