"""The in-process tap never loses an answered call (issue 15, found by the hostile soak).

Before, the tap inside `keywatch run` offered each record to the ingest queue after the answer
and counted a drop when the queue was full (9 records lost during a 20,000-line log burst), and
a kill -9 lost whatever was still in memory. Now its records are written to a spool beside the
store before each answer's last byte, and a spool tailer (woken per record) ingests them with
backpressure. Real simulator, real collector and tap, over loopback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from monitor.binance.signing import sign_rest_query
from monitor.collect.collector import Collector
from monitor.config import Config
from monitor.core.clock import SystemClock
from monitor.core.events import Event, Source
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, collector_config

CALLS = 60


def _tap_only(cfg: Config) -> Config:
    """No poller or stream: only the tap's records reach the store."""
    return cfg.model_copy(update={"sources": cfg.sources.model_copy(
        update={"poller": False, "stream": False})})


async def _until(cond, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
async def test_a_blocked_pipeline_costs_no_tap_record_and_stalls_no_bot(tmp_path: Path) -> None:
    release = asyncio.Event()
    detected: list[Event] = []

    async def slow_detection(events: list[Event]) -> None:
        await release.wait()  # detection stuck: the store writer, then ingest, wait for it
        detected.extend(events)

    clock = SystemClock()
    async with Simulator(clock=clock, seed=0) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 10_000, "BTC": 1})
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True})
        bk, bs = c.create_key("main", "grid-bot", permissions={"enableReading": True})
        store = SQLiteStore(tmp_path / "kw.db")
        cfg = _tap_only(collector_config(sim, mk, ms, tap=True, bot_key=bk))
        col = Collector(cfg, store, clock, local_host=COLLECTOR_IP, queue_size=5,
                        on_events=slow_detection)
        await col.start()
        answered = 0
        took: list[float] = []
        async with httpx.AsyncClient(timeout=10.0) as bot:
            for _ in range(CALLS):
                q = sign_rest_query(SecretStr(bs), [("timestamp", c.server_time_ms())])
                t0 = time.monotonic()
                r = await bot.get(f"{col.tap_url}/api/v3/account?{q}",
                                  headers={"X-MBX-APIKEY": bk})
                took.append(time.monotonic() - t0)
                answered += r.status_code == 200
        spool = Path(col.tap_spool.path) if col.tap_spool else None
        # every answered call is on disk before detection has seen any of them
        assert spool is not None and spool.parent == tmp_path
        assert len(spool.read_text().splitlines()) == CALLS and not detected
        release.set()
        await _until(lambda: sum(e.source is Source.TAP for e in detected) >= CALLS)
        await col.stop()
        counters = col.counters()
    assert answered == CALLS and max(took) < 5  # the bots were never held by the pipeline
    stored = store.load_events()
    tap_ids = stored[stored["source"] == "tap"]["event_id"]
    assert len(tap_ids) == CALLS and tap_ids.is_unique
    assert sum(e.source is Source.TAP for e in detected) == CALLS  # each once
    assert counters["tap"].get("record_errors", 0) == 0


@pytest.mark.timeout(60)
async def test_records_spooled_before_a_crash_are_ingested_once_on_restart(
        tmp_path: Path) -> None:
    """A service that died (no stop, nothing flushed) left its tap's records in the spool:
    the next collector on the same store ingests each exactly once."""
    clock = SystemClock()
    async with Simulator(clock=clock, seed=0) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 10_000, "BTC": 1})
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True})
        bk, bs = c.create_key("main", "grid-bot", permissions={"enableReading": True})
        cfg = _tap_only(collector_config(sim, mk, ms, tap=True, bot_key=bk))
        never = asyncio.Event()

        async def stuck(events: list[Event]) -> None:
            await never.wait()

        first = Collector(cfg, SQLiteStore(tmp_path / "kw.db"), clock,
                          local_host=COLLECTOR_IP, queue_size=5, on_events=stuck)
        await first.start()
        async with httpx.AsyncClient(timeout=10.0) as bot:
            for _ in range(20):
                q = sign_rest_query(SecretStr(bs), [("timestamp", c.server_time_ms())])
                r = await bot.get(f"{first.tap_url}/api/v3/account?{q}",
                                  headers={"X-MBX-APIKEY": bk})
                assert r.status_code == 200
        # the crash: the first collector's tasks are cancelled, nothing is flushed or closed
        for t in first._tasks:
            t.cancel()
        await asyncio.gather(*first._tasks, return_exceptions=True)
        store = SQLiteStore(tmp_path / "kw.db")
        second = Collector(cfg, store, clock, local_host=COLLECTOR_IP)
        await second.start()
        await _until(lambda: len(store.load_events(account="main")) >= 20)
        await asyncio.sleep(0.3)
        await second.stop()
    stored = store.load_events()
    tap = stored[stored["source"] == "tap"]
    assert len(tap) == 20 and tap["event_id"].is_unique
