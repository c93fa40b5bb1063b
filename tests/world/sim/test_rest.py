"""The REST surface over real loopback HTTP: shapes, auth, timing and per-IP weight."""

from __future__ import annotations

import httpx

from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient

# Field lists from binance-wire.md sections 3.2 - 3.10.
ACCOUNT_FIELDS = {"makerCommission", "takerCommission", "buyerCommission", "sellerCommission",
                  "commissionRates", "canTrade", "canWithdraw", "canDeposit", "brokered",
                  "requireSelfTradePrevention", "preventSor", "updateTime", "accountType",
                  "balances", "permissions", "uid"}
ORDER_FIELDS = {"symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty",
                "executedQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side",
                "stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime",
                "origQuoteOrderQty", "selfTradePreventionMode"}
TRADE_FIELDS = {"symbol", "id", "orderId", "orderListId", "price", "qty", "quoteQty",
                "commission", "commissionAsset", "time", "isBuyer", "isMaker", "isBestMatch"}
RESTRICTION_FIELDS = {"ipRestrict", "createTime", "enableReading", "enableWithdrawals",
                      "enableInternalTransfer", "enableMargin", "enableFutures",
                      "permitsUniversalTransfer", "enableVanillaOptions", "enableFixApiTrade",
                      "enableFixReadOnly", "enableSpotAndMarginTrading",
                      "enablePortfolioMarginTrading"}
WITHDRAW_FIELDS = {"id", "amount", "transactionFee", "coin", "status", "address", "txId",
                   "applyTime", "network", "transferType", "withdrawOrderId", "info",
                   "confirmNo", "walletType", "txKey", "completeTime"}
FULL_FIELDS = {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "price",
               "origQty", "executedQty", "origQuoteOrderQty", "cummulativeQuoteQty", "status",
               "timeInForce", "type", "side", "workingTime", "selfTradePreventionMode", "fills"}


async def test_shapes_match_the_wire_doc(sim: Simulator, bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/account")
    assert r.status_code == 200 and set(r.json()) == ACCOUNT_FIELDS
    assert set(r.json()["balances"][0]) == {"asset", "free", "locked"}
    r = await bot.signed("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
        "newClientOrderId": "grid1-1"})
    assert r.status_code == 200 and set(r.json()) == FULL_FIELDS
    assert r.json()["status"] == "FILLED" and len(r.json()["fills"]) == 1
    assert "x-mbx-order-count-10s" in r.headers and "x-mbx-order-count-1d" in r.headers
    r = await bot.signed("GET", "/api/v3/allOrders", {"symbol": "BTCUSDT"})
    assert set(r.json()[0]) == ORDER_FIELDS and r.json()[0]["clientOrderId"] == "grid1-1"
    r = await bot.signed("GET", "/api/v3/myTrades", {"symbol": "BTCUSDT"})
    assert set(r.json()[0]) == TRADE_FIELDS
    r = await bot.signed("GET", "/sapi/v1/account/apiRestrictions")
    assert RESTRICTION_FIELDS <= set(r.json()) and r.json()["ipRestrict"] is True
    assert r.headers["x-sapi-used-ip-weight-1m"] == "1"
    assert "x-mbx-used-weight-1m" not in r.headers
    r = await bot.signed("GET", "/sapi/v1/account/status")
    assert r.json() == {"data": "Normal"}
    r = await bot.signed("GET", "/api/v3/rateLimit/order")
    assert [x["count"] for x in r.json()] == [1, 1]


async def test_withdrawal_needs_permission_and_shows_in_history(sim: Simulator,
                                                               bot: ActorClient) -> None:
    apply = {"coin": "USDT", "address": "0xdeadbeef", "amount": "100"}
    r = await bot.signed("POST", "/sapi/v1/capital/withdraw/apply", apply)
    assert r.status_code == 401 and r.json()["code"] == -2015
    sim.control.set_permissions(bot.api_key, enableWithdrawals=True)
    r = await bot.signed("POST", "/sapi/v1/capital/withdraw/apply", apply)
    assert r.status_code == 200 and len(r.json()["id"]) == 32
    r = await bot.signed("GET", "/sapi/v1/capital/withdraw/history")
    # withdrawOrderId only appears on a withdrawal that was given one
    assert set(r.json()[0]) == WITHDRAW_FIELDS - {"withdrawOrderId"}
    assert r.json()[0]["address"] == "0xdeadbeef"
    assert r.headers["x-sapi-used-uid-weight-1m"] == str(900 + 18000)
    r = await bot.signed("POST", "/sapi/v1/capital/withdraw/apply",
                         {**apply, "withdrawOrderId": "payout-7"})
    r = await bot.signed("GET", "/sapi/v1/capital/withdraw/history")
    assert set(r.json()[0]) == WITHDRAW_FIELDS and r.json()[0]["withdrawOrderId"] == "payout-7"


async def test_signature_over_other_bytes_is_1022(bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/account", corrupt=True)
    assert r.status_code == 400 and r.json() == {
        "code": -1022, "msg": "Signature for this request is not valid."}


async def test_stale_timestamp_is_1021(bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/account", stale_ms=6000)
    assert r.status_code == 400 and r.json()["code"] == -1021
    r = await bot.signed("GET", "/api/v3/account", stale_ms=-2000)
    assert r.json()["code"] == -1021 and "ahead" in r.json()["msg"]
    assert (await bot.signed("GET", "/api/v3/account", stale_ms=3000)).status_code == 200


async def test_non_whitelisted_source_address_is_2015(sim: Simulator, bot: ActorClient) -> None:
    foreign = ActorClient(sim.rest_url, "127.66.0.9", bot.api_key, bot._secret, sim.clock)
    try:
        r = await foreign.signed("GET", "/api/v3/account")
        assert r.status_code == 401 and r.json()["code"] == -2015
        sim.control.set_whitelist(bot.api_key, None)
        assert (await foreign.signed("GET", "/api/v3/account")).status_code == 200
    finally:
        await foreign.aclose()


async def test_bad_and_unknown_keys(sim: Simulator, bot: ActorClient) -> None:
    r = await bot.signed("GET", "/api/v3/account", api_key="nope")
    assert r.status_code == 401 and r.json()["code"] == -2014
    r = await bot.signed("GET", "/api/v3/account", api_key="ab" * 32)
    assert r.status_code == 401 and r.json()["code"] == -2015
    ro_key, ro_secret = sim.control.create_key("main", "ro", ip_whitelist=["127.0.0.2"])
    ro = ActorClient(sim.rest_url, "127.0.0.2", ro_key, ro_secret, sim.clock)
    try:
        r = await ro.signed("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"})
        assert r.status_code == 401 and r.json()["code"] == -2015
    finally:
        await ro.aclose()


async def test_rejects_cost_weight_successes_do_not(sim: Simulator, bot: ActorClient) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
             "price": "20000.00", "quantity": "0.001"}
    r = await bot.signed("POST", "/api/v3/order", order)
    assert r.status_code == 200 and r.headers["x-mbx-used-weight-1m"] == "0"
    r = await bot.signed("POST", "/api/v3/order", {**order, "quantity": "100"})
    assert r.json() == {"code": -2010,
                        "msg": "Account has insufficient balance for requested action."}
    assert r.headers["x-mbx-used-weight-1m"] == "1"
    r = await bot.signed("POST", "/api/v3/order", {**order, "quantity": "0.0000001"})
    assert r.json() == {"code": -1013, "msg": "Filter failure: LOT_SIZE"}
    r = await bot.signed("POST", "/api/v3/order", {**order, "price": "20000.001"})
    assert r.json() == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    r = await bot.signed("POST", "/api/v3/order", {**order, "quantity": "0.0001"})
    assert r.json() == {"code": -1013, "msg": "Filter failure: NOTIONAL"}
    assert r.headers["x-mbx-used-weight-1m"] == "4"


async def test_weight_counts_per_source_ip(sim: Simulator) -> None:
    async def get(ip: str, path: str) -> httpx.Response:
        transport = httpx.AsyncHTTPTransport(local_address=ip)
        async with httpx.AsyncClient(transport=transport, base_url=sim.rest_url) as c:
            return await c.get(path)

    sim.clock.now_ms()  # windows are calendar minutes; a boundary mid-test would reset counts
    if sim.clock.now_ms() % 60_000 > 55_000:
        await sim.clock.sleep(6)
    for n in range(1, 4):
        r = await get("127.0.0.2", "/api/v3/time")
        assert r.headers["x-mbx-used-weight-1m"] == str(n)
    r = await get("127.0.0.3", "/api/v3/exchangeInfo")
    assert r.headers["x-mbx-used-weight-1m"] == "20"
    assert sim.control.weight_used("127.0.0.2") == 3
    assert sim.control.weight_used("127.0.0.3") == 20
    paths = [(ip, p, w) for _ts, ip, p, w in sim.control.weight_log()]
    assert paths == [("127.0.0.2", "/api/v3/time", 1)] * 3 + [
        ("127.0.0.3", "/api/v3/exchangeInfo", 20)]


async def test_6001st_weight_is_429_then_418_ban(sim: Simulator) -> None:
    ip = "127.66.1.1"
    transport = httpx.AsyncHTTPTransport(local_address=ip)
    if sim.clock.now_ms() % 60_000 > 50_000:
        await sim.clock.sleep(11)
    sim.exchange.limits.charge(ip, "/api/v3/exchangeInfo", 5980, sim.clock.now_ms())
    async with httpx.AsyncClient(transport=transport, base_url=sim.rest_url) as c:
        r = await c.get("/api/v3/exchangeInfo")  # 6000 exactly: allowed
        assert r.status_code == 200 and r.headers["x-mbx-used-weight-1m"] == "6000"
        r = await c.get("/api/v3/time")  # the 6,001st
        assert r.status_code == 429 and r.json()["code"] == -1003
        assert int(r.headers["retry-after"]) >= 1
        statuses = [(await c.get("/api/v3/time")).status_code for _ in range(12)]
        assert 418 in statuses
        r = await c.get("/api/v3/time")
        assert r.status_code == 418 and "IP banned until" in r.json()["msg"]
        assert 100 <= int(r.headers["retry-after"]) <= 120
    async with httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"),
                                 base_url=sim.rest_url) as other:
        assert (await other.get("/api/v3/time")).status_code == 200


async def test_legacy_listen_key_is_retired(bot: ActorClient) -> None:
    r = await bot.public("POST", "/api/v3/userDataStream")
    assert r.status_code == 410 and r.json()["code"] == -1020


async def test_fault_injection(sim: Simulator, bot: ActorClient) -> None:
    sim.control.fail_rest(503, count=2)
    assert [(await bot.public("GET", "/api/v3/time")).status_code for _ in range(3)] == [
        503, 503, 200]
    before = (await bot.public("GET", "/api/v3/time")).json()["serverTime"]
    sim.control.shift_clock(-10_000)
    after = (await bot.public("GET", "/api/v3/time")).json()["serverTime"]
    assert after < before - 9_000
    r = await bot.signed("GET", "/api/v3/account")  # our clock is now 10 s ahead of the server
    assert r.json()["code"] == -1021


async def test_limit_order_fills_when_price_crosses(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    r = await bot.signed("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "price": "64000.00", "quantity": "0.001", "newClientOrderId": "grid1-7"})
    assert r.json()["status"] == "NEW"
    sim.control.set_price("BTCUSDT", 63000)
    r = await bot.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                  "origClientOrderId": "grid1-7"})
    assert r.json()["status"] == "FILLED" and r.json()["executedQty"] == "0.00100000"
    r = await bot.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT",
                                                     "origClientOrderId": "grid1-7"})
    assert r.json() == {"code": -2011, "msg": "Unknown order sent."}
