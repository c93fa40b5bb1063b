"""Futures exchangeInfo: the one futures call a stock spot client makes at start-up.

ccxt's default `load_markets` also fetches `GET /fapi/v1/exchangeInfo` (USD-M, "linear") and
`GET /dapi/v1/exchangeInfo` (COIN-M, "inverse"), and fails when either is missing. The futures
surface is exchangeInfo only for now: one BTCUSDT perpetual on fapi and one BTCUSD_PERP on
dapi, with the documented fields and filter shapes, weight 1 each (security NONE), counted in
their own IP-weight pools (`limits.POOL_LIMITS`). There is no futures trading, account or
stream. Values are those of the real contracts where known; `onboardDate` is BTCUSDT's.
"""

from __future__ import annotations

from monitor.world.sim.endpoint import Ctx, Endpoint, fixed
from monitor.world.sim.limits import FUTURES_ORDERS_1M_LIMIT, FUTURES_WEIGHT_LIMIT

PERPETUAL_DELIVERY_MS = 4133404800000  # deliveryDate Binance gives every perpetual (2100-12-25)
FUTURES_ORDER_TYPES = ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
FUTURES_TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX", "GTD"]


def _rate_limits(with_10s_orders: bool) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": FUTURES_WEIGHT_LIMIT},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
         "limit": FUTURES_ORDERS_1M_LIMIT},
    ]
    if with_10s_orders:
        out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                    "limit": 300})
    return out


def _filters(tick: str, min_price: str, max_price: str, step: str, min_qty: str, max_qty: str,
             market_max: str, multiplier_decimal: str | int) -> list[dict[str, object]]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": min_price, "maxPrice": max_price,
         "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": min_qty, "maxQty": max_qty, "stepSize": step},
        {"filterType": "MARKET_LOT_SIZE", "minQty": min_qty, "maxQty": market_max,
         "stepSize": step},
        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
        # The USD-M example gives multiplierDecimal as a STRING, the COIN-M one as an INT.
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
         "multiplierDecimal": multiplier_decimal},
    ]


def _common(symbol: str, pair: str, base: str, quote: str, margin: str) -> dict[str, object]:
    return {
        "symbol": symbol, "pair": pair, "contractType": "PERPETUAL",
        "deliveryDate": PERPETUAL_DELIVERY_MS, "onboardDate": 1569398400000,
        "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000",
        "baseAsset": base, "quoteAsset": quote, "marginAsset": margin,
        "baseAssetPrecision": 8, "quotePrecision": 8,
        "underlyingType": "COIN", "underlyingSubType": ["PoW"],
        "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
        "orderTypes": FUTURES_ORDER_TYPES, "timeInForce": FUTURES_TIME_IN_FORCE,
    }


def usdm_symbol() -> dict[str, object]:
    """The USD-M BTCUSDT perpetual: margined and settled in USDT ("linear" in ccxt)."""
    filters = _filters("0.10", "556.80", "4529764", "0.001", "0.001", "1000", "120", "4")
    filters.insert(4, {"filterType": "MIN_NOTIONAL", "notional": "100"})
    return {**_common("BTCUSDT", "BTCUSDT", "BTC", "USDT", "USDT"), "status": "TRADING",
            "pricePrecision": 2, "quantityPrecision": 3, "settlePlan": 0, "filters": filters}


def coinm_symbol() -> dict[str, object]:
    """The COIN-M BTCUSD_PERP: 100 USD contracts margined in BTC ("inverse" in ccxt)."""
    return {**_common("BTCUSD_PERP", "BTCUSD", "BTC", "USD", "BTC"), "contractStatus": "TRADING",
            "contractSize": 100, "pricePrecision": 1, "quantityPrecision": 0,
            "equalQtyPrecision": 4,
            "filters": _filters("0.1", "1000", "4520958", "1", "1", "1000000", "60000", 4)}


def h_fapi_exchange_info(ctx: Ctx) -> object:
    return {"timezone": "UTC", "serverTime": ctx.ex.now_ms(), "rateLimits": _rate_limits(True),
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"},
                       {"asset": "BTC", "marginAvailable": True, "autoAssetExchange": "-0.10"}],
            "symbols": [usdm_symbol()]}


def h_dapi_exchange_info(ctx: Ctx) -> object:
    return {"timezone": "UTC", "serverTime": ctx.ex.now_ms(), "rateLimits": _rate_limits(False),
            "exchangeFilters": [], "symbols": [coinm_symbol()]}


ENDPOINTS: list[Endpoint] = [
    Endpoint("GET", "/fapi/v1/exchangeInfo", fixed(1), None, h_fapi_exchange_info),
    Endpoint("GET", "/dapi/v1/exchangeInfo", fixed(1), None, h_dapi_exchange_info),
]
