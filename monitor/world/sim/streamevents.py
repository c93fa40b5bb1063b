"""Payloads of the public market-data streams, exactly as binance-wire-2.md 2.5 lists them.

Built from the same tape, book and ticker windows as the REST answers, so a stream and a REST
call made at the same clock time agree. Per-subscription state (`SubState`) carries what a
stream must remember between pushes: the last diff-depth update id sent (so consecutive
events satisfy U = previous u + 1), the open kline, the last best bid/ask, the last tickers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.world.sim.bars import E8, MINUTE_MS, bar_next, bar_open, s8
from monitor.world.sim.exchange import Exchange
from monitor.world.sim.market import SYMBOLS
from monitor.world.sim.streamnames import StreamSpec
from monitor.world.sim.tape import TapeTrade
from monitor.world.sim.tickers import (
    WINDOW_MS,
    event_mini,
    event_rolling,
    event_ticker,
    window_stats,
)


@dataclass
class SubState:
    spec: StreamSpec
    next_due: int = 0
    last_u: int = -1
    kline_open: int | None = None
    top: tuple[int, int, int, int] | None = None
    last: dict[str, dict[str, object]] = field(default_factory=dict)


def trade_event(symbol: str, tr: TapeTrade, now: int) -> dict[str, object]:
    return {"e": "trade", "E": now, "s": symbol, "t": tr.id, "p": s8(tr.price),
            "q": s8(tr.qty), "T": tr.time, "m": tr.buyer_maker, "M": True}


def agg_event(symbol: str, tr: TapeTrade, now: int) -> dict[str, object]:
    return {"e": "aggTrade", "E": now, "s": symbol, "a": tr.agg, "p": s8(tr.price),
            "q": s8(tr.qty), "f": tr.id, "l": tr.id, "T": tr.time, "m": tr.buyer_maker,
            "M": True}


def start_state(ex: Exchange, spec: StreamSpec, now: int) -> SubState:
    """A new subscription: diff depth starts after the book's current update id."""
    st = SubState(spec, next_due=now)
    if spec.symbol is not None and spec.kind == "depth":
        book = ex.depth[spec.symbol]
        book.refresh(now)
        st.last_u = book.update_id
    return st


def _levels(side: dict[int, int], reverse: bool) -> list[list[str]]:
    return [[s8(p), s8(q)] for p, q in sorted(side.items(), reverse=reverse)]


def _kline(ex: Exchange, spec: StreamSpec, open_ms: int, now: int) -> dict[str, object]:
    assert spec.symbol is not None
    tape = ex.tape.symbols[spec.symbol]
    close = bar_next(open_ms, spec.interval, spec.tz_ms)
    bar = tape.bar(open_ms, min(close, now + 1), second=spec.interval == "1s")
    if bar is None:
        bar = tape.bar(open_ms, close) or tape.back.bar(open_ms, close)
    return {"e": "kline", "E": now, "s": spec.symbol, "k": {
        "t": open_ms, "T": close - 1, "s": spec.symbol, "i": spec.interval, "f": bar.f,
        "L": bar.L, "o": s8(bar.o), "c": s8(bar.c), "h": s8(bar.h), "l": s8(bar.l),
        "v": s8(bar.v), "n": bar.n, "x": now >= close, "q": s8(bar.q), "V": s8(bar.vb),
        "Q": s8(bar.qb), "B": "0"}}


def _ticker(ex: Exchange, kind: str, window: str, symbol: str, now: int) -> dict[str, object]:
    if kind == "rolling":
        st = window_stats(ex, symbol, now - WINDOW_MS[window], now)
        return event_rolling(st, window, now)
    st = window_stats(ex, symbol, now - WINDOW_MS["1d"], now)
    return event_ticker(st, now) if kind == "ticker" else event_mini(st, now)


def _changed(st: SubState, event: dict[str, object]) -> bool:
    key = str(event["s"])
    body = {k: v for k, v in event.items() if k not in ("E", "C")}
    if st.last.get(key) == body:
        return False
    st.last[key] = body
    return True


def periodic(ex: Exchange, st: SubState, now: int) -> list[object]:
    """The payloads a due periodic (or bookTicker) stream pushes now; may be empty."""
    spec = st.spec
    if spec.symbol is None:  # all-market arrays carry only tickers that changed
        rows = [_ticker(ex, spec.kind, spec.window, s, now) for s in SYMBOLS]
        changed = [r for r in rows if _changed(st, r)]
        return [changed] if changed else []
    symbol = spec.symbol
    book = ex.depth[symbol]
    if spec.kind == "bookTicker":
        book.refresh(now)
        if book.best == st.top:
            return []
        st.top = book.best
        bid, bid_q, ask, ask_q = book.best
        return [{"u": book.update_id, "s": symbol, "b": s8(bid), "B": s8(bid_q),
                 "a": s8(ask), "A": s8(ask_q)}]
    if spec.kind == "depth":
        book.refresh(now)
        batch = book.since(st.last_u)
        if batch is None:
            return []
        st.last_u = batch.last
        return [{"e": "depthUpdate", "E": now, "s": symbol, "U": batch.first, "u": batch.last,
                 "b": _levels(batch.bids, True), "a": _levels(batch.asks, False)}]
    if spec.kind == "partial":
        book.refresh(now)
        last_id, bids, asks = book.snapshot(spec.levels)
        return [{"lastUpdateId": last_id, "bids": [[s8(p), s8(q)] for p, q in bids],
                 "asks": [[s8(p), s8(q)] for p, q in asks]}]
    if spec.kind == "kline":
        current = bar_open(now, spec.interval, spec.tz_ms)
        out: list[object] = []
        if st.kline_open is not None and st.kline_open != current:
            out.append(_kline(ex, spec, st.kline_open, now))  # the final, closed candle
        st.kline_open = current
        out.append(_kline(ex, spec, current, now))
        return out
    if spec.kind == "avgPrice":
        tape = ex.tape.symbols[symbol]
        bar = tape.bar(bar_open(now - 5 * MINUTE_MS, "1m"), now + 1)
        price = bar.q * E8 // bar.v if bar is not None and bar.v else tape.last_price(now)
        last_t = tape.trades[-1].time if tape.trades else now
        return [{"e": "avgPrice", "E": now, "s": symbol, "i": "5m", "w": s8(price),
                 "T": last_t}]
    return [_ticker(ex, spec.kind, spec.window, symbol, now)]
