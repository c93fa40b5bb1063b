"""Trading endpoints beyond place/query/cancel, over real HTTP and the WS API user stream:
order/test, cancel-all, the cancel-replace matrix, OCO/OTO/OTOCO lists, commission rates."""

from __future__ import annotations

from typing import Any

import httpx

from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from tests.world.sim.test_wsapi import events, open_ws, subscribe

LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.001"}
SELL_OCO = {"symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01",
            "aboveType": "LIMIT_MAKER", "abovePrice": "67000.00", "aboveClientOrderId": "tp-1",
            "belowType": "STOP_LOSS", "belowStopPrice": "63000.00", "belowClientOrderId": "sl-1",
            "listClientOrderId": "oco-1"}
LIST_FIELDS = {"orderListId", "contingencyType", "listStatusType", "listOrderStatus",
               "listClientOrderId", "transactionTime", "symbol", "orders"}
CANCEL_FIELDS = {"symbol", "origClientOrderId", "orderId", "orderListId", "clientOrderId",
                 "transactTime", "price", "origQty", "executedQty", "origQuoteOrderQty",
                 "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                 "selfTradePreventionMode"}


def is_dec8(value: object) -> bool:
    return isinstance(value, str) and len(value.split(".")[1]) == 8


async def balance(bot: ActorClient, asset: str) -> tuple[str, str]:
    r = await bot.signed("GET", "/api/v3/account")
    row = next(b for b in r.json()["balances"] if b["asset"] == asset)
    return row["free"], row["locked"]


async def limit(bot: ActorClient, price: str, cid: str) -> httpx.Response:
    return await bot.signed("POST", "/api/v3/order",
                            {**LIMIT, "price": price, "newClientOrderId": cid})


async def test_order_test_validates_and_books_nothing(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order/test", {**LIMIT, "price": "60000.00"})
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["x-mbx-used-weight-1m"] == "1"
    r = await bot.signed("POST", "/api/v3/order/test", {**LIMIT, "price": "60000.00",
                                                        "computeCommissionRates": "true"})
    body = r.json()
    assert r.headers["x-mbx-used-weight-1m"] == "21"
    assert set(body) == {"standardCommissionForOrder", "specialCommissionForOrder",
                         "taxCommissionForOrder", "discount"}
    assert body["standardCommissionForOrder"] == {"maker": "0.00100000", "taker": "0.00100000"}
    assert set(body["discount"]) == {"enabledForAccount", "enabledForSymbol", "discountAsset",
                                     "discount"}
    r = await bot.signed("POST", "/api/v3/order/test", {**LIMIT, "side": "LONG",
                                                        "price": "60000.00"})
    assert r.json() == {"code": -1117, "msg": "Invalid side."}
    assert (await bot.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})).json() == []
    assert sim.control.order_events("main") == []


async def test_commission_rates(bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/account/commission", {"symbol": "BTCUSDT"})
    body = r.json()
    assert r.headers["x-mbx-used-weight-1m"] == "20"
    assert set(body) == {"symbol", "standardCommission", "specialCommission", "taxCommission",
                         "discount"}
    assert set(body["standardCommission"]) == {"maker", "taker", "buyer", "seller"}
    assert all(is_dec8(v) for v in body["taxCommission"].values())
    r = await bot.signed("GET", "/api/v3/account/commission", {"symbol": "NOPEUSDT"})
    assert r.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_cancel_all_mixes_orders_and_lists_with_events(sim: Simulator,
                                                            bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    ws = await open_ws(sim)
    try:
        await subscribe(ws, sim, bot.api_key, bot._secret)
        await limit(bot, "60000.00", "a")
        await limit(bot, "61000.00", "b")
        r = await bot.signed("POST", "/api/v3/orderList/oco", SELL_OCO)
        assert r.status_code == 200
        await events(ws, 2 + 2 + 4)  # two (report, position); two legs, listStatus, position
        r = await bot.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert r.status_code == 200
        singles, lists = r.json()[:2], r.json()[2:]
        assert all(set(o) == CANCEL_FIELDS and o["status"] == "CANCELED" for o in singles)
        assert [o["origClientOrderId"] for o in singles] == ["a", "b"]
        assert len(lists) == 1 and set(lists[0]) == LIST_FIELDS | {"orderReports"}
        assert lists[0]["listOrderStatus"] == "ALL_DONE"
        assert {o["status"] for o in lists[0]["orderReports"]} == {"CANCELED"}
        evs = [f["event"] for f in await events(ws, 2 + 2 + 2 + 1 + 1)]
        reports = [e for e in evs if e["e"] == "executionReport"]
        assert [e["x"] for e in reports] == ["CANCELED"] * 4
        assert {e["C"] for e in reports} == {"a", "b", "sl-1", "tp-1"}
        status = [e for e in evs if e["e"] == "listStatus"]
        assert len(status) == 1 and status[0]["L"] == "ALL_DONE" and status[0]["C"] == "oco-1"
        assert await balance(bot, "BTC") == ("0.50000000", "0.00000000")
        r = await bot.signed("DELETE", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
        assert r.json() == {"code": -2011, "msg": "Unknown order sent."}
    finally:
        await ws.close()


async def cancel_replace(bot: ActorClient, **extra: str) -> httpx.Response:
    params = {**LIMIT, "price": "59000.00", "newClientOrderId": "new-1", **extra}
    return await bot.signed("POST", "/api/v3/order/cancelReplace", params)


async def test_cancel_replace_matrix(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    await limit(bot, "60000.00", "old-1")
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE",
                             cancelOrigClientOrderId="old-1")
    body: dict[str, Any] = r.json()
    assert r.status_code == 200 and r.headers["x-mbx-order-count-10s"] == "2"
    assert (body["cancelResult"], body["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert set(body["cancelResponse"]) == CANCEL_FIELDS
    assert body["cancelResponse"]["status"] == "CANCELED"
    assert body["newOrderResponse"]["clientOrderId"] == "new-1"
    assert body["newOrderResponse"]["status"] == "NEW" and body["newOrderResponse"]["fills"] == []
    # STOP_ON_FAILURE, the cancel fails: 400 -2022, the new order not attempted but counted
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE",
                             cancelOrigClientOrderId="gone", newClientOrderId="new-2")
    assert r.status_code == 400 and r.headers["x-mbx-order-count-10s"] == "3"
    assert r.json() == {"code": -2022, "msg": "Order cancel-replace failed.", "data": {
        "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
        "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
        "newOrderResponse": None}}
    # ALLOW_FAILURE, the cancel fails, the new order is placed: 409 -2021
    r = await cancel_replace(bot, cancelReplaceMode="ALLOW_FAILURE",
                             cancelOrigClientOrderId="gone", newClientOrderId="new-3")
    assert r.status_code == 409 and r.json()["code"] == -2021
    assert r.json()["msg"] == "Order cancel-replace partially failed."
    assert r.json()["data"]["newOrderResult"] == "SUCCESS"
    # the cancel succeeds, the new order is refused by the engine: 409 -2021
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE",
                             cancelOrigClientOrderId="new-3", type="LIMIT_MAKER",
                             timeInForce="", price="70000.00", newClientOrderId="new-4")
    data = r.json()["data"]
    assert r.status_code == 409 and data["cancelResult"] == "SUCCESS"
    assert data["newOrderResponse"] == {"code": -2010,
                                        "msg": "Order would immediately match and take."}
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "origClientOrderId": "new-3"})
    assert r.json()["status"] == "CANCELED"
    # ALLOW_FAILURE, both fail: 400 -2022 with both errors
    r = await cancel_replace(bot, cancelReplaceMode="ALLOW_FAILURE",
                             cancelOrigClientOrderId="gone", quantity="1",
                             newClientOrderId="new-5")
    assert r.status_code == 400 and r.json()["code"] == -2022
    assert r.json()["data"]["newOrderResponse"]["code"] == -2010
    # cancelRestrictions refuse a NEW order when only PARTIALLY_FILLED may be cancelled
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE",
                             cancelOrigClientOrderId="new-1", newClientOrderId="new-6",
                             cancelRestrictions="ONLY_PARTIALLY_FILLED")
    assert r.json()["data"]["cancelResponse"] == {
        "code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
    # API-side failures stop the whole request before the cancel
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE",
                             cancelOrigClientOrderId="new-1", price="59000.001")
    assert r.json() == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    r = await cancel_replace(bot, cancelReplaceMode="STOP_ON_FAILURE")
    assert r.json()["msg"] == ("Param 'cancelOrigClientOrderId' or 'cancelOrderId' must be "
                               "sent, but both were empty/null!")
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "origClientOrderId": "new-1"})
    assert r.json()["status"] == "NEW"


async def test_oco_leg_fill_expires_the_other(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    ws = await open_ws(sim)
    try:
        await subscribe(ws, sim, bot.api_key, bot._secret)
        r = await bot.signed("POST", "/api/v3/orderList/oco", SELL_OCO)
        body = r.json()
        assert r.status_code == 200 and r.headers["x-mbx-order-count-10s"] == "2"
        assert set(body) == LIST_FIELDS | {"orderReports"}
        assert (body["contingencyType"], body["listStatusType"], body["listOrderStatus"]) == (
            "OCO", "EXEC_STARTED", "EXECUTING")
        assert isinstance(body["orderListId"], int) and isinstance(body["transactionTime"], int)
        stop, maker = body["orderReports"]
        assert (stop["type"], maker["type"]) == ("STOP_LOSS", "LIMIT_MAKER")
        assert stop["stopPrice"] == "63000.00000000" and stop["workingTime"] == -1
        assert maker["workingTime"] > 0 and "stopPrice" not in maker
        assert {o["orderListId"] for o in body["orderReports"]} == {body["orderListId"]}
        assert await balance(bot, "BTC") == ("0.49000000", "0.01000000")  # locked once
        placed = [f["event"] for f in await events(ws, 4)]
        assert [e["e"] for e in placed] == ["executionReport", "executionReport", "listStatus",
                                            "outboundAccountPosition"]
        assert {e["g"] for e in placed[:3]} == {body["orderListId"]}
        assert placed[2]["O"][0] == {"s": "BTCUSDT", "i": stop["orderId"], "c": "sl-1"}
        sim.control.set_price("BTCUSDT", 67500)  # the LIMIT_MAKER leg fills
        done = [f["event"] for f in await events(ws, 4)]
        assert [(e["e"], e.get("x"), e.get("C") or e["c"]) for e in done[:3]] == [
            ("executionReport", "TRADE", "tp-1"), ("executionReport", "EXPIRED", "sl-1"),
            ("listStatus", None, "oco-1")]
        assert done[1]["eR"] == "OCO_TRIGGER" and done[1]["X"] == "EXPIRED"
        assert (done[2]["l"], done[2]["L"]) == ("ALL_DONE", "ALL_DONE")
        assert await balance(bot, "BTC") == ("0.49000000", "0.00000000")
        used = int((await bot.signed("GET", "/api/v3/openOrders", {"symbol": "BTCUSDT"})
                    ).headers["x-mbx-used-weight-1m"])
        r = await bot.signed("GET", "/api/v3/orderList", {"orderListId": body["orderListId"]})
        assert set(r.json()) == LIST_FIELDS and r.json()["listOrderStatus"] == "ALL_DONE"
        assert int(r.headers["x-mbx-used-weight-1m"]) == used + 4
        assert (await bot.signed("GET", "/api/v3/openOrderList")).json() == []
    finally:
        await ws.close()


async def test_oco_stop_leg_triggers(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/orderList/oco", SELL_OCO)
    ids = [o["orderId"] for o in r.json()["orders"]]
    sim.control.set_price("BTCUSDT", 62500)
    statuses = [(await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT", "orderId": i})
                 ).json()["status"] for i in ids]
    assert statuses == ["FILLED", "EXPIRED"]
    assert await balance(bot, "BTC") == ("0.49000000", "0.00000000")


async def test_oco_rules(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    cases = [
        ({"abovePrice": "64000.00"}, -2010,
         "The relationship of the prices for the orders is not correct."),
        ({"aboveType": "MARKET"}, -1158, "Order type not supported in OCO."),
        ({"aboveType": "STOP_LOSS", "aboveStopPrice": "67000.00", "belowType": "LIMIT_MAKER",
          "belowPrice": "63000.00"}, -1197, "A stop loss order in a sell OCO must be below."),
        ({"belowStopPrice": ""}, -1102,
         "Mandatory parameter 'belowStopPrice' was not sent, was empty/null, or malformed."),
        ({"aboveTimeInForce": "NOW"}, -1115, "Invalid timeInForce."),
        ({"quantity": "1"}, -2010, "Account has insufficient balance for requested action."),
    ]
    for change, code, msg in cases:
        params = {k: v for k, v in {**SELL_OCO, **change}.items() if v}
        r = await bot.signed("POST", "/api/v3/orderList/oco", params)
        assert r.json() == {"code": code, "msg": msg}, change
    assert sim.control.order_events("main") == []


async def test_deprecated_oco_endpoint(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order/oco", {
        "symbol": "BTCUSDT", "side": "BUY", "quantity": "0.001", "price": "63000.00",
        "stopPrice": "67000.00", "stopLimitPrice": "67100.00", "stopLimitTimeInForce": "GTC",
        "limitClientOrderId": "lim", "stopClientOrderId": "stp"})
    body = r.json()
    assert r.status_code == 200 and body["contingencyType"] == "OCO"
    assert [(o["type"], o["clientOrderId"]) for o in body["orderReports"]] == [
        ("STOP_LOSS_LIMIT", "stp"), ("LIMIT_MAKER", "lim")]
    assert await balance(bot, "USDT") == ("9932.90000000", "67.10000000")
    r = await bot.signed("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT",
                                                         "listClientOrderId": body[
                                                             "listClientOrderId"]})
    assert r.status_code == 200 and r.json()["listStatusType"] == "ALL_DONE"
    assert {o["status"] for o in r.json()["orderReports"]} == {"CANCELED"}
    assert await balance(bot, "USDT") == ("10000.00000000", "0.00000000")
    r = await bot.signed("DELETE", "/api/v3/orderList", {"symbol": "BTCUSDT",
                                                         "orderListId": body["orderListId"]})
    assert r.json() == {"code": -2011, "msg": "Unknown order list sent."}
    r = await bot.signed("GET", "/api/v3/orderList", {"orderListId": "424242"})
    assert r.json() == {"code": -2013, "msg": "Order list does not exist."}


async def test_oto_pending_leg_starts_when_working_fills(sim: Simulator,
                                                         bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/orderList/oto", {
        "symbol": "BTCUSDT", "workingType": "LIMIT", "workingSide": "BUY",
        "workingPrice": "64000.00", "workingQuantity": "0.001", "workingTimeInForce": "GTC",
        "pendingType": "LIMIT", "pendingSide": "SELL", "pendingPrice": "70000.00",
        "pendingQuantity": "0.001", "pendingTimeInForce": "GTC", "pendingClientOrderId": "p1"})
    body = r.json()
    assert r.status_code == 200 and r.headers["x-mbx-order-count-10s"] == "2"
    assert body["contingencyType"] == "OTO"
    working, pending = body["orderReports"]
    assert working["status"] == "NEW" and pending["status"] == "PENDING_NEW"
    assert pending["workingTime"] == -1
    r = await bot.signed("GET", "/api/v3/openOrderList")
    assert [x["orderListId"] for x in r.json()] == [body["orderListId"]]
    sim.control.set_price("BTCUSDT", 63500)
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "origClientOrderId": "p1"})
    assert r.json()["status"] == "NEW" and r.json()["isWorking"] is True
    assert await balance(bot, "BTC") == ("0.49999900", "0.00100000")  # bought 0.000999 net
    kinds = [(e["c"], e["x"], e["X"]) for e in sim.control.order_events("main")]
    assert kinds[-2:] == [(working["clientOrderId"], "TRADE", "FILLED"), ("p1", "NEW", "NEW")]
    # a cancel of one leg cancels the whole list
    r = await bot.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT",
                                                     "origClientOrderId": "p1"})
    assert r.status_code == 200
    r = await bot.signed("GET", "/api/v3/allOrderList")
    assert r.json()[-1]["listOrderStatus"] == "ALL_DONE"


async def test_otoco_counts_three_and_holds_a_pending_pair(sim: Simulator,
                                                           bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/orderList/otoco", {
        "symbol": "BTCUSDT", "workingType": "LIMIT", "workingSide": "BUY",
        "workingPrice": "64000.00", "workingQuantity": "0.002", "workingTimeInForce": "GTC",
        "pendingSide": "SELL", "pendingQuantity": "0.002", "pendingAboveType": "LIMIT_MAKER",
        "pendingAbovePrice": "68000.00", "pendingBelowType": "STOP_LOSS",
        "pendingBelowStopPrice": "60000.00"})
    body = r.json()
    assert r.status_code == 200 and r.headers["x-mbx-order-count-10s"] == "3"
    assert [o["status"] for o in body["orderReports"]] == ["NEW", "PENDING_NEW", "PENDING_NEW"]
    sim.control.set_price("BTCUSDT", 63500)  # working fills; the pair starts, BTC locked once
    assert await balance(bot, "BTC") == ("0.49999800", "0.00200000")
    sim.control.set_price("BTCUSDT", 68500)  # the LIMIT_MAKER leg fills, the stop expires
    r = await bot.signed("GET", "/api/v3/orderList", {"orderListId": body["orderListId"]})
    assert r.json()["listOrderStatus"] == "ALL_DONE"
    assert await balance(bot, "BTC") == ("0.49999800", "0.00000000")
