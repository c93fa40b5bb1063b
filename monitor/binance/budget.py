"""The collector's own weight budget: a plain, clock-free calculator.

Binance counts weight per IP in calendar-aligned minutes (binance-wire.md section 2.1), and
the monitor shares its host's IP with the user's bots, so Keywatch keeps to a small slice
(default 1 % of 6000 = 60 per minute). The budget is checked against the *server's* minute,
spending only between :05 and the guard before the minute's end, so neither latency nor a
clock a few seconds off (before the next resync) lets the server count a request in a
neighbouring minute on top of that minute's own allowance. A call heavier than a whole minute's
allowance (withdraw history costs 18000 of the UID pool) is allowed alone and then blocks the
pool long enough that the average stays within the budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MINUTE_MS = 60_000

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


class Budgets:
    """The three pools, each at the same fraction of its limit."""

    def __init__(self, api_per_minute: float = 60.0, guard_ms: int = 5_000) -> None:
        self.fraction = api_per_minute / POOL_LIMITS["api"]
        self.pools = {
            name: WeightBudget(per_minute=limit * self.fraction, guard_ms=guard_ms,
                               reserve=limit * self.fraction * RESERVE_FRACTION)
            for name, limit in POOL_LIMITS.items()
        }

    def charge(self, pool: str, weight: float, now_ms: int, *, priority: bool = False) -> int:
        return self.pools[pool].charge(weight, now_ms, priority=priority)

    def spent(self) -> dict[str, float]:
        return {name: p.total for name, p in self.pools.items()}
