"""Each stream gap keeps its own `gap` record when one backfill pass fills several.

Found by the hostile soak (2026-12-03): a pass that filled three gaps (the passes before it met
spoiled allOrders answers) wrote three `gap` records in the same millisecond, all with the id
(status, now), so the store kept one and the other two were dropped as repeats. Real parts over
127.0.0.1: the simulator behind `HostileUpstream`, the real collector.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore
from monitor.world.hostile import HostileUpstream, RestFault, WsFault
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, collector_config, until

SPEED = 2.0  # slow enough that one pass's gap records share a millisecond


def _statuses(store: SQLiteStore) -> list[dict[str, Any]]:
    df = store.load_events()
    return [json.loads(r) for r in df[df["kind"] == "stream_status"]["raw"]]


async def test_one_pass_filling_two_gaps_stores_two_gap_records(tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        c = sim.control
        c.create_account("main", {"USDT": 1_000_000.0, "BTC": 10.0})
        c.create_key("main", "monitor", permissions={"enableReading": True},
                     ip_whitelist=[COLLECTOR_IP])
        cfg = collector_config(sim, *c.key_for("main", "monitor"), poll_interval_s=3600.0)
        cfg = cfg.model_copy(update={
            "binance": cfg.binance.model_copy(update={"rest_url": up.rest_url,
                                                      "ws_api_url": up.ws_url,
                                                      "weight_budget_pct": 25.0}),
            "sources": cfg.sources.model_copy(update={"poller": False})})
        store = SQLiteStore(tmp_path / "kw.db")
        col = Collector(cfg, store, clock, local_host=COLLECTOR_IP)
        for pool in col.budgets.pools.values():  # one clock for all: no minute-edge holds
            pool.guard_ms = pool.head_ms = 0    # (up to 10 s of clock, 5 s wall here)
        st = col.streams["main"]
        await col.start()
        try:
            await up.subscribed()
            assert await until(lambda: st.counters["backfills"] >= 1)
            lock = st.backfill._lock
            await lock.acquire()  # the next pass takes the first gap and waits here
            for n in (1, 2):
                await up.send_frames(WsFault.DROP)
                assert await until(lambda n=n: st.counters["gaps"] >= n)  # type: ignore[misc]
                await up.subscribed()
            up.inject(RestFault.DEEP, path="/api/v3/allOrders")  # that pass fails: its gap
            lock.release()  # joins the second, and the next pass fills both at once
            assert await until(lambda: st.counters["backfills"] >= 2)
            await col.ingest.flush()
        finally:
            await col.stop()
        gaps = [s for s in _statuses(store) if s.get("status") == "gap"]
        assert len(gaps) == 2, gaps
        assert len({g["gap_from"] for g in gaps}) == 2
        store.close()
