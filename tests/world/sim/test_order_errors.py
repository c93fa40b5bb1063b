"""Exact Binance codes and messages for malformed or refused orders, over real HTTP.

Messages are errors.md's (or, for -1100, the legal ranges live Binance quotes). A reject
books nothing and emits no user-data event.
"""

from __future__ import annotations

import pytest

from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.001", "price": "60000.00"}
DECIMAL = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"


@pytest.mark.parametrize(("change", "code", "msg"), [
    ({"side": "HOLD"}, -1117, "Invalid side."),
    ({"type": "ICEBERG"}, -1116, "Invalid orderType."),
    ({"timeInForce": "GTD"}, -1115, "Invalid timeInForce."),
    ({"timeInForce": ""}, -1102,
     "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
    ({"side": ""}, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed."),
    ({"quantity": "1e-3"}, -1100,
     f"Illegal characters found in parameter 'quantity'; legal range is '{DECIMAL}'."),
    ({"price": "60,000"}, -1100,
     f"Illegal characters found in parameter 'price'; legal range is '{DECIMAL}'."),
    ({"symbol": "btc usdt"}, -1100,
     "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'."),
    ({"newClientOrderId": "grid 1!"}, -1100,
     "Illegal characters found in parameter 'newClientOrderId'; legal range is "
     r"'^[\.A-Z\:/a-z0-9_-]{1,36}$'."),
    ({"type": "STOP_LOSS_LIMIT"}, -1102,
     "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed."),
    ({"type": "MARKET", "quantity": "", "price": "", "timeInForce": ""}, -1102,
     "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
    ({"type": "LIMIT_MAKER", "timeInForce": "", "price": "70000.00"}, -2010,
     "Order would immediately match and take."),
    ({"type": "TAKE_PROFIT", "timeInForce": "", "price": "", "stopPrice": "70000.00"}, -2010,
     "Order would trigger immediately."),
    ({"quantity": "1"}, -2010, "Account has insufficient balance for requested action."),
])
async def test_order_rejects_are_exact(sim: Simulator, bot: ActorClient, change: dict[str, str],
                                       code: int, msg: str) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    params = {k: v for k, v in {**LIMIT, **change}.items() if v != ""}
    r = await bot.signed("POST", "/api/v3/order", params)
    assert r.status_code == 400
    assert r.json() == {"code": code, "msg": msg}
    assert sim.control.order_events("main") == []
    r = await bot.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})
    assert r.json() == []


async def test_limit_maker_that_would_not_cross_rests(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    params = {k: v for k, v in {**LIMIT, "type": "LIMIT_MAKER"}.items() if k != "timeInForce"}
    r = await bot.signed("POST", "/api/v3/order", params)
    assert r.status_code == 200 and "status" not in r.json()  # ACK is its default
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "orderId": r.json()["orderId"]})
    assert r.json()["status"] == "NEW" and r.json()["type"] == "LIMIT_MAKER"


async def test_lookup_needs_one_of_the_two_ids(bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert r.json() == {"code": -1102, "msg": "Param 'origClientOrderId' or 'orderId' must be "
                                              "sent, but both were empty/null!"}
    r = await bot.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT"})
    assert r.json()["code"] == -1102 and "origClientOrderId" in r.json()["msg"]
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": "12a"})
    assert r.json() == {"code": -1100, "msg": "Illegal characters found in parameter 'orderId'; "
                                              "legal range is '^[0-9]{1,20}$'."}
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": "999999"})
    assert r.json() == {"code": -2013, "msg": "Order does not exist."}


async def test_stop_order_waits_then_fills_when_price_crosses(sim: Simulator,
                                                              bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_LOSS", "quantity": "0.01",
        "stopPrice": "64000.00", "newOrderRespType": "RESULT"})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "NEW" and body["workingTime"] == -1
    assert body["stopPrice"] == "64000.00000000" and "fills" not in body
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "orderId": body["orderId"]})
    assert r.json()["isWorking"] is False
    r = await bot.signed("GET", "/api/v3/account")
    btc = next(b for b in r.json()["balances"] if b["asset"] == "BTC")
    assert btc["locked"] == "0.01000000"
    sim.control.set_price("BTCUSDT", 63000)
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "orderId": body["orderId"]})
    assert r.json()["status"] == "FILLED" and r.json()["workingTime"] > 0
    report = sim.control.order_events("main")[-1]
    assert report["x"] == "TRADE" and report["o"] == "STOP_LOSS" and report["P"] == "64000.00000000"
    assert report["L"] == "63000.00000000" and report["m"] is False


async def test_ioc_that_cannot_trade_expires(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order", {**LIMIT, "timeInForce": "IOC"})
    assert r.json()["status"] == "EXPIRED"
    last = sim.control.order_events("main")[-1]
    assert last["x"] == "EXPIRED" and last["eR"] == "UNFILLED_IOC_QUANTITY_EXPIRED"
    r = await bot.signed("GET", "/api/v3/account")
    usdt = next(b for b in r.json()["balances"] if b["asset"] == "USDT")
    assert usdt == {"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"}
