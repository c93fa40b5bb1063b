"""The collector's tap in a process of its own, as it runs in the service, for figure 4.

`Tap` served by uvicorn with the options `Collector.start` uses, forwarding from the bots' host
address with its own pooled upstream connections, recording into a real `Ingest` + SQLite store. The
bots (the benchmark's clients) are another process, as in production. One JSON line each way:

  child -> parent  {"ready": {"url", "pid"}}
  parent -> child  {"profile": true}  -> cProfile on;  {"profile": false} -> off, and the child
                   answers {"profile": [[function (file), tottime share, cumtime share], ...]}
  parent -> child  {"stop": true} or EOF -> the child flushes and answers {"done": {...}}

`--tap-file` loads `Tap` from another file (an older tap.py), for before/after comparisons
in the same run. Run: `python -m bench.tapproc --upstream http://127.0.0.1:PORT --key-sha256 ...`
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import json
import os
import pstats
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from monitor.collect.ingest import Ingest
from monitor.collect.tap import Tap
from monitor.core.clock import AcceleratedClock
from monitor.store import SQLiteStore


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _tap_class(path: str | None) -> type[Tap]:
    if path is None:
        return Tap
    spec = importlib.util.spec_from_file_location("bench_tap_variant", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Tap  # type: ignore[no-any-return]


def profile_rows(prof: cProfile.Profile, n: int = 14, by: int = 2) -> list[list[Any]]:
    """The n functions with the most own (by=2) or cumulative (by=3) time, with own and
    cumulative shares of the profiled total."""
    st = pstats.Stats(prof, stream=io.StringIO())
    raw = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    top = sorted(raw.items(), key=lambda kv: kv[1][by], reverse=True)[:n]
    return [[f"{f[2]} ({f[0].rsplit('/', 1)[-1]}:{f[1]})", round(v[2] / total, 3),
             round(v[3] / total, 3)] for f, v in top]


async def main(args: argparse.Namespace) -> int:
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "tap.db")
        ingest = Ingest(store)
        ing = asyncio.create_task(ingest.run())
        tap = _tap_class(args.tap_file)(
            args.upstream, clock, ingest.offer, keys={args.key_sha256: ("main", "bot")},
            local_address=args.local_host, default_account="main")
        server = uvicorn.Server(uvicorn.Config(
            tap, host="127.0.0.1", port=0, log_level="warning", server_header=False,
            date_header=False, lifespan="off", access_log=False))
        srv = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        _say({"ready": {"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}})
        prof = cProfile.Profile()
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            msg = json.loads(line) if line.strip() else {"stop": True}
            if msg.get("stop"):
                break
            if msg.get("profile"):
                prof = cProfile.Profile()
                prof.enable()
            elif "profile" in msg:
                prof.disable()
                _say({"profile": profile_rows(prof), "cumulative": profile_rows(prof, 40, 3)})
        server.should_exit = True
        await srv
        await tap.aclose()
        await ingest.flush()
        ing.cancel()
        await asyncio.gather(ing, return_exceptions=True)
        _say({"done": {"stored": store.count_events(), **tap.counters}})
        store.close()
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--upstream", required=True)
    p.add_argument("--key-sha256", required=True)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--local-host", default="127.0.0.2")
    p.add_argument("--tap-file", default=None)
    raise SystemExit(asyncio.run(main(p.parse_args())))
