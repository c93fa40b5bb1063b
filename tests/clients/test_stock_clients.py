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
    price = w.price()
    order = step("order_limit_buy", [("POST", "/api/v3/order")],
                 lambda: client.order_limit_buy(symbol="BTCUSDT", quantity="0.001",
                                                price=f"{price * 0.5:.2f}"))
    assert order["status"] == "NEW"
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

    price = w.price()
    order = step("new_order limit", [("POST", "/api/v3/order")],
                 lambda: client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                          timeInForce="GTC", quantity=0.001,
                                          price=f"{price * 0.5:.2f}"))
    assert order["status"] == "NEW"
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
