"""Public market-data streams over real WebSockets: raw and combined paths, the SUBSCRIBE
protocol and its errors, the message limit, payload fields (binance-wire-2.md 2.5), a fill on
the @trade and kline streams, and diff depth continuous with the REST snapshot."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient

SPEED = 10.0
TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


@pytest.fixture
async def fast() -> AsyncIterator[Simulator]:
    async with Simulator(clock=AcceleratedClock(SPEED), seed=3) as s:
        s.control.create_account("main", {"USDT": 100_000, "BTC": 1})
        yield s


@pytest.fixture
async def trader(fast: Simulator) -> AsyncIterator[ActorClient]:
    key, secret = fast.control.create_key("main", "bot", permissions=TRADER)
    client = ActorClient(fast.rest_url, "127.0.0.2", key, secret, fast.clock)
    yield client
    await client.aclose()


async def recv(ws: ClientConnection, timeout: float = 5.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def until(ws: ClientConnection, pred: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv(ws, max(0.01, deadline - time.monotonic()))
        if pred(msg):
            return msg


async def control(ws: ClientConnection, msg: dict[str, Any] | str) -> Any:
    """Send one control message (spaced to stay under 5 a second) and return its reply."""
    await asyncio.sleep(0.22)
    await ws.send(msg if isinstance(msg, str) else json.dumps(msg))
    return await until(ws, lambda m: isinstance(m, dict) and ("result" in m or "code" in m))


async def test_raw_trade_stream_carries_the_fill(fast: Simulator, trader: ActorClient) -> None:
    async with connect(f"{fast.stream_url}/ws/btcusdt@trade") as ws:
        await asyncio.sleep(0.1)
        r = await trader.signed("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0421"})
        fill = r.json()["fills"][0]
        ev = await until(ws, lambda m: m.get("t") == fill["tradeId"])
    assert set(ev) == {"e", "E", "s", "t", "p", "q", "T", "m", "M"}
    assert ev["e"] == "trade" and ev["s"] == "BTCUSDT" and ev["p"] == fill["price"]
    assert ev["q"] == "0.04210000" and ev["m"] is False and isinstance(ev["T"], int)


async def test_combined_stream_wraps_and_kline_counts_the_fill(fast: Simulator,
                                                             trader: ActorClient) -> None:
    names = ["btcusdt@kline_1m", "btcusdt@bookTicker", "btcusdt@aggTrade",
             "btcusdt@ticker", "!miniTicker@arr", "btcusdt@depth5@100ms",
             "btcusdt@kline_1h@+08:00", "btcusdt@ticker_1h", "btcusdt@avgPrice"]
    async with connect(f"{fast.stream_url}/stream?streams={'/'.join(names)}") as ws:
        seen: dict[str, Any] = {}
        while len(seen) < len(names) - 1:  # aggTrade needs a trade; waited for below
            m = await recv(ws)
            assert set(m) == {"stream", "data"}
            seen.setdefault(m["stream"], m["data"])
        await trader.signed("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.5"})
        agg = await until(ws, lambda m: m["stream"] == "btcusdt@aggTrade"
                          and m["data"]["q"] == "0.50000000")
        kline = await until(ws, lambda m: m["stream"] == "btcusdt@kline_1m"
                            and float(m["data"]["k"]["v"]) >= 0.5)
    assert set(agg["data"]) == {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"}
    k = kline["data"]["k"]
    assert set(k) == {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V",
                      "Q", "B"}
    # the first push counting the fill is the minute's final one (x true) when the fill came
    # in its last second or two; either way it is a bool and the counts hold
    assert k["T"] == k["t"] + 59_999 and isinstance(k["x"], bool) and k["L"] >= agg["data"]["f"]
    assert set(seen["btcusdt@bookTicker"]) == {"u", "s", "b", "B", "a", "A"}
    assert set(seen["btcusdt@ticker"]) == {"e", "E", "s", "p", "P", "w", "x", "c", "Q", "b",
                                           "B", "a", "A", "o", "h", "l", "v", "q", "O", "C",
                                           "F", "L", "n"}
    mini = seen["!miniTicker@arr"]
    assert isinstance(mini, list) and set(mini[0]) == {"e", "E", "s", "c", "o", "h", "l", "v",
                                                       "q"}
    depth5 = seen["btcusdt@depth5@100ms"]
    assert set(depth5) == {"lastUpdateId", "bids", "asks"} and len(depth5["bids"]) == 5
    assert (seen["btcusdt@kline_1h@+08:00"]["k"]["t"] + 8 * 3_600_000) % 3_600_000 == 0
    assert seen["btcusdt@ticker_1h"]["e"] == "1hTicker"
    assert set(seen["btcusdt@avgPrice"]) == {"e", "E", "s", "i", "w", "T"}


async def test_subscribe_protocol_on_a_slot_path(fast: Simulator) -> None:
    async with connect(f"{fast.stream_url}/ws/0") as ws:
        assert await control(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@miniTicker"],
                                  "id": 1}) == {"result": None, "id": 1}
        ev = await until(ws, lambda m: m.get("e") == "24hrMiniTicker")  # raw: unwrapped
        assert ev["s"] == "ETHUSDT"
        sid = str(uuid.uuid4())
        assert await control(ws, {"method": "SUBSCRIBE", "params": ["ethusdt@trade"],
                                  "id": sid}) == {"result": None, "id": sid}
        assert await control(ws, {"method": "LIST_SUBSCRIPTIONS", "id": None}) == {
            "result": ["ethusdt@miniTicker", "ethusdt@trade"], "id": None}
        assert await control(ws, {"method": "SET_PROPERTY", "params": ["combined", True],
                                  "id": 2}) == {"result": None, "id": 2}
        assert await control(ws, {"method": "GET_PROPERTY", "params": ["combined"],
                                  "id": 3}) == {"result": True, "id": 3}
        await until(ws, lambda m: m.get("stream") == "ethusdt@miniTicker")
        assert await control(ws, {"method": "UNSUBSCRIBE", "params": ["ethusdt@miniTicker"],
                                  "id": 4}) == {"result": None, "id": 4}
        assert (await control(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 5}))["result"] == [
            "ethusdt@trade"]


@pytest.mark.parametrize(("msg", "code"), [
    ({"method": "GET_PROPERTY", "params": ["colour"], "id": 1}, 0),
    ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}, 1),
    ({"method": "SET_PROPERTY", "params": [7, True], "id": 1}, 2),
    ({"method": "SUBSCRIB", "params": [], "id": 1}, 2),
    ({"params": [], "id": 1}, 2),
    ({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 1}, 2),
    ({"method": "SUBSCRIBE", "params": [], "id": {"x": 1}}, 2),
    ("{not json", 3),
])
async def test_control_errors(fast: Simulator, msg: dict[str, Any] | str, code: int) -> None:
    async with connect(f"{fast.stream_url}/stream") as ws:
        reply = await control(ws, msg)
    assert reply["code"] == code and isinstance(reply["msg"], str) and "result" not in reply


async def test_more_than_five_messages_a_second_disconnects(fast: Simulator) -> None:
    async with connect(f"{fast.stream_url}/ws") as ws:
        with pytest.raises(ConnectionClosed):
            for i in range(8):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            while True:
                await recv(ws)
        assert ws.close_code == 1008


async def test_diff_depth_is_continuous_with_the_rest_snapshot(fast: Simulator,
                                                             trader: ActorClient) -> None:
    async with connect(f"{fast.stream_url}/stream") as ws:
        await control(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@depth@100ms"],
                           "id": "d1"})
        buffered = [await until(ws, lambda m: "stream" in m)]
        async with httpx.AsyncClient(base_url=fast.rest_url) as http:
            snap = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT",
                                                            "limit": 1000})).json()
        await trader.signed("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"})
        last = snap["lastUpdateId"]
        while len(buffered) < 12:
            buffered.append(await until(ws, lambda m: "stream" in m))
    events = [m["data"] for m in buffered]
    assert all(set(e) == {"e", "E", "s", "U", "u", "b", "a"} for e in events)
    assert all(b["U"] == a["u"] + 1 for a, b in zip(events, events[1:], strict=False))
    live = [e for e in events if e["u"] > last]
    assert live and live[0]["U"] <= last + 1 <= live[0]["u"]
    bids = {p: q for p, q in snap["bids"]}
    asks = {p: q for p, q in snap["asks"]}
    for e in live:
        for side, changes in ((bids, e["b"]), (asks, e["a"])):
            for p, q in changes:
                if float(q) == 0:
                    side.pop(p, None)
                else:
                    side[p] = q
    assert max(bids, key=float) < min(asks, key=float)
    assert len(bids) == len(asks) == 1000


async def test_stream_url_is_its_own_port(fast: Simulator) -> None:
    assert fast.stream_url.startswith("ws://127.0.0.1:")
    assert fast.stream_url.rsplit(":", 1)[1] != str(fast.port)


def test_retired_all_market_ticker_is_not_a_stream() -> None:
    """`!ticker@arr` left web-socket-streams.md; its rolling and mini forms remain."""
    from monitor.world.sim import streamnames

    assert streamnames.parse("!ticker@arr") is None
    assert streamnames.parse("!miniTicker@arr") is not None
    assert streamnames.parse("!ticker_1h@arr") is not None
