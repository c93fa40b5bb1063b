"""Symbols, their filters and a seeded price path per symbol, driven by the injected clock.

The price path is a random walk stepped in fixed 10-second slices of clock time, so the same
seed gives the same prices at the same simulated offsets however fast the clock runs.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from monitor.world.sim import errors

STEP_MS = 10_000
Q8 = Decimal("0.00000001")


def fmt(value: Decimal | float | int | str, places: int = 8) -> str:
    """Binance formats quantities and prices as strings with 8 decimals (wire section 8.6)."""
    q = Decimal(1).scaleb(-places)
    return format(Decimal(str(value)).quantize(q, rounding=ROUND_DOWN), "f")


# One definition of each exchangeInfo enum the simulator serves (enums.md). The engine reads
# ORDER_TYPES to decide which `type` values a symbol accepts.
ORDER_TYPES: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT",
                                "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
ALGO_ORDER_TYPES: tuple[str, ...] = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
                                     "TAKE_PROFIT_LIMIT")
STP_MODES: tuple[str, ...] = ("EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT",
                              "TRANSFER")
DEFAULT_STP_MODE = "EXPIRE_MAKER"
# `symbolStatus` accepts these (rest-api.md, exchangeInfo); END_OF_DAY exists only as a status.
SYMBOL_STATUS_FILTERS: tuple[str, ...] = ("TRADING", "HALT", "BREAK")
# With no `permissions` parameter exchangeInfo lists symbols carrying any of these.
DEFAULT_PERMISSIONS: tuple[str, ...] = ("SPOT", "MARGIN", "LEVERAGED")


@dataclass
class SymbolSpec:
    """One spot symbol as the real one is configured (values of the real BTCUSDT where it
    exists; `exchangeInfo` and `check_filters` both read them, so they cannot disagree)."""

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
    market_max_qty: Decimal = Decimal("100")  # MARKET_LOT_SIZE (min and step 0 = disabled)
    bid_up: Decimal = Decimal("5")  # PERCENT_PRICE_BY_SIDE multipliers
    bid_down: Decimal = Decimal("0.2")
    ask_up: Decimal = Decimal("5")
    ask_down: Decimal = Decimal("0.2")
    avg_price_mins: int = 5
    iceberg_parts: int = 100
    trailing_above: tuple[int, int] = (10, 2000)  # TRAILING_DELTA (min, max) bounds
    trailing_below: tuple[int, int] = (10, 2000)
    max_num_orders: int = 200
    max_num_order_lists: int = 20
    max_num_algo_orders: int = 5
    max_num_order_amends: int = 10
    status: str = "TRADING"
    margin: bool = True  # cross and isolated margin pair (/sapi/v1/margin/*allPairs)
    permission_sets: tuple[tuple[str, ...], ...] = (("SPOT", "MARGIN"),)

    def filters(self) -> list[dict[str, object]]:
        """In the order the real BTCUSDT lists them (filters.md gives each shape)."""
        return [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(self.min_price),
             "maxPrice": fmt(self.max_price), "tickSize": fmt(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(self.min_qty), "maxQty": fmt(self.max_qty),
             "stepSize": fmt(self.step)},
            {"filterType": "ICEBERG_PARTS", "limit": self.iceberg_parts},
            {"filterType": "MARKET_LOT_SIZE", "minQty": fmt(0), "maxQty": fmt(self.market_max_qty),
             "stepSize": fmt(0)},
            {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": self.trailing_above[0],
             "maxTrailingAboveDelta": self.trailing_above[1],
             "minTrailingBelowDelta": self.trailing_below[0],
             "maxTrailingBelowDelta": self.trailing_below[1]},
            {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": str(self.bid_up),
             "bidMultiplierDown": str(self.bid_down), "askMultiplierUp": str(self.ask_up),
             "askMultiplierDown": str(self.ask_down), "avgPriceMins": self.avg_price_mins},
            {"filterType": "NOTIONAL", "minNotional": fmt(self.min_notional),
             "applyMinToMarket": True, "maxNotional": fmt(self.max_notional),
             "applyMaxToMarket": False, "avgPriceMins": self.avg_price_mins},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
            {"filterType": "MAX_NUM_ORDER_LISTS", "maxNumOrderLists": self.max_num_order_lists},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": self.max_num_algo_orders},
            {"filterType": "MAX_NUM_ORDER_AMENDS",
             "maxNumOrderAmends": self.max_num_order_amends},
        ]

    def permissions(self) -> set[str]:
        return {p for group in self.permission_sets for p in group}

    def info(self, show_permission_sets: bool = True) -> dict[str, object]:
        """One `symbols[]` entry of exchangeInfo, every documented key (rest-api.md)."""
        return {
            "symbol": self.symbol,
            "status": self.status,
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(ORDER_TYPES),
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "opoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "amendAllowed": True,
            "pegInstructionsAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": self.margin,
            "filters": self.filters(),
            "permissions": [],
            "permissionSets": ([list(g) for g in self.permission_sets]
                               if show_permission_sets else []),
            "defaultSelfTradePreventionMode": DEFAULT_STP_MODE,
            "allowedSelfTradePreventionModes": list(STP_MODES),
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
                   _d("3200"), 0.001, 0.0, market_max_qty=_d("2000")),
        # The illiquid coin: a thin book, so market buys move its price (the pump target).
        SymbolSpec("DOGEUSDT", "DOGE", "USDT", _d("0.00001"), _d("0.00001"), _d("1000"),
                   _d("1"), _d("1"), _d("90000000"), _d("1"), _d("9000000"),
                   _d("0.15"), 0.002, 0.00002, market_max_qty=_d("9000000")),
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


def _off_step(value: Decimal, step: Decimal, base: Decimal = Decimal(0)) -> bool:
    return step != 0 and (value - base) % step != 0


def _lot_fails(qty: Decimal, lo: Decimal, hi: Decimal, step: Decimal) -> bool:
    """filters.md LOT_SIZE / MARKET_LOT_SIZE rule; a 0 bound or step disables that part."""
    return (lo != 0 and qty < lo) or (hi != 0 and qty > hi) or _off_step(qty, step, lo)


def _price_fails(spec: SymbolSpec, price: Decimal) -> bool:
    return ((spec.min_price != 0 and price < spec.min_price)
            or (spec.max_price != 0 and price > spec.max_price) or _off_step(price, spec.tick))


def _trails_above(order_type: str, side: str) -> bool:
    """filters.md TRAILING_DELTA: which pair of bounds an order type and side use."""
    return (order_type in ("STOP_LOSS", "STOP_LOSS_LIMIT") and side == "BUY") or (
        order_type in ("TAKE_PROFIT", "TAKE_PROFIT_LIMIT") and side == "SELL")


def check_filters(spec: SymbolSpec, qty: Decimal, price: Decimal | None, is_market: bool,
                  ref_price: Decimal, side: str | None = None, *,
                  stop_price: Decimal | None = None, iceberg_qty: Decimal | None = None,
                  trailing_delta: int | None = None, order_type: str = "") -> str | None:
    """Name of the first failing symbol filter, or None: -1013 is decided here, before the engine.

    `ref_price` stands for filters.md's "average of previous trade prices" over `avgPriceMins`
    (PERCENT_PRICE_BY_SIDE, and NOTIONAL for MARKET orders). PERCENT_PRICE_BY_SIDE needs the
    order's `side`; a caller that does not pass it skips that filter. The count filters
    (MAX_NUM_*) need the account's open orders: see `check_open_limits`.

    SIMULATOR CHOICE: filters.md does not say in which order Binance evaluates them; they are
    checked in the order exchangeInfo lists them and the first failure is reported.
    """
    for p in (price, stop_price):
        if p is not None and _price_fails(spec, p):
            return "PRICE_FILTER"
    if _lot_fails(qty, spec.min_qty, spec.max_qty, spec.step) or (
            iceberg_qty is not None
            and _lot_fails(iceberg_qty, spec.min_qty, spec.max_qty, spec.step)):
        return "LOT_SIZE"
    if iceberg_qty is not None and iceberg_qty > 0 and (
            -(-qty // iceberg_qty)) > spec.iceberg_parts:
        return "ICEBERG_PARTS"
    if is_market and _lot_fails(qty, Decimal(0), spec.market_max_qty, Decimal(0)):
        return "MARKET_LOT_SIZE"
    if trailing_delta is not None and side is not None:
        lo, hi = (spec.trailing_above if _trails_above(order_type, side)
                  else spec.trailing_below)
        if not lo <= trailing_delta <= hi:
            return "TRAILING_DELTA"
    if price is not None and side is not None:
        up, down = (spec.bid_up, spec.bid_down) if side == "BUY" else (spec.ask_up,
                                                                         spec.ask_down)
        if price > ref_price * up or price < ref_price * down:
            return "PERCENT_PRICE_BY_SIDE"
    notional = qty * (price if price is not None and not is_market else ref_price)
    if notional < spec.min_notional:  # applyMinToMarket: true
        return "NOTIONAL"
    if not is_market and notional > spec.max_notional:  # applyMaxToMarket: false
        return "NOTIONAL"
    return None


def check_open_limits(spec: SymbolSpec, *, open_orders: int, open_algo_orders: int = 0,
                      open_order_lists: int = 0, new_orders: int = 1, new_algo_orders: int = 0,
                      new_order_lists: int = 0) -> str | None:
    """The MAX_NUM_* filter a placement would break, given what the account has open on the
    symbol (filters.md: algo orders count towards MAX_NUM_ORDERS too), or None."""
    if open_orders + new_orders > spec.max_num_orders:
        return "MAX_NUM_ORDERS"
    if new_algo_orders and open_algo_orders + new_algo_orders > spec.max_num_algo_orders:
        return "MAX_NUM_ALGO_ORDERS"
    if new_order_lists and open_order_lists + new_order_lists > spec.max_num_order_lists:
        return "MAX_NUM_ORDER_LISTS"
    return None


# The legal range Binance quotes in its -1100 answer for a malformed `symbols` array.
SYMBOLS_RANGE = r'^\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\]$'
_SYMBOLS_RE = re.compile(SYMBOLS_RANGE)


def requested_symbols(params: dict[str, str]) -> list[str] | None:
    """The symbols a request names by `symbol` or `symbols` (a JSON array, raw or percent-
    encoded in the query; the gate has already decoded it), or None when it names none.

    -1128 when both are sent, -1100 for an array outside Binance's legal range, -1151 for a
    repeated symbol, -1121 for a symbol the exchange does not list.
    """
    one, many = params.get("symbol"), params.get("symbols")
    if one and many:
        raise errors.bad_param_combo()
    if one:
        names = [one]
    elif many:
        if not _SYMBOLS_RE.match(many):
            raise errors.illegal_chars("symbols", SYMBOLS_RANGE)
        names = [str(n) for n in json.loads(many)]
        if len(set(names)) != len(names):
            raise errors.duplicate_symbols()
    else:
        return None
    if any(n not in SYMBOLS for n in names):
        raise errors.invalid_symbol()
    return names
