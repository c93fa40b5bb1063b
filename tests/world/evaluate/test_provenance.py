"""Provenance before prefixes (issue 14), through the real simulator, tap and service.

`keywatch run` as a subprocess watches a simulated account with its tap enabled. A stock ccxt
bot (default options: ccxt stamps its own x-... clientOrderIds) trades through the tap from its
whitelisted address: no foreign finding, though its owner lists ccxt's prefix. The same ccxt
code with the leaked key, straight to the exchange from a foreign address, places an order
(foreign.order, naming the key) and cancels the bot's open order (foreign.cancel), each found
within one window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator
from monitor.world.sim.clients.ccxt_grid import make_exchange
from monitor.world.sim.clients.common import bind
from tests.configs import Key, sim_config
from tests.service.test_service import free_port

BOT_IP = "127.0.0.5"
FOREIGN_IP = "127.0.0.66"
REPO = Path(__file__).resolve().parents[3]


BOT = Key("bot", "spot-bot", "KW_BOT_KEY", ip_whitelist=[BOT_IP],
          client_order_prefixes=["x-TKT5PX2F"])


def config(tmp: Path, sim: Simulator, keys: dict[str, tuple[str, str]], tap_port: int, *,
           symbols: tuple[str, ...] = ("BTCUSDT",), bot: Key = BOT) -> Path:
    """A service config watching account "main": the monitor key, the bot's key known to the
    tap (`bot` with its whitelist or prefixes), a channel that cannot deliver."""
    dead = free_port()
    # weight_budget_pct: 10 % of the minute's weight: at the default 1 % (60) the start-up
    # round (backfill, order counts, prices) spends the minute and the next round waits for
    # the next one, up to 65 s, so whether the poller's prices arrive within a test's wait
    # depended on the wall clock
    return sim_config(
        tmp, sim, keys, binance={"weight_budget_pct": 10}, sources={"poll_interval_s": 5},
        tap={"enabled": True, "listen": f"127.0.0.1:{tap_port}", "upstream": sim.rest_url},
        bot=bot, channel={"name": "down", "url": f"json://127.0.0.1:{dead}/",
                          "tags": ["critical"]},
        symbols=symbols)


def findings(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT rule_id, key, ts, body FROM findings").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [{"rule_id": r, "key": k, "ts": ts, **json.loads(b)} for r, k, ts, b in rows]


async def wait_for(db: Path, rule: str, timeout_s: float) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = [f for f in findings(db) if f["rule_id"] == rule]
        if got:
            return got
        await asyncio.sleep(0.2)
    return []


def ccxt_client(base: str, key: tuple[str, str], ip: str):  # type: ignore[no-untyped-def]
    ex = make_exchange(base, *key)  # stock ccxt, default options: its own clientOrderIds
    bind(ex.session, ip)
    return ex


@contextlib.asynccontextmanager
async def running_service(cfg: Path, cwd: Path, tap_port: int) -> AsyncIterator[None]:
    """`keywatch run -c cfg` as a subprocess, from its stream's first frame and a tap that
    answers until the block ends; then SIGTERM (killed after 15 s)."""
    health = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KW_")}
    log_path = cwd / "service.log"  # kept in the test's folder for a failure's diagnosis
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg), "--health-port",
         str(health)], cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    h = (await http.get(f"http://127.0.0.1:{health}/healthz")).json()
                    if h["sources"].get("stream", {}).get("main", {}).get("frames", -1) >= 0:
                        await http.get(f"http://127.0.0.1:{tap_port}/api/v3/ping")
                        break
                except (httpx.HTTPError, ValueError, KeyError):
                    pass
                assert proc.poll() is None, log_path.read_text()
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        yield
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.communicate, None, 15)
            except subprocess.TimeoutExpired:
                proc.kill()
        log_file.close()


@pytest.mark.timeout(240)
async def test_tapped_ccxt_bot_is_not_foreign_but_the_leaked_key_is(tmp_path: Path) -> None:
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100_000, "BTC": 1})
        keys = {
            "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                     ip_whitelist=["127.0.0.1"]),
            # Binance sees the tap's address for the bot and the thief's own: no restriction
            "bot": c.create_key("main", "bot", permissions={
                "enableReading": True, "enableSpotAndMarginTrading": True}),
        }
        tap_port = free_port()
        cfg = config(tmp_path, sim, keys, tap_port)
        db = tmp_path / "kw.db"
        async with running_service(cfg, tmp_path, tap_port):
            price = c.price("BTCUSDT")

            def bot_trades() -> list[str]:
                ex = ccxt_client(f"http://127.0.0.1:{tap_port}", keys["bot"], BOT_IP)
                ex.load_markets()
                ids = []
                for side, px in (("buy", price * 0.9), ("sell", price * 1.1),
                                 ("buy", price * 0.8)):
                    o = ex.create_order("BTC/USDT", "limit", side, 0.001,
                                        float(ex.price_to_precision("BTC/USDT", px)))
                    assert o["clientOrderId"].startswith("x-TKT5PX2F"), o["clientOrderId"]
                    ids.append(o["id"])
                ex.cancel_order(ids[2], "BTC/USDT")  # the bot's own cancel, through the tap
                return ids

            ids = await asyncio.to_thread(bot_trades)
            # the grace (3 s) plus the lateness allowance pass: nothing is foreign
            await asyncio.sleep(6.0)
            got = [f for f in findings(db) if f["rule_id"].startswith("foreign.")]
            assert got == [], got

            def thief(action: str) -> int:
                ex = ccxt_client(sim.rest_url, keys["bot"], FOREIGN_IP)  # straight to Binance
                ex.load_markets()
                t0 = int(time.time() * 1000)
                if action == "order":
                    ex.create_order("BTC/USDT", "limit", "buy", 0.001,
                                    float(ex.price_to_precision("BTC/USDT", price * 0.85)))
                else:
                    ex.cancel_order(ids[0], "BTC/USDT")  # the bot's resting buy
                return t0

            t_order = await asyncio.to_thread(thief, "order")
            placed = await wait_for(db, "foreign.order", 65)
            assert placed, findings(db)
            assert len(placed) == 1 and placed[0]["key"] == "bot", placed
            assert placed[0]["ts"] - t_order < 60_000
            assert placed[0]["evidence"]["client_order_id"].startswith("x-TKT5PX2F")

            t_cancel = await asyncio.to_thread(thief, "cancel")
            cancelled = await wait_for(db, "foreign.cancel", 65)
            assert cancelled, findings(db)
            assert len(cancelled) == 1 and cancelled[0]["key"] == "bot", cancelled
            assert cancelled[0]["evidence"]["order_id"] == int(ids[0])
            assert cancelled[0]["ts"] - t_cancel < 60_000
            # the bot's own orders and cancel stayed explained by the tap
            assert not [f for f in findings(db) if f["rule_id"].startswith("foreign.")
                        and f["evidence"].get("order_id") in {int(i) for i in ids[1:]}]
