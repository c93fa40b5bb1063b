"""Posture on the live path: the real simulator on loopback, the real collector and service,
alerts through real Apprise (`json://`) to a local receiver.

Before the key record, the poller nested the flags under `snapshot` and posture read them at
the top level: a monitoring key polled with withdrawals on raised nothing, a key that gained
them got only "permissions changed", and a monitor key that became privileged kept running.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from monitor.collect.collector import Collector
from monitor.config import Config
from monitor.core.clock import SystemClock
from monitor.service.pipeline import Service, build_engine
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.alert.conftest import alerts_cfg, channel
from tests.alert.receivers import JsonSink
from tests.collect.simkit import COLLECTOR_IP, collector_config

ROOT = Path(__file__).resolve().parents[2]
READ = {"enableReading": True}


def _config(sim: Simulator, key: str, secret: str, sink: JsonSink, tmp: Path) -> Config:
    cfg = collector_config(sim, key, secret, poll_interval_s=0.5)
    return cfg.model_copy(update={
        "store_path": str(tmp / "kw.db"), "rules_dir": str(ROOT / "rules"),
        "model_path": str(ROOT / "models" / "default.skops"),
        "sources": cfg.sources.model_copy(update={"stream": False}),
        # room for a whole round every half second (the default 1 % spreads it over minutes)
        "binance": cfg.binance.model_copy(update={"weight_budget_pct": 50}),
        "alerts": alerts_cfg(channel("hook", sink.url), group_wait_s=0),
    })


@asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[Service]:
    """The service with its real collector, bound to the collector's loopback address."""
    clock = SystemClock()
    store = SQLiteStore(cfg.store_path)
    svc: Service

    def source(on_events: Callable[[list[Any]], None]) -> Collector:
        return Collector(cfg, store, clock, on_events=on_events, local_host=COLLECTOR_IP,
                         metrics=svc.metrics)

    svc = Service(cfg, store, clock, source_factory=source, engine=build_engine(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        yield svc
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()


async def _until(cond: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _delivered(sink: JsonSink) -> str:
    return "\n".join(f"{m.get('title', '')}\n{m.get('message', '')}" for m in sink.received)


@pytest.fixture()
async def sink() -> AsyncIterator[JsonSink]:
    s = await JsonSink().start()
    yield s
    await s.stop()


@pytest.mark.timeout(60)
async def test_monitoring_key_with_withdrawals_pages_critical(tmp_path, sink) -> None:
    async with Simulator(clock=SystemClock(), seed=5) as sim:
        sim.control.create_account("main", {"USDT": 1000})
        key, secret = sim.control.create_key(
            "main", "monitor", permissions={**READ, "enableWithdrawals": True},
            ip_whitelist=[COLLECTOR_IP])
        async with running(_config(sim, key, secret, sink, tmp_path)) as svc:
            await _until(lambda: "posture.withdrawals_enabled" in svc.counters.findings_by_rule)
            await _until(lambda: "Withdrawals enabled" in _delivered(sink))
            (page,) = [m for m in sink.received if "Withdrawals enabled" in m["title"]]
            assert page["title"].startswith("[CRITICAL] main/monitor")
            # present at start (the preflight's call): the key is still used, not retired
            assert not svc.source.rests["main"].retired  # type: ignore[union-attr]


@pytest.mark.timeout(60)
async def test_monitor_key_gaining_withdrawals_is_retired_with_a_critical_alert(
        tmp_path, sink) -> None:
    async with Simulator(clock=SystemClock(), seed=6) as sim:
        sim.control.create_account("main", {"USDT": 1000})
        key, secret = sim.control.create_key("main", "monitor", permissions=READ,
                                             ip_whitelist=[COLLECTOR_IP])
        async with running(_config(sim, key, secret, sink, tmp_path)) as svc:
            # polled once read-only (what the service started with), then the key gains rights
            await _until(lambda: svc.store.last_key_snapshot("main", "monitor"))
            poller = svc.source.pollers["main"]  # type: ignore[union-attr]
            sim.control.set_permissions(key, enableWithdrawals=True)
            await _until(lambda: {"posture.withdrawals_enabled", "posture.monitor_key_retired"}
                         <= set(svc.counters.findings_by_rule))
            await _until(lambda: "Keywatch stopped using it" in _delivered(sink))
            await _until(lambda: "Withdrawals enabled" in _delivered(sink))
            titles = [m["title"] for m in sink.received]
            assert any(t.startswith("[CRITICAL]") and "stopped using it" in t
                       for t in titles), titles
            text = _delivered(sink)
            assert "[CRITICAL] Withdrawals enabled on a key" in text  # not only "changed"
            assert "[CRITICAL] Monitor key can trade or withdraw" in text
            assert "gained enableWithdrawals" in text and "stopped signing with it" in text
            # nothing more is sent with the key: its request count stands still
            rest = svc.source.rests["main"]  # type: ignore[union-attr]
            assert "enableWithdrawals" in rest.retired
            sent, rounds = rest.counters["requests"], poller.counters["rounds"]
            await _until(lambda: poller.counters["rounds"] >= rounds + 2)
            assert rest.counters["requests"] == sent
