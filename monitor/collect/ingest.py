"""One bounded queue from every source into the store.

Sources that can wait (poller, stream, backfill, log tailers) `await put(...)`, which applies
backpressure; the tap cannot hold a bot's request hostage, so it `offer`s and a full queue drops
the event and counts it. The queue is bounded in events (`EventQueue`), so a burst of a million
log lines holds at most `maxsize` events in memory. A `put` may carry cursors (a log file's
offset, a backfill's order id): the writer saves them in the same transaction as the events they
cover, so a failed write never leaves a cursor past lost facts.

The writer drains in batches and writes in a worker thread. The store ignores ids it already
holds (overlaps between the stream and a backfill cost nothing) and quarantines a row it cannot
hold (counted by source), so one poisoned value never blocks the batch. Only a store that
rejects the write as a whole (disk full, read-only) is retried, with backoff, counted, and shown
as unhealthy (`failing_since_ms`) until a write succeeds again. Every `checkpoint_s` of writing
the writer also checkpoints the store's WAL and records its size (`wal_bytes`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Protocol

from monitor.collect.eventqueue import INGEST_MAX_EVENTS, Entry, EventQueue
from monitor.core.events import Event
from monitor.service.metrics import Metrics
from monitor.store import Store, WriteResult

log = logging.getLogger(__name__)


# What the store writer hands the new events to (the service's detection intake); it may
# return an awaitable, which the writer awaits: backpressure when detection is behind.
OnEvents = Callable[[list[Event]], Awaitable[None] | None]


class Put(Protocol):
    """How a source hands events (and the cursors they advance) to the ingest queue."""

    async def __call__(self, events: list[Event],
                      cursors: Mapping[str, str] | None = None) -> None: ...


class Ingest:
    def __init__(
        self,
        store: Store,
        *,
        maxsize: int = INGEST_MAX_EVENTS,
        batch: int = 500,
        on_events: OnEvents | None = None,
        metrics: Metrics | None = None,
        checkpoint_s: float = 60.0,
    ) -> None:
        self.store = store
        self.queue = EventQueue(maxsize)
        self.batch = batch
        self.on_events = on_events
        self.metrics = metrics
        self.received: Counter[str] = Counter()  # "<source>/<kind>" -> events offered
        self.written = 0
        self.duplicates = 0
        self.dropped = 0
        self.write_errors = 0
        self.quarantined = 0
        self.out_of_range = 0
        self.failing_since_ms: int | None = None  # the store has rejected writes since then
        self.last_error: str | None = None
        self.checkpoint_s = checkpoint_s  # wall seconds between WAL checkpoints while writing
        self.wal_bytes = 0
        self._last_checkpoint = time.monotonic()

    def _count(self, ev: Event) -> None:
        self.received[f"{ev.source.value}/{ev.kind.value}"] += 1

    def _depth(self) -> None:
        if self.metrics is not None:
            self.metrics.ingest_queue_events.set(self.queue.qsize())

    def offer(self, events: Iterable[Event]) -> int:
        """Enqueue without waiting; return how many were dropped because the queue was full."""
        evs = list(events)
        for ev in evs:
            self._count(ev)
        dropped = len(self.queue.offer(evs))
        self._depth()
        if dropped:
            self.dropped += dropped
            log.warning("ingest queue full: dropped %d event(s) (total %d)", dropped, self.dropped)
        return dropped

    async def put(self, events: Iterable[Event], cursors: Mapping[str, str] | None = None
                  ) -> None:
        """Enqueue, waiting for room (backpressure instead of loss); `cursors` are saved with
        these events, never before them."""
        evs = list(events)
        for ev in evs:
            self._count(ev)
        await self.queue.put(evs, cursors)
        self._depth()

    async def run(self) -> None:
        """Drain forever; cancel to stop (call `flush` first to write what is queued)."""
        while True:
            entries = await self.queue.get(self.batch)
            self._depth()
            await self._write_entries(entries)
            if time.monotonic() - self._last_checkpoint >= self.checkpoint_s:
                await self.checkpoint()

    async def checkpoint(self) -> None:
        """The store's WAL checkpoint (PASSIVE, then TRUNCATE when no reader is in the way),
        off the loop; its size is a metric and, past a bound, a health warning."""
        self._last_checkpoint = time.monotonic()
        try:
            state = await asyncio.to_thread(self.store.checkpoint)
        except Exception as exc:  # a failed checkpoint costs disk, not data: try again later
            log.warning("store checkpoint failed: %s: %s", type(exc).__name__, exc)
            return
        self.wal_bytes = state.wal_bytes
        if self.metrics is not None:
            self.metrics.store_wal_bytes.set(state.wal_bytes)

    async def flush(self) -> None:
        while not self.queue.empty():
            await self._write_entries(self.queue.get_nowait(self.batch))
        self._depth()

    async def _write_entries(self, entries: list[Entry]) -> None:
        events: list[Event] = []
        cursors: dict[str, str] = {}
        for e in entries:
            events.extend(e.events)
            cursors.update(e.cursors)  # in queue order: the newest value of each cursor wins
        await self.write(events, cursors)

    async def write(self, events: list[Event], cursors: Mapping[str, str] | None = None) -> None:
        """Write now (the tap spool's path), retrying only while the store rejects writes."""
        if not events and not cursors:
            return
        delay = 0.1
        while True:
            try:
                res = await asyncio.to_thread(self.store.write_events, events, cursors)
                break
            except Exception as exc:  # the store as a whole refused: nothing of it was saved
                self._store_failed(exc, len(events), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.failing_since_ms = None
        await self._written(events, res)

    def _store_failed(self, exc: Exception, n: int, delay: float) -> None:
        self.write_errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"[:200]
        if self.failing_since_ms is None:
            self.failing_since_ms = int(time.time() * 1000)
        if self.metrics is not None:
            self.metrics.store_write_errors.inc()
        log.error("store rejected a write of %d event(s) (%s); retrying in %.1f s", n,
                  self.last_error, delay)

    async def _written(self, events: list[Event], res: WriteResult) -> None:
        fresh = res.new
        self.written += len(fresh)
        self.quarantined += len(res.quarantined)
        self.duplicates += len(events) - len(fresh) - len(res.quarantined)
        for q in res.quarantined[:3]:  # a flood of poison is counted, not logged line by line
            log.error("quarantined event %s from %s: %s", q.event.event_id,
                      q.event.source.value, q.reason)
        clamped = [e for e in fresh if e.out_of_range]
        self.out_of_range += len(clamped)
        for e in clamped[:3]:
            log.warning("event %s: %s out of the int64 range, stored as null (text in raw)",
                        e.event_id, ", ".join(e.out_of_range))
        if self.metrics is not None:
            self.metrics.events_quarantined_by_source(q.event for q in res.quarantined)
            self.metrics.events_out_of_range_by_source(clamped)
        if self.on_events is not None and fresh:
            try:
                # detection sees each fact once, however often observed; a full detection
                # queue hands back an awaitable: the writer waits, and so, via this queue, do
                # the sources (backpressure instead of events piling up in memory)
                waiting = self.on_events(fresh)
                if inspect.isawaitable(waiting):
                    await waiting
            except Exception:
                log.exception("on_events callback failed")
