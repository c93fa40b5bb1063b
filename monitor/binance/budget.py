"""The collector's own weight budget: a plain, clock-free calculator.

Binance counts weight per IP in calendar-aligned minutes (binance-wire.md section 2.1), and
the monitor shares its host's IP with the user's bots, so Keywatch keeps to a small slice
(default 1 % of 6000 = 60 per minute). The budget is checked against the *server's* minute,
spending only between :05 and the guard before the minute's end, so neither latency nor a
clock a few seconds off (before the next resync) lets the server count a request in a
neighbouring minute on top of that minute's own allowance. A call heavier than a whole minute's
allowance (withdraw history costs 18000 of the UID pool) is allowed alone and then blocks the
pool long enough that the average stays within the budget.

The IP's minute is shared with the bots behind the tap, which forwards from this same host: the
tap's records carry the X-MBX-USED-WEIGHT-1M Binance reports to them, and `SharedWeight` keeps
the highest of the current minute. A call that would take the address past the per-IP limit
(it would be answered 429, and repeated 429s earn the whole host a 418 ban) waits for the next
minute, in its own pool only: the /sapi pools are counted apart from /api's 6000, so a bot's
flood of /api calls never holds up apiRestrictions or apiTradingStatus. A 429 the monitor
itself gets pauses its pool (`pause`), not the others; only a 418 (an IP ban) stops every call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from monitor.core.clock import MINUTE_MS

# Per-minute limits of each pool (binance-wire.md section 2.2).
POOL_LIMITS = {"api": 6000, "sapi_ip": 12000, "sapi_uid": 180000}
RESERVE_FRACTION = 0.15  # of each minute, kept for the stream's probes and reconnects
UID_WEIGHT_PATHS = {"/sapi/v1/capital/withdraw/history": 18000}


def guard_for(speed: float) -> int:
    """The end-of-minute guard: 5 s plus ~150 ms of wall-clock latency at the clock's speed.

    Capped at 40 s so an accelerated clock (a benchmark at 480x) still leaves part of each
    minute to spend in; at real speed it is 5.15 s.
    """
    return min(5_000 + int(150 * speed), 40_000)


def pool_for(path: str) -> str:
    if path in UID_WEIGHT_PATHS:
        return "sapi_uid"
    return "sapi_ip" if path.startswith("/sapi/") else "api"


@dataclass
class WeightBudget:
    """Calendar-minute accounting of one pool. `charge` says go (0) or how long to wait."""

    per_minute: float
    guard_ms: int = 5_000
    reserve: float = 0.0
    head_ms: int = 5_000
    minute: int = -1
    used: float = 0.0
    blocked_until_minute: int = -1
    total: float = field(default=0.0)

    def charge(self, weight: float, now_ms: int, *, priority: bool = False) -> int:
        """Charge `weight` now (return 0) or say how many ms to wait.

        `reserve` is kept for priority calls (the stream's small liveness probes and
        reconnects), so routine polling can never starve the watchdog.
        """
        minute, into = divmod(now_ms, MINUTE_MS)
        next_start = (minute + 1) * MINUTE_MS
        if minute < self.blocked_until_minute:
            return self.blocked_until_minute * MINUTE_MS - now_ms + 1
        if minute != self.minute:
            self.minute, self.used = minute, 0.0
        if into < self.head_ms:  # a host clock a few seconds off must not spill backwards
            return self.head_ms - into + 1
        if into > MINUTE_MS - self.guard_ms:
            return next_start - now_ms + self.head_ms + 1
        cap = self.per_minute if priority else self.per_minute - self.reserve
        if self.used + weight <= cap:
            self.used += weight
            self.total += weight
            return 0
        if weight > cap and self.used == 0 and into < self.head_ms + self.guard_ms:
            self.used = weight
            self.total += weight
            self.blocked_until_minute = minute + math.ceil(weight / self.per_minute)
            return 0
        return next_start - now_ms + 1


@dataclass
class SharedWeight:
    """The address's /api weight in its current calendar minute, as the tap saw it reported.

    `observe` takes the tap's records (anything with ts, endpoint, status, weight_1m); a 429
    or 418 answer to an /api call means the minute is spent, whatever its header said.
    """

    limit: int = POOL_LIMITS["api"]
    minute: int = -1
    used: float = 0.0
    observed: int = 0

    def observe(self, records: Iterable[Any]) -> None:
        for r in records:
            path = getattr(r, "endpoint", None)
            if not isinstance(path, str) or pool_for(path) != "api":
                continue
            minute = int(r.ts) // MINUTE_MS
            if minute < self.minute:
                continue
            if minute > self.minute:
                self.minute, self.used = minute, 0.0
            w = getattr(r, "weight_1m", None)
            if getattr(r, "status", None) in (429, 418):
                w = float(self.limit)
            if w is not None and w > self.used:
                self.used = float(w)
            self.observed += 1

    def wait_ms(self, weight: float, now_ms: int, head_ms: int) -> int:
        """0 when `weight` more keeps the address within the limit this minute, else the ms
        until the next minute's first safe moment (what the per-IP limit forces)."""
        minute = now_ms // MINUTE_MS
        if minute != self.minute or self.used + weight <= self.limit:
            return 0
        return (minute + 1) * MINUTE_MS - now_ms + head_ms + 1


class Budgets:
    """The three pools, each at the same fraction of its limit, plus what the address's other
    users (the tapped bots) spent of the /api pool and any 429 pause per pool."""

    def __init__(self, api_per_minute: float = 60.0, guard_ms: int = 5_000) -> None:
        self.fraction = api_per_minute / POOL_LIMITS["api"]
        self.pools = {
            name: WeightBudget(per_minute=limit * self.fraction, guard_ms=guard_ms,
                               reserve=limit * self.fraction * RESERVE_FRACTION)
            for name, limit in POOL_LIMITS.items()
        }
        self.shared = SharedWeight()
        self.paused_until: dict[str, int] = {}  # pool -> server ms (a 429's Retry-After)
        self.deferred: dict[str, int] = {name: 0 for name in POOL_LIMITS}  # calls held back

    def pause(self, pool: str, until_ms: int) -> None:
        self.paused_until[pool] = max(self.paused_until.get(pool, 0), until_ms)

    def charge(self, pool: str, weight: float, now_ms: int, *, priority: bool = False) -> int:
        paused = self.paused_until.get(pool, 0) - now_ms
        if paused > 0:
            return paused
        if pool == "api":
            wait = self.shared.wait_ms(weight, now_ms, self.pools[pool].head_ms)
            if wait > 0:
                self.deferred[pool] += 1
                return wait
        return self.pools[pool].charge(weight, now_ms, priority=priority)

    def spent(self) -> dict[str, float]:
        return {name: p.total for name, p in self.pools.items()}
