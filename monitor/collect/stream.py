"""The user-data stream source: stay subscribed, notice silence, and fill every gap.

Loop: connect and subscribe; pump frames into the ingest queue; when the socket drops, is
closed, terminated, or goes quiet (the watchdog), reconnect with full-jitter exponential
backoff (cap 60 s) and, once the new subscription is live, run the REST backfill over the gap
and record a `stream_status` event with the gap and what was backfilled. Before a connection
reaches the server's 24-hour limit a new one is opened and subscribed *first*; the old one is
closed after, so the overlap is covered twice and the store keeps each fact once.

Bounded: the socket's reader hands each frame's events straight to the ingest queue and reads
no further until they fit (the queue is bounded in events), so a flood of 35k frames/s waits in
websockets' small frame queue and the TCP buffers, not in a list here (issue 15: 1.9 GB).

Watchdog: pings prove only that the socket is up. After `probe_after_s` without any frame a
cheap `time` request (weight 1) is sent; no frame at all within `dead_after_s` more means the
data path is dead, whatever the pings say.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from pydantic import SecretStr

from monitor.binance.parse import Ctx, Frame, status_event
from monitor.binance.rest import BinanceError, BinanceRest, MonitorKeyRejected, backoff_s
from monitor.binance.stream import METHOD_WEIGHT, StreamClosed, UserDataSocket, open_weight
from monitor.collect.backfill import Backfill
from monitor.core.clock import NETWORK_FLOOR_S
from monitor.core.events import Event, Source
from monitor.core.keys import Signer, as_signer

log = logging.getLogger(__name__)


class StreamSource:
    def __init__(
        self,
        rest: BinanceRest,
        backfill: Backfill,
        put: Callable[[list[Event]], Awaitable[None]],
        ws_url: str,
        api_key: SecretStr,
        signer: Signer | SecretStr,
        *,
        local_host: str | None = None,
        probe_after_s: float = 30.0,
        dead_after_s: float = 15.0,
        max_age_s: float = 23.5 * 3600,
        rng: random.Random | None = None,
        on_reconnect: Callable[[str], None] | None = None,
    ) -> None:
        self.rest, self.backfill, self.put = rest, backfill, put
        self.on_reconnect = on_reconnect or (lambda _account: None)  # the service's metrics
        self.clock = rest.clock
        self.account = rest.account
        self.ws_url = ws_url
        self._api_key, self._signer = api_key, as_signer(signer)
        self.local_host = local_host
        self.probe_after_s, self.dead_after_s, self.max_age_s = (
            probe_after_s, dead_after_s, max_age_s)
        self._rng = rng or random.Random()
        self._putting = 0  # frames waiting for room in the ingest queue (backpressure)
        self._connecting: asyncio.Task[None] | None = None  # run()'s task while in _open()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self.connected = asyncio.Event()
        self.counters = {"reconnects": 0, "rollovers": 0, "gaps": 0, "backfills": 0,
                         "backfilled_facts": 0, "watchdog_kills": 0, "terminated": 0,
                         "malformed": 0, "frames": 0}
        self.gap_open = False
        self._backfill_task: asyncio.Task[None] | None = None
        self._need = asyncio.Event()
        self._gaps: list[int] = []
        self._why: str | None = None
        self._last_control: str | None = None

    # -- plumbing --------------------------------------------------------------------------
    def _ctx(self) -> Ctx:
        return Ctx(account=self.account, received_ts=self.clock.now_ms())

    async def _on_frame(self, frame: Frame) -> None:
        """Called by the socket's reader, which reads on once this returns: the frame's events
        are queued (waiting for room: backpressure to the socket), a control wakes the pump."""
        self.counters["frames"] += 1
        if frame.control == "malformed":
            self.counters["malformed"] += 1
        for ev in frame.events:
            if ev.symbol:
                self.backfill.learn(ev.symbol)
        if frame.events:
            self._putting += 1
            try:
                await self.put(frame.events)
            finally:
                self._putting -= 1
        if frame.control in ("terminated", "shutdown"):
            self._last_control = frame.control
        self._wake.set()

    async def _status(self, status: str, *id_extra: object, **details: object) -> None:
        """Record a `stream_status`; its id is (status, now, *id_extra): records of one status
        made in the same millisecond (one pass's gap records) need `id_extra` to stay apart."""
        now = self.rest.server_now()
        await self.put([status_event(Source.STREAM, self._ctx(), status, now,
                                     (now, *id_extra), **details)])

    async def _open(self) -> UserDataSocket:
        await self.rest.spend(open_weight(self._signer), priority=True)
        if not self.rest.synced:
            await self.rest.sync_time()
        sock = UserDataSocket(
            self.ws_url, self._api_key, self._signer, self.clock,
            server_now=self.rest.server_now, ctx=self._ctx, on_frame=self._on_frame,
            recv_window=self.rest.recv_window, local_host=self.local_host,
        )
        try:
            await sock.open()
        except BinanceError as exc:
            await sock.close("subscribe_failed")
            if exc.code == -1021:
                await self.rest.sync_time()
            raise
        except BaseException:
            await sock.close("connect_failed")
            raise
        return sock

    def _reconnecting(self) -> None:
        """A connect failed or a live socket ended: another connect follows (counted)."""
        self.counters["reconnects"] += 1
        self.on_reconnect(self.account)

    # -- main loop -------------------------------------------------------------------------
    async def run(self) -> None:
        attempt = 0
        gap_from: int | None = None
        while not self._stop.is_set():
            try:
                self._connecting = asyncio.current_task()
                try:
                    sock = await self._open()
                finally:
                    self._connecting = None
            except asyncio.CancelledError:
                if self._stop.is_set() and (task := asyncio.current_task()) is not None:
                    task.uncancel()  # stop() ended a connect waiting on a deaf server
                    break
                raise
            except MonitorKeyRejected as exc:
                await self._status("monitor_key_rejected", where="subscribe", code=exc.code)
                await self._sleep(backoff_s(attempt, self._rng, base=5.0))
                attempt += 1
                continue
            except (BinanceError, StreamClosed, OSError, TimeoutError) as exc:
                log.warning("%s: user-data stream connect failed: %r", self.account, exc)
                self._reconnecting()
                await self._sleep(backoff_s(attempt, self._rng))
                attempt += 1
                continue
            except Exception as exc:  # websockets handshake errors and the like
                log.warning("%s: user-data stream connect failed: %r", self.account, exc)
                self._reconnecting()
                await self._sleep(backoff_s(attempt, self._rng))
                attempt += 1
                continue
            attempt = 0
            self.connected.set()
            self._start_backfill(gap_from, "connected" if gap_from is None else "gap")
            reason = await self._pump(sock)
            self.connected.clear()
            if reason == "stopped":
                await sock.close("stopped")
                break
            gap_from = self.rest.server_now() - int(sock.idle_s() * 1000)
            self.gap_open = True
            self.counters["gaps"] += 1
            self._reconnecting()
            log.info("%s: user-data stream ended (%s); reconnecting", self.account, reason)
            await sock.close(reason)
            await self._sleep(backoff_s(0, self._rng, base=0.5))

    async def _pump(self, sock: UserDataSocket) -> str:
        """Watch the socket (the reader queues its frames) until it ends; return why."""
        probe: asyncio.Task[None] | None = None
        self._probe_sent: float | None = None
        ended = asyncio.create_task(self._wake_when_done(sock))  # a drop is seen at once,
        try:                                                   # not at the next idle tick
            while True:
                self._wake.clear()
                control, self._last_control = self._last_control, None
                if self._stop.is_set():
                    return "stopped"
                if control in ("terminated", "shutdown"):
                    self.counters["terminated"] += 1
                    return control
                if sock.done.is_set():
                    return sock.close_reason or "closed"
                if sock.age_s() >= self.max_age_s:
                    sock = await self._rollover(sock)
                    ended.cancel()
                    ended = asyncio.create_task(self._wake_when_done(sock))
                    continue
                if self._putting:  # frames are arriving faster than the store takes them:
                    await self._idle()  # the data path is alive; we are behind
                    continue
                sent = self._probe_sent
                if (sent is not None and sent > sock.last_frame_mono
                        and self.clock.monotonic() - sent
                        >= max(self.dead_after_s, NETWORK_FLOOR_S * self.clock.speed)):
                    self.counters["watchdog_kills"] += 1
                    await self._status("stream_stale", idle_s=round(sock.idle_s(), 1))
                    return "stale"
                if sock.idle_s() >= self.probe_after_s and (probe is None or probe.done()):
                    probe = asyncio.create_task(self._probe(sock))
                await self._idle()
        finally:
            ended.cancel()
            if probe is not None:
                probe.cancel()
            await asyncio.gather(ended, *([probe] if probe else []), return_exceptions=True)

    async def _wake_when_done(self, sock: UserDataSocket) -> None:
        await sock.done.wait()
        self._wake.set()

    async def _idle(self) -> None:
        """Wait for a wake-up or a quarter probe period (at most 5 s of clock time)."""
        if self._putting:
            self._probe_sent = None  # a probe unanswered while we were behind proves nothing
        wait = min(self.probe_after_s / 4, 5.0) / self.clock.speed
        try:
            await asyncio.wait_for(self._wake.wait(), wait)
        except TimeoutError:
            pass

    async def _probe(self, sock: UserDataSocket) -> None:
        """Ask the socket for the server time (or, logged on, the session's status); the
        watchdog times the answer."""
        await self.rest.spend(METHOD_WEIGHT[sock.probe_method], priority=True)
        if self._probe_sent is None or self._probe_sent < sock.last_frame_mono:
            self._probe_sent = self.clock.monotonic()  # the first unanswered probe counts
        try:
            await sock.probe()
        except (StreamClosed, BinanceError, TimeoutError):
            pass

    async def _rollover(self, old: UserDataSocket) -> UserDataSocket:
        """Open and subscribe the successor before closing `old` (no gap)."""
        try:
            new = await self._open()
        except Exception as exc:
            log.warning("%s: rollover connect failed (%r); keeping the old socket",
                        self.account, exc)
            old.opened_mono = self.clock.monotonic() - self.max_age_s + 60
            return old
        self.counters["rollovers"] += 1
        await old.close("rollover")
        await self._status("rollover", old_age_s=round(old.age_s(), 1))
        # Insurance, once a day: if the old socket was silently stalled, frames queued on it
        # died with it; the cursors make this pass cheap and the store ignores repeats.
        self._start_backfill(None, "rollover_backfill")
        return new

    def _start_backfill(self, gap_from: int | None, why: str) -> None:
        """Ask for a backfill pass. Requests made while a pass is queued share that pass:
        the cursors make one pass cover every gap before it started."""
        if gap_from is not None:
            self._gaps.append(gap_from)
        self._why = why if self._why in (None, "connected") else self._why
        self._need.set()
        if self._backfill_task is None or self._backfill_task.done():
            self._backfill_task = asyncio.create_task(self._backfill_worker())

    async def _backfill_worker(self) -> None:
        """Passes until none is asked for. A failed pass keeps its gaps for the next one,
        whatever it raised: an exception other than BinanceError (a store error, a bug) used
        to end this task with the gaps already taken off `_gaps`, so nothing filled them."""
        failures = 0
        while self._need.is_set():
            self._need.clear()
            gaps, self._gaps = self._gaps, []
            why, self._why = self._why or "backfill", None
            to = self.rest.server_now()
            try:
                res = await self.backfill.run()
            except Exception as exc:
                self._gaps = gaps + self._gaps  # not covered: the next pass must include them
                if isinstance(exc, BinanceError):
                    error = str(exc)
                else:  # the type only: an arbitrary message may carry a signed URL
                    error = type(exc).__name__
                    log.error("%s: backfill pass failed: %s", self.account, error)
                await self._status("backfill_failed", gaps=gaps, to=to, error=error)
                failures += 1
                await self._sleep(backoff_s(min(failures, 7), self._rng))
                self._need.set()
                continue
            failures = 0
            self.counters["backfills"] += 1
            self.counters["backfilled_facts"] += res.facts
            if not self._gaps:
                self.gap_open = False
            done = dict(symbols=res.symbols, orders=res.orders, trades=res.trades,
                        facts=res.facts, malformed=res.malformed)
            for gap_from in gaps:  # one record per gap, each naming the pass that filled it
                await self._status("gap", gap_from, gap_from=gap_from, to=to, **done)
            if not gaps:
                await self._status(why, to=to, **done)

    async def idle(self) -> None:
        """Wait for queued backfill passes to finish (tests, graceful stop)."""
        if self._backfill_task is not None:
            await asyncio.gather(self._backfill_task, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds / self.clock.speed)
        except TimeoutError:
            pass

    async def stop(self) -> None:
        """End the loop now; a connect in progress (a handshake, a subscribe the server does
        not answer, the clock sync's retries) is cancelled rather than waited out."""
        self._stop.set()
        self._wake.set()
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._backfill_task is not None:
            self._backfill_task.cancel()
            await asyncio.gather(self._backfill_task, return_exceptions=True)
