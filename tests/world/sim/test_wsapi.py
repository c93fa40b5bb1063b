"""The WebSocket API user-data stream over real sockets bound to loopback source addresses."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator
from monitor.world.sim.auth import hmac_hex, ws_payload
from monitor.world.sim.client import ActorClient


async def open_ws(sim: Simulator, ip: str = "127.0.0.2") -> ClientConnection:
    return await connect(sim.ws_api_url, local_addr=(ip, 0))


async def request(ws: ClientConnection, method: str, params: dict[str, Any] | None = None,
                  req_id: str = "r1") -> dict[str, Any]:
    await ws.send(json.dumps({"id": req_id, "method": method, "params": params or {}}))
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if frame.get("id") == req_id:
            return frame


async def subscribe(ws: ClientConnection, sim: Simulator, key: str, secret: str,
                    recv_window: int | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": key, "timestamp": sim.clock.now_ms()}
    if recv_window:
        params["recvWindow"] = recv_window
    params["signature"] = hmac_hex(secret, ws_payload(params))
    return await request(ws, "userDataStream.subscribe.signature", params)


async def events(ws: ClientConnection, n: int) -> list[dict[str, Any]]:
    out = []
    while len(out) < n:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        if "subscriptionId" in frame and "event" in frame:
            out.append(frame)
    return out


async def test_every_order_state_change_in_order(sim: Simulator, bot: ActorClient) -> None:
    sim.control.set_price("BTCUSDT", 65000)
    ws = await open_ws(sim)
    try:
        resp = await subscribe(ws, sim, bot.api_key, bot._secret)
        assert resp["status"] == 200 and resp["result"] == {"subscriptionId": 0}
        assert resp["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
        limit = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                 "quantity": "0.001"}
        await bot.signed("POST", "/api/v3/order", {**limit, "price": "64000.00",
                                                   "newClientOrderId": "grid1-a"})
        await bot.signed("POST", "/api/v3/order", {**limit, "price": "60000.00",
                                                   "newClientOrderId": "grid1-b"})
        # rejects: oversized (-2010) and filter (-1013) must produce no stream event
        assert (await bot.signed("POST", "/api/v3/order", {**limit, "price": "64000.00",
                                                           "quantity": "5"})).status_code == 400
        assert (await bot.signed("POST", "/api/v3/order", {**limit, "price": "1.001"})
                ).json()["code"] == -1013
        sim.control.set_price("BTCUSDT", 63000)  # grid1-a fills
        await bot.signed("DELETE", "/api/v3/order", {"symbol": "BTCUSDT",
                                                     "origClientOrderId": "grid1-b"})
        frames = await events(ws, 8)
        assert all(f["subscriptionId"] == 0 for f in frames)
        kinds = [(f["event"]["e"], f["event"].get("x"), f["event"].get("c"))
                 for f in frames]
        assert [k[:2] for k in kinds] == [
            ("executionReport", "NEW"), ("outboundAccountPosition", None),
            ("executionReport", "NEW"), ("outboundAccountPosition", None),
            ("executionReport", "TRADE"), ("outboundAccountPosition", None),
            ("executionReport", "CANCELED"), ("outboundAccountPosition", None)]
        reports = [f["event"] for f in frames if f["event"]["e"] == "executionReport"]
        assert reports == sim.control.order_events("main")
        assert reports[3]["C"] == "grid1-b" and reports[3]["X"] == "CANCELED"
        assert reports[2]["X"] == "FILLED" and reports[2]["N"] == "BTC"
        assert reports[0]["N"] is None

        unsub = await request(ws, "userDataStream.unsubscribe", {}, "u1")
        assert unsub["status"] == 200 and unsub["result"] == {}
        (end,) = await events(ws, 1)
        assert end["subscriptionId"] == 0 and end["event"]["e"] == "eventStreamTerminated"
        assert (await request(ws, "session.subscriptions", {}, "s1"))["result"] == []
    finally:
        await ws.close()


async def test_subscription_errors(sim: Simulator, bot: ActorClient) -> None:
    ws = await open_ws(sim, "127.66.0.9")
    try:
        resp = await subscribe(ws, sim, bot.api_key, bot._secret)
        assert resp["status"] == 401 and resp["error"]["code"] == -2015
        params = {"apiKey": bot.api_key, "timestamp": sim.clock.now_ms(), "signature": "00"}
        resp = await request(ws, "userDataStream.subscribe.signature", params)
        assert resp["error"]["code"] == -2015  # IP checked before the signature
        resp = await request(ws, "userDataStream.start", {"apiKey": bot.api_key})
        assert resp["status"] == 410 and resp["error"]["code"] == -1020
    finally:
        await ws.close()
    ws = await open_ws(sim)
    try:
        params = {"apiKey": bot.api_key, "timestamp": sim.clock.now_ms(), "signature": "00"}
        resp = await request(ws, "userDataStream.subscribe.signature", params)
        assert resp["status"] == 400 and resp["error"]["code"] == -1022
        assert (await subscribe(ws, sim, bot.api_key, bot._secret))["status"] == 200
        again = await subscribe(ws, sim, bot.api_key, bot._secret)
        assert again["error"]["code"] == -2035
    finally:
        await ws.close()


async def test_expire_and_drop_and_rollover(sim: Simulator, bot: ActorClient) -> None:
    ws = await open_ws(sim)
    await subscribe(ws, sim, bot.api_key, bot._secret)
    sim.control.expire_subscriptions()
    (end,) = await events(ws, 1)
    assert end["event"]["e"] == "eventStreamTerminated"
    await subscribe(ws, sim, bot.api_key, bot._secret)
    sim.control.drop_streams()
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is None  # no close frame: the socket was cut
    ws = await open_ws(sim)
    await subscribe(ws, sim, bot.api_key, bot._secret)
    sim.control.force_rollover()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 5)


async def test_stall_keeps_socket_but_holds_data(sim: Simulator, bot: ActorClient) -> None:
    ws = await open_ws(sim)
    try:
        await subscribe(ws, sim, bot.api_key, bot._secret)
        sim.control.stall_streams()
        await bot.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                                                   "type": "MARKET", "quantity": "0.001"})
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
        await asyncio.wait_for(ws.ping(), 2)  # the socket itself is alive
        sim.control.resume_streams()
        assert len(await events(ws, 4)) == 4
    finally:
        await ws.close()


async def test_connection_closes_after_24h_of_clock_time() -> None:
    clock = AcceleratedClock(speed=600)
    async with Simulator(clock=clock) as sim:
        sim.control.create_account("main", {"USDT": 1})
        key, secret = sim.control.create_key("main", "ro")
        ws = await open_ws(sim)
        assert (await subscribe(ws, sim, key, secret, recv_window=60000))["status"] == 200
        sim.control.shift_clock(24 * 3600 * 1000)
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
