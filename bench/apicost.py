"""Figure 3: the weight per minute Keywatch's collector spends per account, from the exchange's
own accounting, against a naive poller that checks orders and balances every 10 s.

The simulator runs in its own process at 60x; one account, its monitor key and one trading
bot key (no secret: default set-up). The collector runs with default settings (poller every
60 s, user-data stream, posture polls) and leaves from 127.0.0.2; the naive poller, from
127.0.0.3, calls `GET /api/v3/openOrders` without a symbol (weight 80) and `GET /api/v3/account`
(weight 20) every 10 s, as many bots do. Both are summed from `Control.weight_log()` by source
IP over the same simulated minutes; the collector's start-up (first polls, backfill) counts.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench.common import Row
from bench.world import HOST_IP, KeySpec, SimProcess, monitor_key, write_config
from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore
from monitor.world.sim.client import ActorClient
from monitor.world.sim.rest import ALL_ENDPOINTS as ENDPOINTS

NAIVE_IP = "127.0.0.3"
# /sapi endpoints Binance weighs per UID, in a pool of their own (not the 6,000/min IP budget)
UID_PATHS = {e.path for e in ENDPOINTS if e.sapi == "uid"}


async def _run(sim_minutes: float, speed: float) -> tuple[float, float, float, int]:
    clock = AcceleratedClock(speed)
    with tempfile.TemporaryDirectory() as tmp:
        async with SimProcess(clock) as sim:
            mon = await monitor_key(sim, "main")
            bot_key, bot_secret = await sim.control(
                "create_key", account="main", label="grid",
                permissions={"enableReading": True, "enableSpotAndMarginTrading": True},
                ip_whitelist=[HOST_IP, NAIVE_IP])
            cfg = write_config(Path(tmp), sim, {
                "main": [mon, KeySpec("grid", bot_key, ip_whitelist=[HOST_IP])]})
            store = SQLiteStore(cfg.store_path)
            col = Collector(cfg, store, clock, local_host=HOST_IP)
            naive = ActorClient(sim.rest_url, NAIVE_IP, bot_key, bot_secret, clock)
            t0 = clock.now_ms()
            task = asyncio.create_task(col.run())
            end = t0 + sim_minutes * 60_000
            while clock.now_ms() < end:
                await naive.signed("GET", "/api/v3/openOrders")
                await naive.signed("GET", "/api/v3/account")
                await clock.sleep(10)
            t1 = clock.now_ms()
            log = await sim.control("weight_log")
            await col.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await naive.aclose()
            store.close()
    minutes = (t1 - t0) / 60_000
    log = [(ts, ip, p, w) for ts, ip, p, w in log if t0 <= ts <= t1]
    uid = sum(w for _ts, ip, p, w in log if ip == HOST_IP and p in UID_PATHS)
    log = [row for row in log if row[2] not in UID_PATHS]
    ours = sum(w for _ts, ip, _p, w in log if ip == HOST_IP)
    steady = sum(w for ts, ip, _p, w in log if ip == HOST_IP and ts >= t0 + 60_000)
    theirs = sum(w for _ts, ip, _p, w in log if ip == NAIVE_IP)
    return ours / minutes, steady / (minutes - 1), theirs / minutes, uid


def run(sim_minutes: float = 30, speed: float = 60, say: Callable[[str], None] = print
        ) -> list[Row]:
    ours, steady, naive, uid = asyncio.run(_run(sim_minutes, speed))
    say(f"api cost: collector {ours:.1f}/min, naive poller {naive:.1f}/min")
    return [Row("own API weight per account", ours, "weight/min", naive,
                "naive poller (orders+balances / 10 s)", "<= 60/min", ours <= 60,
                f"{sim_minutes:g} simulated min at {speed:g}x incl. start-up; after the first "
                f"minute {steady:.1f}/min; IP budget 6,000/min. Not counted: {uid:,} UID weight "
                f"(withdraw history, Binance's separate per-UID /sapi pool) in the run")]


if __name__ == "__main__":
    from bench.common import show
    show(run())
