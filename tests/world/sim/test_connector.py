"""binance-connector (PyPI), pointed at the simulator by base_url only, gets its shapes."""

from __future__ import annotations

import pytest
from binance.error import ClientError
from binance.spot import Spot

from monitor.world.sim import SimulatorThread

TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


def test_connector_signs_and_reads_expected_shapes() -> None:
    runner = SimulatorThread(seed=3)
    with runner as sim:
        runner.call(sim.control.create_account, "main", {"USDT": 5000, "BTC": 0.1})
        key, secret = runner.call(sim.control.create_key, "main", "conn", permissions=TRADER,
                                  ip_whitelist=["127.0.0.1"])
        runner.call(sim.control.set_price, "BTCUSDT", 65000)
        client = Spot(api_key=key, api_secret=secret, base_url=sim.rest_url)

        account = client.account()
        assert {"USDT", "BTC"} <= {b["asset"] for b in account["balances"]}
        placed = client.new_order(symbol="BTCUSDT", side="BUY", type="LIMIT",
                                  timeInForce="GTC", quantity=0.001, price=60000,
                                  newClientOrderId="grid1-42")
        assert placed["status"] == "NEW" and placed["clientOrderId"] == "grid1-42"
        got = client.get_order("BTCUSDT", orderId=placed["orderId"])
        assert got["orderId"] == placed["orderId"] and got["price"] == "60000.00000000"
        assert [o["orderId"] for o in client.get_open_orders("BTCUSDT")] == [placed["orderId"]]
        cancelled = client.cancel_order("BTCUSDT", orderId=placed["orderId"])
        assert cancelled["status"] == "CANCELED"
        assert cancelled["origClientOrderId"] == "grid1-42"
        assert client.get_open_orders("BTCUSDT") == []
        filled = client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.001)
        assert filled["status"] == "FILLED" and filled["fills"]
        assert len(client.get_orders("BTCUSDT")) == 2
        trades = client.my_trades("BTCUSDT")
        assert len(trades) == 1 and trades[0]["orderId"] == filled["orderId"]
        limits = client.get_order_rate_limit()
        assert [x["interval"] for x in limits] == ["SECOND", "DAY"]
        perms = client.api_key_permissions()
        assert perms["ipRestrict"] is True and perms["enableSpotAndMarginTrading"] is True
        assert client.api_trading_status()["data"]["isLocked"] is False
        assert client.withdraw_history() == []

        bad = Spot(api_key=key, api_secret=secret[::-1], base_url=sim.rest_url)
        with pytest.raises(ClientError) as err:
            bad.account()
        assert err.value.error_code == -1022 and err.value.status_code == 400
