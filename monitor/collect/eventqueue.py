"""A FIFO bounded in events, not in items: the ingest queue between the sources and the store.

A queue bounded in items lets one item be one event or a 4 MiB poll's worth of log lines, so
its memory has no bound at all. Here every entry is a list of events (plus the cursors that
cover them, saved with them in one transaction) and the bound is the number of events queued:
`put` waits for room (backpressure: the tailer and the poller simply read later), `offer`
takes what fits and returns the rest to be counted as dropped (the tap cannot hold a bot's
call). `put` leaves the last fifth of the bound to `offer`, so waiting sources backed up by a
burst do not make the others drop. A batch larger than the whole bound is queued in parts as
room appears, so it waits rather than deadlocks. `peak` is the most events ever queued, so
the bound can be checked.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.core.events import Event

# The default bounds (issue 15). An Event costs about 3.9 KB of RSS (`python -m bench.queuemem`),
# so the old 10,000 + 20,000 held up to ~115 MB at once and took the hostile soak's service to
# 254-271 MiB. The store writes ~13,000 events/s, so 2,000 is over 0.1 s of its work and 5,000
# is a full detection batch at 50,000 events/s offered (bench.throughput's mean batch, ~4,900;
# a batch also gathers what arrives during `batch_wait_s`); the same bench shows the same
# events/s through store to detection with these bounds as with the old ones.
INGEST_MAX_EVENTS = 2_000
DETECTION_MAX_EVENTS = 5_000


@dataclass
class Entry:
    events: list[Event]
    cursors: dict[str, str] = field(default_factory=dict)


class EventQueue:
    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError("an event queue needs room for at least one event")
        self.max_events = max_events
        # the last fifth is kept for `offer`: sources that wait fill the queue only to
        # `max_events - reserve`, so a log burst backing up behind the store never makes the
        # callers that cannot wait (Keywatch's own REST usage, the tap's fallback) drop
        self.reserve = max_events // 5
        self._entries: deque[Entry] = deque()
        self._n = 0
        self.peak = 0
        self._changed = asyncio.Event()  # set on every get/put; waiters re-check their condition

    def qsize(self) -> int:
        """Events queued (not entries)."""
        return self._n

    def empty(self) -> bool:
        return not self._entries

    def _append(self, entry: Entry) -> None:
        self._entries.append(entry)
        self._n += len(entry.events)
        self.peak = max(self.peak, self._n)
        self._changed.set()

    def offer(self, events: list[Event]) -> list[Event]:
        """Queue what fits without waiting; return the events that did not fit."""
        room = max(0, self.max_events - self._n)
        if events[:room]:
            self._append(Entry(list(events[:room])))
        return list(events[room:])

    async def put(self, events: list[Event], cursors: Mapping[str, str] | None = None) -> None:
        """Queue the events, waiting for room; a batch larger than the bound goes in parts,
        the cursors with the last part (they cover all of it)."""
        evs = list(events)
        cap = self.max_events - self.reserve
        while True:
            while self._n >= cap or (self._n + len(evs) > cap and self._n > 0):
                self._changed.clear()
                await self._changed.wait()
            part, evs = evs[: cap - self._n], evs[cap - self._n:]
            if evs:
                self._append(Entry(part))
                continue
            self._append(Entry(part, dict(cursors or {})))
            return

    async def get(self, max_events: int) -> list[Entry]:
        """Wait for an entry, then take whole entries while they add up to <= `max_events`
        events (at least one entry, however large)."""
        while not self._entries:
            self._changed.clear()
            await self._changed.wait()
        return self.get_nowait(max_events)

    def get_nowait(self, max_events: int) -> list[Entry]:
        out: list[Entry] = []
        n = 0
        while self._entries and (not out or n + len(self._entries[0].events) <= max_events):
            e = self._entries.popleft()
            out.append(e)
            n += len(e.events)
            self._n -= len(e.events)
        if out:
            self._changed.set()
        return out


class BatchQueue:
    """The hand-off from the store writer to detection: batches in, batches out, bounded in
    events. `put_nowait` raises `asyncio.QueueFull` when a batch does not fit (an empty queue
    takes any batch), and `wait_room` lets the writer wait instead, so a burst of a million
    log lines backs up to the tailer rather than piling up here (issue 15: 573 MiB when the
    bound was 100,000 batches). The interface is asyncio.Queue's, for the detector loop."""

    def __init__(self, max_events: int) -> None:
        if max_events < 1:
            raise ValueError("a batch queue needs room for at least one event")
        self.max_events = max_events
        self._batches: deque[list[Event]] = deque()
        self._n = 0
        self.peak = 0
        self._changed = asyncio.Event()

    def events(self) -> int:
        return self._n

    def qsize(self) -> int:
        return len(self._batches)

    def empty(self) -> bool:
        return not self._batches

    def fits(self, n: int) -> bool:
        return not self._batches or self._n + n <= self.max_events

    def put_nowait(self, batch: list[Event]) -> None:
        if not self.fits(len(batch)):
            raise asyncio.QueueFull
        self._batches.append(batch)
        self._n += len(batch)
        self.peak = max(self.peak, self._n)
        self._changed.set()

    async def wait_room(self, n: int) -> None:
        while not self.fits(n):
            self._changed.clear()
            await self._changed.wait()

    def get_nowait(self) -> list[Event]:
        if not self._batches:
            raise asyncio.QueueEmpty
        batch = self._batches.popleft()
        self._n -= len(batch)
        self._changed.set()
        return batch

    async def get(self) -> list[Event]:
        while not self._batches:
            self._changed.clear()
            await self._changed.wait()
        return self.get_nowait()
