"""WebSocket API methods that mirror REST endpoints, over a real socket on loopback: same
answers as the REST side, the WS signature on signed methods, weights in rateLimits."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from monitor.world.sim import Simulator
from monitor.world.sim.auth import hmac_hex, ws_payload
from monitor.world.sim.client import ActorClient
from monitor.world.sim.wsapi import MIRRORS, mirrored
from tests.world.sim.test_wsapi import open_ws, request


def signed(sim: Simulator, bot: ActorClient, **params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {**params, "apiKey": bot.api_key, "timestamp": sim.clock.now_ms()}
    out["signature"] = hmac_hex(bot._secret, ws_payload(out))
    return out


async def call(ws: ClientConnection, method: str, params: dict[str, Any] | None = None
               ) -> dict[str, Any]:
    return await request(ws, method, params, req_id=f"{method}-1")


def test_every_mirror_names_a_rest_route_shape() -> None:
    assert all(m in ("GET", "POST", "DELETE") and p.startswith("/api/v3/")
               for m, p in MIRRORS.values())
    assert mirrored("exchangeInfo") is not None and mirrored("nope") is None


async def test_exchange_info_mirrors_rest_with_connections_limit(sim: Simulator) -> None:
    ws = await open_ws(sim)
    try:
        resp = await call(ws, "exchangeInfo", {"symbols": ["BTCUSDT", "ETHUSDT"]})
        assert resp["status"] == 200
        assert [s["symbol"] for s in resp["result"]["symbols"]] == ["BTCUSDT", "ETHUSDT"]
        kinds = [r["rateLimitType"] for r in resp["result"]["rateLimits"]]
        assert "CONNECTIONS" in kinds and "RAW_REQUESTS" not in kinds
        weight = resp["rateLimits"][0]
        assert weight["rateLimitType"] == "REQUEST_WEIGHT" and weight["count"] >= 22
        bad = await call(ws, "exchangeInfo", {"symbol": "NOPE"})
        assert bad["status"] == 400 and bad["error"]["code"] == -1121
    finally:
        await ws.close()


async def test_signed_account_methods(sim: Simulator, bot: ActorClient) -> None:
    ws = await open_ws(sim)
    try:
        resp = await call(ws, "account.status", signed(sim, bot, omitZeroBalances=True))
        assert resp["status"] == 200, resp
        rest = (await bot.signed("GET", "/api/v3/account", {"omitZeroBalances": "true"})).json()
        assert set(resp["result"]) == set(rest)
        assert resp["result"]["balances"] == rest["balances"]
        limits = await call(ws, "account.rateLimits.orders", signed(sim, bot))
        assert [x["interval"] for x in limits["result"]] == ["SECOND", "DAY"]
        forged = signed(sim, bot)
        forged["signature"] = "0" * 64
        bad = await call(ws, "account.status", forged)
        assert bad["status"] == 400 and bad["error"]["code"] == -1022
        nokey = await call(ws, "account.status", {"timestamp": sim.clock.now_ms()})
        assert nokey["status"] == 401 and nokey["error"]["code"] == -2014
    finally:
        await ws.close()


async def test_order_place_status_cancel_and_history(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    ws = await open_ws(sim)
    try:
        placed = await call(ws, "order.place", signed(
            sim, bot, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
            quantity="0.001", price="60000.00", newClientOrderId="ws-grid-1"))
        assert placed["status"] == 200, placed
        oid = placed["result"]["orderId"]
        orders = [r for r in placed["rateLimits"] if r["rateLimitType"] == "ORDERS"]
        assert [r["count"] for r in orders] == [1, 1]
        status = await call(ws, "order.status", signed(sim, bot, symbol="BTCUSDT",
                                                       orderId=oid))
        assert status["result"]["clientOrderId"] == "ws-grid-1"
        opened = await call(ws, "openOrders.status", signed(sim, bot, symbol="BTCUSDT"))
        assert [o["orderId"] for o in opened["result"]] == [oid]
        cancelled = await call(ws, "order.cancel", signed(sim, bot, symbol="BTCUSDT",
                                                          orderId=oid))
        assert cancelled["result"]["status"] == "CANCELED"
        history = await call(ws, "allOrders", signed(sim, bot, symbol="BTCUSDT"))
        assert [o["orderId"] for o in history["result"]] == [oid]
        trades = await call(ws, "myTrades", signed(sim, bot, symbol="BTCUSDT"))
        assert trades["status"] == 200 and trades["result"] == []
        rejected = await call(ws, "order.place", signed(
            sim, bot, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
            quantity="0.001", price="1.001"))
        assert rejected["error"] == {"code": -1013, "msg": "Filter failure: PRICE_FILTER"}
    finally:
        await ws.close()


# Methods whose REST endpoint another module serves; each is checked once it is there.
@pytest.mark.parametrize(("method", "params"), [
    ("ticker.price", {"symbol": "BTCUSDT"}),
    ("ticker.book", {"symbol": "BTCUSDT"}),
    ("ticker.24hr", {"symbol": "BTCUSDT"}),
    ("depth", {"symbol": "BTCUSDT", "limit": 5}),
    ("klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 3}),
    ("trades.recent", {"symbol": "BTCUSDT", "limit": 3}),
    ("avgPrice", {"symbol": "BTCUSDT"}),
])
async def test_market_data_methods_answer_like_rest(sim: Simulator, method: str,
                                                    params: dict[str, Any]) -> None:
    ep = mirrored(method)
    if ep is None:
        pytest.skip(f"{MIRRORS[method]} is not served yet")
    ws = await open_ws(sim)
    try:
        resp = await call(ws, method, params)
        assert resp["status"] == 200, resp
        r = await ActorClient(sim.rest_url, "127.0.0.2", "", "", sim.clock).public(
            ep.method, ep.path, {k: str(v) for k, v in params.items()})
        assert type(resp["result"]) is type(r.json())
        if isinstance(r.json(), dict):
            assert set(resp["result"]) == set(r.json())
    finally:
        await ws.close()


async def test_trading_extras_when_served(sim: Simulator, bot: ActorClient) -> None:
    if mirrored("order.test") is None or mirrored("openOrders.cancelAll") is None:
        pytest.skip("order/test or DELETE openOrders not served yet")
    sim.control.set_price("BTCUSDT", 65000)
    ws = await open_ws(sim)
    try:
        test = await call(ws, "order.test", signed(sim, bot, symbol="BTCUSDT", side="BUY",
                                                   type="MARKET", quantity="0.001"))
        assert test["status"] == 200 and test["result"] == {}
        await call(ws, "order.place", signed(
            sim, bot, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
            quantity="0.001", price="60000.00"))
        gone = await call(ws, "openOrders.cancelAll", signed(sim, bot, symbol="BTCUSDT"))
        assert [o["status"] for o in gone["result"]] == ["CANCELED"]
        fees = await call(ws, "account.commission", signed(sim, bot, symbol="BTCUSDT"))
        assert fees["status"] == 200 and fees["result"]["symbol"] == "BTCUSDT"
    finally:
        await ws.close()
