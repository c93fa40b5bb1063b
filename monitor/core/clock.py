"""Time comes from an injected clock, so the simulator and the tests can run hours in seconds.

Every component that reads the time or sleeps takes a `Clock`. The live service uses
`SystemClock`; the demo, the tests and the benchmarks share one `AcceleratedClock` between the
simulator and the service so both agree on "now" (signatures, recvWindow, windows, cooldowns).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol

# Time spans in milliseconds, the unit of every timestamp here (Binance's too): one definition.
SECOND_MS = 1_000
MINUTE_MS = 60 * SECOND_MS
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the epoch, UTC, in this clock's time."""
        ...

    def monotonic(self) -> float:
        """Seconds on a monotonic scale in this clock's time (for intervals and timeouts)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""
        ...

    @property
    def speed(self) -> float: ...


class SystemClock:
    speed = 1.0

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class AcceleratedClock:
    """Runs `speed` times faster than the wall clock from `start_ms` (default: now).

    `shift(ms)` jumps the clock, which is how tests model a skewed server or host clock.
    """

    def __init__(self, speed: float = 1.0, start_ms: int | None = None,
                 anchor: float | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._speed = float(speed)
        # `anchor` is the time.monotonic() reading at which the clock read `start_ms`; passing
        # both to another process gives it the same clock (CLOCK_MONOTONIC is system-wide).
        self._wall0 = time.monotonic() if anchor is None else anchor
        self._start_ms = start_ms if start_ms is not None else time.time_ns() // 1_000_000
        self._offset_ms = 0

    @property
    def speed(self) -> float:
        return self._speed

    def now_ms(self) -> int:
        elapsed = (time.monotonic() - self._wall0) * self._speed
        return self._start_ms + int(elapsed * 1000) + self._offset_ms

    def monotonic(self) -> float:
        return (time.monotonic() - self._wall0) * self._speed

    @property
    def anchor(self) -> tuple[int, float]:
        """(start_ms, monotonic anchor): what another process needs to share this clock."""
        return self._start_ms + self._offset_ms, self._wall0

    def shift(self, ms: int) -> None:
        self._offset_ms += ms

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self._speed)


class ManualClock:
    """A clock that moves only when told: for plain-function unit tests."""

    speed = 1.0

    def __init__(self, start_ms: int = 1_785_000_000_000) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def monotonic(self) -> float:
        return self._now / 1000.0

    def advance(self, ms: int) -> None:
        self._now += ms

    async def sleep(self, seconds: float) -> None:
        self._now += int(seconds * 1000)
        await asyncio.sleep(0)


# Network round trips take wall time whatever the clock's speed: at 240x a 50 ms reply is 12 s
# of clock time. Timeouts that wait on the network are never shorter than this in wall seconds,
# or an accelerated run would declare healthy sockets dead.
NETWORK_FLOOR_S = 0.5


def network_timeout(clock: Clock, clock_seconds: float) -> float:
    """Wall seconds to wait for a network answer allowed `clock_seconds` of clock time."""
    return max(clock_seconds / clock.speed, NETWORK_FLOOR_S)


def utc_minute(ms: int) -> str:
    """An epoch-ms time as alerts and findings print it: `2026-07-25 17:20 UTC`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def utc_second(ms: int) -> str:
    """An epoch-ms time to the second, as a crossing trigger names its event: `17:20:07 UTC`."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S UTC")
