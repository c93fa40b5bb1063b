"""One bounded queue from every source into the store.

Sources that can wait (poller, stream, backfill) `await put(...)`, which applies backpressure;
the tap cannot hold a bot's request hostage, so it `offer`s and a full queue drops the event
and counts it. The writer drains in batches and inserts in a worker thread; the store ignores
ids it already holds, so overlaps between the stream and a backfill cost nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable

from monitor.events import Event
from monitor.store import Store

log = logging.getLogger(__name__)


class Ingest:
    def __init__(
        self,
        store: Store,
        *,
        maxsize: int = 10_000,
        batch: int = 500,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.store = store
        self.queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.batch = batch
        self.on_events = on_events
        self.received: Counter[str] = Counter()  # "<source>/<kind>" -> events offered
        self.written = 0
        self.duplicates = 0
        self.dropped = 0
        self.write_errors = 0

    def _count(self, ev: Event) -> None:
        self.received[f"{ev.source.value}/{ev.kind.value}"] += 1

    def offer(self, events: Iterable[Event]) -> int:
        """Enqueue without waiting; return how many were dropped because the queue was full."""
        dropped = 0
        for ev in events:
            self._count(ev)
            try:
                self.queue.put_nowait(ev)
            except asyncio.QueueFull:
                dropped += 1
        if dropped:
            self.dropped += dropped
            log.warning("ingest queue full: dropped %d event(s) (total %d)", dropped, self.dropped)
        return dropped

    async def put(self, events: Iterable[Event]) -> None:
        """Enqueue, waiting for room (backpressure instead of loss)."""
        for ev in events:
            self._count(ev)
            await self.queue.put(ev)

    async def run(self) -> None:
        """Drain forever; cancel to stop (call `flush` first to write what is queued)."""
        while True:
            first = await self.queue.get()
            await self._write([first, *self._drain()])

    def _drain(self) -> list[Event]:
        out: list[Event] = []
        while len(out) < self.batch - 1:
            try:
                out.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return out

    async def flush(self) -> None:
        while not self.queue.empty():
            await self._write(self._drain() or [])

    async def _write(self, events: list[Event]) -> None:
        if not events:
            return
        delay = 0.1
        while True:
            try:
                fresh = await asyncio.to_thread(self.store.insert_new_events, events)
                break
            except Exception:  # the store is the one thing we cannot route around: retry
                self.write_errors += 1
                log.exception("store write failed for %d event(s); retrying in %.1f s",
                              len(events), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        new = len(fresh)
        self.written += new
        self.duplicates += len(events) - new
        events = fresh  # detection sees each fact once, however often it was observed
        if self.on_events is not None and events:
            try:
                self.on_events(events)
            except Exception:
                log.exception("on_events callback failed")
