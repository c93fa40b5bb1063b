"""Candle arithmetic shared by the tape, the REST klines and the kline streams.

Prices and quantities here are integers in units of 1e-8 ("E8"), because every simulated
symbol's tick times step size is a whole number of 1e-8, so volumes sum exactly and format as
Binance's 8-decimal strings without Decimal in the hot path. Interval names, their alignment
(weeks start on Monday, months on the 1st) and the `timeZone` offset follow the spot docs'
klines section (binance-wire-2.md 2.1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from monitor.world.sim import errors

E8 = 100_000_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Interval -> fixed length in ms; "1M" (calendar month) is None.
INTERVALS: dict[str, int | None] = {
    "1s": 1000, "1m": MINUTE_MS, "3m": 3 * MINUTE_MS, "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS, "30m": 30 * MINUTE_MS, "1h": HOUR_MS, "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS, "6h": 6 * HOUR_MS, "8h": 8 * HOUR_MS, "12h": 12 * HOUR_MS,
    "1d": DAY_MS, "3d": 3 * DAY_MS, "1w": 7 * DAY_MS, "1M": None,
}
_MONDAY_SHIFT = 4 * DAY_MS  # 1970-01-01 was a Thursday; weeks open on Monday 00:00
_TZ = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")


def e8(value: Decimal | str | int) -> int:
    return int(Decimal(str(value)) * E8)


def s8(value: int) -> str:
    """An E8 integer as Binance's 8-decimal string."""
    sign = "-" if value < 0 else ""
    v = abs(value)
    return f"{sign}{v // E8}.{v % E8:08d}"


def parse_interval(text: str | None) -> str:
    if not text:
        raise errors.missing_param("interval")
    if text not in INTERVALS:
        raise errors.bad_interval()
    return text


def parse_timezone(text: str | None) -> int:
    """`timeZone` as an offset in ms: hours[:minutes] in -12:00 .. +14:00 (default 0).

    SIMULATOR CHOICE: a malformed or out-of-range value is -1102 "'timeZone' contains
    unexpected value." (Binance documents the range, not the error).
    """
    if text is None or text == "":
        return 0
    m = _TZ.match(text)
    if not m:
        raise errors.bad_value("timeZone")
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    if m.group(3) and int(m.group(3)) >= 60:
        raise errors.bad_value("timeZone")
    if m.group(1) == "-":
        minutes = -minutes
    if not -12 * 60 <= minutes <= 14 * 60:
        raise errors.bad_value("timeZone")
    return minutes * MINUTE_MS


def bar_open(t: int, interval: str, tz_ms: int = 0) -> int:
    """Open time (UTC ms) of the `interval` candle holding `t`, candles aligned in `tz_ms`."""
    size = INTERVALS[interval]
    if size is None:
        local = datetime.fromtimestamp((t + tz_ms) / 1000, UTC)
        start = datetime(local.year, local.month, 1, tzinfo=UTC)
        return int(start.timestamp() * 1000) - tz_ms
    shift = _MONDAY_SHIFT if interval == "1w" else 0
    return (t + tz_ms - shift) // size * size + shift - tz_ms


def bar_next(open_ms: int, interval: str, tz_ms: int = 0) -> int:
    size = INTERVALS[interval]
    if size is not None:
        return open_ms + size
    local = datetime.fromtimestamp((open_ms + tz_ms) / 1000, UTC)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) - tz_ms


def bar_prev(open_ms: int, interval: str, tz_ms: int = 0) -> int:
    size = INTERVALS[interval]
    if size is not None:
        return open_ms - size
    return bar_open(open_ms - 1, interval, tz_ms)


@dataclass(slots=True)
class Bar:
    """One candle (or any window's aggregate) in E8 units; f/L are -1 without tape trades."""

    t: int
    o: int
    h: int
    l: int  # noqa: E741 - Binance's own field letter
    c: int
    v: int = 0
    q: int = 0
    vb: int = 0
    qb: int = 0
    n: int = 0
    f: int = -1
    L: int = -1
    tn: int = 0  # of `n`, the trades on the tape (back-history trades have no ids)

    @classmethod
    def flat(cls, t: int, price: int) -> Bar:
        return cls(t, price, price, price, price)

    def add(self, price: int, qty: int, quote: int, taker_buy: bool, trade_id: int) -> None:
        if self.n == 0:
            self.o = self.h = self.l = price
        self.h, self.l, self.c = max(self.h, price), min(self.l, price), price
        self.v += qty
        self.q += quote
        if taker_buy:
            self.vb += qty
            self.qb += quote
        self.n += 1
        self.tn += 1
        if self.f < 0:
            self.f = trade_id
        self.L = trade_id


def combine(t: int, parts: list[Bar]) -> Bar | None:
    """Aggregate consecutive candles: open of the first, close of the last, extremes of those
    that traded (of all when none did), sums of the volumes and counts."""
    if not parts:
        return None
    traded = [p for p in parts if p.n > 0] or parts
    out = Bar(t, parts[0].o, max(p.h for p in traded), min(p.l for p in traded), parts[-1].c)
    for p in parts:
        out.v += p.v
        out.q += p.q
        out.vb += p.vb
        out.qb += p.qb
        out.n += p.n
        out.tn += p.tn
        if out.f < 0 and p.f >= 0:
            out.f = p.f
        if p.L >= 0:
            out.L = p.L
    return out


def kline_row(bar: Bar, close_ms: int) -> list[object]:
    """The 12-element REST kline array (the trailing "0" is Binance's ignored field)."""
    return [bar.t, s8(bar.o), s8(bar.h), s8(bar.l), s8(bar.c), s8(bar.v), close_ms, s8(bar.q),
            bar.n, s8(bar.vb), s8(bar.qb), "0"]
