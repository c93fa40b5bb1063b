"""Ticker statistics over a window of the tape, and their REST and stream renderings.

One computation (`window_stats`) feeds GET /api/v3/ticker/24hr, /ticker, /ticker/tradingDay
and the @ticker, @miniTicker and @ticker_<w> streams, so every view of a window agrees.
Field names and types follow binance-wire-2.md 2.1 and 2.5.

SIMULATOR CHOICE: windows are summed from whole minute candles, so every window opens on a
minute (Binance documents that for the rolling windows; for the 24hr ticker it says only
"24 hours"), and `openTime` is that minute. Before the simulator started, the back-history
curve supplies prices and volumes (see backhistory.py); firstId/lastId/count cover tape
trades only, and are -1/-1/0 when none traded in the window, as on Binance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from monitor.world.sim.bars import E8, MINUTE_MS, Bar, bar_open, s8
from monitor.world.sim.exchange import Exchange

_PCT = Decimal("0.001")


@dataclass
class WindowStats:
    symbol: str
    open_ms: int
    close_ms: int
    bar: Bar
    prev_close: int
    last_qty: int
    best: tuple[int, int, int, int]  # bid, bid qty, ask, ask qty (E8)


def window_stats(ex: Exchange, symbol: str, open_ms: int, now: int) -> WindowStats:
    tape = ex.tape.symbols[symbol]
    tape.advance(now)
    open_ms = bar_open(open_ms, "1m")
    bar = tape.bar(open_ms, now + 1) or Bar.flat(open_ms, tape.last_price(now))
    book = ex.depth[symbol]
    book.refresh(now)
    last_qty = tape.trades[-1].qty if tape.trades else 0
    return WindowStats(symbol, open_ms, now, bar, tape.price_before(open_ms), last_qty,
                       book.best)


def rolling(ex: Exchange, symbol: str, window_ms: int, now: int) -> WindowStats:
    return window_stats(ex, symbol, now - window_ms, now)


def _pct(change: int, base: int) -> str:
    if base == 0:
        return "0.000"
    return format((Decimal(change) * 100 / Decimal(base)).quantize(_PCT), "f")


def _wavg(b: Bar) -> str:
    return s8(b.q * E8 // b.v) if b.v else s8(0)


def _ids(st: WindowStats) -> tuple[int, int, int]:
    b = st.bar
    if b.f < 0:
        return -1, -1, 0
    return b.f, b.L, b.tn


def rest_full(st: WindowStats, with_book: bool) -> dict[str, object]:
    """FULL: the 24hr ticker (with_book) or the rolling/tradingDay ticker (without)."""
    b = st.bar
    first, last, count = _ids(st)
    out: dict[str, object] = {"symbol": st.symbol, "priceChange": s8(b.c - b.o),
                              "priceChangePercent": _pct(b.c - b.o, b.o),
                              "weightedAvgPrice": _wavg(b)}
    if with_book:
        bid, bid_q, ask, ask_q = st.best
        out.update({"prevClosePrice": s8(st.prev_close), "lastPrice": s8(b.c),
                    "lastQty": s8(st.last_qty), "bidPrice": s8(bid), "bidQty": s8(bid_q),
                    "askPrice": s8(ask), "askQty": s8(ask_q)})
    out.update({"openPrice": s8(b.o), "highPrice": s8(b.h), "lowPrice": s8(b.l)})
    if not with_book:
        out["lastPrice"] = s8(b.c)
    out.update({"volume": s8(b.v), "quoteVolume": s8(b.q), "openTime": st.open_ms,
                "closeTime": st.close_ms, "firstId": first, "lastId": last, "count": count})
    return out


def rest_mini(st: WindowStats) -> dict[str, object]:
    b = st.bar
    first, last, count = _ids(st)
    return {"symbol": st.symbol, "openPrice": s8(b.o), "highPrice": s8(b.h),
            "lowPrice": s8(b.l), "lastPrice": s8(b.c), "volume": s8(b.v),
            "quoteVolume": s8(b.q), "openTime": st.open_ms, "closeTime": st.close_ms,
            "firstId": first, "lastId": last, "count": count}


def event_ticker(st: WindowStats, now: int) -> dict[str, object]:
    """<s>@ticker (24hrTicker)."""
    b = st.bar
    first, last, count = _ids(st)
    bid, bid_q, ask, ask_q = st.best
    return {"e": "24hrTicker", "E": now, "s": st.symbol, "p": s8(b.c - b.o),
            "P": _pct(b.c - b.o, b.o), "w": _wavg(b), "x": s8(st.prev_close), "c": s8(b.c),
            "Q": s8(st.last_qty), "b": s8(bid), "B": s8(bid_q), "a": s8(ask), "A": s8(ask_q),
            "o": s8(b.o), "h": s8(b.h), "l": s8(b.l), "v": s8(b.v), "q": s8(b.q),
            "O": st.open_ms, "C": st.close_ms, "F": first, "L": last, "n": count}


def event_mini(st: WindowStats, now: int) -> dict[str, object]:
    """<s>@miniTicker and the elements of !miniTicker@arr (24hrMiniTicker)."""
    b = st.bar
    return {"e": "24hrMiniTicker", "E": now, "s": st.symbol, "c": s8(b.c), "o": s8(b.o),
            "h": s8(b.h), "l": s8(b.l), "v": s8(b.v), "q": s8(b.q)}


def event_rolling(st: WindowStats, window: str, now: int) -> dict[str, object]:
    """<s>@ticker_<1h|4h|1d> (e = "1hTicker" ...)."""
    b = st.bar
    first, last, count = _ids(st)
    return {"e": f"{window}Ticker", "E": now, "s": st.symbol, "p": s8(b.c - b.o),
            "P": _pct(b.c - b.o, b.o), "o": s8(b.o), "h": s8(b.h), "l": s8(b.l),
            "c": s8(b.c), "w": _wavg(b), "v": s8(b.v), "q": s8(b.q), "O": st.open_ms,
            "C": st.close_ms, "F": first, "L": last, "n": count}


WINDOW_MS = {"1h": 60 * MINUTE_MS, "4h": 240 * MINUTE_MS, "1d": 1440 * MINUTE_MS}
