"""A synthesized order book per symbol, consistent with the tape's bid/ask and the accounts'
resting LIMIT orders, with Binance's update-id bookkeeping so diff streams line up with the
REST snapshot.

SIMULATOR CHOICE (the simulator has no other traders): the best bid and ask are the tape's
(`SymbolTape.ask_bid`); behind them, levels sit on a fixed price grid (about 1 basis point of
the start price apart, at least one tick), `LEVELS` a side, with seeded sizes; each refresh
a few of the top levels change size. Open LIMIT orders of every account add their remaining
quantity at their price. Every refresh that changes levels is one batch with update ids
[U, u] (u - U + 1 = the number of levels changed), kept in a bounded log so each diff-depth
subscriber can be sent exactly what changed since its last event: consecutive events satisfy
U = previous u + 1, and a snapshot's lastUpdateId sits on a batch boundary.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass

from monitor.world.sim.backhistory import mix64
from monitor.world.sim.bars import E8
from monitor.world.sim.state import Books
from monitor.world.sim.tape import SymbolTape

LEVELS = 1000  # per side; SIMULATOR CHOICE: /depth?limit=5000 returns at most this many
LOG_CAP = 600  # batches kept for diff subscribers (one per refresh that changed something)
TWEAK_EVERY_MS = 100
FIRST_UPDATE_ID = 1_000_000


@dataclass
class Batch:
    first: int
    last: int
    time: int
    bids: dict[int, int]
    asks: dict[int, int]


class DepthBook:
    def __init__(self, tape: SymbolTape, books: Books, seed: int) -> None:
        self.tape, self.books = tape, books
        self.symbol = tape.symbol
        tick, step = tape.tick, tape.step_e8
        start = int(tape.spec.start_price * E8)
        self.grid = max(tick, start // 10_000 // tick * tick)
        self.step = step
        self.mean_qty = max(step, int(2000 * E8 * E8 // start // step) * step)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.update_id = FIRST_UPDATE_ID
        self.log: deque[Batch] = deque(maxlen=LOG_CAP)
        self.best = (0, 0, 0, 0)
        self._key: object = None
        self._tweaked_ms = 0
        self._tweaks: dict[int, int] = {}
        digest = hashlib.sha256(f"{seed}:{self.symbol}:book".encode()).digest()
        self._salt = int.from_bytes(digest[:8], "big")
        self._seed = seed
        self._bases: dict[int, int] = {}

    def _base(self, price: int) -> int:
        qty = self._bases.get(price)
        if qty is None:
            if len(self._bases) > 8 * LEVELS:
                self._bases.clear()
            u = mix64(self._salt ^ price) / 2.0**64
            qty = max(self.step, int(self.mean_qty * (0.2 + 1.8 * u) / self.step) * self.step)
            self._bases[price] = qty
        return qty

    def _qty(self, price: int) -> int:
        return self._tweaks.get(price) or self._base(price)

    def _overlay(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for account in self.books.accounts.values():
            for o in account.orders.values():
                if o.symbol == self.symbol and o.is_open and o.type != "MARKET":
                    out.append((o.side, int(o.price * E8), int((o.orig_qty - o.executed_qty)
                                                              * E8)))
        return tuple(sorted(out))

    def _desired(self, ask: int, bid: int,
                 overlay: tuple[tuple[str, int, int], ...]) -> tuple[dict[int, int],
                                                                      dict[int, int]]:
        bids = {bid: self._qty(bid)}
        p = (bid - 1) // self.grid * self.grid
        while len(bids) < LEVELS and p > 0:
            bids[p] = self._qty(p)
            p -= self.grid
        asks = {ask: self._qty(ask)}
        p = (ask // self.grid + 1) * self.grid
        while len(asks) < LEVELS:
            asks[p] = self._qty(p)
            p += self.grid
        for side, price, qty in overlay:
            if side == "BUY" and price < ask:
                bids[price] = bids.get(price, 0) + qty
            elif side == "SELL" and price > bid:
                asks[price] = asks.get(price, 0) + qty
        return bids, asks

    def refresh(self, now: int) -> None:
        """Bring the book to `now`; log a batch when any level changed."""
        ask, bid = self.tape.ask_bid(now)
        overlay = self._overlay()
        key = (ask, bid, overlay)
        tweaked = False
        if now - self._tweaked_ms >= TWEAK_EVERY_MS:
            n = int(min(6, (now - self._tweaked_ms) // TWEAK_EVERY_MS))
            rng = random.Random(f"{self._seed}:{self.symbol}:{now // TWEAK_EVERY_MS}")
            for _ in range(n):
                anchor, direction = (bid, -1) if rng.random() < 0.5 else (ask, 1)
                price = (anchor // self.grid + direction * rng.randint(1, 20)) * self.grid
                if price > 0:
                    self._tweaks[price] = max(self.step, int(
                        self.mean_qty * rng.uniform(0.1, 3.0) / self.step) * self.step)
            self._tweaked_ms = now
            tweaked = n > 0
            if len(self._tweaks) > 4 * LEVELS:
                self._tweaks.clear()
        if key == self._key and not tweaked:
            return
        self._key = key
        bids, asks = self._desired(ask, bid, overlay)
        bid_changes = _diff(self.bids, bids)
        ask_changes = _diff(self.asks, asks)
        self.bids, self.asks = bids, asks
        self.best = (bid, bids[bid], ask, asks[ask])
        count = len(bid_changes) + len(ask_changes)
        if count:
            first = self.update_id + 1
            self.update_id += count
            self.log.append(Batch(first, self.update_id, now, bid_changes, ask_changes))

    def snapshot(self, limit: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return self.update_id, bids, asks

    def since(self, last_u: int) -> Batch | None:
        """Every change after update id `last_u`, merged into one diff (None: nothing new)."""
        newer = [b for b in self.log if b.last > last_u]
        if not newer:
            return None
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for b in newer:
            bids.update(b.bids)
            asks.update(b.asks)
        return Batch(newer[0].first, newer[-1].last, newer[-1].time, bids, asks)


def _diff(old: dict[int, int], new: dict[int, int]) -> dict[int, int]:
    out = {p: q for p, q in new.items() if old.get(p) != q}
    out.update({p: 0 for p in old if p not in new})
    return out
