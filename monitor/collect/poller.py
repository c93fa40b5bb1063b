"""The REST poller: what only polling can see, on a schedule the weight budget allows.

Per account, each round: the monitor key's `apiRestrictions` (diffed against the stored
snapshot into `key_config` events), `apiTradingStatus` (lock flag and trigger indicators), the
account-wide order counters (`rateLimit/order`, weight 40: the one place orders placed by
*anyone* holding any key show up as numbers), the last price of the watched symbols
(`ticker/price`, weight 4: what a tapped MARKET order is worth), balances every
`balances_every` rounds (the stream carries changes live), withdrawal history every
`withdrawals_every` rounds (UID weight 18000), and orders/trades since the cursor when the
stream is not covering them. The budget in `BinanceRest.spend` stretches the schedule rather
than overspend. Each answer's headers already become `usage` events inside `BinanceRest`.
The host's address is shared with the tapped bots: a step whose pool this minute has no room
for (their flood spent it, as the tap's weight headers show) runs after the others and waits
only for that pool's next minute.

Nothing one poll meets stops the poller: a step that raises anything is logged and counted and
the round goes on; a round that raises is counted and the next waits a jittered backoff; the
poller's own store reads and writes (key snapshots, the withdrawal cursor) run off the event
loop and are retried while the store is locked. `stop()` ends a round mid-wait (a retry's
backoff, a ban's pause) instead of letting the collector wait it out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

from monitor.binance import parse_rest
from monitor.binance.logfilter import scrub
from monitor.binance.parse import Ctx, safely
from monitor.binance.rest import (
    BinanceError,
    BinanceRest,
    KeyRejected,
    MonitorKeyRejected,
    backoff_s,
)
from monitor.collect.backfill import Backfill
from monitor.core.events import Event, Kind, Source, make_event_id
from monitor.core.keyrestrictions import KeyRestrictions
from monitor.store import Store

log = logging.getLogger(__name__)
POSTURE_RETRY_MS = 3_600_000  # a key that refuses this host is asked again after an hour
# each step's weight pool and weight (budget.pool_for of its path), to order a round
STEP_POOLS = {"key_config": ("sapi_ip", 1), "trading_status": ("sapi_ip", 1),
              "order_counts": ("api", 40), "balances": ("api", 20),
              "withdrawals": ("sapi_uid", 18000), "_backfill": ("api", 20),
              "prices": ("api", 4)}
PRICE_SYMBOLS_MAX = 100
STORE_ATTEMPTS = 6  # tries of one store call while the store is locked (~6 s of backoff)
T = TypeVar("T")


def _price_event(row: object, ctx: Ctx, ts: int) -> list[Event]:
    if not isinstance(row, dict) or not isinstance(row.get("symbol"), str):
        raise ValueError("ticker/price row without a symbol")
    price = float(row["price"])
    if not price > 0 or price == float("inf"):
        raise ValueError(f"ticker/price {row['symbol']}: price {row['price']!r}")
    return [Event(event_id=make_event_id(Source.REST, "price", ctx.account, row["symbol"], ts),
                  ts=ts, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
                  source=Source.REST, kind=Kind.PRICE, endpoint="/api/v3/ticker/price",
                  symbol=row["symbol"], price=price)]


class Poller:
    def __init__(
        self,
        rest: BinanceRest,
        store: Store,
        put: Callable[[list[Event]], Awaitable[None]],
        backfill: Backfill | None = None,
        *,
        interval_s: float = 60.0,
        balances_every: int = 5,
        withdrawals_every: int = 10,
        stream_healthy: Callable[[], bool] = lambda: False,
        posture: list[BinanceRest] | None = None,
        posture_retry_ms: int = POSTURE_RETRY_MS,
    ) -> None:
        self.rest, self.store, self.put, self.backfill = rest, store, put, backfill
        self.account, self.key = rest.account, rest.key_label
        self.interval_s = interval_s
        self.balances_every, self.withdrawals_every = balances_every, withdrawals_every
        self.stream_healthy = stream_healthy
        # Other keys whose secrets the user chose to give: only apiRestrictions is ever called
        # with them (Binance answers a key's flags only to that key itself).
        self.posture = posture or []
        self.rounds = 0
        self.counters = {"rounds": 0, "errors": 0, "key_changes": 0, "malformed": 0,
                         "posture_refused": 0, "deferred": 0, "unexpected": 0,
                         "failed_rounds": 0, "store_retries": 0}
        self._posture_paused: dict[str, int] = {}  # key label -> retry after (ms)
        self.posture_retry_ms = posture_retry_ms
        self._stop = asyncio.Event()
        # the monitor key's restrictions at this run's first poll (what the preflight accepted)
        self._monitor_at_start: KeyRestrictions | None = None
        self._rng = random.Random()
        self._task: asyncio.Task[None] | None = None  # run()'s task, while a round is going
        self.store_backoff_s = 0.2  # wall seconds before the first store retry (doubles)

    def _ctx(self) -> Ctx:
        return Ctx(account=self.account, key=self.key, received_ts=self.rest.clock.now_ms())

    async def _emit(self, events: list[Event]) -> None:
        self.counters["malformed"] += sum(":malformed:" in e.event_id for e in events)
        await self.put(events)

    async def poll_once(self) -> None:
        """One round; each step's failure is logged and counted, the others still run."""
        steps: list[Callable[[], Awaitable[None]]] = [
            self.key_config, self.trading_status, self.order_counts, self.prices]
        if self.rounds % self.balances_every == 0:
            steps.append(self.balances)
        if self.rounds % self.withdrawals_every == 0:
            steps.append(self.withdrawals)
        if self.backfill is not None and not self.stream_healthy():
            steps.append(self._backfill)
        for step in self._ready_first(steps):
            try:
                await step()
            except MonitorKeyRejected:
                self.counters["errors"] += 1
                break  # the status event is out; more calls would only be rejected too
            except BinanceError as exc:
                self.counters["errors"] += 1
                log.warning("%s: poll step %s failed: %s", self.account, step.__name__, exc)
            except Exception as exc:  # a bug or a hostile answer: counted, never fatal
                self._unexpected(f"poll step {step.__name__}", exc)
        for rest in self.posture:
            label = rest.key_label or ""
            if self.rest.clock.now_ms() < self._posture_paused.get(label, 0):
                continue
            try:
                await self.key_config(rest)
            except KeyRejected as exc:
                self.counters["posture_refused"] += 1
                if label not in self._posture_paused:
                    log.warning(
                        "%s: Binance refuses key %s's own posture to this host (code %s): its IP "
                        "whitelist probably does not include this host. Add this host to it, or "
                        "remove the key's secret from the config; retrying hourly.",
                        self.account, label, exc.code)
                self._posture_paused[label] = self.rest.clock.now_ms() + self.posture_retry_ms
            except BinanceError as exc:
                self.counters["errors"] += 1
                log.warning("%s: key %s posture poll failed: %s", self.account, label, exc)
            except Exception as exc:
                self._unexpected(f"key {label} posture poll", exc)
        self.rounds += 1
        self.counters["rounds"] += 1

    def _unexpected(self, what: str, exc: Exception) -> None:
        self.counters["errors"] += 1
        self.counters["unexpected"] += 1
        log.error("%s: %s failed unexpectedly: %s: %s", self.account, what,
                  type(exc).__name__, scrub(str(exc))[:300])

    async def _store(self, fn: Callable[..., T], *args: object) -> T:
        """One store call in a worker thread (a locked store blocks for its busy timeout, and
        the loop must not), retried with backoff while SQLite says the store is locked or
        busy; the last failure is raised to the step (counted there)."""
        delay = self.store_backoff_s
        for attempt in range(STORE_ATTEMPTS):
            try:
                return await asyncio.to_thread(fn, *args)
            except sqlite3.OperationalError as exc:
                if attempt == STORE_ATTEMPTS - 1:
                    raise
                self.counters["store_retries"] += 1
                log.warning("%s: store busy (%s); retrying in %.1f s", self.account, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def _ready_first(self, steps: list[Callable[[], Awaitable[None]]]
                     ) -> list[Callable[[], Awaitable[None]]]:
        """Steps whose weight pool has room now first; a step whose pool must wait (the
        address's /api minute spent by the tapped bots, or a 429's pause) goes last, so it
        holds up no other step, and waits only until its pool's next minute (the per-IP limit
        forces that much: sent now it would be answered 429, and repeated 429s get the host
        banned with 418)."""
        budgets, now = self.rest.budgets, self.rest.server_now()
        ready: list[Callable[[], Awaitable[None]]] = []
        later: list[Callable[[], Awaitable[None]]] = []
        for step in steps:
            pool, weight = STEP_POOLS.get(step.__name__, ("api", 1))
            wait = max(budgets.paused_until.get(pool, 0) - now,
                       budgets.shared.wait_ms(weight, now, budgets.pools[pool].head_ms)
                       if pool == "api" else 0)
            (later if wait > 0 else ready).append(step)
            if wait > 0:
                self.counters["deferred"] += 1
                log.warning(
                    "%s: poll step %s waits %.1f s for the next minute of its %s weight pool: "
                    "this address has used %d of %d this minute (the tapped bots share it); "
                    "sent now it would be refused with 429", self.account, step.__name__,
                    wait / 1000, pool, budgets.shared.used, budgets.shared.limit)
        return ready + later

    async def key_config(self, rest: BinanceRest | None = None) -> None:
        rest = rest or self.rest
        res = await rest.get("/sapi/v1/account/apiRestrictions", weight=1)
        ctx = Ctx(account=self.account, key=rest.key_label, received_ts=rest.clock.now_ms())
        try:
            rec = parse_rest.key_restrictions(res.body)
        except ValueError:
            await self._emit(safely(Source.REST, ctx, "apiRestrictions", res.body,
                                    parse_rest.key_restrictions, res.body))
            return
        label = rest.key_label or ""
        prev = await self._store(self.store.last_key_snapshot, self.account, label)
        retired_for: tuple[str, ...] = ()
        if rest is self.rest:  # the monitor key: rights gained since start retire it
            start = self._monitor_at_start = self._monitor_at_start or rec
            retired_for = rec.gained(start)
        ev = parse_rest.key_config_event(
            ctx, res.ts, rec, prev[1] if prev else None,
            retired_for=retired_for)
        if ev is not None:
            self.counters["key_changes"] += prev is not None
            await self._emit([ev])
            await self._store(self.store.save_key_snapshot, self.account, label, res.ts, rec)
        if retired_for:
            why = (f"the monitor key {label} of account {self.account} gained "
                   f"{', '.join(retired_for)} while Keywatch was running; a read-only monitor "
                   "key must never trade or withdraw, so Keywatch stopped signing with it")
            log.error("%s. Turn those off or configure a new read-only key, then restart.", why)
            rest.retire(why)

    async def trading_status(self) -> None:
        res = await self.rest.get("/sapi/v1/account/apiTradingStatus", weight=1)
        await self._emit(safely(Source.REST, self._ctx(), "apiTradingStatus", res.body,
                                parse_rest.trading_status, res.body, self._ctx(), res.ts))

    async def order_counts(self) -> None:
        res = await self.rest.get("/api/v3/rateLimit/order", weight=40)
        await self._emit(safely(Source.REST, self._ctx(), "rateLimit/order", res.body,
                                parse_rest.order_counts, res.body, self._ctx(), res.ts))

    async def prices(self) -> None:
        """The last price of each watched symbol (declared or traded, `Backfill.symbols`), one
        `price` event each: what a MARKET order the tap saw (quantity, no price) is worth.
        One call for all of them, weight 4 (Binance's weight for `symbols`), every round."""
        symbols = sorted(self.backfill.symbols)[:PRICE_SYMBOLS_MAX] if self.backfill else []
        if not symbols:
            return
        res = await self.rest.get("/api/v3/ticker/price",
                                  {"symbols": json.dumps(symbols, separators=(",", ":"))},
                                  weight=4, signed=False)
        rows = res.body if isinstance(res.body, list) else [res.body]
        ctx = self._ctx()
        events: list[Event] = []
        for row in rows:
            events += safely(Source.REST, ctx, "ticker/price", row, _price_event, row, ctx,
                             res.ts)
        await self._emit(events)

    async def balances(self) -> None:
        res = await self.rest.get("/api/v3/account", {"omitZeroBalances": "true"}, weight=20)
        await self._emit(safely(Source.REST, self._ctx(), "account", res.body,
                                parse_rest.account_balances, res.body, self._ctx()))

    async def withdrawals(self) -> None:
        cursor_name = f"withdrawals:{self.account}"
        since = await self._store(self.store.get_cursor, cursor_name)
        now = self.rest.server_now()
        start = int(since) if since else now - 90 * 86_400_000 + 60_000
        res = await self.rest.get("/sapi/v1/capital/withdraw/history",
                                  {"startTime": start, "limit": 1000}, weight=18000)
        rows = res.body if isinstance(res.body, list) else [res.body]
        ctx = self._ctx()
        events: list[Event] = []
        for row in rows:
            events += safely(Source.REST, ctx, "withdraw/history", row, parse_rest.withdrawal,
                             row, ctx)
        await self._emit(events)
        # Re-read the last day each time: a withdrawal's status changes after it is applied.
        await self._store(self.store.set_cursor, cursor_name, str(max(start, now - 86_400_000)))

    async def _backfill(self) -> None:
        assert self.backfill is not None
        await self.backfill.run()

    async def run(self) -> None:
        """Poll every `interval_s` until `stop()`; a round that raises is counted, then the
        next waits at least a jittered backoff (growing while rounds keep failing)."""
        failures = 0
        clock = self.rest.clock
        while not self._stop.is_set():
            started = clock.monotonic()
            self._task = asyncio.current_task()
            try:
                await self.poll_once()
                failures = 0
            except asyncio.CancelledError:
                if self._stop.is_set() and self._task is not None:
                    self._task.uncancel()  # stop() ended the round: a normal end
                    return
                raise
            except Exception as exc:
                failures += 1
                self.counters["failed_rounds"] += 1
                self._unexpected("poll round", exc)
            finally:
                self._task = None
            left = self.interval_s - (clock.monotonic() - started)
            if failures:
                left = max(left, backoff_s(failures, self._rng, base=1.0))
            if left > 0:
                try:
                    await asyncio.wait_for(self._stop.wait(), left / clock.speed)
                except TimeoutError:
                    pass

    async def stop(self) -> None:
        """End the loop now: a round in progress (waiting out a retry's backoff, a ban or the
        budget) is cancelled, so the collector never waits for it."""
        self._stop.set()
        if self._task is not None and not self._task.done():
            self._task.cancel()
