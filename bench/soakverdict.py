"""The hostile soak's verdict (`bench.hostile_soak`): plain data in, a list of failures out.

Why a module of its own: the soak is only worth running if it can fail, and a verdict buried
in the orchestration could not be tested without a two-minute run. Everything the soak
measured is reduced to the records below (what was sent, what the store holds, what the
service's counters say, the RSS samples, each tap probe); `judge` says what is wrong with them,
and `tests/test_bench_soak.py` feeds it small hand-made runs, each broken in one way.

The acceptance in issue 15: every valid fact stored exactly once, every bad input counted, RSS
under 200 MiB throughout, the tap answering throughout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

MIB = 2**20
RSS_LIMIT_MIB = 200.0
TAP_GAP_LIMIT_S = 2.0  # the longest the tap may go without answering a probe


@dataclass(frozen=True)
class FactCheck:
    """One family of valid facts: ids the sending side knows it sent, ids the store holds.

    Missing = sent and not stored; extra = stored and never sent (a duplicate under another
    id, or a hostile value taken for a fact). When a family has no stable id (a tap record's id
    is random), both sides are counts and `missing`/`extra` are the difference."""

    family: str
    sent: int
    stored: int
    missing: int
    extra: int
    examples: tuple[str, ...] = ()

    @classmethod
    def by_id(cls, family: str, sent: Iterable[str], stored: Iterable[str]) -> FactCheck:
        want, got = set(sent), set(stored)
        diff = sorted(want ^ got)[:3]
        return cls(family, len(want), len(got), len(want - got), len(got - want), tuple(diff))

    @classmethod
    def by_count(cls, family: str, sent: int, stored: int) -> FactCheck:
        return cls(family, sent, stored, max(0, sent - stored), max(0, stored - sent))

    def failure(self) -> str | None:
        if self.sent == 0:
            return f"{self.family}: none sent, so nothing was shown"
        if self.missing or self.extra:
            eg = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
            return (f"{self.family}: {self.stored:,} stored of {self.sent:,} sent, "
                    f"{self.missing} missing, {self.extra} extra{eg}")
        return None


@dataclass(frozen=True)
class BadCheck:
    """One kind of bad input: how many the hostile side sent and what the service counted.

    `at_least`: the counter may legitimately count more than was sent (a reconnect after a
    dropped connection also counts the reconnect's own failures); otherwise it must match."""

    what: str
    sent: int
    counted: int
    counter: str
    at_least: bool = False

    def failure(self) -> str | None:
        if self.sent == 0:
            return f"{self.what}: none sent"
        ok = self.counted >= self.sent if self.at_least else self.counted == self.sent
        if not ok:
            return (f"{self.what}: {self.sent:,} sent, {self.counter} counted "
                    f"{self.counted:,}")
        return None


@dataclass(frozen=True)
class Probe:
    """One tap probe: when it was sent (wall s since the soak began), in which phase, and its
    latency in ms (None: no answer from the tap within the probe's timeout)."""

    at_s: float
    phase: str
    ms: float | None


@dataclass
class SoakResult:
    facts: list[FactCheck] = field(default_factory=list)
    bad: list[BadCheck] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)  # one /proc sample every 0.5 s
    rss_hwm_mib: float = 0.0  # the kernel's VmHWM at the end: peaks between samples too
    probes: list[Probe] = field(default_factory=list)
    zero: dict[str, float] = field(default_factory=dict)  # counters that must stay at 0

    @property
    def rss_peak_mib(self) -> float:
        return max([self.rss_hwm_mib, *self.rss_mib])

    def p99(self, phase: str) -> float:
        ms = [p.ms for p in self.probes if p.phase == phase and p.ms is not None]
        return float(np.percentile(ms, 99)) if ms else float("nan")

    def unanswered(self, phase: str | None = None) -> int:
        return sum(p.ms is None for p in self.probes if phase in (None, p.phase))

    def longest_gap(self) -> tuple[float, float]:
        """(start s, length s) of the longest stretch without an answered probe."""
        answered = sorted(p.at_s + (p.ms or 0) / 1000 for p in self.probes if p.ms is not None)
        if not self.probes:
            return (0.0, float("inf"))
        edges = [min(p.at_s for p in self.probes), *answered,
                 max(p.at_s for p in self.probes)]
        return max(((a, b - a) for a, b in zip(edges, edges[1:], strict=False)),
                   key=lambda g: g[1])

    def longest_gap_s(self) -> float:
        return self.longest_gap()[1]


def judge(r: SoakResult, *, phases: tuple[str, ...] = ("clean", "hostile")) -> list[str]:
    """Every reason the soak fails; empty when it passes."""
    found = [c.failure() for c in r.facts] + [b.failure() for b in r.bad]
    out = [f for f in found if f is not None]
    if not r.facts:
        out.append("no valid facts were checked")
    if not r.bad:
        out.append("no bad inputs were checked")
    out += [f"{name} is {v:g} (must be 0)" for name, v in r.zero.items() if v]
    if not r.rss_mib:
        out.append("RSS was never sampled")
    elif r.rss_peak_mib >= RSS_LIMIT_MIB:
        out.append(f"RSS peaked at {r.rss_peak_mib:.0f} MiB (limit {RSS_LIMIT_MIB:.0f} MiB)")
    for phase in phases:
        if not any(p.phase == phase and p.ms is not None for p in r.probes):
            out.append(f"the tap answered no probe in the {phase} phase")
    if r.unanswered():
        out.append(f"the tap left {r.unanswered()} of {len(r.probes)} probes unanswered")
    gap = r.longest_gap_s()
    if gap > TAP_GAP_LIMIT_S:
        out.append(f"the tap went {gap:.1f} s without answering (limit {TAP_GAP_LIMIT_S:g} s)")
    return out
