"""The collector: builds the configured sources, runs them, and feeds one queue into the store.

`Collector(config, store, clock).run()` is what the service calls; `stop()` ends every source,
flushes the queue and closes the connections. `counters()` is a plain dict for metrics.
Per account: one `BinanceRest` (signed with the account's monitor key) shared by the poller,
the stream and the backfill, so all of them draw on one weight budget per host IP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import TypedDict

import httpx
import uvicorn
from pydantic import SecretStr

from monitor.binance.budget import Budgets, guard_for
from monitor.binance.rest import BinanceRest
from monitor.collect.backfill import Backfill
from monitor.collect.eventqueue import INGEST_MAX_EVENTS
from monitor.collect.ingest import Ingest
from monitor.collect.logfile import LogTailer
from monitor.collect.poller import Poller
from monitor.collect.serverlimits import TAP_LIMITS, server_config
from monitor.collect.spool import SpoolWriter, inprocess_spool
from monitor.collect.stream import StreamSource
from monitor.collect.tap import Tap
from monitor.config import Config, TapMode
from monitor.core.clock import Clock
from monitor.core.events import Event
from monitor.core.keys import Signer
from monitor.service.healthchecks import (
    CollectorCounters,
    CollectorHealth,
    IngestState,
    SourceProgress,
)
from monitor.service.metrics import Metrics
from monitor.store import Store

log = logging.getLogger(__name__)


class StreamOptions(TypedDict, total=False):
    """Timings of every account's user-data stream (tests shorten them; see `StreamSource`)."""

    probe_after_s: float
    dead_after_s: float
    max_age_s: float


class Collector:
    def __init__(
        self,
        config: Config,
        store: Store,
        clock: Clock,
        *,
        on_events: Callable[[list[Event]], Awaitable[None] | None] | None = None,
        local_host: str | None = None,
        stream_options: StreamOptions | None = None,
        queue_size: int = INGEST_MAX_EVENTS,
        metrics: Metrics | None = None,
    ) -> None:
        self.config, self.store, self.clock = config, store, clock
        self.metrics = metrics if metrics is not None else Metrics()  # a private one: unseen
        self.ingest = Ingest(store, maxsize=queue_size, on_events=on_events,
                             metrics=self.metrics)
        self._rest_ok: Counter[str] = Counter()  # answered REST calls by account (health)
        self.stall_slack_s = 30.0  # wall seconds added to each source's stall time
        b = config.binance
        local_host = local_host or b.source_address
        self.local_host = local_host
        self.budgets = Budgets(6000 * b.weight_budget_pct / 100,
                               guard_ms=guard_for(clock.speed))
        transport = httpx.AsyncHTTPTransport(local_address=local_host) if local_host else None
        self._http = httpx.AsyncClient(transport=transport, timeout=30.0)
        self.rests: dict[str, BinanceRest] = {}
        self.streams: dict[str, StreamSource] = {}
        self.pollers: dict[str, Poller] = {}
        self.backfills: dict[str, Backfill] = {}
        self.tailers: list[LogTailer] = []
        self.tap: Tap | None = None
        self.tap_spool: SpoolWriter | None = None
        self._tap_tailer: LogTailer | None = None
        self._tap_server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        keys = {}
        for acct in config.accounts:
            for k in acct.keys:
                fp = k.fingerprint()
                if fp:
                    keys[fp.lower()] = (acct.name, k.label)
        self.key_map = keys
        src = config.sources
        for acct in config.accounts:
            mk = acct.key(acct.monitor_key)
            signer = mk.signer()
            if mk.api_key is None or signer is None:
                raise ValueError(f"account {acct.name}: the monitor key has no key/secret")
            rest = BinanceRest(
                self._http, b.rest_url, mk.api_key, signer, clock, account=acct.name,
                key_label=mk.label, recv_window=b.recv_window_ms, emit=self._rest_emit,
            )
            rest.budgets = self.budgets  # one budget per host IP, shared by every account
            rest.on_spend = self._spend_hook(acct.name)
            rest.on_bad_answer = self._bad_answer_hook(acct.name)
            self.rests[acct.name] = rest
            bf = Backfill(rest, store, self.ingest.put, symbols=acct.symbols)
            self.backfills[acct.name] = bf
            if src.stream:
                self.streams[acct.name] = StreamSource(
                    rest, bf, self.ingest.put, b.ws_api_url, mk.api_key, signer,
                    local_host=local_host, on_reconnect=self.metrics.stream_reconnect,
                    **(stream_options or StreamOptions()),
                )
            posture = [
                self._rest_for(acct.name, k.label, k.api_key, k.signer())
                for k in acct.keys
                if k.label != acct.monitor_key and k.api_key is not None and k.can_sign
            ]
            if src.poller:
                self.pollers[acct.name] = Poller(
                    rest, store, self.ingest.put, bf, interval_s=src.poll_interval_s,
                    stream_healthy=_healthy(self.streams.get(acct.name)),
                    posture=posture,
                )
        for lg in src.logs:
            self.tailers.append(LogTailer(lg.path, lg.account, clock, self.ingest.put, store,
                                          keys=keys))
        if src.tap.enabled and src.tap.mode is TapMode.PROCESS and src.tap.spool:
            # `keywatch tap` runs on its own and spools; its lines carry the tap's event ids
            self.tailers.append(LogTailer(
                src.tap.spool, src.tap.account or config.accounts[0].name, clock,
                self._spool_put, store, keys=keys, spool=True))
        elif src.tap.enabled:
            # the tap forwards from this host's own address, as the bots would have. Its
            # records go through a spool too (see `_tap_commit`): written before each answer's
            # last byte, ingested by a spool tailer that waits for the store, so neither a full
            # ingest queue nor a kill -9 of the service loses a call a bot got an answer for
            account = src.tap.account or config.accounts[0].name
            # beside the store in use (its file, else the configured path)
            store_file = str(getattr(store, "path", config.store_path))
            self.tap_spool = SpoolWriter(src.tap.spool or inprocess_spool(store_file),
                                         fsync_interval_s=src.tap.fsync_interval_s)
            # `offer` is only the Tap's fallback: with `commit` set it records nothing
            self.tap = Tap(src.tap.upstream, clock, self._offer, keys=keys,
                           local_address=src.tap.source_address or local_host,
                           default_account=account, commit=self._tap_commit)
            self._tap_tailer = LogTailer(self.tap_spool.path, account, clock,
                                         self._ingest_spooled, store, keys=keys, spool=True)
            self.tailers.append(self._tap_tailer)

    def _rest_for(self, account: str, label: str, key: SecretStr, signer: Signer | None
                  ) -> BinanceRest:
        assert signer is not None  # only keys that can sign are polled for posture
        b = self.config.binance
        rest = BinanceRest(self._http, b.rest_url, key, signer, self.clock, account=account,
                           key_label=label, recv_window=b.recv_window_ms, emit=self._rest_emit,
                           monitor_key=False)
        rest.budgets = self.budgets
        rest.on_spend = self._spend_hook(account)
        rest.on_bad_answer = self._bad_answer_hook(account)
        return rest

    # -- metrics, where the facts happen ----------------------------------------------------
    def _offer(self, events: list[Event]) -> int:
        dropped = self.ingest.offer(events)
        self.metrics.queue_dropped("ingest", dropped)
        return dropped

    def _rest_emit(self, events: list[Event]) -> int:
        """Usage events of Keywatch's own REST answers: the weight Binance reports, then on."""
        self.metrics.own_usage(events)
        for ev in events:  # an answered call is the poller's progress (see `health`)
            if ev.status is not None and ev.status < 400:
                self._rest_ok[ev.account] += 1
        return self._offer(events)

    async def _tap_commit(self, events: list[Event]) -> int:
        """The in-process tap's record of a call, before the answer's last byte: appended to
        the spool with one write(2) (in the page cache, so a kill -9 of the service cannot lose
        it; the spool's thread fsyncs every `fsync_interval_s`), then the spool tailer is woken
        to ingest it at once. The weight headers reach the budget now, not at ingest: the
        poller spaces its calls by what the bots spent on this address a moment ago."""
        self.budgets.shared.observe(events)
        assert self.tap_spool is not None  # set whenever the tap is in-process
        dropped = self.tap_spool.offer(events)
        if self._tap_tailer is not None:
            self._tap_tailer.wake()
        return dropped

    async def _ingest_spooled(self, events: list[Event],
                              cursors: Mapping[str, str] | None = None) -> None:
        """The tap spool's events, written before the tailer moves its cursor past them.

        Straight to the store (not through the queue), so a crash between the two re-reads the
        lines on restart instead of losing them; the tap's event ids make the re-read a no-op.
        The in-process tap's reader uses this as is (its weight was observed at `_tap_commit`).
        """
        self.metrics.tap_recorded(events)
        for ev in events:
            self.ingest._count(ev)
        await self.ingest.write(events, cursors)  # the spool's offset in the same transaction

    async def _spool_put(self, events: list[Event],
                         cursors: Mapping[str, str] | None = None) -> None:
        """The standalone tap's spool: as `_ingest_spooled`, and its weight is observed here,
        since the standalone tap forwards from this host too."""
        self.budgets.shared.observe(events)
        await self._ingest_spooled(events, cursors)

    def _spend_hook(self, account: str) -> Callable[[str, float], None]:
        return lambda pool, weight: self.metrics.weight_spent(account, pool, weight)

    def _bad_answer_hook(self, account: str) -> Callable[[str], None]:
        return lambda reason: self.metrics.rest_bad_answer(account, reason)

    async def start(self) -> None:
        """Start every source in the background (returns once the tap is listening)."""
        self._tasks.append(asyncio.create_task(self.ingest.run(), name="ingest"))
        if self.tap_spool is not None:
            self.tap_spool.start()
        for name, st in self.streams.items():
            self._tasks.append(asyncio.create_task(st.run(), name=f"stream:{name}"))
        for name, p in self.pollers.items():
            self._tasks.append(asyncio.create_task(p.run(), name=f"poller:{name}"))
        for t in self.tailers:
            self._tasks.append(asyncio.create_task(t.run(), name=f"log:{t.path}"))
        if self.tap is not None:
            host, _, port = self.config.sources.tap.listen.rpartition(":")
            cfg = server_config(self.tap, host or "127.0.0.1", int(port), TAP_LIMITS,
                                log_level="warning", server_header=False, date_header=False,
                                lifespan="off", access_log=False)
            self._tap_server = uvicorn.Server(cfg)
            self._tasks.append(asyncio.create_task(self._tap_server.serve(), name="tap"))
            while not self._tap_server.started:
                await asyncio.sleep(0.01)
                if self._tasks[-1].done():
                    self._tasks[-1].result()

    @property
    def tap_url(self) -> str | None:
        srv = self._tap_server
        if srv is None or not getattr(srv, "servers", None):  # `servers` exists once started
            return None
        host, port = srv.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    async def run(self) -> None:
        await self.start()
        await asyncio.gather(*self._tasks)

    async def stop(self) -> None:
        if self._tap_server is not None:
            # the tap first: its last records reach the spool before the tailers' final read
            self._tap_server.should_exit = True
            tap_task = next((t for t in self._tasks if t.get_name() == "tap"), None)
            if tap_task is not None:
                await asyncio.wait([tap_task], timeout=5)
        if self.tap_spool is not None:
            await asyncio.to_thread(self.tap_spool.close)
        for s in self.streams.values():
            await s.stop()
        for p in self.pollers.values():
            await p.stop()
        for tailer in self.tailers:
            await tailer.stop()
        ingest = next((t for t in self._tasks if t.get_name() == "ingest"), None)
        others = [t for t in self._tasks if t is not ingest]
        done, pending = await asyncio.wait(others, timeout=5) if others else (set(), set())
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.ingest.flush()
        if ingest is not None:
            ingest.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ingest
        await self.ingest.flush()
        if self.tap is not None:
            await self.tap.aclose()
        await self._http.aclose()

    def health(self) -> CollectorHealth:
        """What `/healthz` watches beyond running tasks (monitor/service/healthchecks.py): each
        active source's progress counter with its stall time (clock seconds, derived from its own
        schedule: three poll intervals, three stream probe periods), and the ingest state. The
        poller's progress is its account's answered (status < 400) REST calls: rounds that only
        fail, or hang, are no progress."""
        slack = self.stall_slack_s * max(1.0, self.clock.speed)  # wall time for round trips
        sources = [SourceProgress("poller", n, self._rest_ok[n], 3 * p.interval_s + slack)
                   for n, p in self.pollers.items()]
        sources += [SourceProgress("stream", n, s.counters["frames"],
                                   3 * s.probe_after_s + slack)
                    for n, s in self.streams.items()]
        ing = self.ingest
        return CollectorHealth(sources, IngestState(
            ing.queue.qsize(), ing.queue.max_events, ing.failing_since_ms, ing.last_error,
            ing.wal_bytes))

    def counters(self) -> CollectorCounters:
        ing = self.ingest
        return CollectorCounters(
            events_in=dict(ing.received),
            events_written=ing.written,
            duplicates=ing.duplicates,
            drops=ing.dropped,
            write_errors=ing.write_errors,
            queue_depth=ing.queue.qsize(),
            own_weight_used=self.budgets.spent(),
            reconnects=sum(s.counters["reconnects"] for s in self.streams.values()),
            stream={n: dict(s.counters) for n, s in self.streams.items()},
            rest={n: dict(r.counters) for n, r in self.rests.items()},
            poller={n: dict(p.counters) for n, p in self.pollers.items()},
            logs={t.path: dict(t.counters) for t in self.tailers},
            tap=dict(self.tap.counters) if self.tap else {},
        )


def _healthy(stream: StreamSource | None) -> Callable[[], bool]:
    """The poller skips order polling while the account's stream is connected and gap-free."""
    return lambda: stream is not None and stream.connected.is_set() and not stream.gap_open
