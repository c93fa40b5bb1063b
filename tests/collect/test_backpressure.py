"""Issue 15 item 6: the queues from the sources to detection are bounded in events, and a full
one makes the stage before it wait (the tailer, poller and stream `await put`), so a burst of
a million log lines cannot pile up in memory (573 MiB before: the detection queue held 100,000
batches of any size). Nothing is dropped on the waiting path."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.collect.ingest import Ingest
from monitor.service.pipeline import Service
from monitor.store import SQLiteStore
from tests.factories import full_event
from tests.service.test_latency_paths import PagingEngine, make_config

DETECTION_MAX = 100
INGEST_MAX = 200


async def test_a_burst_waits_at_the_source_and_no_queue_exceeds_its_event_bound(
        tmp_path: Path) -> None:
    from monitor.core.clock import SystemClock

    clock = SystemClock()
    cfg = make_config(tmp_path, "json://127.0.0.1:9/unused")
    store = SQLiteStore(cfg.store_path)
    svc = Service(cfg, store, clock, source_factory=None,  # type: ignore[arg-type]
                  engine=PagingEngine(clock), queue_size=DETECTION_MAX)
    ing = Ingest(store, maxsize=INGEST_MAX, batch=50, on_events=svc._on_events)
    writer = asyncio.create_task(ing.run())
    burst = [full_event(i) for i in range(1000)]

    async def source() -> None:  # a log tailer's polls of 50 lines each
        for i in range(0, len(burst), 50):
            await ing.put(burst[i : i + 50])

    producer = asyncio.create_task(source())
    try:
        await asyncio.sleep(0.5)  # detection is not draining: everything backs up
        assert not producer.done()  # the source waits: that is the backpressure
        assert svc.queue.events() <= DETECTION_MAX and ing.queue.qsize() <= INGEST_MAX
        assert store.count_events() < len(burst)
        seen: list[str] = []
        while len(seen) < len(burst):  # detection drains: the burst flows through
            while not svc.queue.empty():
                seen += [e.event_id for e in svc.queue.get_nowait()]
            await asyncio.sleep(0.005)
        await asyncio.wait_for(producer, 5)
        assert seen == [e.event_id for e in burst]  # each event once, in order, none dropped
        assert svc.queue.peak <= DETECTION_MAX and ing.queue.peak <= INGEST_MAX
        assert svc.counters.events_dropped == 0 and ing.dropped == 0
        assert store.count_events() == len(burst)
    finally:
        producer.cancel()
        writer.cancel()
        await asyncio.gather(producer, writer, return_exceptions=True)
        store.close()
