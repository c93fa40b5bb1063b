"""Issue 15: with the ingest queue down to 2,000 events, a log burst backing up behind the
store filled it to the brim and Keywatch's own REST usage events, which are offered (never
awaited), were dropped (the hostile soak counted 2). Waiting sources now stop at the bound
less a reserve that only `offer` may use."""

from __future__ import annotations

import asyncio

from monitor.collect.eventqueue import EventQueue
from tests.factories import full_event


async def test_waiting_puts_leave_the_reserve_to_offers() -> None:
    q = EventQueue(100)
    assert q.reserve == 20
    burst = [full_event(i) for i in range(300)]
    producer = asyncio.create_task(q.put(burst))  # a log burst; nothing drains yet
    await asyncio.sleep(0.05)
    assert not producer.done() and q.qsize() == 100 - q.reserve
    own = [full_event(1_000 + i) for i in range(q.reserve)]
    assert q.offer(own) == []  # the REST client's usage events all fit
    assert q.qsize() == 100 and len(q.offer([full_event(2_000)])) == 1  # the bound holds
    got: list[str] = []
    while len(got) < len(burst) + len(own):
        for e in q.get_nowait(50):
            got += [ev.event_id for ev in e.events]
        await asyncio.sleep(0.001)
    await asyncio.wait_for(producer, 2)
    assert sorted(got) == sorted(ev.event_id for ev in burst + own) and q.peak <= 100


async def test_a_queue_of_one_event_still_takes_a_put() -> None:
    q = EventQueue(1)
    await asyncio.wait_for(q.put([full_event(1)]), 1)
    assert q.qsize() == 1
