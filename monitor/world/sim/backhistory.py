"""Seeded price history for the time before the simulator started.

SIMULATOR CHOICE (Binance has years of real history; the simulator has none): a bot that asks
for 1000 five-minute candles at start-up must get 1000 full candles that end where the live
price path begins. The past price is a smooth seeded curve, a sum of value-noise layers from
10 s to 3 days, scaled so it equals the symbol's start price exactly at the simulator's start
(`t0`). Any candle over [a, b) opens at curve(a) and closes at curve(b), so consecutive
candles of every interval join and the last one joins the live tape; highs, lows, volumes and
trade counts are drawn from a hash of (symbol, seed, interval, open time), so they are the
same on every call but only approximately consistent between intervals. History starts at
`LISTING_DAYS` before t0; no candle is served before that. Back-history trades have no ids:
they count in `n`/`count` of candles and tickers but never appear in /trades.
"""

from __future__ import annotations

import hashlib
import math

from monitor.world.sim.bars import E8, Bar
from monitor.world.sim.market import STEP_MS, SymbolSpec

LISTING_DAYS = 3 * 365
TRADES_PER_STEP = 5  # the live tape's mean background trades per 10 s step
TRADE_NOTIONAL = 500.0  # mean quote value of one background trade
# (layer length in ms, amplitude as a multiple of the symbol's 10 s volatility)
_LAYERS = ((10_000, 1.0), (60_000, 2.0), (900_000, 6.0), (14_400_000, 20.0),
           (259_200_000, 60.0))
_M64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64: a fast, well-spread integer hash."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class BackHistory:
    def __init__(self, spec: SymbolSpec, seed: int, t0_ms: int) -> None:
        self.spec = spec
        self.t0 = t0_ms
        self.listing_ms = t0_ms - LISTING_DAYS * 86_400_000
        digest = hashlib.sha256(f"{seed}:{spec.symbol}:back".encode()).digest()
        self._key = int.from_bytes(digest[:8], "big")
        self._tick = int(spec.tick * E8)
        self._step = int(spec.step * E8)
        self._start = float(spec.start_price)
        self._g0 = self._g(t0_ms)

    def _u(self, *parts: int) -> float:
        """Uniform [0, 1) from the symbol key and `parts`."""
        h = self._key
        for p in parts:
            h = mix64(h ^ (p & _M64))
        return h / 2.0**64

    def _g(self, t: int) -> float:
        total = 0.0
        vol = self.spec.volatility
        for layer, (size, amp) in enumerate(_LAYERS):
            i, rem = divmod(t, size)
            f = rem / size
            f = f * f * (3 - 2 * f)
            a = self._u(layer, i) * 2 - 1
            b = self._u(layer, i + 1) * 2 - 1
            total += vol * amp * (a + (b - a) * f)
        return total

    def price(self, t: int) -> int:
        """Curve price at `t`, E8, on the tick grid."""
        raw = self._start * math.exp(self._g(t) - self._g0)
        ticks = max(1, int(raw * E8 / self._tick))
        return ticks * self._tick

    def bar(self, a: int, b: int) -> Bar:
        """The candle over [a, b) (all before t0)."""
        o, c = self.price(a), self.price(b)
        mid = self.price((a + b) // 2)
        d = b - a
        u1, u2, u3, u4 = (self._u(99, a, d, k) for k in range(4))
        n = int(TRADES_PER_STEP * d / STEP_MS * (0.5 + u2))
        hi, lo = max(o, c, mid), min(o, c, mid)
        if n == 0:
            return Bar(a, o, hi, lo, c)
        wiggle = self.spec.volatility * math.sqrt(d / STEP_MS) * u1 * 0.5
        wiggle_e8 = int(min(wiggle, 0.05) * hi / self._tick) * self._tick
        hi, lo = hi + wiggle_e8, max(self._tick, lo - wiggle_e8)
        mean_qty = TRADE_NOTIONAL / self._start * E8 * (0.7 + 0.6 * u3)
        v = max(self._step, int(n * mean_qty / self._step) * self._step)
        q = v * ((o + c) // 2) // E8
        ratio = 0.4 + 0.2 * u4
        vb = int(v * ratio / self._step) * self._step
        qb = int(q * ratio)
        return Bar(a, o, hi, lo, c, v, q, vb, qb, n)
