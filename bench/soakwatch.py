"""What the hostile soak watches in the service process while it is attacked.

- the service's RSS: `bench.common.RssSampler` (shared with the day soak), every 0.5 s (wall).
- `TapProbe`: a valid call through the tap every 50 ms with its own API key, timed, so the
  tap's answer time with and without hostile traffic comes from the same client in one run.
  A probe that gets no answer within its timeout is recorded as unanswered.
- `scrape`: the service's /metrics as {(series name, sorted labels): value}, parsed with
  prometheus_client's own parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.soakverdict import Probe

Series = tuple[str, tuple[tuple[str, str], ...]]


class Timeline:
    """What the soak did when (wall s since `t0`), so a peak or a gap can be put next to the
    hostile action just before it."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.marks: list[tuple[float, str]] = []

    def now(self) -> float:
        return time.monotonic() - self.t0

    def mark(self, what: str) -> None:
        self.marks.append((self.now(), what))

    @contextlib.asynccontextmanager
    async def span(self, what: str) -> AsyncIterator[None]:
        """Mark `what` when it starts and `what.` when it ends."""
        self.mark(what)
        try:
            yield
        finally:
            self.mark(what + ".")

    def before(self, at_s: float, window_s: float = 3.0) -> list[str]:
        return [f"{w}@{t:.1f}" for t, w in self.marks if at_s - window_s <= t <= at_s + 0.5]


class TapProbe:
    """GET /api/v3/time through the tap, one at a time, every `every_s`; `phase` labels each
    probe with the soak's current phase. Each probe the tap answers is a tap record the store
    must hold (key `probe`), whatever status the upstream gave."""

    def __init__(self, tap_url: str, api_key: str, timeline: Timeline, every_s: float = 0.05,
                 timeout_s: float = 5.0) -> None:
        self.tap_url, self.api_key, self.timeline = tap_url, api_key, timeline
        self.every_s, self.timeout_s = every_s, timeout_s
        self.phase = "clean"
        self.probes: list[Probe] = []
        self.answered = 0  # answers with a status line from the tap (each one is recorded)

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"X-MBX-APIKEY": self.api_key}
        async with httpx.AsyncClient(timeout=self.timeout_s) as http:
            while not stop.is_set():
                start = time.monotonic()
                ms: float | None
                try:
                    r = await http.get(f"{self.tap_url}/api/v3/time", headers=headers)
                    ms = (time.monotonic() - start) * 1000
                    self.answered += 1
                    if r.status_code == 502:  # the tap's own "upstream unreachable"
                        ms = None
                except httpx.HTTPError:
                    ms = None
                self.probes.append(Probe(start - self.timeline.t0, self.phase, ms))
                await asyncio.sleep(max(0.0, self.every_s - (time.monotonic() - start)))


async def scrape(metrics_url: str) -> dict[Series, float]:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(metrics_url)
        r.raise_for_status()
    out: dict[Series, float] = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(metrics: dict[Series, float], name: str, **labels: str) -> float:
    """The sum of `name` over every series whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in metrics.items() if n == name and want <= set(lab))
