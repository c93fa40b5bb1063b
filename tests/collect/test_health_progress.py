"""Issue 15 /healthz: a source that makes no progress, or a store that rejects writes, turns
health not ok (before, every component was still `running`, so health said ok).

The real collector polls and streams from the simulator on loopback; the faults are real too
(the simulator answers 503, a second SQLite connection holds the write lock).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from monitor.collect.collector import Collector
from monitor.core.clock import SystemClock
from monitor.service.healthchecks import HealthVerdict, HealthWatch
from monitor.service.metrics import Metrics
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, collector_config
from tests.factories import full_event


async def _until(check: Callable[[], HealthVerdict], want: Callable[[HealthVerdict], bool],
                 timeout_s: float = 8.0) -> HealthVerdict:
    v = check()
    for _ in range(int(timeout_s / 0.05)):
        if want(v):
            return v
        await asyncio.sleep(0.05)
        v = check()
    return v


def _ok(v: HealthVerdict) -> bool:
    return v.ok


def _not_ok(v: HealthVerdict) -> bool:
    return not v.ok


def _store_failing(v: HealthVerdict) -> bool:
    return v.report["store"]["ok"] is False


async def test_a_failing_poller_and_a_store_rejecting_writes_turn_health_not_ok(
        tmp_path: Path) -> None:
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 1000})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                                   ip_whitelist=[COLLECTOR_IP])
        cfg = collector_config(sim, key, secret, poll_interval_s=0.3)
        cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={"stream": False})})
        store = SQLiteStore(tmp_path / "kw.db", busy_timeout_ms=50)
        metrics = Metrics()
        metrics.prime(cfg)
        col = Collector(cfg, store, clock, local_host=COLLECTOR_IP, metrics=metrics)
        col.stall_slack_s = 0.3
        watch = HealthWatch(metrics, store_failing_s=0.3)
        check = lambda: watch.check(col.health(), clock.now_ms())  # noqa: E731
        progress = ("keywatch_source_last_progress_timestamp_seconds",
                    {"source": "poller", "account": "main"})
        assert metrics.registry.get_sample_value(*progress) == 0  # primed at 0
        await col.start()
        try:
            assert (await _until(check, _ok)).ok
            await asyncio.sleep(0.5)
            first = check()
            assert first.ok and first.report["sources"]["poller:main"]["stalled"] is False
            assert metrics.registry.get_sample_value(*progress) > 0
            # every REST call now answered 503: the poller's rounds go on, its progress stops
            c.fail_rest(503, count=10**6)
            stalled = await _until(check, _not_ok)
            assert not stalled.ok and any("poller main: no progress" in p
                                          for p in stalled.problems), stalled
            c.fail_rest(503, count=0)
            # a second connection holds the write lock: every write is rejected
            blocker = sqlite3.connect(tmp_path / "kw.db", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            col.ingest.offer([full_event(1)])  # a tapped call to store
            try:
                failing = await _until(check, _store_failing)
                assert not failing.ok and failing.report["store"]["ok"] is False, failing
                assert "database is locked" in (failing.report["store"]["last_error"] or "")
                assert metrics.registry.get_sample_value(
                    "keywatch_store_write_errors_total") >= 1
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            healed = await _until(check, lambda v: v.report["store"]["ok"] is True)
            assert healed.report["store"]["ok"] and store.count_events() >= 1
        finally:
            # the poller may sit in a REST retry backoff after the 503s, which `stop` waits
            # out (5 s); this test is not about stopping, so its tasks are cancelled instead
            for t in col._tasks:
                t.cancel()
            await asyncio.gather(*col._tasks, return_exceptions=True)
            await col.ingest.flush()
            await col._http.aclose()
            store.close()
    assert os.path.exists(tmp_path / "kw.db")
