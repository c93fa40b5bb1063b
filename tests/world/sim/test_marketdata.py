"""Public market data over real loopback HTTP: shapes, weights, errors, and agreement with the
fills the matching engine makes (binance-wire-2.md 2.1)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from monitor.core.clock import ManualClock
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from monitor.world.sim.exchange import Exchange

DEC8 = re.compile(r"^-?\d+\.\d{8}$")
TRADE_FIELDS = {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"}
FULL_24HR = {"symbol", "priceChange", "priceChangePercent", "weightedAvgPrice", "prevClosePrice",
             "lastPrice", "lastQty", "bidPrice", "bidQty", "askPrice", "askQty", "openPrice",
             "highPrice", "lowPrice", "volume", "quoteVolume", "openTime", "closeTime",
             "firstId", "lastId", "count"}
MINI = {"symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume",
        "openTime", "closeTime", "firstId", "lastId", "count"}
ROLLING_FULL = FULL_24HR - {"prevClosePrice", "lastQty", "bidPrice", "bidQty", "askPrice",
                            "askQty"}


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.3")
    async with httpx.AsyncClient(base_url=sim.rest_url, transport=transport) as client:
        yield client


class Weighed:
    """Calls one endpoint and returns (status, body, weight this call cost)."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http, self.used = http, 0

    async def get(self, path: str, **params: Any) -> tuple[int, Any, int]:
        r = await self.http.get(path, params=params)
        used = int(r.headers["x-mbx-used-weight-1m"])
        cost, self.used = used - self.used, used
        return r.status_code, r.json(), cost


def _dec8(*values: object) -> bool:
    return all(isinstance(v, str) and DEC8.match(v) for v in values)


async def test_shapes_types_and_weights(http: httpx.AsyncClient) -> None:
    w = Weighed(http)
    st, body, cost = await w.get("/api/v3/depth", symbol="BTCUSDT", limit=5)
    assert st == 200 and cost == 5 and set(body) == {"lastUpdateId", "bids", "asks"}
    assert len(body["bids"]) == 5 and all(_dec8(p, q) for p, q in body["bids"] + body["asks"])
    assert float(body["bids"][0][0]) < float(body["asks"][0][0])
    assert [(await w.get("/api/v3/depth", symbol="BTCUSDT", limit=n))[2]
            for n in (100, 500, 1000, 5000)] == [5, 25, 50, 250]
    st, body, cost = await w.get("/api/v3/klines", symbol="ETHUSDT", interval="1m", limit=3)
    assert st == 200 and cost == 2 and len(body) == 3
    row = body[0]
    assert len(row) == 12 and row[11] == "0" and isinstance(row[0], int)
    assert isinstance(row[6], int) and row[6] == row[0] + 59_999 and isinstance(row[8], int)
    assert _dec8(*row[1:6], row[7], row[9], row[10])
    st, body, cost = await w.get("/api/v3/uiKlines", symbol="ETHUSDT", interval="1s", limit=2)
    assert st == 200 and cost == 2 and body[1][0] - body[0][0] == 1000
    st, body, cost = await w.get("/api/v3/avgPrice", symbol="BTCUSDT")
    assert cost == 2 and body["mins"] == 5 and _dec8(body["price"])
    assert isinstance(body["closeTime"], int)
    st, body, cost = await w.get("/api/v3/ticker/24hr", symbol="BTCUSDT")
    assert cost == 2 and set(body) == FULL_24HR and isinstance(body["count"], int)
    st, body, cost = await w.get("/api/v3/ticker/24hr")
    assert cost == 80 and isinstance(body, list) and {b["symbol"] for b in body} == {
        "BTCUSDT", "ETHUSDT", "DOGEUSDT"}
    st, body, cost = await w.get("/api/v3/ticker/24hr", symbols='["BTCUSDT","ETHUSDT"]',
                                 type="MINI")
    assert cost == 2 and [set(b) for b in body] == [MINI, MINI]
    st, body, cost = await w.get("/api/v3/ticker/price", symbol="DOGEUSDT")
    assert cost == 2 and body == {"symbol": "DOGEUSDT", "price": body["price"]}
    st, body, cost = await w.get("/api/v3/ticker/price")
    assert cost == 4 and len(body) == 3
    st, body, cost = await w.get("/api/v3/ticker/bookTicker", symbol="BTCUSDT")
    assert cost == 2 and set(body) == {"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}
    st, body, cost = await w.get("/api/v3/ticker", symbols='["BTCUSDT","ETHUSDT"]',
                                 windowSize="4h")
    assert cost == 8 and set(body[0]) == ROLLING_FULL and body[0]["openTime"] % 60_000 == 0
    st, body, cost = await w.get("/api/v3/ticker/tradingDay", symbol="ETHUSDT", type="MINI")
    assert cost == 4 and set(body) == MINI and body["openTime"] % 86_400_000 == 0
    for path, weight in (("/api/v3/trades", 25), ("/api/v3/historicalTrades", 25),
                         ("/api/v3/aggTrades", 4)):
        st, body, cost = await w.get(path, symbol="BTCUSDT")
        assert st == 200 and cost == weight and isinstance(body, list)


@pytest.mark.parametrize(("params", "code"), [
    ({"path": "/api/v3/depth", "symbol": "NOPEUSDT"}, -1121),
    ({"path": "/api/v3/depth", "symbol": "btcusdt"}, -1100),
    ({"path": "/api/v3/depth"}, -1102),
    ({"path": "/api/v3/depth", "symbol": ""}, -1105),
    ({"path": "/api/v3/depth", "symbol": "BTCUSDT", "limit": "ten"}, -1100),
    ({"path": "/api/v3/depth", "symbol": "BTCUSDT", "foo": "1"}, -1104),
    ({"path": "/api/v3/klines", "symbol": "BTCUSDT", "interval": "7m"}, -1120),
    ({"path": "/api/v3/klines", "symbol": "BTCUSDT"}, -1102),
    ({"path": "/api/v3/klines", "symbol": "BTCUSDT", "interval": "1m", "timeZone": "+15:00"},
     -1102),
    ({"path": "/api/v3/ticker/24hr", "symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, -1128),
    ({"path": "/api/v3/ticker/24hr", "symbols": "BTCUSDT"}, -1100),
    ({"path": "/api/v3/ticker/24hr", "symbols": '["BTCUSDT","BTCUSDT"]'}, -1151),
    ({"path": "/api/v3/ticker/24hr", "symbols": '["BTCUSDT","XYZUSDT"]'}, -1121),
    ({"path": "/api/v3/ticker/24hr", "symbol": "BTCUSDT", "type": "TINY"}, -1139),
    ({"path": "/api/v3/ticker/24hr", "symbol": "BTCUSDT", "symbolStatus": "HALT"}, -1220),
    ({"path": "/api/v3/ticker/24hr", "symbol": "BTCUSDT", "symbolStatus": "X"}, -1122),
    ({"path": "/api/v3/ticker"}, -1102),
    ({"path": "/api/v3/ticker", "symbol": "BTCUSDT", "windowSize": "60m"}, -1102),
    ({"path": "/api/v3/aggTrades", "symbol": "BTCUSDT", "startTime": "0",
      "endTime": "3600001"}, -1127),
])
async def test_documented_errors(http: httpx.AsyncClient, params: dict[str, str],
                                 code: int) -> None:
    path = params.pop("path")
    r = await http.get(path, params=params)
    assert r.status_code == 400 and r.json()["code"] == code, r.text
    assert set(r.json()) == {"code", "msg"}


async def test_symbols_raw_and_percent_encoded(sim: Simulator, http: httpx.AsyncClient) -> None:
    encoded = await http.get("/api/v3/ticker/price?symbols=%5B%22ETHUSDT%22%2C%22BTCUSDT%22%5D")
    raw = await http.get('/api/v3/ticker/price?symbols=["ETHUSDT","BTCUSDT"]')
    assert [x["symbol"] for x in encoded.json()] == ["ETHUSDT", "BTCUSDT"]
    assert [x["symbol"] for x in raw.json()] == ["ETHUSDT", "BTCUSDT"]
    halted = await http.get("/api/v3/ticker/price", params={"symbolStatus": "HALT"})
    assert halted.status_code == 200 and halted.json() == []


async def test_a_fill_shows_in_trades_klines_and_tickers(sim: Simulator, bot: ActorClient,
                                                       http: httpx.AsyncClient) -> None:
    before = (await http.get("/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"})).json()
    r = await bot.signed("POST", "/api/v3/order", {"symbol": "BTCUSDT", "side": "BUY",
                                                   "type": "MARKET", "quantity": "0.123"})
    fill = r.json()["fills"][0]
    trades = (await http.get("/api/v3/trades", params={"symbol": "BTCUSDT"})).json()
    mine = [t for t in trades if t["id"] == fill["tradeId"]]
    assert len(mine) == 1 and mine[0]["price"] == fill["price"]
    assert mine[0]["qty"] == "0.12300000" and mine[0]["isBuyerMaker"] is False
    ids = [t["id"] for t in trades]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    times = [t["time"] for t in trades]
    assert times == sorted(times)
    hist = (await http.get("/api/v3/historicalTrades",
                           params={"symbol": "BTCUSDT", "fromId": fill["tradeId"]})).json()
    assert hist[0]["id"] == fill["tradeId"]
    agg = (await http.get("/api/v3/aggTrades", params={"symbol": "BTCUSDT", "limit": 50})).json()
    assert any(a["f"] == fill["tradeId"] and a["q"] == "0.12300000" for a in agg)
    kline = (await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                      "limit": 1})).json()[0]
    assert float(kline[5]) >= 0.123 and float(kline[9]) >= 0.123  # taker-buy volume too
    after = (await http.get("/api/v3/ticker/24hr", params={"symbol": "BTCUSDT"})).json()
    assert after["count"] >= before["count"] + 1
    assert float(after["volume"]) >= float(before["volume"]) + 0.123 - 1e-9
    assert after["lastId"] >= fill["tradeId"] and after["firstId"] <= fill["tradeId"]
    if after["lastId"] == fill["tradeId"]:
        assert after["lastPrice"] == fill["price"] and after["lastQty"] == "0.12300000"


async def test_thousand_candles_at_start_join_the_live_one(http: httpx.AsyncClient) -> None:
    rows = (await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "5m",
                                                     "limit": 1000})).json()
    assert len(rows) == 1000
    assert all(b[0] - a[0] == 300_000 for a, b in zip(rows, rows[1:], strict=False))
    assert all(b[1] == a[4] for a, b in zip(rows[:-1], rows[1:-1], strict=False))
    assert all(float(r[3]) <= min(float(r[1]), float(r[4])) <= float(r[2]) for r in rows)
    assert all(float(r[5]) > 0 for r in rows[:-1])
    start = rows[10][0] + 1
    later = (await http.get("/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "5m",
                                                      "startTime": start, "limit": 3})).json()
    assert [r[0] for r in later] == [rows[11][0], rows[12][0], rows[13][0]]
    assert later[0][1:6] == rows[11][1:6]


async def test_depth_matches_book_ticker_and_holds_resting_orders(
        sim: Simulator, bot: ActorClient, http: httpx.AsyncClient) -> None:
    first = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT"})).json()
    top = (await http.get("/api/v3/ticker/bookTicker", params={"symbol": "BTCUSDT"})).json()
    assert [top["bidPrice"], top["askPrice"]] == [first["bids"][0][0], first["asks"][0][0]]
    price = f"{float(first['bids'][0][0]) - 12.34:.2f}"
    r = await bot.signed("POST", "/api/v3/order", {
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "0.0077", "price": price})
    assert r.json()["status"] == "NEW"
    book = (await http.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": 1000})).json()
    assert book["lastUpdateId"] > first["lastUpdateId"]
    level = {p: q for p, q in book["bids"]}.get(f"{float(price):.8f}")
    assert level is not None and float(level) >= 0.0077


def test_background_tape_is_seeded_and_lazy() -> None:
    def run(seed: int) -> list[tuple[int, int, int, int]]:
        ex = Exchange(ManualClock(), seed)
        clock = ex.clock
        assert isinstance(clock, ManualClock)
        for _ in range(60):
            clock.advance(5_000)
            ex.tape.advance(ex.now_ms())
        return [(t.id, t.price, t.qty, t.time) for t in ex.tape.symbols["ETHUSDT"].trades]

    a, b, c = run(7), run(7), run(8)
    assert a == b and a != c and len(a) > 50
    assert [t[0] for t in a] == sorted(t[0] for t in a)
