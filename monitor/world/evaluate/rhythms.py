"""Traffic with a rhythm, for the detectors with memory: recurring bursts, daily and weekly
cycles, quiet keys, slow ramps, restarts.

Each shape is a per-minute mean call count (numpy, vectorised) plus the intervals in it that a
detector should catch (`Marked`); `rhythm_traffic` turns shapes into the tapped requests the
generator's bots make (same columns, same helpers: `FrameBuilder`, `make_bots`, `make_config`),
one key per shape, Poisson around each minute's mean. A shape's `normal` flag says whether all
of it is ordinary traffic (false alerts on it count against a detector).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.core.clock import MINUTE_MS
from monitor.world.evaluate.frames import FrameBuilder
from monitor.world.evaluate.generator import READ_ENDPOINTS, START_MS, make_bots, make_config

WEEK = 7 * 1440


@dataclass(frozen=True)
class Marked:
    """An interval (minutes from the start) a detector should page for, and what it is."""

    start: int
    end: int
    what: str


@dataclass
class Shape:
    name: str
    mean: np.ndarray  # expected calls per minute, one per minute
    marked: list[Marked] = field(default_factory=list)
    exact: np.ndarray | None = None  # calls added exactly (bursts), not drawn

    @property
    def normal(self) -> bool:
        return not self.marked


def daily(minutes: int, rate: float, amp: float = 0.5, phase: float = 0.0) -> np.ndarray:
    m = np.arange(minutes)
    return rate * (1 + amp * np.sin(2 * np.pi * m / 1440 + phase))


def hourly_burst(minutes: int = WEEK, rate: float = 4.0, burst: int = 200, at: int = 7,
                 every: int = 60) -> Shape:
    """A steady key with `burst` extra calls in one minute of every `every` (a rebalance)."""
    exact = np.zeros(minutes)
    exact[at::every] = burst
    return Shape("hourly_burst", np.full(minutes, rate), exact=exact)


def weekly_cycle(minutes: int = WEEK, rate: float = 8.0, amp: float = 0.6,
                 weekend: float = 0.35, start_ms: int = START_MS) -> Shape:
    """A daily cycle, and weekends at `weekend` of the weekday level."""
    day = (start_ms // MINUTE_MS + np.arange(minutes)) // 1440
    factor = np.where((day + 3) % 7 >= 5, weekend, 1.0)  # 1970-01-01 was a Thursday
    return Shape("weekly_cycle", daily(minutes, rate, amp) * factor)


def quiet(minutes: int = WEEK, per_hour: float = 3.0) -> Shape:
    return Shape("quiet", np.full(minutes, per_hour / 60.0))


def quiet_then_burst(minutes: int = 2 * 1440, per_hour: float = 3.0, calls: int = 30,
                     span: int = 10) -> Shape:
    """A quiet key that makes `calls` calls in `span` minutes at the end of its first day+."""
    s = quiet(minutes, per_hour)
    at = minutes - 6 * 60
    s.mean[at:at + span] += calls / span
    s.name, s.marked = "quiet_burst", [Marked(at, at + span, f"{calls} calls in {span} min")]
    return s


def sustained_rise(base: Shape, factor: float = 3.0, at: int | None = None,
                   length: int = 30, ramp: int = 0) -> Shape:
    """`base` with its mean `factor` times higher for `length` minutes from `at` (reached
    over `ramp` minutes: a slow ramp)."""
    n = len(base.mean)
    at = n - 12 * 60 + 23 if at is None else at
    rise = np.ones(n)
    up = np.clip((np.arange(n) - at + 1) / max(ramp, 1), 0, 1) * (factor - 1) + 1
    rise[at:at + length] = up[at:at + length]
    return Shape(f"{base.name}+rise{factor:g}x", base.mean * rise,
                 [*base.marked, Marked(at, at + length, f"{factor:g}x for {length} min")],
                 base.exact)


def restart(minutes: int = 2 * 1440, rate: float = 2.0, calls: int = 18, times: int = 3
            ) -> Shape:
    """A 2-a-minute bot restarted `times` times on its second day: its start-up calls in one
    minute each time (normal: the operator did it)."""
    mean, exact = np.full(minutes, rate), np.zeros(minutes)
    at = np.linspace(1440 + 60, minutes - 60, times).astype(int)
    mean[at], exact[at] = 0.0, calls  # the start-up calls are that minute's calls
    return Shape("restart", mean, exact=exact)


@dataclass
class RhythmTraffic:
    events: pd.DataFrame
    config: Config
    keys: dict[str, Shape]  # key label -> its shape
    start_ms: int

    def marked_ms(self) -> list[tuple[str, int, int, str]]:
        """(key, start_ms, end_ms, what) of every interval to catch."""
        return [(k, self.start_ms + m.start * MINUTE_MS, self.start_ms + m.end * MINUTE_MS,
                 m.what) for k, s in self.keys.items() for m in s.marked]


def rhythm_traffic(shapes: list[Shape], seed: int = 0, start_ms: int = START_MS,
                   account: str = "acct0") -> RhythmTraffic:
    """One key per shape in one account: its tapped read calls, Poisson around the mean."""
    rng = np.random.default_rng(seed)
    bots = make_bots(rng, len(shapes), 1, start_ms)
    fb = FrameBuilder()
    for b, s in zip(bots, shapes, strict=True):
        b.account = account
        counts = rng.poisson(s.mean) + (0 if s.exact is None else s.exact.astype(np.int64))
        t = np.repeat(start_ms + np.arange(len(counts)) * MINUTE_MS, counts)
        t = t + rng.integers(0, MINUTE_MS, len(t))
        n = len(t)
        fb.add(n, event_id=fb.ids("tap", n), ts=t, received_ts=t + 5, account=account,
               key=b.label, source="tap", kind="request", ip=b.ip, method="GET",
               endpoint=np.asarray(READ_ENDPOINTS, object)[rng.integers(0, 4, n)],
               status=200.0, weight_1m=2.0, latency_ms=rng.gamma(2, 15, n))
    return RhythmTraffic(fb.frame(), make_config(bots), {b.label: s for b, s in
                                                        zip(bots, shapes, strict=True)}, start_ms)
