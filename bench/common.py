"""Shared plumbing for benchmarks: one result row shape, machine facts, the table printer, and
the one RSS sampler both soaks read the service process with (`proc_rss`, `RssSampler`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).with_name("results.json")
MIB = 2**20


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    baseline: float | None
    baseline_name: str
    goal: str = ""
    met: bool | None = None
    note: str = ""  # how it was measured / by how much a goal is missed (results.json only)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline  # type: ignore[operator]


class FigureFailed(Exception):
    """A figure that is a verdict as well as a number (the hostile soak) and failed it: its
    rows are still reported, and `bench.run` exits non-zero."""

    def __init__(self, rows: list[Row], reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.rows, self.reasons = rows, reasons


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def write(rows: list[Row], path: Path = RESULTS, *, merge: bool = False) -> None:
    """Write `rows` to results.json; `merge` (a run of some figures only) keeps the other
    figures' last results, each with its own date, instead of dropping them."""
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    payload = [
        {**asdict(r), "ratio": r.ratio, "machine": machine(), "date": when} for r in rows
    ]
    if merge and path.exists():
        new = {r.figure for r in rows}
        payload = [old for old in json.loads(path.read_text()) if old["figure"] not in new
                   ] + payload
    path.write_text(json.dumps(payload, indent=2) + "\n")


def show(rows: list[Row]) -> None:
    table = Table(title=f"Keywatch benchmarks ({machine()})")
    for col in ("figure", "value", "unit", "baseline", "ratio", "goal", "met"):
        table.add_column(col, justify="right" if col in ("value", "baseline", "ratio") else "left")
    for r in rows:
        table.add_row(
            r.figure, f"{r.value:,.2f}", r.unit,
            "-" if r.baseline is None else f"{r.baseline:,.2f} ({r.baseline_name})",
            "-" if r.ratio is None else f"{r.ratio:.2f}x", r.goal,
            "-" if r.met is None else ("yes" if r.met else "NO"),
        )
    Console().print(table)


def markdown(rows: list[Row]) -> str:
    """The README table: the same columns as `show`, for pasting."""
    out = [f"Machine: {machine()}", "",
           "| figure | value | unit | baseline | ratio | goal | met |",
           "|---|---:|---|---|---:|---|---|"]
    for r in rows:
        base = "-" if r.baseline is None else f"{r.baseline:,.2f} ({r.baseline_name})"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        met = "-" if r.met is None else ("yes" if r.met else "**no**")
        out.append(f"| {r.figure} | {r.value:,.2f} | {r.unit} | {base} | {ratio} | {r.goal} "
                   f"| {met} |")
    return "\n".join(out)


def proc_rss(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of process `pid` in MiB, from /proc/<pid>/status."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = int(rest.split()[0]) * 1024 / MIB  # the kernel reports kB
    return out["VmRSS"], out["VmHWM"]


class RssSampler:
    """The resident memory (MiB) of process `pid`, sampled from /proc: `sample()` when the
    caller chooses (the day soak: each simulated hour) or `run(stop)` every `every_s` wall
    seconds (the hostile soak). `hwm` is the kernel's high-water mark at the last sample, so a
    spike between two samples still counts; `times` are `now()` at each sample."""

    def __init__(self, pid: int, now: Callable[[], float] = time.monotonic,
                 every_s: float = 0.5) -> None:
        self.pid, self.now, self.every_s = pid, now, every_s
        self.samples: list[float] = []
        self.times: list[float] = []
        self.hwm = 0.0

    def sample(self) -> float:
        rss, self.hwm = proc_rss(self.pid)
        self.samples.append(rss)
        self.times.append(self.now())
        return rss

    def peak(self) -> tuple[float, float]:
        """(time, MiB) of the largest sample."""
        i = max(range(len(self.samples)), key=self.samples.__getitem__, default=None)
        return (float("nan"), 0.0) if i is None else (self.times[i], self.samples[i])

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self.sample()
            except (OSError, KeyError):  # the process is gone: the soak's end sees why
                return
            try:
                await asyncio.wait_for(stop.wait(), self.every_s)
            except TimeoutError:
                pass
