"""Issue 15: what the in-memory bounds between the sources and detection cost, and what they
buy. The hostile soak's RSS peak (254-271 MiB against 200) came from events held at once: the
ingest queue (10,000 events), the detection queue (20,000) and a log poll of up to 4 MiB parsed
into one list. This measures, in one process, (1) what one Event costs in RSS, (2) the most
events one log poll hands over and the RSS a 20,000-line burst adds, under given tailer bounds,
and (3) the events/s through ingest -> SQLite store -> detection queue under given queue bounds
(a consumer drains the detection queue as fast as it can), so smaller bounds are shown not to
cost throughput. `python -m bench.queuemem` (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import inspect
import json
import multiprocessing
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from monitor.collect.eventqueue import BatchQueue
from monitor.collect.ingest import Ingest
from monitor.collect.logfile import LogTailer, parse_line
from monitor.core.clock import SystemClock
from monitor.core.events import Event
from monitor.store import SQLiteStore

T0 = 1_780_000_000_000
R = TypeVar("R")


def fresh(fn: Callable[..., R], *args: Any, **kw: Any) -> R:
    """Run `fn` in a new process: memory freed by an earlier measurement stays in this
    process's RSS and would be reused, hiding what the next one allocates."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        return ex.submit(fn, *args, **kw).result()


def rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def log_line(i: int) -> str:
    """The hostile soak's valid log line (bench/hostile_traffic.py `_valid`)."""
    return json.dumps({"ts": T0 + i, "method": "GET", "endpoint": "/api/v3/account",
                       "status": 200, "key": "logbot", "request_id": f"r{i}"})


def event_cost(n: int) -> float:
    """RSS bytes per Event parsed from a log line (the lines are built first, not counted)."""
    lines = [log_line(i) for i in range(n)]
    gc.collect()
    before = rss_mib()
    events = [parse_line(line, "main", T0) for line in lines]
    gc.collect()
    cost = (rss_mib() - before) * 2**20 / n
    del events
    return cost


@dataclass
class Burst:
    polls: int
    max_per_poll: int
    rss_added_mib: float
    seconds: float


def tail_burst(path: Path, lines: int, max_bytes: int, max_lines: int) -> Burst:
    """Poll a file holding a `lines`-line burst to its end, keeping only the largest poll's
    events alive (as ingest would hold them until written)."""
    path.write_text("".join(log_line(i) + "\n" for i in range(lines)))
    store = SQLiteStore(str(path.with_suffix(".db")))
    tailer = LogTailer(str(path), "main", SystemClock(), _no_put, store,
                       max_bytes_per_poll=max_bytes, max_lines_per_poll=max_lines)
    gc.collect()
    before, peak, most, polls = rss_mib(), 0.0, 0, 0
    t = time.perf_counter()
    seen = 0
    while seen < lines:
        events = tailer.poll_once()
        seen += len(events)
        polls += 1
        most = max(most, len(events))
        peak = max(peak, rss_mib() - before)
        del events
    took = time.perf_counter() - t
    tailer.close()
    store.close()
    return Burst(polls, most, peak, took)


async def _no_put(events: list[Event], cursors: object = None) -> None:
    return None


async def pipeline(n: int, ingest_max: int, detect_max: int, db: Path) -> float:
    """Events/s from sources putting 500-event polls to detection having taken them all."""
    store = SQLiteStore(str(db))
    queue = BatchQueue(max_events=detect_max)

    async def on_events(events: list[Event]) -> None:  # Service._on_events' waiting path
        await queue.wait_room(len(events))
        queue.put_nowait(events)

    ingest = Ingest(store, maxsize=ingest_max, on_events=on_events)
    events = [parse_line(log_line(i), "main", T0) for i in range(n)]
    got = 0

    async def detect() -> None:
        nonlocal got
        while got < n:
            got += len(await queue.get())

    async def sources() -> None:
        for i in range(0, n, 500):
            await ingest.put(events[i:i + 500])

    writer = asyncio.create_task(ingest.run())
    t = time.perf_counter()
    await asyncio.gather(sources(), detect())
    rate = n / (time.perf_counter() - t)
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    store.close()
    return rate


def run_pipeline(n: int, ingest_max: int, detect_max: int, db: Path) -> float:
    return asyncio.run(pipeline(n, ingest_max, detect_max, db))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=60_000, help="events through the pipeline")
    p.add_argument("--burst", type=int, default=20_000, help="log lines in one write")
    a = p.parse_args()
    print(f"one Event from a log line: {fresh(event_cost, 30_000):,.0f} B of RSS")
    with tempfile.TemporaryDirectory() as d:
        dflt = inspect.signature(LogTailer).parameters
        for name, nbytes, nlines in (
                ("old (4 MiB, no line cap)", 4 << 20, 10**9),
                ("default", dflt["max_bytes_per_poll"].default,
                 dflt["max_lines_per_poll"].default)):
            b = fresh(tail_burst, Path(d) / f"{len(name)}.log", a.burst, nbytes, nlines)
            print(f"tailer {name}: {a.burst:,}-line burst in {b.polls} polls, at most "
                  f"{b.max_per_poll:,} events per poll, RSS +{b.rss_added_mib:.1f} MiB, "
                  f"{a.burst / b.seconds:,.0f} lines/s")
        for ingest_max, detect_max in ((10_000, 20_000), (2_000, 5_000), (1_000, 2_000)):
            rate = fresh(run_pipeline, a.events, ingest_max, detect_max,
                         Path(d) / f"p{ingest_max}.db")
            print(f"ingest {ingest_max:,} / detection {detect_max:,} events: "
                  f"{rate:,.0f} events/s through store to detection")


if __name__ == "__main__":
    main()
