"""Public market data (/api/v3 depth, trades, klines, avgPrice, tickers): security NONE.

Everything is read from the tape (tape.py), the synthesized book (depthbook.py) and the
ticker windows (tickers.py), so a fill an account makes shows up in all of them at once.
Weights, parameters and errors follow binance-wire-2.md 2.1 and errors.md. Where Binance is
silent:
- SIMULATOR CHOICE: `limit` above the documented maximum is cut to the maximum (Binance
  documents that for /depth; for the others it states only the maximum); below 1 it is
  -1102 "'limit' contains unexpected value.".
- SIMULATOR CHOICE: parameters an endpoint does not read are -1104 with the documented
  message (Binance rejects unread parameters this way; which endpoints do is not listed).
- SIMULATOR CHOICE: `uiKlines` returns the same candles as `klines` (the docs say only
  "modified for presentation").
"""

from __future__ import annotations

import json
import re

from monitor.world.sim import errors
from monitor.world.sim.bars import (
    INTERVALS,
    MINUTE_MS,
    bar_next,
    bar_open,
    bar_prev,
    kline_row,
    parse_interval,
    parse_timezone,
    s8,
)
from monitor.world.sim.endpoint import Ctx, Endpoint, fixed
from monitor.world.sim.market import SYMBOLS
from monitor.world.sim.tape import SymbolTape, TapeTrade
from monitor.world.sim.tickers import rest_full, rest_mini, window_stats

_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
SYMBOLS_RANGE = r'^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$'
_WINDOW_RE = re.compile(r"^(\d{1,2})([mhd])$")
_WINDOW_MAX = {"m": 59, "h": 23, "d": 7}
_STATUS = ("TRADING", "HALT", "BREAK")


# -- parameters -----------------------------------------------------------------------------
def _only(params: dict[str, str], allowed: tuple[str, ...]) -> None:
    read = sum(1 for k in params if k in allowed)
    if read != len(params):
        raise errors.not_all_read(read, len(params))


def _symbol(params: dict[str, str]) -> str:
    raw = params.get("symbol")
    if raw is None:
        raise errors.missing_param("symbol")
    if raw == "":
        raise errors.param_empty("symbol")
    if not _SYMBOL_RE.match(raw):
        raise errors.illegal_chars("symbol", errors.SYMBOL_RANGE)
    if raw not in SYMBOLS:
        raise errors.invalid_symbol()
    return raw


def _symbols(raw: str) -> list[str]:
    try:
        names = json.loads(raw)
    except ValueError as exc:
        raise errors.illegal_chars("symbols", SYMBOLS_RANGE) from exc
    if not isinstance(names, list) or not all(
            isinstance(n, str) and _SYMBOL_RE.match(n) for n in names):
        raise errors.illegal_chars("symbols", SYMBOLS_RANGE)
    if not names:
        raise errors.param_empty("symbols")
    if len(set(names)) != len(names):
        raise errors.duplicate_symbols()
    if any(n not in SYMBOLS for n in names):
        raise errors.invalid_symbol()
    return names


def _selection(params: dict[str, str], required: bool = False) -> tuple[bool, list[str]]:
    """(single?, symbols) from `symbol` / `symbols`; neither means all unless `required`."""
    if "symbol" in params and "symbols" in params:
        raise errors.bad_param_combo()
    status = params.get("symbolStatus")
    if status is not None and status not in _STATUS:
        raise errors.invalid_symbol_status()
    if "symbol" in params:
        single, names = True, [_symbol(params)]
    elif "symbols" in params:
        single, names = False, _symbols(params["symbols"])
    elif required:
        raise errors.missing_either("symbol", "symbols")
    else:
        single, names = False, list(SYMBOLS)
    if status is not None and status != "TRADING":  # every simulated symbol is TRADING
        if single:
            raise errors.symbol_status_mismatch()
        names = []
    return single, names


def _int(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise errors.illegal_chars(name, errors.INT_RANGE)
    return int(raw)


def _limit(params: dict[str, str], default: int, maximum: int) -> int:
    n = _int(params, "limit")
    if n is None:
        return default
    if n < 1:
        raise errors.bad_value("limit")
    return min(n, maximum)


def _count_symbols(params: dict[str, str]) -> int | None:
    """How many symbols a request names, for its weight (None: all)."""
    if "symbol" in params:
        return 1
    try:
        names = json.loads(params["symbols"])
        return len(names) if isinstance(names, list) else 1
    except (KeyError, ValueError):
        return None


# -- weights (binance-wire-2.md 2.1) -----------------------------------------------------------
def _w_depth(p: dict[str, str]) -> int:
    try:
        n = int(p.get("limit") or 100)
    except ValueError:
        n = 100
    return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250


def _w_24hr(p: dict[str, str]) -> int:
    n = _count_symbols(p)
    if n is None:
        return 80
    return 2 if n <= 20 else 40 if n <= 100 else 80


def _w_single_or_4(p: dict[str, str]) -> int:
    return 2 if "symbol" in p else 4


def _w_per_symbol(p: dict[str, str]) -> int:
    n = _count_symbols(p) or 1
    return 200 if n > 50 else 4 * n


# -- handlers -------------------------------------------------------------------------------
def _trade(tr: TapeTrade) -> dict[str, object]:
    return {"id": tr.id, "price": s8(tr.price), "qty": s8(tr.qty), "quoteQty": s8(tr.quote),
            "time": tr.time, "isBuyerMaker": tr.buyer_maker, "isBestMatch": True}


def h_depth(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "limit", "symbolStatus"))
    symbol = _symbol(ctx.params)
    _selection({k: v for k, v in ctx.params.items() if k != "limit"})  # symbolStatus
    limit = _limit(ctx.params, 100, 5000)
    now = ctx.ex.now_ms()
    ctx.ex.tape.symbols[symbol].advance(now)
    book = ctx.ex.depth[symbol]
    book.refresh(now)
    last_id, bids, asks = book.snapshot(limit)
    return {"lastUpdateId": last_id, "bids": [[s8(p), s8(q)] for p, q in bids],
            "asks": [[s8(p), s8(q)] for p, q in asks]}


def _tape(ctx: Ctx, allowed: tuple[str, ...]) -> SymbolTape:
    _only(ctx.params, allowed)
    if "symbols" in ctx.params:
        raise errors.not_all_read(len(ctx.params) - 1, len(ctx.params))
    symbol = _symbol(ctx.params)
    tape = ctx.ex.tape.symbols[symbol]
    tape.advance(ctx.ex.now_ms())
    return tape


def h_trades(ctx: Ctx) -> object:
    tape = _tape(ctx, ("symbol", "limit"))
    limit = _limit(ctx.params, 500, 1000)
    return [_trade(t) for t in tape.trades[-limit:]]


def h_historical_trades(ctx: Ctx) -> object:
    tape = _tape(ctx, ("symbol", "limit", "fromId"))
    limit = _limit(ctx.params, 500, 1000)
    from_id = _int(ctx.params, "fromId")
    if from_id is None:
        return [_trade(t) for t in tape.trades[-limit:]]
    return [_trade(t) for t in tape.trades if t.id >= from_id][:limit]


def h_agg_trades(ctx: Ctx) -> object:
    tape = _tape(ctx, ("symbol", "fromId", "startTime", "endTime", "limit"))
    limit = _limit(ctx.params, 500, 1000)
    from_id, start, end = (_int(ctx.params, n) for n in ("fromId", "startTime", "endTime"))
    if start is not None and end is not None and end - start > 3_600_000:
        raise errors.lookup_too_long(1)
    rows = tape.trades
    if from_id is not None:
        rows = [t for t in rows if t.agg >= from_id]
    if start is not None:
        rows = [t for t in rows if t.time >= start]
    if end is not None:
        rows = [t for t in rows if t.time <= end]
    picked = rows[:limit] if (from_id is not None or start is not None) else rows[-limit:]
    return [{"a": t.agg, "p": s8(t.price), "q": s8(t.qty), "f": t.id, "l": t.id,
             "T": t.time, "m": t.buyer_maker, "M": True} for t in picked]


def h_klines(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "interval", "startTime", "endTime", "timeZone", "limit"))
    symbol = _symbol(ctx.params)
    interval = parse_interval(ctx.params.get("interval"))
    tz = parse_timezone(ctx.params.get("timeZone"))
    start, end = _int(ctx.params, "startTime"), _int(ctx.params, "endTime")
    limit = _limit(ctx.params, 500, 1000)
    now = ctx.ex.now_ms()
    tape = ctx.ex.tape.symbols[symbol]
    tape.advance(now)
    last = bar_open(min(end, now) if end is not None else now, interval, tz)
    opens: list[int] = []
    if start is not None:
        t = bar_open(start, interval, tz)
        t = t if t >= start else bar_next(t, interval, tz)
        t = max(t, bar_open(tape.back.listing_ms, interval, tz))
        while t <= last and len(opens) < limit:
            opens.append(t)
            t = bar_next(t, interval, tz)
    else:
        t = last
        while len(opens) < limit and t >= tape.back.listing_ms:
            opens.append(t)
            t = bar_prev(t, interval, tz)
        opens.reverse()
    rows: list[list[object]] = []
    for a in opens:
        b = bar_next(a, interval, tz)
        bar = tape.bar(a, b, second=INTERVALS[interval] == 1000)
        if bar is not None:
            rows.append(kline_row(bar, b - 1))
    return rows


def h_avg_price(ctx: Ctx) -> object:
    """`mins` 5 and the volume-weighted price of the last 5 minutes of candles.

    SIMULATOR CHOICE: Binance says "current average price"; the weighting and the
    `closeTime` (here: the last trade's time) are not documented.
    """
    _only(ctx.params, ("symbol",))
    symbol = _symbol(ctx.params)
    now = ctx.ex.now_ms()
    tape = ctx.ex.tape.symbols[symbol]
    tape.advance(now)
    bar = tape.bar(bar_open(now - 5 * MINUTE_MS, "1m"), now + 1)
    price = bar.q * 100_000_000 // bar.v if bar is not None and bar.v else tape.last_price(now)
    close = tape.trades[-1].time if tape.trades else now
    return {"mins": 5, "price": s8(price), "closeTime": close}


def _ticker_type(params: dict[str, str]) -> str:
    kind = params.get("type") or "FULL"
    if kind not in ("FULL", "MINI"):
        raise errors.invalid_ticker_type()
    return kind


def _answer(single: bool, rows: list[dict[str, object]]) -> object:
    return rows[0] if single else rows


def h_ticker_24hr(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "symbols", "type", "symbolStatus"))
    kind = _ticker_type(ctx.params)
    single, names = _selection(ctx.params)
    now = ctx.ex.now_ms()
    stats = [window_stats(ctx.ex, s, now - 1440 * MINUTE_MS, now) for s in names]
    return _answer(single, [rest_full(st, True) if kind == "FULL" else rest_mini(st)
                            for st in stats])


def h_ticker_price(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "symbols", "symbolStatus"))
    single, names = _selection(ctx.params)
    now = ctx.ex.now_ms()
    rows: list[dict[str, object]] = []
    for s in names:
        tape = ctx.ex.tape.symbols[s]
        tape.advance(now)
        rows.append({"symbol": s, "price": s8(tape.last_price(now))})
    return _answer(single, rows)


def h_book_ticker(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "symbols", "symbolStatus"))
    single, names = _selection(ctx.params)
    now = ctx.ex.now_ms()
    rows: list[dict[str, object]] = []
    for s in names:
        ctx.ex.tape.symbols[s].advance(now)
        book = ctx.ex.depth[s]
        book.refresh(now)
        bid, bid_q, ask, ask_q = book.best
        rows.append({"symbol": s, "bidPrice": s8(bid), "bidQty": s8(bid_q),
                     "askPrice": s8(ask), "askQty": s8(ask_q)})
    return _answer(single, rows)


def _window_ms(text: str | None) -> int:
    m = _WINDOW_RE.match(text or "1d")
    if not m or not 1 <= int(m.group(1)) <= _WINDOW_MAX[m.group(2)]:
        raise errors.bad_value("windowSize")
    unit = {"m": MINUTE_MS, "h": 60 * MINUTE_MS, "d": 1440 * MINUTE_MS}[m.group(2)]
    return int(m.group(1)) * unit


def _many(params: dict[str, str]) -> tuple[bool, list[str]]:
    single, names = _selection(params, required=True)
    if len(names) > 100:
        raise errors.too_many_values(100, len(names))
    return single, names


def h_ticker_rolling(ctx: Ctx) -> object:
    _only(ctx.params, ("symbol", "symbols", "windowSize", "type", "symbolStatus"))
    kind = _ticker_type(ctx.params)
    window = _window_ms(ctx.params.get("windowSize"))
    single, names = _many(ctx.params)
    now = ctx.ex.now_ms()
    stats = [window_stats(ctx.ex, s, now - window, now) for s in names]
    return _answer(single, [rest_full(st, False) if kind == "FULL" else rest_mini(st)
                            for st in stats])


def h_ticker_trading_day(ctx: Ctx) -> object:
    """The trading day so far: from 00:00 in `timeZone` (default UTC) to now."""
    _only(ctx.params, ("symbol", "symbols", "timeZone", "type", "symbolStatus"))
    kind = _ticker_type(ctx.params)
    tz = parse_timezone(ctx.params.get("timeZone"))
    single, names = _many(ctx.params)
    now = ctx.ex.now_ms()
    stats = [window_stats(ctx.ex, s, bar_open(now, "1d", tz), now) for s in names]
    return _answer(single, [rest_full(st, False) if kind == "FULL" else rest_mini(st)
                            for st in stats])


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/api/v3/depth", _w_depth, None, h_depth),
    Endpoint("GET", "/api/v3/trades", fixed(25), None, h_trades),
    Endpoint("GET", "/api/v3/historicalTrades", fixed(25), None, h_historical_trades),
    Endpoint("GET", "/api/v3/aggTrades", fixed(4), None, h_agg_trades),
    Endpoint("GET", "/api/v3/klines", fixed(2), None, h_klines),
    Endpoint("GET", "/api/v3/uiKlines", fixed(2), None, h_klines),
    Endpoint("GET", "/api/v3/avgPrice", fixed(2), None, h_avg_price),
    Endpoint("GET", "/api/v3/ticker/24hr", _w_24hr, None, h_ticker_24hr),
    Endpoint("GET", "/api/v3/ticker/price", _w_single_or_4, None, h_ticker_price),
    Endpoint("GET", "/api/v3/ticker/bookTicker", _w_single_or_4, None, h_book_ticker),
    Endpoint("GET", "/api/v3/ticker", _w_per_symbol, None, h_ticker_rolling),
    Endpoint("GET", "/api/v3/ticker/tradingDay", _w_per_symbol, None, h_ticker_trading_day),
]
