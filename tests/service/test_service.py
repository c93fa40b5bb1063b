"""`keywatch run` as a real subprocess against the simulator: metrics, health, SIGTERM drain."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from tests.configs import Key, sim_config

BOT_IP = "127.0.0.5"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, sim: Simulator, keys: dict[str, tuple[str, str]]) -> Path:
    dead = free_port()  # nothing listens here: every alert stays pending in the outbox
    return sim_config(
        tmp, sim, keys, sources={"poll_interval_s": 2},
        bot=Key("bot", "spot-bot", "KW_BOT_KEY", ip_whitelist=[BOT_IP],
                client_order_prefixes=["bot1-"]),
        channel={"name": "down", "url": f"json://127.0.0.1:{dead}/", "tags": ["critical"]})


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


async def test_run_serves_metrics_and_drains_on_sigterm(tmp_path):
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100000, "BTC": 1})
        keys = {
            "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                     ip_whitelist=["127.0.0.1"]),
            "bot": c.create_key("main", "bot", permissions={
                "enableReading": True, "enableSpotAndMarginTrading": True},
                ip_whitelist=[BOT_IP]),
        }
        cfg = write_config(tmp_path, sim, keys)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KW_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg), "--health-port",
             str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )
        bot = ActorClient(sim.rest_url, BOT_IP, *keys["bot"], clock)
        db = tmp_path / "kw.db"
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(300):  # wait for the service and its first stream subscription
                    try:
                        health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
                        if health["sources"].get("stream", {}).get("main", {}).get("frames",
                                                                                   -1) >= 0:
                            break
                    except (httpx.HTTPError, ValueError, KeyError):
                        pass
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the service never subscribed to the stream in 30 s")
                await asyncio.sleep(1.0)
                # a foreign order (no bot's prefix): stream event -> finding -> pending alert
                placed = []
                for i in range(5):
                    r = await bot.signed("POST", "/api/v3/order", {
                        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                        "timeInForce": "GTC", "quantity": "0.01", "price": "20000",
                        "newClientOrderId": f"evil-{i}"})
                    assert r.status_code == 200, r.text
                    placed.append(r.json()["orderId"])
                for _ in range(300):
                    if rows(db, "SELECT COUNT(*) FROM alerts")[0][0]:
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("no alert written for the foreign orders in 30 s")
                metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                for name in ("keywatch_events_total", "keywatch_findings_total",
                             "keywatch_outbox_backlog", "keywatch_detection_latency_seconds",
                             "keywatch_api_weight_used_1m", "keywatch_stream_reconnects_total",
                             "keywatch_alerts_sent_total", "keywatch_alerts_failed_total"):
                    assert name in metrics, name
                assert 'keywatch_events_total{kind="order",source="stream"}' in metrics
                assert 'keywatch_findings_total{rule="foreign.order"}' in metrics
                warm = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()["warm_up"]
                assert warm["plan"][0]["when"] == "from the first event"
                assert [s["when"] for s in warm["plan"]][-1] == "after a day"
                assert all(item["ready_in_minutes"] > 0 for k in warm["keys"]
                           for item in k["learning"])
            # more orders in flight, then SIGTERM mid-stream
            for i in range(5, 10):
                await bot.signed("POST", "/api/v3/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01", "price": "1000", "newClientOrderId": f"bot1-{i}"})
            sent_before = clock.now_ms()
            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            out, _ = await asyncio.to_thread(proc.communicate, None, 15)
            took = time.monotonic() - t0
        finally:
            await bot.aclose()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert took < 10, f"shutdown took {took:.1f} s"
        assert "keywatch service stopped" in out
        # every order fact the exchange emitted before the signal is stored, exactly once
        emitted = [e for e in c.order_events("main") if e["E"] < sent_before - 500]
        stored = rows(db, "SELECT order_id, exec_type FROM events WHERE kind IN "
                          "('order','fill') AND source = 'stream'")
        assert len(stored) == len(set(stored))
        assert {(e["i"], e["x"]) for e in emitted} <= set(stored)
        # the alerts could not be delivered (the channel is down): still pending, not lost
        states = rows(db, "SELECT state FROM deliveries")
        assert states and {s for (s,) in states} == {"pending"}
        assert keys["keywatch"][1] not in out


def test_a_mismatched_model_means_rules_only_not_a_crash(tmp_path, caplog):
    import json
    import shutil

    from monitor.config import load_config
    from monitor.service.pipeline import build_engine

    shutil.copy("models/default.skops", tmp_path / "m.skops")
    card = json.loads(Path("models/default.card.json").read_text())
    card["sklearn_version"] = "0.0"
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    (tmp_path / "k.toml").write_text(f"""
model_path = "{tmp_path / 'm.skops'}"
rules_dir = "{Path('rules').resolve()}"
[[accounts]]
name = "main"
monitor_key = "m"
  [[accounts.keys]]
  label = "m"
  use_case = "monitoring"
  api_key_env = "A"
  api_secret_env = "B"
""")
    cfg = load_config(tmp_path / "k.toml", env={"A": "x", "B": "y"})
    assert build_engine(cfg).forest is None
    assert "running rules only" in caplog.text and "scikit-learn 0.0" in caplog.text
    card["sklearn_version"] = json.loads(Path("models/default.card.json").read_text())[
        "sklearn_version"]
    (tmp_path / "m.card.json").write_text(json.dumps(card))
    assert build_engine(cfg).forest is not None
