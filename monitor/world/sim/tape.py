"""The public trade tape per symbol: what /trades, klines, tickers and the streams report.

Two sources feed it, so that prices move and every public view agrees with the fills the
matching engine makes:
- every account fill: `Exchange` hands the engine a fan-out emit, and each executionReport
  with x=TRADE lands here with the engine's own trade id, price, quantity and time;
- background market trades, generated lazily as the clock advances: each 10 s step of the
  symbol's `PricePath` gets a seeded plan of trades (times, sides, sizes from
  `random.Random(seed:symbol:step)`), priced at the path's price when they fall due: taker
  buys at the ask (the path price), taker sells at the bid (one tick below). SIMULATOR CHOICE.

Ids come from `books.trade_id()`, the engine's own sequence, so tape ids are unique and
increase with time; they are global, not per symbol, so a symbol's ids have gaps
(`count` != lastId - firstId + 1), a SIMULATOR CHOICE forced by the shared sequence. A planned
trade that falls due after a fill is stamped no earlier than that fill, keeping ids and times
in the same order. Each tape trade is its own taker order, so an aggTrade holds one trade.

Caps (memory stays bounded however long the clock runs): RAW_CAP raw trades per symbol
(serve /trades, /historicalTrades, /aggTrades and 1s candles), minute bars for MINUTE_DAYS
days, hour bars for HOUR_DAYS days. Candles before t0 come from `BackHistory`.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from dataclasses import dataclass

from monitor.world.sim.backhistory import TRADE_NOTIONAL, TRADES_PER_STEP, BackHistory
from monitor.world.sim.bars import E8, HOUR_MS, MINUTE_MS, Bar, combine, e8
from monitor.world.sim.market import STEP_MS, SYMBOLS, PricePath
from monitor.world.sim.state import Books

RAW_CAP = 20_000
MINUTE_DAYS = 8
HOUR_DAYS = 400
MAX_CATCHUP_MS = 2 * 86_400_000  # a longer silent gap is skipped (flat candles), not replayed


@dataclass(slots=True)
class TapeTrade:
    id: int
    price: int  # E8
    qty: int  # E8
    quote: int  # E8
    time: int
    buyer_maker: bool
    agg: int


Listener = Callable[[str, TapeTrade], None]


def _time(tr: TapeTrade) -> int:
    return tr.time


class Series:
    """Contiguous fixed-size candles from the bucket holding t0, the oldest trimmed at `cap`.

    The first bucket is seeded with the back-history for [bucket, t0), so it is a full candle.
    """

    def __init__(self, size: int, cap: int, t0: int, back: BackHistory) -> None:
        self.size, self.cap = size, cap
        self.seed_open = t0 // size * size
        if self.seed_open < t0:
            first = back.bar(self.seed_open, t0)
        else:
            first = Bar.flat(t0, back.price(t0))
        self.bars = [first]
        self.first_open = self.seed_open

    def touch(self, t: int) -> Bar:
        """The candle holding `t`, creating flat candles for any quiet buckets before it."""
        last = self.bars[-1]
        while last.t + self.size <= t:
            last = Bar.flat(last.t + self.size, last.c)
            self.bars.append(last)
        if len(self.bars) > self.cap + self.cap // 8:
            drop = len(self.bars) - self.cap
            del self.bars[:drop]
            self.first_open = self.bars[0].t
        return last

    def covers(self, t: int) -> bool:
        return t >= self.first_open

    def range(self, a: int, b: int) -> list[Bar]:
        """Candles with open in [a, b); a and b on this series' grid."""
        i = max(0, (a - self.first_open) // self.size)
        j = max(0, -(-(b - self.first_open) // self.size))
        return self.bars[i:j]


class SymbolTape:
    def __init__(self, path: PricePath, books: Books, seed: int) -> None:
        self.spec = path.spec
        self.symbol = path.spec.symbol
        self.path, self.books, self.seed = path, books, seed
        self.t0 = path.t0_ms
        self.back = BackHistory(self.spec, seed, self.t0)
        self.tick = int(self.spec.tick * E8)
        self.step_e8 = int(self.spec.step * E8)
        self.trades: list[TapeTrade] = []
        self.raw_since = self.t0  # 1s candles are served from here on
        self.minutes = Series(MINUTE_MS, MINUTE_DAYS * 1440 + 60, self.t0, self.back)
        self.hours = Series(HOUR_MS, HOUR_DAYS * 24, self.t0, self.back)
        self.next_agg = 1
        self._step = 0
        self._plan: list[tuple[int, bool, int]] = []  # (time, taker_buy, qty E8), reversed
        self._planned_step = -1
        self.listeners: list[Listener] = []

    # -- background generation -------------------------------------------------------
    def _make_plan(self, step: int) -> None:
        rng = random.Random(f"{self.seed}:{self.symbol}:tape:{step}")
        start = self.t0 + step * STEP_MS
        n = rng.randint(TRADES_PER_STEP - 3, TRADES_PER_STEP + 3)
        mean_qty = TRADE_NOTIONAL / float(self.spec.start_price) * E8
        plan = []
        for _ in range(n):
            qty = int(mean_qty * rng.lognormvariate(0.0, 0.8) / self.step_e8) * self.step_e8
            plan.append((start + rng.randrange(STEP_MS), rng.random() < 0.5,
                         max(self.step_e8, qty)))
        plan.sort(reverse=True)
        self._plan = plan
        self._planned_step = step

    def advance(self, now: int) -> None:
        if now - (self.t0 + self._step * STEP_MS) > MAX_CATCHUP_MS:
            self._step = (now - MAX_CATCHUP_MS - self.t0) // STEP_MS
            self._planned_step = -1
        while self.t0 + self._step * STEP_MS <= now:
            if self._planned_step != self._step:
                self._make_plan(self._step)
            while self._plan and self._plan[-1][0] <= now:
                t, taker_buy, qty = self._plan.pop()
                self._background(t, taker_buy, qty)
            if self._plan:
                break
            self._step += 1
        self.minutes.touch(now)
        self.hours.touch(now)

    def ask_bid(self, at: int) -> tuple[int, int]:
        """(ask, bid) E8: the ask is the path price, the bid one tick below (SIMULATOR CHOICE:
        a one-tick spread, so a MARKET buy's fill at the path price is at the ask)."""
        ask = e8(self.path.at(at))
        return ask, max(self.tick, ask - self.tick)

    def _background(self, t: int, taker_buy: bool, qty: int) -> None:
        t = max(t, self.trades[-1].time if self.trades else t)
        ask, bid = self.ask_bid(t)
        price = ask if taker_buy else bid
        self._record(TapeTrade(self.books.trade_id(), price, qty, price * qty // E8, t,
                               not taker_buy, 0))

    def fill(self, trade_id: int, price: int, qty: int, quote: int, t: int,
             buyer_maker: bool) -> None:
        self._record(TapeTrade(trade_id, price, qty, quote, t, buyer_maker, 0))
        self.advance(t)

    def _record(self, tr: TapeTrade) -> None:
        tr.agg = self.next_agg
        self.next_agg += 1
        self.trades.append(tr)
        if len(self.trades) > RAW_CAP + RAW_CAP // 8:
            del self.trades[: len(self.trades) - RAW_CAP]
            self.raw_since = self.trades[0].time
        for series in (self.minutes, self.hours):
            series.touch(tr.time).add(tr.price, tr.qty, tr.quote, not tr.buyer_maker, tr.id)
        for listener in list(self.listeners):
            listener(self.symbol, tr)

    # -- queries ---------------------------------------------------------------------
    def last_price(self, now: int) -> int:
        return self.trades[-1].price if self.trades else self.back.price(self.t0)

    def price_before(self, t: int) -> int:
        """Last traded price strictly before `t` (the curve before t0)."""
        i = bisect.bisect_left(self.trades, t, key=_time)
        if i > 0:
            return self.trades[i - 1].price
        return self.back.price(min(t, self.t0))

    def _raw_bar(self, a: int, b: int) -> Bar | None:
        if a < self.raw_since:
            return None  # older than the raw trades kept
        i = bisect.bisect_left(self.trades, a, key=_time)
        j = bisect.bisect_left(self.trades, b, key=_time)
        bar = Bar.flat(a, self.price_before(a))
        for tr in self.trades[i:j]:
            bar.add(tr.price, tr.qty, tr.quote, not tr.buyer_maker, tr.id)
        return bar

    def bar(self, a: int, b: int, second: bool = False) -> Bar | None:
        """The aggregate over [a, b): back-history before t0, tape after; None when neither
        the candles kept nor the history reach back to `a`."""
        if a < self.back.listing_ms:
            return None
        if second:
            if b <= self.t0:
                return self.back.bar(a, b)
            parts = [self.back.bar(a, self.t0)] if a < self.t0 else []
            raw = self._raw_bar(max(a, self.t0), b)
            return None if raw is None else combine(a, [*parts, raw])
        if b <= self.minutes.seed_open:
            return self.back.bar(a, b)
        hourly = a % HOUR_MS == 0 and b % HOUR_MS == 0 and b - a >= HOUR_MS
        series = self.hours if hourly else self.minutes
        if not series.covers(max(a, series.seed_open)):
            series = self.hours
            if not series.covers(max(a, series.seed_open)):
                return None
        s0 = series.seed_open
        parts = [self.back.bar(a, s0)] if a < s0 else []
        parts += series.range(max(a, s0), b)
        return combine(a, parts)


class Tape:
    """All symbols' tapes; `on_event` is the fan-out target for the engine's events."""

    def __init__(self, paths: dict[str, PricePath], books: Books, seed: int) -> None:
        self.symbols = {s: SymbolTape(paths[s], books, seed) for s in SYMBOLS}

    def advance(self, now: int) -> None:
        for tape in self.symbols.values():
            tape.advance(now)

    def listen(self, listener: Listener) -> None:
        for tape in self.symbols.values():
            tape.listeners.append(listener)

    def on_event(self, event: dict[str, object]) -> None:
        if event.get("e") != "executionReport" or event.get("x") != "TRADE":
            return
        tape = self.symbols.get(str(event["s"]))
        if tape is None:
            return
        buyer_maker = (event["S"] == "BUY") == bool(event["m"])
        t = event["T"]
        trade_id = event["t"]
        assert isinstance(t, int) and isinstance(trade_id, int)
        tape.fill(trade_id, e8(str(event["L"])), e8(str(event["l"])), e8(str(event["Y"])), t,
                  buyer_maker)
