"""The running service: sources -> store -> detection -> alert manager -> Apprise, supervised.

One asyncio process. Sources (the collector) hand every *new* event to a bounded queue; the
detector loop feeds it to the detection engine and closes each minute's windows once the minute
has ended and its stragglers can have arrived (`lateness_s`, wall time); findings go to the
alert manager, whose outbox the notifier drains. A finding that pages (high/critical) is flushed
to the outbox as soon as it is found and the notifier is woken, so a page waits for neither the
flush tick nor the notifier's poll (a configured `group_wait_s` still holds it back). Every
component runs under the supervisor, so a crash is logged, counted and restarted.
SIGTERM/SIGINT set `stop`: the collector stops, the detector drains its queue, the manager
flushes pending groups into the outbox, the notifier makes a last pass, and the store closes;
nothing enqueued is lost (the outbox survives restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from monitor.alert.manager import immediate
from monitor.collect.eventqueue import DETECTION_MAX_EVENTS, BatchQueue
from monitor.config import Config
from monitor.core.clock import NETWORK_FLOOR_S, Clock
from monitor.core.events import Event
from monitor.core.findings import Finding
from monitor.detect.engine import DetectionEngine
from monitor.features import MINUTE_MS
from monitor.service.health import HealthServer, build_app
from monitor.service.healthchecks import (
    CollectorCounters,
    ComponentCheck,
    HealthReport,
    HealthVerdict,
    HealthWatch,
)
from monitor.service.metrics import Metrics
from monitor.service.startup import (
    SAVE_EVERY_MS,
    restore_memory,
    save_memory,
    startup_line,
    warm_up,
)
from monitor.service.supervisor import Supervisor
from monitor.service.wiring import build_alerting
from monitor.service.wiring import build_engine as build_engine  # where callers have imported it
from monitor.store import Store

log = logging.getLogger("keywatch.service")


class Source(Protocol):
    """What the service needs of the collector."""

    async def run(self) -> None: ...

    async def stop(self) -> None: ...

    def counters(self) -> CollectorCounters: ...


SourceFactory = Callable[[Callable[[list[Event]], Awaitable[None] | None]], Source]


@dataclass
class Counters:
    events_in: int = 0
    events_dropped: int = 0
    findings: int = 0
    detector_errors: int = 0
    last_event_ms: int = 0
    findings_by_rule: dict[str, int] = field(default_factory=dict)


class Service:
    def __init__(
        self,
        cfg: Config,
        store: Store,
        clock: Clock,
        *,
        source_factory: SourceFactory | None,
        engine: DetectionEngine,
        metrics: Metrics | None = None,
        health_port: int | None = None,
        health_host: str = "127.0.0.1",
        queue_size: int = DETECTION_MAX_EVENTS,  # events waiting for detection
        tick_s: float = 1.0,
        batch_wait_s: float = 0.05,
        lateness_s: float = NETWORK_FLOOR_S,
        heartbeat_s: float = 60.0,
        on_finding: Callable[[Finding], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.engine = engine
        # the alert context shows the engine's seen addresses beside a new one
        self.manager, self.notifier = build_alerting(cfg, store, clock, self.metrics, engine)
        # every labelled series the config and the loaded rules name exists from the start, at 0
        self.metrics.prime(cfg, rules=getattr(engine, "rules", {}), channels=self.notifier.channels)
        self.counters = Counters()
        # bounded in events, not batches: a full queue makes the store writer wait (see
        # `_on_events`), and through the ingest queue the sources, instead of holding a burst
        self.queue = BatchQueue(max_events=queue_size)
        self.tick_s = tick_s
        self.batch_wait_s = batch_wait_s
        self.lateness_s = lateness_s
        self.heartbeat_s = heartbeat_s
        self.on_finding = on_finding
        self._next_save = 0  # clock ms of the next save of the learned rates (set at run)
        self._source_factory = source_factory
        self.source: Source | None = None
        self.supervisor = Supervisor(clock, self.metrics)
        self.health: HealthServer | None = None
        self.watch = HealthWatch(self.metrics)  # progress, store writes, ingest queue
        if health_port is not None:
            self.health = HealthServer(
                build_app(self.metrics, self.health_report, refresh=self._refresh),
                host=health_host, port=health_port,
            )

    # -- intake (called by the collector after the store accepted new events) ---------------
    def _on_events(self, events: list[Event]) -> Awaitable[None] | None:
        if not events:
            return None
        self.metrics.events_stored(events)
        self.counters.events_in += len(events)
        self.counters.last_event_ms = max(self.counters.last_event_ms, events[-1].received_ts)
        try:
            self.queue.put_nowait(events)
        except asyncio.QueueFull:
            # detection is behind: the store writer awaits this, so the sources wait for the
            # writer (backpressure) and nothing piles up in memory or is dropped
            return self._put_when_room(events)
        return None

    async def _put_when_room(self, events: list[Event]) -> None:
        await self.queue.wait_room(len(events))
        self.queue.put_nowait(events)

    # -- components -------------------------------------------------------------------------
    async def _run_source(self, stop: asyncio.Event) -> None:
        assert self._source_factory is not None
        # a fresh collector on every (re)start: a crashed one may hold half-closed connections
        self.source = self._source_factory(self._on_events)
        task = asyncio.create_task(self.source.run())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            stopper.cancel()
            try:
                task.result()  # re-raise a crash for the supervisor
            finally:
                await self.source.stop()
            return
        await self.source.stop()
        try:
            await asyncio.wait_for(task, timeout=5)
        except TimeoutError:
            log.warning("collector did not stop within 5 s")

    def _handle_findings(self, findings: list[Finding]) -> bool:
        """Count and submit findings; True when one of them pages at once (high/critical)."""
        if not findings:
            return False
        now = self.clock.now_ms()
        for f in findings:
            self.counters.findings += 1
            self.counters.findings_by_rule[f.rule_id] = (
                self.counters.findings_by_rule.get(f.rule_id, 0) + 1
            )
            self.metrics.finding(f)
            self.metrics.detection_latency.observe(max(0.0, (now - f.ts) / 1000.0))
            if self.on_finding is not None:
                self.on_finding(f)
        self.manager.submit(findings)
        return any(immediate(f) for f in findings)

    def _flush(self, now_ms: int, *, final: bool = False) -> None:
        """Write the groups that are due to the outbox; wake the sender if one was written."""
        if self.manager.flush(now_ms, final=final):
            self.notifier.wake()

    async def _detect(self, events: list[Event]) -> None:
        """Event rules and posture over one batch; a page goes to the outbox right away."""
        if self._handle_findings(await asyncio.to_thread(self.engine.process, events)):
            self._flush(self.clock.now_ms())

    def lateness_ms(self) -> int:
        """The lateness allowance in clock ms (it is wall time: network delays do not scale)."""
        return int(self.lateness_s * 1000 * self.clock.speed)

    def _next_close(self, now_ms: int) -> int:
        """Clock ms at which the next minute may close: its end plus the lateness allowance."""
        late = self.lateness_ms()
        return ((now_ms - late) // MINUTE_MS + 1) * MINUTE_MS + late

    def _settle_at(self) -> int | None:
        """Clock ms at which the engine has a held provenance verdict to decide, if any."""
        due = getattr(self.engine, "next_due_ms", lambda: None)()
        return None if due is None else due + 1 + self.lateness_ms()

    def _drain(self) -> list[Event]:
        out: list[Event] = []
        while not self.queue.empty():
            out.extend(self.queue.get_nowait())
        return out

    async def _close_windows(self, now_ms: int) -> None:
        """Close every minute that ended at least `lateness` ago: windowed rules + forest.

        What is queued already reached Keywatch before the close, so it is detected first: a
        straggler that arrived within the allowance joins its own minute instead of opening a
        second, partial window for it after the close. The allowance only has to cover the
        collector's side (upstream round trip and store write), not the detector's batching.
        """
        queued = self._drain()
        if queued:
            await self._detect(queued)
        self._handle_findings(
            await asyncio.to_thread(self.engine.tick, now_ms - self.lateness_ms()))
        self._flush(self.clock.now_ms())
        if now_ms >= self._next_save:
            self._next_save = now_ms + SAVE_EVERY_MS
            await asyncio.to_thread(save_memory, self.engine, self.store, now_ms)

    async def _next_batch(self, timeout: float, until: float | None = None) -> list[Event] | None:
        """Wait for events, then gather what else arrives within `batch_wait_s` (wall).

        Each call hands a batch to a worker thread and the forest scores a batch at once, so a
        burst is cheaper as one batch; the wait is short (50 ms) because every page waits it
        too. Under load batches grow by themselves (what queued during the last one). Gathering
        stops at
        `until` (loop time, the next window close) so a close is never held up by it.
        """
        try:
            events = list(await asyncio.wait_for(self.queue.get(), timeout=timeout))
        except TimeoutError:
            return None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_wait_s
        if until is not None:
            deadline = min(deadline, until)
        while True:
            events.extend(self._drain())
            left = deadline - loop.time()
            if left <= 0:
                return events
            try:
                events.extend(await asyncio.wait_for(self.queue.get(), timeout=left))
            except TimeoutError:
                return events

    async def _run_detector(self, stop: asyncio.Event) -> None:
        # Detection runs in a worker thread so the tap and the sockets stay responsive while
        # a batch is scored; one batch at a time, so the engine is never used concurrently.
        # Two clocks drive the loop: windows close at each minute's end plus the lateness
        # allowance (aligned, so a windowed finding does not wait for a free-running tick),
        # and every `tick_s` the manager flushes groups whose group_wait is over (and the
        # daily digest). Pages found in between are flushed at once by `_detect`.
        loop = asyncio.get_running_loop()
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            await self._detect_loop(stop, loop)
        finally:
            waker.cancel()

    async def _wake_on(self, stop: asyncio.Event) -> None:
        """On stop, an empty batch ends the detector's wait (which may last until the close)."""
        await stop.wait()
        with contextlib.suppress(asyncio.QueueFull):  # full: the detector is not waiting
            self.queue.put_nowait([])

    async def _detect_loop(self, stop: asyncio.Event, loop: asyncio.AbstractEventLoop) -> None:
        next_flush = self.clock.monotonic()  # at once: groups a previous run left waiting
        next_close = self._next_close(self.clock.now_ms())
        while True:
            speed = self.clock.speed
            to_close = max(0.0, (next_close - self.clock.now_ms()) / 1000) / speed
            to_flush = max(0.0, next_flush - self.clock.monotonic()) / speed
            due = self._settle_at()
            to_settle = (to_flush if due is None
                         else max(0.0, (due - self.clock.now_ms()) / 1000) / speed)
            batch = await self._next_batch(min(to_close, to_flush, to_settle),
                                           until=loop.time() + to_close)
            if batch:
                await self._detect(batch)
            now = self.clock.now_ms()
            due = self._settle_at()
            if due is not None and now >= due:
                # reports no tap/log record explained within their grace (plus the lateness
                # allowance for records still in flight): foreign, paged now
                if self._handle_findings(await asyncio.to_thread(
                        self.engine.settle, now - self.lateness_ms())):
                    self._flush(self.clock.now_ms())
            if now >= next_close:
                await self._close_windows(now)
                next_close = self._next_close(now)
            if self.clock.monotonic() >= next_flush:
                self._flush(self.clock.now_ms())
                next_flush = self.clock.monotonic() + self.tick_s
            if stop.is_set() and self.queue.empty() and (
                self._source_factory is None or not self.supervisor.state["collector"].running
            ):
                now = self.clock.now_ms()
                self._handle_findings(await asyncio.to_thread(self.engine.tick, now))
                self._flush(now, final=True)
                await asyncio.to_thread(save_memory, self.engine, self.store, now)
                return

    async def _run_notifier(self, stop: asyncio.Event) -> None:
        inner = asyncio.Event()

        async def relay() -> None:
            await stop.wait()
            # let the detector hand over its last findings before the final pass
            while self.supervisor.state["detector"].running:
                await asyncio.sleep(0.02)
            inner.set()

        relay_task = asyncio.create_task(relay())
        try:
            await self.notifier.run(inner)
        finally:
            relay_task.cancel()

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.heartbeat_s / self.clock.speed)
            except TimeoutError:
                c = self.counters
                log.info(
                    "heartbeat events_in=%d dropped=%d findings=%d outbox_backlog=%d restarts=%d",
                    c.events_in, c.events_dropped, c.findings, self._backlog(),
                    sum(s.restarts for s in self.supervisor.state.values()),
                )

    def _backlog(self) -> int:
        n = len(self.store.due_deliveries(2**62, limit=100_000))
        self.metrics.outbox_backlog.set(n)
        return n

    def _refresh(self) -> None:
        """Before a scrape: the outbox backlog and the watched gauges, as of now."""
        self._backlog()
        self._checks()

    def _checks(self) -> HealthVerdict:
        """The collector's progress and ingest state (monitor/service/healthchecks.py), if it
        has one."""
        report = getattr(self.source, "health", None)
        if report is None:
            return HealthVerdict(ok=True)
        return self.watch.check(report(), self.clock.now_ms())

    def health_report(self) -> HealthReport:
        now = self.clock.now_ms()
        sources = self.source.counters() if self.source is not None else CollectorCounters()
        checks = self._checks()
        components = {
            name: ComponentCheck(running=st.running, restarts=st.restarts,
                                 last_error=st.last_error)
            for name, st in self.supervisor.state.items()
        }
        backlog = self._backlog()
        fresh = self.counters.last_event_ms == 0 or now - self.counters.last_event_ms < 300_000
        ok = all(c["running"] for c in components.values()) and fresh and checks.ok
        return HealthReport(
            ok=ok,
            now_ms=now,
            last_event_ms=self.counters.last_event_ms,
            fresh=fresh,
            outbox_backlog=backlog,
            components=components,
            sources=sources,
            problems=checks.problems,
            warnings=checks.warnings,
            checks=checks.report,
            warm_up=(warm(now) if (warm := getattr(self.engine, "warm_up_report", None))
                     else None),
        )

    async def run(self, stop: asyncio.Event | None = None, *, install_signals: bool = False
                  ) -> int:
        stop = stop or asyncio.Event()
        if install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        if self._source_factory is not None:
            self.supervisor.add("collector", self._run_source)
        self.supervisor.add("detector", self._run_detector)
        self.supervisor.add("notifier", self._run_notifier)
        self.supervisor.add("heartbeat", self._heartbeat)
        if self.health is not None:
            self.supervisor.add("health", self.health.run)
        self.metrics.prime_components(self.supervisor.state)
        await asyncio.to_thread(warm_up, self.engine, self.store, self.clock.now_ms())
        await asyncio.to_thread(restore_memory, self.engine, self.store)
        self._next_save = self.clock.now_ms() + SAVE_EVERY_MS
        log.info("%s", startup_line(self.cfg, self.health, self.notifier.channels.values()))
        await self.supervisor.run(stop, grace_s=8.0)
        log.info("keywatch service stopped: %d events, %d findings, outbox backlog %d",
                 self.counters.events_in, self.counters.findings, self._backlog())
        return 0
