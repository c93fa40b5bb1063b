"""What makes `/healthz` not ok beyond a crashed component: a source that stopped making progress,
a store that rejects writes, an ingest queue that stays full; and what it warns about: a WAL
that a long reader keeps from being checkpointed.

A running task is not a working one: a poller stuck on a body trickled one byte at a time, or a
stream that is "connected" but delivers nothing, keeps every component `running`. So each
source reports a counter that moves only when it does its job (the poller's completed rounds,
the stream's frames: the stream's watchdog probes after `probe_after_s` without a frame, so a
live stream produces one at least that often) and the stall time after which no movement is a
stall, derived from the source's own schedule. `HealthWatch` samples the counters whenever
health or metrics are read, so a stall is seen within one scrape interval. Passive sources
(the tap, log files) are not expected to produce on their own and are not watched here; a log
tailer blocked by the store shows as the store or the queue failing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from monitor.detect.warmup import WarmUpReport
from monitor.service.metrics import Metrics

STORE_FAILING_S = 5.0  # a write rejected for longer than this (wall seconds): not ok
QUEUE_FULL_S = 30.0  # the ingest queue above half its bound for longer than this: not ok
WAL_WARN_BYTES = 512 << 20  # a WAL past this after a checkpoint: a warning (a reader holds it)


@dataclass(frozen=True)
class SourceProgress:
    """One active source: `count` moves only on progress; `stall_s` is in clock seconds."""

    kind: str  # poller | stream
    account: str
    count: int
    stall_s: float


@dataclass(frozen=True)
class IngestState:
    queue_events: int
    queue_max: int
    failing_since_ms: int | None  # wall ms since the store has rejected every write, if it does
    last_error: str | None
    wal_bytes: int = 0  # the store's WAL after the last checkpoint


class CollectorCounters(TypedDict, total=False):
    """The collector's counters, as `/healthz` shows them under `sources` (empty: no collector).
    The per-source maps are each source's own counters by name (stream, rest, poller: by
    account; logs: by path)."""

    events_in: dict[str, int]  # "<source>/<kind>" -> events offered to ingest
    events_written: int
    duplicates: int
    drops: int
    write_errors: int
    queue_depth: int
    own_weight_used: dict[str, float]  # host -> weight spent this minute
    reconnects: int
    stream: dict[str, dict[str, int]]
    rest: dict[str, dict[str, int]]
    poller: dict[str, dict[str, int]]
    logs: dict[str, dict[str, int]]
    tap: dict[str, int]


class SourceCheck(TypedDict):
    last_progress_ms: int
    stall_s: float
    stalled: bool


class StoreCheck(TypedDict):
    ok: bool
    failing_s: float
    wal_bytes: int
    last_error: str | None


class QueueCheck(TypedDict):
    ok: bool
    events: int
    max: int
    above_half_s: float


class ChecksReport(TypedDict, total=False):
    """`/healthz`'s `checks` (empty when the source reports no health)."""

    sources: dict[str, SourceCheck]  # "<kind>:<account>" -> its progress
    store: StoreCheck
    ingest_queue: QueueCheck


class ComponentCheck(TypedDict):
    running: bool
    restarts: int
    last_error: str | None


class HealthReport(TypedDict):
    """The `/healthz` answer (200 when `ok`, else 503)."""

    ok: bool
    now_ms: int
    last_event_ms: int
    fresh: bool  # an event within the last five minutes (or none yet)
    outbox_backlog: int
    components: dict[str, ComponentCheck]  # the supervisor's tasks
    sources: CollectorCounters
    problems: list[str]
    warnings: list[str]
    checks: ChecksReport
    warm_up: WarmUpReport | None  # what detection judges yet, per key (None: no engine state)


@dataclass(frozen=True)
class CollectorHealth:
    sources: Sequence[SourceProgress]
    ingest: IngestState


@dataclass
class _Seen:
    count: int
    since_ms: int  # clock ms at which `count` was first seen


@dataclass(frozen=True)
class HealthVerdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # worth a look, not an outage
    report: ChecksReport = field(default_factory=ChecksReport)


class HealthWatch:
    def __init__(self, metrics: Metrics, *, wall: Callable[[], float] = time.monotonic,
                 store_failing_s: float = STORE_FAILING_S, queue_full_s: float = QUEUE_FULL_S,
                 wal_warn_bytes: int = WAL_WARN_BYTES) -> None:
        self.metrics = metrics
        self._wall = wall
        self.store_failing_s, self.queue_full_s = store_failing_s, queue_full_s
        self.wal_warn_bytes = wal_warn_bytes
        self._seen: dict[tuple[str, str], _Seen] = {}
        self._queue_high_since: float | None = None

    def check(self, h: CollectorHealth, now_ms: int) -> HealthVerdict:
        problems: list[str] = []
        sources: dict[str, SourceCheck] = {}
        for s in h.sources:
            key = (s.kind, s.account)
            seen = self._seen.get(key)
            if seen is None or seen.count != s.count:
                seen = self._seen[key] = _Seen(s.count, now_ms)
                self.metrics.source_last_progress.labels(s.kind, s.account).set(now_ms / 1000)
            idle_s = (now_ms - seen.since_ms) / 1000
            stalled = idle_s > s.stall_s
            if stalled:
                problems.append(f"{s.kind} {s.account}: no progress for {idle_s:.0f} s "
                                f"(stall after {s.stall_s:.0f} s)")
            sources[f"{s.kind}:{s.account}"] = SourceCheck(
                last_progress_ms=seen.since_ms, stall_s=s.stall_s, stalled=stalled)
        ing = h.ingest
        wall = self._wall()
        failing_s = (0.0 if ing.failing_since_ms is None
                     else time.time() - ing.failing_since_ms / 1000)
        store_ok = ing.failing_since_ms is None or failing_s < self.store_failing_s
        if not store_ok:
            problems.append(f"store rejects writes for {failing_s:.0f} s: {ing.last_error}")
        if ing.queue_events * 2 >= ing.queue_max:
            if self._queue_high_since is None:
                self._queue_high_since = wall
        else:
            self._queue_high_since = None
        high_s = 0.0 if self._queue_high_since is None else wall - self._queue_high_since
        queue_ok = high_s < self.queue_full_s
        if not queue_ok:
            problems.append(f"ingest queue above half full ({ing.queue_events} of "
                            f"{ing.queue_max} events) for {high_s:.0f} s")
        self.metrics.ingest_queue_events.set(ing.queue_events)
        warnings: list[str] = []
        if ing.wal_bytes > self.wal_warn_bytes:
            warnings.append(
                f"store WAL is {ing.wal_bytes >> 20} MiB after a checkpoint: a reader holds an "
                "old snapshot (a notebook or sqlite shell with an open transaction?); close it "
                "and the next checkpoint truncates the WAL")
        checks = ChecksReport(
            sources=sources,
            store=StoreCheck(ok=store_ok, failing_s=round(failing_s, 1), wal_bytes=ing.wal_bytes,
                             last_error=ing.last_error if not store_ok else None),
            ingest_queue=QueueCheck(ok=queue_ok, events=ing.queue_events, max=ing.queue_max,
                                    above_half_s=round(high_s, 1)),
        )
        return HealthVerdict(ok=not problems, problems=problems, warnings=warnings, report=checks)
