"""Public market-data stream names: which exist, and how often each one is pushed.

Names and update speeds follow binance-wire-2.md 2.5 (Binance's web-socket-streams.md):
symbols lowercase; `@depth`/`@depth<5|10|20>` every 1000 ms or, with `@100ms`, every 100 ms;
klines every 1000 ms for `1s` and 2000 ms otherwise, optionally with a time-zone suffix
(`@kline_1h@+08:00`); tickers and avgPrice every 1000 ms; trades, aggTrades and bookTicker in
real time. Periods are in clock time; the pump's wall-clock floor (pubstreams.py) caps how
often that can be at a fast clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from monitor.world.sim.bars import INTERVALS, parse_timezone
from monitor.world.sim.errors import ApiError
from monitor.world.sim.market import SYMBOLS

_LOWER = {s.lower(): s for s in SYMBOLS}
_SYM = re.compile(
    r"^([a-z0-9]+)@(trade|aggTrade|bookTicker|ticker|miniTicker|avgPrice"
    r"|depth(5|10|20)?(@100ms|@1000ms)?"
    r"|kline_([0-9]+[smhdwM])(@[+-]?\d{1,2}(?::\d{2})?)?|ticker_(1h|4h|1d))$")
# All-market streams web-socket-streams.md still documents; `!ticker@arr` (every 24hr ticker)
# is gone from it, so the simulator refuses that name as Binance now would.
_ALL = re.compile(r"^!(miniTicker|ticker_(1h|4h|1d))@arr$")
REALTIME = 0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    symbol: str | None  # None: an all-market stream
    kind: str  # trade aggTrade bookTicker ticker miniTicker avgPrice depth partial kline rolling
    period_ms: int
    levels: int = 0  # partial depth
    interval: str = ""  # kline
    tz_ms: int = 0  # kline time zone
    window: str = ""  # rolling ticker


def parse(name: str) -> StreamSpec | None:
    """The stream a name stands for, or None when Binance has no such stream."""
    if not isinstance(name, str):
        return None
    m = _ALL.match(name)
    if m:
        kind = "miniTicker" if m.group(1) == "miniTicker" else "rolling"
        return StreamSpec(name, None, kind, 1000, window=m.group(2) or "")
    m = _SYM.match(name)
    if not m or m.group(1) not in _LOWER:
        return None
    symbol, body = _LOWER[m.group(1)], m.group(2)
    if body in ("trade", "aggTrade", "bookTicker"):
        return StreamSpec(name, symbol, body, REALTIME)
    if body in ("ticker", "miniTicker", "avgPrice"):
        return StreamSpec(name, symbol, body, 1000)
    if body.startswith("depth"):
        period = 100 if m.group(4) == "@100ms" else 1000
        if m.group(3):
            return StreamSpec(name, symbol, "partial", period, levels=int(m.group(3)))
        return StreamSpec(name, symbol, "depth", period)
    if body.startswith("kline_"):
        interval = m.group(5)
        if interval not in INTERVALS:
            return None
        tz = 0
        if m.group(6):
            try:
                tz = parse_timezone(m.group(6)[1:])
            except ApiError:
                return None
        return StreamSpec(name, symbol, "kline", 1000 if interval == "1s" else 2000,
                          interval=interval, tz_ms=tz)
    return StreamSpec(name, symbol, "rolling", 1000, window=m.group(7))
