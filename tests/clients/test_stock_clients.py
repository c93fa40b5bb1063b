"""Stock Binance clients, default options, only their base URLs changed, against the simulator:
directly and through the tap. Every call must succeed, and through the tap each call must be
recorded once, with its method and path, under the key's label.

ccxt (sync), python-binance and binance-connector all run on this thread (sync `requests`);
the simulator and the tap each serve from their own thread.
"""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest
from binance.client import Client
from binance.spot import Spot

from tests.clients.kit import (
    CCXT_OTHER_HOST_ENTRIES,
    CCXT_SPOT_ENTRIES,
    World,
    ccxt_urls,
    host_of,
    world,
)

MODES = ["direct", "tap"]
ACCOUNTS = [f"{client}-{mode}" for client in ("ccxt", "pyb", "conn") for mode in MODES]


@pytest.fixture(scope="module")
def w() -> Iterator[World]:
    yield from world(ACCOUNTS, seed=5)


def test_ccxt_url_entries_are_all_known() -> None:
    """Every `urls['api']` entry of this ccxt release is one we point somewhere, and its
    default path is the one we keep: a new entry must be added to the guide."""
    defaults = ccxt.binance().urls["api"]
    ours = {**CCXT_SPOT_ENTRIES, **CCXT_OTHER_HOST_ENTRIES}
    assert set(defaults) == set(ours)
    for name, url in defaults.items():
        assert url.endswith(ours[name]), name
        assert (host_of(url) == "api.binance.com") == (name in CCXT_SPOT_ENTRIES), name


@pytest.mark.parametrize("mode", MODES)
def test_ccxt(w: World, mode: str) -> None:
    account = f"ccxt-{mode}"
    key, secret = w.keys[account]
    # Through the tap only the api.binance.com entries go to the tap; futures entries keep
    # their own host (here the simulator itself), as they must in production.
    ex = ccxt.binance({"apiKey": key, "secret": secret})
    ex.urls["api"].update(ccxt_urls(w.base(mode), w.rest_url))
    sym = "BTC/USDT"

    def step(what: str, calls: list[tuple[str, str]], fn):
        mark = w.recorder.mark()
        out = fn()
        w.expect(mode, account, mark, calls, what)
        return out

    markets = step("load_markets", [
        ("GET", "/sapi/v1/capital/config/getall"), ("GET", "/sapi/v1/margin/allPairs"),
        ("GET", "/api/v3/exchangeInfo"), ("GET", "/sapi/v1/margin/allPairs"),
        ("GET", "/sapi/v1/margin/isolated/allPairs"),  # fapi/dapi exchangeInfo bypass the tap
    ], ex.load_markets)
    assert sym in markets and markets[sym]["spot"]
    ticker = step("fetch_ticker", [("GET", "/api/v3/ticker/24hr")],
                  lambda: ex.fetch_ticker(sym))
    assert ticker["symbol"] == sym and ticker["last"] > 0
    candles = step("fetch_ohlcv", [("GET", "/api/v3/klines")],
                   lambda: ex.fetch_ohlcv(sym, "1m"))
    assert candles and len(candles[0]) == 6
    book = step("fetch_order_book", [("GET", "/api/v3/depth")],
                lambda: ex.fetch_order_book(sym))
    assert book["bids"] and book["asks"] and book["bids"][0][0] < book["asks"][0][0]
    balance = step("fetch_balance", [("GET", "/api/v3/account")], ex.fetch_balance)
    assert balance["USDT"]["free"] > 0
    price = w.price()
    low = round(price * 0.5, 2)
    first = step("create_order limit", [("POST", "/api/v3/order")],
                 lambda: ex.create_order(sym, "limit", "buy", 0.001, low))
    assert first["status"] == "open"
    second = step("create_order limit", [("POST", "/api/v3/order")],
                  lambda: ex.create_order(sym, "limit", "buy", 0.001, low))
    filled = step("create_order market", [("POST", "/api/v3/order")],
                  lambda: ex.create_order(sym, "market", "buy", 0.001))
    assert filled["status"] == "closed" and filled["filled"] == pytest.approx(0.001)
    open_ids = step("fetch_open_orders", [("GET", "/api/v3/openOrders")],
                    lambda: {o["id"] for o in ex.fetch_open_orders(sym)})
    assert open_ids == {first["id"], second["id"]}
    cancelled = step("cancel_order", [("DELETE", "/api/v3/order")],
                     lambda: ex.cancel_order(first["id"], sym))
    assert cancelled["status"] == "canceled"
    step("cancel_all_orders", [("DELETE", "/api/v3/openOrders")],
         lambda: ex.cancel_all_orders(sym))
    assert step("fetch_open_orders", [("GET", "/api/v3/openOrders")],
                lambda: ex.fetch_open_orders(sym)) == []
    trades = step("fetch_my_trades", [("GET", "/api/v3/myTrades")],
                  lambda: ex.fetch_my_trades(sym))
    assert [t["order"] for t in trades] == [filled["id"]]


@pytest.mark.parametrize("mode", MODES)
def test_python_binance(w: World, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    account = f"pyb-{mode}"
    key, secret = w.keys[account]
    # Class attributes, set before the client is made: Client() pings API_URL at once.
    monkeypatch.setattr(Client, "API_URL", w.base(mode) + "/api")
    monkeypatch.setattr(Client, "MARGIN_API_URL", w.base(mode) + "/sapi")

    def step(what: str, calls: list[tuple[str, str]], fn):
        mark = w.recorder.mark()
        out = fn()
        w.expect(mode, account, mark, calls, what)
        return out

    client = step("Client() ping", [("GET", "/api/v3/ping")], lambda: Client(key, secret))
    ticker = step("get_symbol_ticker", [("GET", "/api/v3/ticker/price")],
                  lambda: client.get_symbol_ticker(symbol="BTCUSDT"))
    assert ticker["symbol"] == "BTCUSDT" and float(ticker["price"]) > 0
    klines = step("get_klines", [("GET", "/api/v3/klines")],
                  lambda: client.get_klines(symbol="BTCUSDT", interval="1m", limit=10))
    assert klines and len(klines[0]) == 12
    book = step("get_order_book", [("GET", "/api/v3/depth")],
                lambda: client.get_order_book(symbol="BTCUSDT", limit=5))
    assert book["bids"] and book["asks"]
    price = w.price()
    order = step("order_limit_buy", [("POST", "/api/v3/order")],
                 lambda: client.order_limit_buy(symbol="BTCUSDT", quantity="0.001",
                                                price=f"{price * 0.5:.2f}"))
    assert order["status"] == "NEW"
    oco = step("create_oco_order", [("POST", "/api/v3/orderList/oco")],
               lambda: client.create_oco_order(
                   symbol="BTCUSDT", side="SELL", quantity="0.001",
                   aboveType="LIMIT_MAKER", abovePrice=f"{price * 1.5:.2f}",
                   belowType="STOP_LOSS_LIMIT", belowStopPrice=f"{price * 0.7:.2f}",
                   belowPrice=f"{price * 0.69:.2f}", belowTimeInForce="GTC"))
    assert oco["contingencyType"] == "OCO" and len(oco["orderReports"]) == 2
    cancelled = step("cancel_order", [("DELETE", "/api/v3/order")],
                     lambda: client.cancel_order(symbol="BTCUSDT", orderId=order["orderId"]))
    assert cancelled["status"] == "CANCELED"
    filled = step("order_market_buy", [("POST", "/api/v3/order")],
                  lambda: client.order_market_buy(symbol="BTCUSDT", quantity="0.001"))
    assert filled["status"] == "FILLED"
    trades = step("get_my_trades", [("GET", "/api/v3/myTrades")],
                  lambda: client.get_my_trades(symbol="BTCUSDT"))
    assert [t["orderId"] for t in trades] == [filled["orderId"]]


@pytest.mark.parametrize("mode", MODES)
def test_binance_connector(w: World, mode: str) -> None:
    account = f"conn-{mode}"
    key, secret = w.keys[account]
    client = Spot(api_key=key, api_secret=secret, base_url=w.base(mode))

    def step(what: str, calls: list[tuple[str, str]], fn):
        mark = w.recorder.mark()
        out = fn()
        w.expect(mode, account, mark, calls, what)
        return out

    ticker = step("ticker_price", [("GET", "/api/v3/ticker/price")],
                  lambda: client.ticker_price("BTCUSDT"))
    assert ticker["symbol"] == "BTCUSDT" and float(ticker["price"]) > 0
    klines = step("klines", [("GET", "/api/v3/klines")],
                  lambda: client.klines("BTCUSDT", "1m", limit=10))
    assert klines and len(klines[0]) == 12
    book = step("depth", [("GET", "/api/v3/depth")], lambda: client.depth("BTCUSDT", limit=5))
    assert book["bids"] and book["asks"]
    price = w.price()
    order = step("new_order limit", [("POST", "/api/v3/order")],
                 lambda: client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                          timeInForce="GTC", quantity=0.001,
                                          price=f"{price * 0.5:.2f}"))
    assert order["status"] == "NEW"
    oco = step("new_oco_order", [("POST", "/api/v3/orderList/oco")],
               lambda: client.new_oco_order(
                   symbol="BTCUSDT", side="SELL", quantity=0.001,
                   aboveType="LIMIT_MAKER", abovePrice=f"{price * 1.5:.2f}",
                   belowType="STOP_LOSS_LIMIT", belowStopPrice=f"{price * 0.7:.2f}",
                   belowPrice=f"{price * 0.69:.2f}", belowTimeInForce="GTC"))
    assert oco["contingencyType"] == "OCO" and len(oco["orderReports"]) == 2
    cancelled = step("cancel_order", [("DELETE", "/api/v3/order")],
                     lambda: client.cancel_order("BTCUSDT", orderId=order["orderId"]))
    assert cancelled["status"] == "CANCELED"
    filled = step("new_order market", [("POST", "/api/v3/order")],
                  lambda: client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET",
                                           quantity=0.001))
    assert filled["status"] == "FILLED"
    trades = step("my_trades", [("GET", "/api/v3/myTrades")],
                  lambda: client.my_trades("BTCUSDT"))
    assert [t["orderId"] for t in trades] == [filled["orderId"]]
