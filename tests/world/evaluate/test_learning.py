"""Learning never absorbs an attacker; market orders are sized (issue 14), through the real
simulator, tap and service.

`keywatch run` as a subprocess watches an account whose trading key declares no IP whitelist
(unrestricted on Binance too). In the key's first hour:
- its bot trades through the tap from its box, then the leaked key is used through the same
  tap from a never-seen address: `unknown_ip.new_caller` stays quiet (the key is learning), but
  `unknown_ip.learned_caller` reports the address at warning, with the one-line way to confirm
  it as known;
- a MARKET order for far more than the free balance is refused at the tap (-2010): the tap
  knows its quantity, not its price, and the features price it at the symbol's last price the
  exchange reported (BTC: the bot's fill; ETH, never traded: the poller's ticker/price), so
  `oversized.reject_vs_balance` fires for both.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import ccxt
import pytest

from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator
from tests.configs import Key
from tests.service.test_service import free_port
from tests.world.evaluate.test_provenance import (
    ccxt_client,
    config,
    findings,
    running_service,
    wait_for,
)

BOT_IP = "127.0.0.5"
NEW_IP = "127.0.0.77"
REPO = Path(__file__).resolve().parents[3]
USDT = 20_000.0


@pytest.mark.timeout(240)
async def test_new_caller_on_a_learning_key_and_an_oversized_market_order(tmp_path: Path
                                                                          ) -> None:
    async with Simulator(clock=SystemClock()) as sim:
        c = sim.control
        c.create_account("main", {"USDT": USDT, "BTC": 0.01})
        keys = {
            "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                     ip_whitelist=["127.0.0.1"]),
            "bot": c.create_key("main", "bot", permissions={
                "enableReading": True, "enableSpotAndMarginTrading": True}),
        }
        tap_port = free_port()
        # no whitelist declared for the bot: its addresses are learned (and reported)
        cfg = config(tmp_path, sim, keys, tap_port, symbols=("BTCUSDT", "ETHUSDT"),
                     bot=Key("bot", "spot-bot", "KW_BOT_KEY"))
        db = tmp_path / "kw.db"
        tap = f"http://127.0.0.1:{tap_port}"
        async with running_service(cfg, tmp_path, tap_port):

            def bot_buys() -> None:  # the bot's small market buy: a fill, a price to know
                ex = ccxt_client(tap, keys["bot"], BOT_IP)
                ex.load_markets()
                ex.create_order("BTC/USDT", "market", "buy", 0.001)

            await asyncio.to_thread(bot_buys)
            # the fill (the BTC price the refused order is valued at) and the new balance arrive
            # by the stream: wait for them in the store, not a fixed 3 s (under CI load the
            # reject could reach detection first and go unpriced)
            for _ in range(150):
                if _stored(db, "SELECT COUNT(*) FROM events WHERE source = 'stream' AND "
                               "kind = 'fill' AND symbol = 'BTCUSDT'") and _stored(
                        db, "SELECT COUNT(*) FROM events WHERE kind = 'balance'"):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the bot's fill never reached the store")
            await asyncio.sleep(1.0)  # and detection has processed the batch that stored it

            def thief(market: str) -> None:  # the leaked key through the tap, a new address
                ex = ccxt_client(tap, keys["bot"], NEW_IP)
                ex.load_markets()
                ex.fetch_balance()
                symbol = market.replace("/", "")
                qty = float(ex.amount_to_precision(market, 10 * USDT / c.price(symbol)))
                with pytest.raises(ccxt.InsufficientFunds):
                    ex.create_order(market, "market", "buy", qty)

            # BTC: priced at the bot's fill; ETH (never traded): at the poller's ticker
            await asyncio.to_thread(thief, "BTC/USDT")
            learned = await wait_for(db, "unknown_ip.learned_caller", 30)
            oversized = await wait_for(db, "oversized.reject_vs_balance", 30)
            await asyncio.to_thread(thief, "ETH/USDT")
            for _ in range(150):
                oversized = [f for f in findings(db)
                             if f["rule_id"] == "oversized.reject_vs_balance"]
                if len(oversized) >= 2:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)
            every = findings(db)

    # 1: the never-seen address is reported (the bot's first one too: nothing is absorbed)
    learned = [f for f in every if f["rule_id"] == "unknown_ip.learned_caller"]
    by_ip = {f["group"]["ip"]: f for f in learned}
    assert set(by_ip) == {BOT_IP, NEW_IP}, learned
    new = by_ip[NEW_IP]
    assert new["key"] == "bot" and new["severity"] == "warning", new
    assert (f"keywatch silence add --rule unknown_ip.learned_caller --account main --key bot "
            f"--ip {NEW_IP}") in new["summary"], new["summary"]
    assert "ip_whitelist" in new["summary"]
    assert not [f for f in every if f["rule_id"] == "unknown_ip.new_caller"]  # still learning
    # 2: the refused market order was priced at the last fill and judged against the balance
    by_symbol = {f["evidence"]["symbol"]: f["evidence"] for f in oversized}
    assert set(by_symbol) == {"BTCUSDT", "ETHUSDT"}, oversized
    for ev in by_symbol.values():
        assert ev["code"] == -2010 and ev["ip"] == NEW_IP, ev
        assert ev["ref_price"] > 0, ev
        assert ev["notional"] == pytest.approx(ev["qty"] * ev["ref_price"])
        assert ev["notional_to_free"] > 5, ev


def _stored(db: Path, sql: str) -> int:
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return int(conn.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the service has not created its tables yet
        return 0
    finally:
        conn.close()
