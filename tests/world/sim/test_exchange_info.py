"""exchangeInfo over real loopback HTTP: the real BTCUSDT's shape, its parameters and their
documented errors, the filters it lists enforced with -1013, and the gate's JSON 404s."""

from __future__ import annotations

import httpx
import pytest

from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from monitor.world.sim.market import ORDER_TYPES

# Every key rest-api.md documents for a symbols[] entry.
SYMBOL_KEYS = {
    "symbol", "status", "baseAsset", "baseAssetPrecision", "quoteAsset", "quotePrecision",
    "quoteAssetPrecision", "baseCommissionPrecision", "quoteCommissionPrecision", "orderTypes",
    "icebergAllowed", "ocoAllowed", "otoAllowed", "opoAllowed", "quoteOrderQtyMarketAllowed",
    "allowTrailingStop", "cancelReplaceAllowed", "amendAllowed", "pegInstructionsAllowed",
    "isSpotTradingAllowed", "isMarginTradingAllowed", "filters", "permissions",
    "permissionSets", "defaultSelfTradePreventionMode", "allowedSelfTradePreventionModes"}
BTCUSDT_FILTERS = ["PRICE_FILTER", "LOT_SIZE", "ICEBERG_PARTS", "MARKET_LOT_SIZE",
                   "TRAILING_DELTA", "PERCENT_PRICE_BY_SIDE", "NOTIONAL", "MAX_NUM_ORDERS",
                   "MAX_NUM_ORDER_LISTS", "MAX_NUM_ALGO_ORDERS", "MAX_NUM_ORDER_AMENDS"]


async def get(sim: Simulator, query: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        return await http.get(f"/api/v3/exchangeInfo{query}")


async def test_btcusdt_has_every_documented_key_and_filter(sim: Simulator) -> None:
    r = await get(sim, "?symbol=BTCUSDT")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"timezone", "serverTime", "rateLimits", "exchangeFilters", "symbols"}
    (btc,) = body["symbols"]
    assert set(btc) == SYMBOL_KEYS
    assert btc["orderTypes"] == list(ORDER_TYPES) == [
        "LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT",
        "TAKE_PROFIT_LIMIT"]
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert [f["filterType"] for f in btc["filters"]] == BTCUSDT_FILTERS
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
    assert filters["PERCENT_PRICE_BY_SIDE"]["bidMultiplierUp"] == "5"
    assert filters["MAX_NUM_ORDERS"]["maxNumOrders"] == 200
    assert btc["permissionSets"] == [["SPOT", "MARGIN"]]
    assert "EXPIRE_MAKER" in btc["allowedSelfTradePreventionModes"]
    assert r.headers["x-mbx-used-weight"] == r.headers["x-mbx-used-weight-1m"] == "20"


@pytest.mark.parametrize(("query", "names"), [
    ("", ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]),
    ('?symbols=["ETHUSDT","BTCUSDT"]', ["ETHUSDT", "BTCUSDT"]),
    ("?symbols=%5B%22DOGEUSDT%22%5D", ["DOGEUSDT"]),
    ("?permissions=MARGIN", ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]),
    ('?permissions=["TRD_GRP_002"]', []),
    ("?symbolStatus=TRADING", ["BTCUSDT", "ETHUSDT", "DOGEUSDT"]),
    ("?symbolStatus=HALT", []),
])
async def test_parameters_select_symbols(sim: Simulator, query: str, names: list[str]) -> None:
    r = await get(sim, query)
    assert r.status_code == 200, r.text
    assert [s["symbol"] for s in r.json()["symbols"]] == names


async def test_show_permission_sets_false_empties_them(sim: Simulator) -> None:
    r = await get(sim, "?symbol=ETHUSDT&showPermissionSets=false")
    assert r.json()["symbols"][0]["permissionSets"] == []


@pytest.mark.parametrize(("query", "code"), [
    ("?symbol=NOPEUSDT", -1121),
    ('?symbols=["BTCUSDT","NOPE"]', -1121),
    ('?symbols=["BTCUSDT", "ETHUSDT"]', -1100),  # Binance's legal range has no spaces
    ("?symbols=BTCUSDT", -1100),
    ('?symbols=["BTCUSDT","BTCUSDT"]', -1151),
    ('?symbol=BTCUSDT&symbols=["ETHUSDT"]', -1128),
    ("?symbol=BTCUSDT&permissions=SPOT", -1128),
    ("?symbol=BTCUSDT&symbolStatus=TRADING", -1128),
    ("?symbolStatus=OPEN", -1122),
    ("?showPermissionSets=maybe", -1130),
])
async def test_documented_errors(sim: Simulator, query: str, code: int) -> None:
    r = await get(sim, query)
    assert r.status_code == 400 and r.json()["code"] == code and r.json()["msg"]


@pytest.mark.parametrize(("order", "failure"), [
    ({"type": "LIMIT", "timeInForce": "GTC", "side": "BUY", "quantity": "0.001",
      "price": "12000.00"}, "PERCENT_PRICE_BY_SIDE"),  # below 0.2 x 65000
    ({"type": "LIMIT", "timeInForce": "GTC", "side": "SELL", "quantity": "0.001",
      "price": "330000.00"}, "PERCENT_PRICE_BY_SIDE"),  # above 5 x 65000
    ({"type": "MARKET", "side": "SELL", "quantity": "150"}, "MARKET_LOT_SIZE"),
    ({"type": "LIMIT", "timeInForce": "GTC", "side": "BUY", "quantity": "0.000015",
      "price": "65000.00"}, "LOT_SIZE"),
    ({"type": "LIMIT", "timeInForce": "GTC", "side": "BUY", "quantity": "0.00001",
      "price": "65000.00"}, "NOTIONAL"),
])
async def test_listed_filters_are_enforced(sim: Simulator, bot: ActorClient,
                                           order: dict[str, object], failure: str) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", **order})
    assert r.status_code == 400
    assert r.json() == {"code": -1013, "msg": f"Filter failure: {failure}"}


async def test_orders_inside_the_filters_pass(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "type": "LIMIT", "timeInForce": "GTC", "side": "BUY",
        "quantity": "0.001", "price": "13000.00"})  # exactly 0.2 x: still inside
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v3/nope"), ("GET", "/sapi/v1/nope"), ("POST", "/api/v3/time"),
    ("DELETE", "/api/v3/exchangeInfo"), ("GET", "/"),
])
async def test_unknown_paths_and_methods_answer_json_404(sim: Simulator, method: str,
                                                          path: str) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        r = await http.request(method, path)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"code": -1020, "msg": "This operation is not supported."}
