from __future__ import annotations

import asyncio
import random

from monitor.core.clock import SystemClock
from monitor.service.metrics import Metrics
from monitor.service.supervisor import Supervisor


async def test_a_crashing_component_is_restarted_and_counted():
    metrics = Metrics()
    sup = Supervisor(SystemClock(), metrics, backoff_base_s=0.01, rng=random.Random(1))
    runs = []
    stop = asyncio.Event()

    async def flaky(stop_ev: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise ValueError("boom")
        await stop_ev.wait()

    async def steady(stop_ev: asyncio.Event) -> None:
        await stop_ev.wait()

    sup.add("flaky", flaky)
    sup.add("steady", steady)
    task = asyncio.create_task(sup.run(stop, grace_s=1))
    for _ in range(200):
        if len(runs) >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(runs) == 3
    assert sup.state["flaky"].restarts == 2 and "boom" in (sup.state["flaky"].last_error or "")
    assert metrics.registry.get_sample_value(
        "keywatch_component_restarts_total", {"component": "flaky"}) == 2
    assert sup.state["steady"].restarts == 0


async def test_a_component_that_ignores_stop_is_cancelled_after_grace():
    sup = Supervisor(SystemClock(), Metrics())
    cancelled = []

    async def stubborn(stop_ev: asyncio.Event) -> None:
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    sup.add("stubborn", stubborn)
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop, grace_s=0.1))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert cancelled == [True]
