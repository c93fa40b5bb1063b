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
import os
import subprocess
import sys
from pathlib import Path

import ccxt
import httpx
import pytest

from monitor.clock import SystemClock
from monitor.sim import Simulator
from tests.evaluate.test_provenance import ccxt_client, findings, wait_for
from tests.test_service import free_port

BOT_IP = "127.0.0.5"
NEW_IP = "127.0.0.77"
REPO = Path(__file__).resolve().parents[2]
USDT = 20_000.0


def config(tmp: Path, sim: Simulator, keys: dict[str, tuple[str, str]], tap_port: int) -> Path:
    dead = free_port()
    (tmp / ".env").write_text(
        f"KW_MON_KEY={keys['keywatch'][0]}\nKW_MON_SECRET={keys['keywatch'][1]}\n"
        f"KW_BOT_KEY={keys['bot'][0]}\n")
    path = tmp / "keywatch.toml"
    path.write_text(f"""
store_path = "{tmp / 'kw.db'}"
rules_dir = "{REPO / 'rules'}"
model_path = "{REPO / 'models' / 'default.skops'}"
[binance]
rest_url = "{sim.rest_url}"
ws_api_url = "{sim.ws_api_url}"
[sources]
poll_interval_s = 5
[sources.tap]
enabled = true
listen = "127.0.0.1:{tap_port}"
upstream = "{sim.rest_url}"
[alerts]
group_wait_s = 0
[[alerts.channels]]
name = "down"
url = "json://127.0.0.1:{dead}/"
tags = ["critical"]
[[accounts]]
name = "main"
monitor_key = "keywatch"
symbols = ["BTCUSDT", "ETHUSDT"]
  [[accounts.keys]]
  label = "keywatch"
  use_case = "monitoring"
  api_key_env = "KW_MON_KEY"
  api_secret_env = "KW_MON_SECRET"
  ip_whitelist = ["127.0.0.1"]
  [[accounts.keys]]
  label = "bot"
  use_case = "spot-bot"
  api_key_env = "KW_BOT_KEY"
""")
    return path


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
        tap_port, health = free_port(), free_port()
        cfg = config(tmp_path, sim, keys, tap_port)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KW_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg), "--health-port",
             str(health)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        db = tmp_path / "kw.db"
        tap = f"http://127.0.0.1:{tap_port}"
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(300):
                    try:
                        h = (await http.get(f"http://127.0.0.1:{health}/healthz")).json()
                        if h["sources"].get("stream", {}).get("main", {}).get("frames", -1) >= 0:
                            await http.get(f"{tap}/api/v3/ping")
                            break
                    except (httpx.HTTPError, ValueError, KeyError):
                        pass
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)

            def bot_buys() -> None:  # the bot's small market buy: a fill, a price to know
                ex = ccxt_client(tap, keys["bot"], BOT_IP)
                ex.load_markets()
                ex.create_order("BTC/USDT", "market", "buy", 0.001)

            await asyncio.to_thread(bot_buys)
            await asyncio.sleep(3.0)  # the fill and the new balance arrive by the stream

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
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    await asyncio.to_thread(proc.communicate, None, 15)
                except subprocess.TimeoutExpired:
                    proc.kill()

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
