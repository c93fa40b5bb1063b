"""Issue 14: a tapped bot's flood on the shared address never pauses the poller's next step.

Real simulator, real collector with its tap, over loopback; the tap forwards from the
collector's own address (as on a shared box), so the bot's weight and the poller's are counted
in the same per-IP minute. The bot floods `openOrders` (weight 80) through the tap until it is
answered 429. The poller's next round then runs its /sapi steps at once (their pools are
counted apart), holds its /api steps (the minute has no room: sent now they would be answered
429, and repeated 429s earn the host a 418 ban) only until the next minute's first safe moment,
and is never answered 429 itself.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from pydantic import SecretStr

from monitor.binance.signing import sign_rest_query
from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, collector_config

SPEED = 30.0
MINUTE_MS = 60_000


async def _until(cond, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.mark.timeout(120)
async def test_bot_flood_through_the_tap_does_not_pause_the_pollers_next_step(tmp_path) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock, seed=0) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 10_000, "BTC": 1})
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True})
        bk, bs = c.create_key("main", "grid-bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True})
        store = SQLiteStore(tmp_path / "kw.db")
        col = Collector(collector_config(sim, mk, ms, tap=True, bot_key=bk,
                                         poll_interval_s=3600), store, clock,
                        local_host=COLLECTOR_IP)
        await col.start()
        poller, rest = col.pollers["main"], col.rests["main"]
        await _until(lambda: poller.counters["rounds"] >= 1)
        # a fresh minute with time left in it, so the flood and the round share it
        first_round_min = c.server_time_ms() // MINUTE_MS
        await _until(lambda: (c.server_time_ms() // MINUTE_MS > first_round_min
                              and 8_000 < c.server_time_ms() % MINUTE_MS < 20_000), 30)

        statuses: list[int] = []
        async with httpx.AsyncClient(timeout=10.0) as bot:
            while not statuses or statuses[-1] != 429:
                assert len(statuses) < 200
                q = sign_rest_query(SecretStr(bs), [("timestamp", c.server_time_ms())])
                r = await bot.get(f"{col.tap_url}/api/v3/openOrders?{q}",
                                  headers={"X-MBX-APIKEY": bk})
                statuses.append(r.status_code)
        flood_min = c.server_time_ms() // MINUTE_MS
        await _until(lambda: col.budgets.shared.used >= 6000)  # the tap's records are in

        log_from = len(c.weight_log())
        started = c.server_time_ms()
        await poller.poll_once()
        done = c.server_time_ms()
        mine = [(ts, path) for ts, ip, path, _ in c.weight_log()[log_from:]
                if ip == COLLECTOR_IP and path != "/api/v3/openOrders"]
        counters = dict(poller.counters)
        await col.stop()

    assert statuses[-1] == 429 and statuses.count(200) >= 60  # the bot's flood earned the 429
    first_sapi = min(ts for ts, path in mine if path == "/sapi/v1/account/apiRestrictions")
    assert first_sapi - started < 2_000, (started, mine)  # no pause for the next step
    order_counts = min(ts for ts, path in mine if path == "/api/v3/rateLimit/order")
    assert order_counts // MINUTE_MS == flood_min + 1, mine  # held until the minute rolled
    assert order_counts % MINUTE_MS < 8_000, mine  # only that long: the budget's 5 s head
    assert rest.counters["rate_limited"] == 0  # never answered 429 itself
    assert counters["deferred"] >= 1 and counters["errors"] == 0, counters
    assert done >= order_counts
