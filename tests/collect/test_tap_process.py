"""`keywatch tap` on its own (issue 14): the bots keep Binance whatever the service does.

Real subprocesses against the simulator: the service refuses to start (a channel URL with a
typo) while the standalone tap forwards a bot's calls; the fixed service then ingests the
spooled records exactly once (counted by event id), across restarts and a lost cursor. A
kill -9 of the tap right after its answers loses none of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.collect.logfile import parse_line
from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from tests.configs import Key, sim_config
from tests.service.test_service import BOT_IP, free_port, rows

BAD_CHANNEL = "json://"  # a typo'd channel: Apprise cannot parse it, `run` refuses


def write_config(tmp: Path, sim: Simulator, keys: dict[str, tuple[str, str]], tap_port: int,
                 channel_url: str, fsync_s: float = 0.05, spool: str | None = None,
                 upstream: str | None = None) -> Path:
    return sim_config(
        tmp, sim, keys, sources={"poll_interval_s": 2},
        tap={"enabled": True, "mode": "process", "spool": spool or tmp / "tap-spool.jsonl",
             "fsync_interval_s": fsync_s, "listen": f"127.0.0.1:{tap_port}",
             "upstream": upstream or sim.rest_url},
        bot=Key("bot", "spot-bot", "KW_BOT_KEY", ip_whitelist=["127.0.0.1", BOT_IP],
                client_order_prefixes=["bot1-"]),
        channel={"name": "ops", "url": channel_url, "tags": ["critical"]})


def setup_sim(sim: Simulator) -> dict[str, tuple[str, str]]:
    c = sim.control
    c.create_account("main", {"USDT": 100000, "BTC": 1})
    # the standalone tap forwards from this host's address (127.0.0.1 here), as a bot would
    return {
        "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                 ip_whitelist=["127.0.0.1"]),
        "bot": c.create_key("main", "bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True},
            ip_whitelist=["127.0.0.1", BOT_IP]),
    }


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("KW_")}


def start(tmp: Path, *args: str, log: str) -> subprocess.Popen[str]:
    out = open(tmp / log, "a")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "monitor.cli", *args], cwd=tmp, env=env(),
                            stdout=out, stderr=subprocess.STDOUT, text=True)


async def wait_listening(port: int, proc: subprocess.Popen[str], tmp: Path, log: str) -> None:
    for _ in range(300):
        assert proc.poll() is None, (tmp / log).read_text()
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


async def stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    return await asyncio.to_thread(proc.wait, 20)


async def bot_calls(bot: ActorClient, tag: str) -> list[httpx.Response]:
    """A bot's day in miniature: orders, a cancel, a reject, account reads, a keyless call."""
    out = []
    for i in range(3):
        out.append(await bot.signed("POST", "/api/v3/order", {
            "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.01", "price": "20000", "newClientOrderId": f"bot1-{tag}{i}"}))
    out.append(await bot.signed("DELETE", "/api/v3/order", {
        "symbol": "BTCUSDT", "origClientOrderId": f"bot1-{tag}0"}))
    out.append(await bot.signed("POST", "/api/v3/order", {  # beyond the balance: -2010
        "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
        "quantity": "9", "price": "20000", "newClientOrderId": f"bot1-{tag}big"}))
    for _ in range(2):
        out.append(await bot.signed("GET", "/api/v3/account"))
    out.append(await bot.public("GET", "/api/v3/time"))
    return out


def spool_ids(tmp: Path) -> list[str]:
    lines = (tmp / "tap-spool.jsonl").read_text().splitlines()
    return [json.loads(line)["event_id"] for line in lines]


def tap_rows(db: Path) -> list[tuple[Any, ...]]:
    try:
        return rows(db, "SELECT event_id, kind, key FROM events WHERE source = 'tap'")
    except sqlite3.OperationalError:  # the service is still creating the store
        return []


async def run_service_until(tmp: Path, cfg: Path, done: Any, timeout_s: float = 40) -> dict:
    """Start `keywatch run`, wait until `done(health)` holds, SIGTERM it; its last health."""
    port = free_port()
    proc = start(tmp, "run", "-c", str(cfg), "--health-port", str(port), log="run.log")
    health: dict[str, Any] = {}
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(int(timeout_s * 10)):
                assert proc.poll() is None, (tmp / "run.log").read_text()
                try:
                    health = (await http.get(f"http://127.0.0.1:{port}/healthz")).json()
                    if done(health):
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"service never got there: {health}")
        assert await stop(proc) == 0, (tmp / "run.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    return health


async def test_service_refuses_tap_forwards_then_spool_ingested_exactly_once(tmp_path):
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        keys = setup_sim(sim)
        tap_port = free_port()
        cfg = write_config(tmp_path, sim, keys, tap_port, BAD_CHANNEL)
        tap = start(tmp_path, "tap", "-c", str(cfg), log="tap.log")
        bot = ActorClient(f"http://127.0.0.1:{tap_port}", BOT_IP, *keys["bot"], clock)
        db = tmp_path / "kw.db"
        spool = str(tmp_path / "tap-spool.jsonl")
        try:
            await wait_listening(tap_port, tap, tmp_path, "tap.log")
            # the service refuses to start; the bots never notice
            refused = await asyncio.to_thread(
                subprocess.run, [sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg)],
                cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60)
            assert refused.returncode == 3, refused.stderr
            assert "refusing to start: alert channel ops" in refused.stderr
            answers = await bot_calls(bot, "a")
            assert [r.status_code for r in answers] == [200] * 4 + [400] + [200] * 3, [
                r.text for r in answers]
            assert answers[4].json()["code"] == -2010
            assert tap.poll() is None
            made = len(answers)
            for _ in range(100):
                if len(spool_ids(tmp_path)) == made:
                    break
                await asyncio.sleep(0.02)
            assert not db.exists() or not tap_rows(db)

            # the fixed service ingests the spool, and what the tap records while it runs
            fixed = write_config(tmp_path, sim, keys, tap_port,
                                 f"json://127.0.0.1:{free_port()}/")
            target = 2 * made  # this batch, and the same calls again while the service runs
            task = asyncio.create_task(run_service_until(
                tmp_path, fixed,
                lambda h: h["sources"]["logs"].get(spool, {}).get("lines", 0) >= target))
            await asyncio.sleep(0)
            for _ in range(400):  # the service has read the first batch: the bot goes on
                if db.exists() and len(tap_rows(db)) >= made:
                    break
                await asyncio.sleep(0.05)
            more = await bot_calls(bot, "b")
            made += len(more)
            await task
            stored = tap_rows(db)
            ids = [r[0] for r in stored]
            assert len(ids) == len(set(ids)) == made
            assert set(ids) == set(spool_ids(tmp_path))
            assert sorted(r[1] for r in stored).count("reject") == 2
            assert {r[2] for r in stored} == {"bot", None}  # the keyless /time has no label

            # restart: the cursor resumes at the end; nothing is stored twice
            up: list[float] = []

            def settled(h: dict[str, Any]) -> bool:  # the tailer polls every second: 3 polls
                up.append(time.monotonic())
                return spool in h["sources"]["logs"] and up[-1] - up[0] > 3.0

            await run_service_until(tmp_path, fixed, settled)
            assert len(tap_rows(db)) == made
            # even a lost cursor (the whole spool read again) stores nothing twice
            conn_rows = rows(db, "SELECT name FROM cursors WHERE name LIKE 'log:%'")
            assert conn_rows, "the spool tailer keeps a cursor"
            conn = sqlite3.connect(db)
            conn.execute("DELETE FROM cursors WHERE name LIKE 'log:%'")
            conn.commit()
            conn.close()
            await run_service_until(
                tmp_path, fixed,
                lambda h: h["sources"]["logs"].get(spool, {}).get("lines", 0) >= made)
            assert len(tap_rows(db)) == made
        finally:
            await bot.aclose()
            if tap.poll() is None:
                assert await stop(tap) == 0, (tmp_path / "tap.log").read_text()


async def test_kill_9_of_the_tap_loses_nothing_it_answered(tmp_path):
    """A write(2) that returned survives the process; fsync (30 s here) only guards power."""
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        keys = setup_sim(sim)
        tap_port = free_port()
        cfg = write_config(tmp_path, sim, keys, tap_port, BAD_CHANNEL, fsync_s=30)
        tap = start(tmp_path, "tap", "-c", str(cfg), log="tap.log")
        bot = ActorClient(f"http://127.0.0.1:{tap_port}", BOT_IP, *keys["bot"], clock)
        try:
            await wait_listening(tap_port, tap, tmp_path, "tap.log")
            answered = 0
            for i in range(10):
                r = await bot.signed("POST", "/api/v3/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01", "price": "20000", "newClientOrderId": f"bot1-k{i}"})
                assert r.status_code == 200, r.text
                answered += 1
            burst = await asyncio.gather(*(bot.signed("GET", "/api/v3/account")
                                           for _ in range(15)))
            answered += sum(1 for r in burst if r.status_code == 200)
            tap.kill()  # SIGKILL the moment the last answer is in: no shutdown, no fsync
            await asyncio.to_thread(tap.wait, 10)
        finally:
            await bot.aclose()
            if tap.poll() is None:
                tap.kill()
        assert tap.returncode == -signal.SIGKILL
        lines = (tmp_path / "tap-spool.jsonl").read_text().splitlines()
        events = [parse_line(line, "main", clock.now_ms(), spool=True) for line in lines]
        assert len(events) == len({e.event_id for e in events}) == answered == 25
        assert {e.client_order_id for e in events if e.client_order_id} == {
            f"bot1-k{i}" for i in range(10)}
        assert {e.key for e in events} == {"bot"}


async def test_a_full_disk_costs_records_and_a_dead_binance_a_502_never_the_tap(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        keys = setup_sim(sim)
        full_port, dead_port = free_port(), free_port()
        full = tmp_path / "full"
        full.mkdir()
        dead = tmp_path / "dead"
        dead.mkdir()
        taps = [
            start(full, "tap", "-c", str(write_config(full, sim, keys, full_port, BAD_CHANNEL,
                                                      spool="/dev/full")), log="tap.log"),
            start(dead, "tap", "-c", str(write_config(
                dead, sim, keys, dead_port, BAD_CHANNEL,
                upstream=f"http://127.0.0.1:{free_port()}")), log="tap.log"),
        ]
        try:
            await wait_listening(full_port, taps[0], full, "tap.log")
            await wait_listening(dead_port, taps[1], dead, "tap.log")
            on_full = ActorClient(f"http://127.0.0.1:{full_port}", BOT_IP, *keys["bot"], clock)
            answers = await bot_calls(on_full, "f")
            await on_full.aclose()
            # every spool write fails (ENOSPC): the bot's calls are answered all the same
            assert [r.status_code for r in answers] == [200] * 4 + [400] + [200] * 3
            on_dead = ActorClient(f"http://127.0.0.1:{dead_port}", BOT_IP, *keys["bot"], clock)
            r = await on_dead.signed("GET", "/api/v3/account")
            await on_dead.aclose()
            assert r.status_code == 502 and r.text == "tap: upstream unreachable"
            for _ in range(100):
                if (dead / "tap-spool.jsonl").exists() and spool_ids(dead):
                    break
                await asyncio.sleep(0.02)
            line = json.loads((dead / "tap-spool.jsonl").read_text())
            assert line["status"] == 502 and line["raw"]["error"] == "upstream_error"
            assert all(t.poll() is None for t in taps)
        finally:
            for t in taps:
                if t.poll() is None:
                    assert await stop(t) == 0
        assert "write failed" in (full / "tap.log").read_text()
        assert "dropped" in (full / "tap.log").read_text()


def readme_tap_series() -> set[str]:
    readme = Path(__file__).resolve().parents[2].joinpath("README.md").read_text()
    start = readme.index("### The tap's metrics (`--metrics-port`)")
    return set(re.findall(r"`(keywatch_[a-z0-9_]+)`", readme[start:readme.index("\n###", start)]))


async def test_the_standalone_tap_serves_every_readme_series_with_true_values(tmp_path):
    """`keywatch tap --metrics-port`: after a bot's calls (orders, a reject, reads, a keyless
    call) every series the README names is there, per key, with the counts the spool holds."""
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        keys = setup_sim(sim)
        tap_port, metrics_port = free_port(), free_port()
        cfg = write_config(tmp_path, sim, keys, tap_port, BAD_CHANNEL)
        tap = start(tmp_path, "tap", "-c", str(cfg), "--metrics-port", str(metrics_port),
                    log="tap.log")
        bot = ActorClient(f"http://127.0.0.1:{tap_port}", BOT_IP, *keys["bot"], clock)
        try:
            await wait_listening(tap_port, tap, tmp_path, "tap.log")
            await wait_listening(metrics_port, tap, tmp_path, "tap.log")
            async with httpx.AsyncClient() as http:
                before = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
                answers = await bot_calls(bot, "m")
                text = (await http.get(f"http://127.0.0.1:{metrics_port}/metrics")).text
        finally:
            await bot.aclose()
            if tap.poll() is None:
                assert await stop(tap) == 0, (tmp_path / "tap.log").read_text()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    names = {fam.name for fam in text_string_to_metric_families(text)}
    exported = names | {n + "_total" for n in names}
    assert readme_tap_series() <= exported, readme_tap_series() - exported
    # configured keys start at 0, before any call
    assert 'keywatch_tap_requests_total{account="main",key="bot"} 0.0' in before
    assert 'keywatch_tap_requests_total{account="main",key="keywatch"} 0.0' in before
    made = len(answers)
    keyless = 1  # /api/v3/time in bot_calls carries no API key
    assert samples[("keywatch_tap_requests_total", (("account", "main"), ("key", "bot")))] \
        == made - keyless
    assert samples[("keywatch_tap_requests_total",
                    (("account", "main"), ("key", "unknown")))] == keyless
    assert samples[("keywatch_tap_spool_records_total", (("outcome", "written"),))] == made \
        == len(spool_ids(tmp_path))
    assert samples[("keywatch_tap_spool_records_total", (("outcome", "dropped"),))] == 0
    assert samples[("keywatch_tap_upstream_errors_total", ())] == 0
    assert samples[("keywatch_tap_upstream_latency_seconds_count", ())] == made
    assert samples[("keywatch_tap_spool_commit_seconds_count", ())] == made
    assert samples[("keywatch_tap_spool_fsyncs_total", ())] >= 1
