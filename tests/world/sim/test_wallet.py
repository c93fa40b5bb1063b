"""The /sapi wallet and margin calls and the futures exchangeInfo over real loopback HTTP, and
stock ccxt's default `load_markets` (with a key: every one of those calls) parsing them."""

from __future__ import annotations

import ccxt
import httpx

from monitor.world.sim import Simulator, SimulatorThread
from monitor.world.sim.client import ActorClient
from monitor.world.sim.market import SYMBOLS
from tests.clients.kit import ccxt_urls

COIN_KEYS = {"coin", "depositAllEnable", "withdrawAllEnable", "name", "free", "locked",
             "freeze", "withdrawing", "ipoing", "ipoable", "storage", "isLegalMoney",
             "trading", "networkList"}
NETWORK_KEYS = {
    "network", "coin", "withdrawIntegerMultiple", "isDefault", "depositEnable",
    "withdrawEnable", "depositDesc", "withdrawDesc", "specialTips", "specialWithdrawTips",
    "name", "resetAddressStatus", "addressRegex", "memoRegex", "withdrawFee", "withdrawMin",
    "withdrawMax", "withdrawInternalMin", "depositDust", "minConfirm", "unLockConfirm",
    "sameAddress", "withdrawTag", "estimatedArrivalTime", "busy", "contractAddressUrl",
    "contractAddress", "denomination"}
READER = {"enableReading": True}


async def test_coin_config_is_signed_and_shows_balances(sim: Simulator, bot: ActorClient
                                                        ) -> None:
    r = await bot.signed("GET", "/sapi/v1/capital/config/getall")
    assert r.status_code == 200 and r.headers["x-sapi-used-ip-weight-1m"] == "10"
    coins = {c["coin"]: c for c in r.json()}
    assert set(coins) == {a for s in SYMBOLS.values() for a in (s.base, s.quote)}
    assert all(set(c) == COIN_KEYS for c in coins.values())
    assert all(set(n) == NETWORK_KEYS for c in coins.values() for n in c["networkList"])
    assert coins["USDT"]["free"] == "10000.00000000"
    assert all(sum(n["isDefault"] for n in c["networkList"]) == 1 for c in coins.values())
    unsigned = await bot._http.get("/sapi/v1/capital/config/getall",
                                   headers={"X-MBX-APIKEY": bot.api_key})
    assert unsigned.status_code == 400 and unsigned.json()["code"] == -1102


async def test_margin_pairs_need_the_key_but_no_signature(sim: Simulator, bot: ActorClient
                                                          ) -> None:
    keyed = {"X-MBX-APIKEY": bot.api_key}
    r = await bot._http.get("/sapi/v1/margin/allPairs", headers=keyed)
    assert r.status_code == 200 and r.headers["x-sapi-used-ip-weight-1m"] == "1"
    assert [p["symbol"] for p in r.json()] == [s for s, spec in SYMBOLS.items() if spec.margin]
    assert set(r.json()[0]) == {"id", "symbol", "base", "quote", "isMarginTrade",
                                "isBuyAllowed", "isSellAllowed"}
    r = await bot._http.get("/sapi/v1/margin/isolated/allPairs", params={"symbol": "ETHUSDT"},
                            headers=keyed)
    assert r.status_code == 200 and r.headers["x-sapi-used-ip-weight-1m"] == "10"
    assert r.json() == [{"symbol": "ETHUSDT", "base": "ETH", "quote": "USDT",
                         "isMarginTrade": True, "isBuyAllowed": True, "isSellAllowed": True}]
    r = await bot._http.get("/sapi/v1/margin/allPairs")
    assert r.status_code == 401 and r.json()["code"] == -2014
    r = await bot._http.get("/sapi/v1/margin/allPairs", params={"symbol": "NOPE"},
                            headers=keyed)
    assert r.status_code == 400 and r.json()["code"] == -1121
    # the key's IP whitelist still applies to key-only endpoints
    async with httpx.AsyncClient(base_url=sim.rest_url) as other:
        r = await other.get("/sapi/v1/margin/allPairs", headers=keyed)
    assert r.status_code == 401 and r.json()["code"] == -2015


async def test_trade_fee(sim: Simulator, bot: ActorClient) -> None:
    r = await bot.signed("GET", "/sapi/v1/asset/tradeFee", {"symbol": "BTCUSDT"})
    assert r.status_code == 200 and r.headers["x-sapi-used-ip-weight-1m"] == "1"
    assert r.json() == [{"symbol": "BTCUSDT", "makerCommission": "0.001",
                         "takerCommission": "0.001"}]


async def test_futures_exchange_info_counts_its_own_weight(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.rest_url) as http:
        spot = await http.get("/api/v3/exchangeInfo")
        fapi = await http.get("/fapi/v1/exchangeInfo")
        dapi = await http.get("/dapi/v1/exchangeInfo")
    assert spot.headers["x-mbx-used-weight-1m"] == "20"
    assert fapi.headers["x-mbx-used-weight-1m"] == "1"  # not 21: its own pool
    assert dapi.headers["x-mbx-used-weight-1m"] == "1"
    (perp,) = fapi.json()["symbols"]
    assert (perp["symbol"], perp["contractType"], perp["marginAsset"]) == (
        "BTCUSDT", "PERPETUAL", "USDT")
    assert fapi.json()["rateLimits"][0]["limit"] == 2400
    (inverse,) = dapi.json()["symbols"]
    assert (inverse["symbol"], inverse["contractStatus"], inverse["contractSize"]) == (
        "BTCUSD_PERP", "TRADING", 100)


def test_ccxt_default_load_markets_with_a_key() -> None:
    """Stock ccxt, base URLs changed only: currencies, margin pairs, spot and futures."""
    runner = SimulatorThread(seed=5)
    with runner as sim:
        runner.call(sim.control.create_account, "main", {"USDT": 500, "BTC": 0.01})
        key, secret = runner.call(sim.control.create_key, "main", "ccxt", permissions=READER,
                                  ip_whitelist=["127.0.0.1"])
        exchange = ccxt.binance({"apiKey": key, "secret": secret})
        exchange.urls["api"] = ccxt_urls(sim.rest_url, sim.rest_url)
        markets = exchange.load_markets()
        assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT"]["marginModes"] == {
            "cross": True, "isolated": True}
        assert markets["BTC/USDT"]["limits"]["market"]["max"] == 100
        assert markets["BTC/USDT:USDT"]["swap"] and markets["BTC/USDT:USDT"]["linear"]
        inverse = markets["BTC/USD:BTC"]
        assert inverse["inverse"] and inverse["contractSize"] == 100
        networks = exchange.currencies["USDT"]["networks"].values()
        assert {n["id"] for n in networks} == {"ETH", "BSC"}
        assert all(n["withdraw"] and n["deposit"] for n in networks)
        paths = {path for _t, _ip, path, _w in runner.call(sim.control.weight_log)}
        assert {"/sapi/v1/capital/config/getall", "/sapi/v1/margin/allPairs",
                "/sapi/v1/margin/isolated/allPairs", "/api/v3/exchangeInfo",
                "/fapi/v1/exchangeInfo", "/dapi/v1/exchangeInfo"} <= paths
