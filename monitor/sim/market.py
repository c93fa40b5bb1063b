"""Symbols, their filters and a seeded price path per symbol, driven by the injected clock.

The price path is a random walk stepped in fixed 10-second slices of clock time, so the same
seed gives the same prices at the same simulated offsets however fast the clock runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

STEP_MS = 10_000
Q8 = Decimal("0.00000001")


def fmt(value: Decimal | float | int | str, places: int = 8) -> str:
    """Binance formats quantities and prices as strings with 8 decimals (wire section 8.6)."""
    q = Decimal(1).scaleb(-places)
    return format(Decimal(str(value)).quantize(q, rounding=ROUND_DOWN), "f")


@dataclass
class SymbolSpec:
    symbol: str
    base: str
    quote: str
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal
    start_price: Decimal
    volatility: float  # relative std-dev per 10 s step
    impact: float  # relative price move per 1 unit of quote bought at market (illiquid books)

    def filters(self) -> list[dict[str, object]]:
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt(self.min_price),
                "maxPrice": fmt(self.max_price),
                "tickSize": fmt(self.tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt(self.min_qty),
                "maxQty": fmt(self.max_qty),
                "stepSize": fmt(self.step),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": fmt(self.max_notional),
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ]

    def info(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": True,
            "ocoAllowed": False,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": self.filters(),
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


def _d(text: str) -> Decimal:
    return Decimal(text)


SYMBOLS: dict[str, SymbolSpec] = {
    s.symbol: s
    for s in (
        SymbolSpec("BTCUSDT", "BTC", "USDT", _d("0.01"), _d("0.01"), _d("1000000"),
                   _d("0.00001"), _d("0.00001"), _d("9000"), _d("5"), _d("9000000"),
                   _d("65000"), 0.0008, 0.0),
        SymbolSpec("ETHUSDT", "ETH", "USDT", _d("0.01"), _d("0.01"), _d("1000000"),
                   _d("0.0001"), _d("0.0001"), _d("9000"), _d("5"), _d("9000000"),
                   _d("3200"), 0.001, 0.0),
        # The illiquid coin: a thin book, so market buys move its price (the pump target).
        SymbolSpec("DOGEUSDT", "DOGE", "USDT", _d("0.00001"), _d("0.00001"), _d("1000"),
                   _d("1"), _d("1"), _d("90000000"), _d("1"), _d("9000000"),
                   _d("0.15"), 0.002, 0.00002),
    )
}


@dataclass
class PricePath:
    """Seeded random walk for one symbol, advanced lazily to the clock's time."""

    spec: SymbolSpec
    seed: int
    t0_ms: int
    price: Decimal = field(init=False)
    _t_ms: int = field(init=False)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self.price = self.spec.start_price
        self._t_ms = self.t0_ms
        self._rng = random.Random(f"{self.seed}:{self.spec.symbol}")

    def at(self, now_ms: int) -> Decimal:
        while self._t_ms + STEP_MS <= now_ms:
            self._t_ms += STEP_MS
            move = self._rng.gauss(0.0, self.spec.volatility)
            # Mean reversion keeps a day-long walk near its start, so filters stay valid.
            pull = 0.001 * float((self.spec.start_price - self.price) / self.spec.start_price)
            self.price = self._round(self.price * Decimal(str(1.0 + move + pull)))
        return self.price

    def set(self, price: Decimal) -> None:
        self.price = self._round(price)

    def bump(self, quote_amount: Decimal) -> None:
        """Market buys on a thin book push the price up (sells push it down)."""
        if self.spec.impact:
            factor = Decimal(str(1.0 + self.spec.impact * float(quote_amount)))
            self.price = self._round(self.price * max(factor, Decimal("0.5")))

    def _round(self, price: Decimal) -> Decimal:
        tick = self.spec.tick
        return max(tick, (price / tick).to_integral_value(rounding=ROUND_DOWN) * tick)


def check_filters(spec: SymbolSpec, qty: Decimal, price: Decimal | None, is_market: bool,
                  ref_price: Decimal) -> str | None:
    """Name of the first failing filter, or None: -1013 is decided here, before the engine."""
    if price is not None:
        if price < spec.min_price or price > spec.max_price or (price % spec.tick) != 0:
            return "PRICE_FILTER"
    if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step != 0:
        return "LOT_SIZE"
    notional = qty * (price if price is not None else ref_price)
    if notional < spec.min_notional:
        return "NOTIONAL"
    if not is_market and notional > spec.max_notional:
        return "NOTIONAL"
    return None
