"""The real service in a process of its own, so a benchmark can measure that process alone.

What `keywatch run` builds (config from a TOML file with secrets in the environment, the
detection engine with the shipped rules and model, `Service` + `Collector` with the configured
tap, user-data stream and poller, alerts through Apprise) but on an AcceleratedClock sharing the
caller's start and anchor, and without the start-up checks. One JSON object per line:

  child -> parent  {"ready": {"pid", "tap_url", "health_port"}}  (health_port: --health-port)
  parent -> child  any line, or EOF: stop (drain, flush, close the store)
  child -> parent  {"done": {"service": {...}, "collector": {...}, "tracemalloc": [...]}}

`--tracemalloc N` traces allocations from before the imports and reports the N largest sites
(file:line, KiB) at the end: slow, for finding what holds the memory, not for the figure.
Run: `python -m bench.svcproc --config run/keywatch.toml --speed 480 --start-ms ... --anchor ...`
"""

from __future__ import annotations

import argparse
import sys
import tracemalloc

if __name__ == "__main__" and "--tracemalloc" in sys.argv:
    tracemalloc.start(1)  # before the imports below, so module import cost is counted too

import asyncio  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
from typing import Any  # noqa: E402

from monitor.collect.collector import Collector  # noqa: E402
from monitor.collect.ingest import OnEvents  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.core.clock import AcceleratedClock  # noqa: E402
from monitor.service.metrics import Metrics  # noqa: E402
from monitor.service.pipeline import Service, build_engine  # noqa: E402
from monitor.store import SQLiteStore  # noqa: E402


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def top_allocations(n: int) -> list[list[Any]]:
    """The n largest live allocation sites, grouped by file and line, in KiB."""
    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)])
    total = sum(s.size for s in snap.statistics("filename")) / 1024
    by_file = [[str(s.traceback[0].filename).split("site-packages/")[-1], round(s.size / 1024)]
               for s in snap.statistics("filename")[:n]]
    by_line = [[str(s.traceback[0]).split("site-packages/")[-1], round(s.size / 1024)]
               for s in snap.statistics("lineno")[:n]]
    return [["total traced KiB", round(total)], *by_file, ["-- by line --", 0], *by_line]


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    cfg = load_config(args.config)
    store = SQLiteStore(cfg.store_path)
    engine = build_engine(cfg)
    metrics = Metrics()  # one registry, as `keywatch run` builds it: the collector's hooks
    # (out-of-range, quarantine, ingest queue) feed the service's /metrics

    def collector(on_events: OnEvents) -> Collector:
        c = Collector(cfg, store, clock, on_events=on_events, local_host=args.local_host,
                      metrics=metrics)
        if args.guard_wall_ms is not None:
            # The collector keeps 5 s + 150 ms of wall time clear before each server minute
            # ends; above 333x that is a whole minute and it would never spend. Every REST
            # client of this collector shares this one Budgets object.
            for pool in c.budgets.pools.values():
                pool.guard_ms = 5_000 + int(args.guard_wall_ms * clock.speed)
        return c

    service = Service(cfg, store, clock, source_factory=collector, engine=engine,
                      metrics=metrics, health_port=args.health_port)
    stop = asyncio.Event()
    svc = asyncio.create_task(service.run(stop))
    while service.source is None or getattr(service.source, "tap_url", None) is None:
        if svc.done():
            svc.result()
            raise RuntimeError("the service stopped before its tap was listening")
        await asyncio.sleep(0.02)
    while service.health is not None and not service.health.port:
        await asyncio.sleep(0.02)
    _say({"ready": {"pid": os.getpid(), "tap_url": service.source.tap_url,  # type: ignore
                    "health_port": service.health.port if service.health else None}})
    await asyncio.to_thread(sys.stdin.readline)
    stop.set()
    await asyncio.wait_for(svc, 120)
    done: dict[str, Any] = {"service": dataclasses.asdict(service.counters),
                            "collector": service.source.counters()}
    if tracemalloc.is_tracing():
        done["tracemalloc"] = top_allocations(args.tracemalloc)
    store.close()
    _say({"done": done})
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--local-host", default="127.0.0.2")
    p.add_argument("--tracemalloc", type=int, default=0)
    p.add_argument("--health-port", type=int, default=None,
                   help="serve /healthz and /metrics (0: a free port, named in 'ready')")
    p.add_argument("--guard-wall-ms", type=float, default=None,
                   help="override the weight budget's end-of-minute guard (wall ms)")
    raise SystemExit(asyncio.run(main(p.parse_args())))
