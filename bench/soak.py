"""Figure 5: resident memory of the service over a simulated day, and nothing lost.

A full day of 50 keys with real HTTP clients does not fit the 10-minute budget (the live
detection path runs at a few thousand events/s, figure 2), so this drives the real `Service`
(detection engine with the shipped rules and model, alert manager, notifier, store) with
generated traffic (`monitor.evaluate.generator`, labelled attacks included) replayed on an
AcceleratedClock: a source stands in for the collector, writing each slice of events whose time
has come to the store with `insert_new_events` and handing the new ones to the service, as the
collector does. RSS (psutil) is sampled every simulated hour. Events stored must equal events
emitted; events the detection queue had to drop (stored, not seen live) are reported.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from bench.common import Row
from monitor.clock import AcceleratedClock
from monitor.detect.engine import DetectionEngine
from monitor.evaluate.generator import generate
from monitor.events import Event
from monitor.groundtruth import AttackType
from monitor.service import Service
from monitor.store import SQLiteStore, events_from_frame

HOUR_MS = 3_600_000


class GeneratedSource:
    """Emits pre-generated events when the clock reaches their receive time."""

    def __init__(self, frame: pd.DataFrame, clock: AcceleratedClock, store: SQLiteStore,
                 on_events: Callable[[list[Event]], None]) -> None:
        self.frame, self.clock, self.store, self.on_events = frame, clock, store, on_events
        self.ts = frame["received_ts"].to_numpy()
        self.emitted = self.pos = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        # Events are built per slice, as the collector builds them from the wire, so the
        # process does not hold a day of Event objects the real service would never hold.
        while not self._stop.is_set() and self.pos < len(self.ts):
            end = int(np.searchsorted(self.ts, self.clock.now_ms(), side="right"))
            batch = events_from_frame(self.frame.iloc[self.pos:end]) if end > self.pos else []
            self.pos = end
            if batch:
                self.emitted += len(batch)
                self.on_events(self.store.insert_new_events(batch))
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._stop.set()

    def counters(self) -> dict[str, Any]:
        return {"emitted": self.emitted}


async def _run(keys: int, hours: int, speed: float) -> dict[str, Any]:
    syn = generate(keys=keys, days=hours / 24, seed=21,
                   attacks=[AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE])
    frame = syn.events.sort_values("received_ts", kind="stable").reset_index(drop=True)
    total = len(frame)
    start = int(frame["received_ts"].iloc[0]) - 1000
    del syn.events
    clock = AcceleratedClock(speed, start_ms=start)
    proc = psutil.Process()
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "soak.db")
        cfg = syn.config.model_copy(update={"rules_dir": "rules",
                                            "model_path": "models/default.skops"})
        engine = DetectionEngine.from_config(cfg, "rules", "models/default.skops")
        src: list[GeneratedSource] = []

        def factory(on_events: Callable[[list[Event]], None]) -> GeneratedSource:
            src.append(GeneratedSource(frame, clock, store, on_events))
            return src[-1]

        gc.collect()
        rss0 = proc.memory_info().rss / 2**20
        service = Service(cfg, store, clock, source_factory=factory, engine=engine)
        stop = asyncio.Event()
        svc = asyncio.create_task(service.run(stop))
        rss: list[float] = []
        for h in range(1, hours + 1):
            await clock.sleep(max(0.0, (start + h * HOUR_MS - clock.now_ms()) / 1000))
            rss.append(proc.memory_info().rss / 2**20)
        await clock.sleep(120)
        stop.set()
        await asyncio.wait_for(svc, 120)
        stored = store.count_events()
        store.close()
    return {"rss": rss, "rss0": rss0, "emitted": src[-1].emitted, "total": total, "stored": stored,
            "dropped": service.counters.events_dropped, "findings": service.counters.findings}


def _fresh(keys: int, hours: int, speed: float) -> dict[str, Any]:
    return asyncio.run(_run(keys, hours, speed))


def run(keys: int = 10, hours: int = 24, speed: float = 1440,
        say: Callable[[str], None] = print) -> list[Row]:
    # a fresh process, so the RSS is the service's and not what earlier figures left behind
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        r = pool.apply(_fresh, (keys, hours, speed))
    rss = r["rss"]
    growth = (max(rss[1:]) - rss[0]) / rss[0] if len(rss) > 1 else 0.0
    say(f"soak: RSS {rss[0]:.0f} -> max {max(rss):.0f} MiB, stored {r['stored']:,} of "
        f"{r['emitted']:,}")
    note = (f"{keys} generated keys, {hours} simulated h at {speed:g}x through the real Service "
            f"(not the collector); RSS MiB per hour: {', '.join(f'{v:.0f}' for v in rss)}; "
            f"{r['findings']} findings; detection queue dropped {r['dropped']:,} events "
            f"(stored, not seen live); the whole bench process is measured: {r['rss0']:.0f} MiB "
            f"before the service started (imports, model, the day's generated input frame); "
            f"{r['total']:,} events generated")
    return [
        Row("service RSS, max over the day", max(rss), "MiB", r["rss0"],
            "process before the service started",
            "< 200 MB", max(rss) * 2**20 < 200e6, note),
        Row("RSS growth after the first hour", growth * 100, "%", None, "", "< 10 %",
            growth < 0.10, note),
        Row("events stored / emitted", r["stored"], "events", float(r["emitted"]),
            "events emitted", "equal", r["stored"] == r["emitted"] == r["total"], note),
    ]


if __name__ == "__main__":
    from bench.common import show
    show(run())
