"""Figure 4: what the tap adds to a bot's request, and how many requests/s it sustains.

The simulator runs in its own process (clock at 60x only so its per-IP weight window, one
minute of clock time, admits the load). The tap is the collector's own `Tap` served by uvicorn
exactly as `Collector.start` serves it, recording into a real `Ingest` + SQLite store. The
client sends `GET /api/v3/time` with an `X-MBX-APIKEY` header (so the tap maps the key to its
label) either straight to the simulator or through the tap, alternating the two paths in rounds
so drift hits both. Latency: one request at a time; throughput: 16 concurrent clients for a fixed
time. The client and the tap share this process's event loop, so the tap's figure includes
competing with the client for one core: an upper bound on its cost.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from bench.common import Row
from bench.world import HOST_IP, SimProcess
from monitor.clock import AcceleratedClock
from monitor.collect.ingest import Ingest
from monitor.collect.tap import Tap, fingerprint
from monitor.store import SQLiteStore


async def _sequential(client: httpx.AsyncClient, url: str, n: int, key: str) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = await client.get(f"{url}/api/v3/time", headers={"X-MBX-APIKEY": key})
        out.append((time.perf_counter() - t) * 1000)
        r.raise_for_status()
    return out


async def _sustained(url: str, seconds: float, key: str, conc: int = 16) -> float:
    done = 0
    end = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                r = await client.get(f"{url}/api/v3/time", headers={"X-MBX-APIKEY": key})
                r.raise_for_status()
                done += 1
        t = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return done / (time.perf_counter() - t)


async def _run(n: int, rounds: int, seconds: float) -> dict[str, Any]:
    clock = AcceleratedClock(60)
    key = "bench" * 12  # a made-up key the tap maps to a label; not a real credential
    with tempfile.TemporaryDirectory() as tmp:
        async with SimProcess(clock) as sim:
            store = SQLiteStore(Path(tmp) / "tap.db")
            ingest = Ingest(store)
            ing = asyncio.create_task(ingest.run())
            upstream = httpx.AsyncClient(
                timeout=30.0, transport=httpx.AsyncHTTPTransport(local_address=HOST_IP))
            tap = Tap(sim.rest_url, clock, ingest.offer, keys={fingerprint(key): ("main", "bot")},
                      client=upstream, default_account="main")
            server = uvicorn.Server(uvicorn.Config(
                tap, host="127.0.0.1", port=0, log_level="warning", server_header=False,
                date_header=False, lifespan="off", access_log=False))
            srv = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.01)
            port = server.servers[0].sockets[0].getsockname()[1]
            tap_url = f"http://127.0.0.1:{port}"
            direct: list[float] = []
            tapped: list[float] = []
            async with httpx.AsyncClient(timeout=30) as client:
                await _sequential(client, sim.rest_url, 50, key)  # warm both paths
                await _sequential(client, tap_url, 50, key)
                for _ in range(rounds):
                    direct += await _sequential(client, sim.rest_url, n // rounds, key)
                    tapped += await _sequential(client, tap_url, n // rounds, key)
                prof = cProfile.Profile()
                prof.enable()
                await _sequential(client, tap_url, 300, key)
                prof.disable()
            rps_direct = await _sustained(sim.rest_url, seconds, key)
            rps_tap = await _sustained(tap_url, seconds, key)
            server.should_exit = True
            await srv
            await tap.aclose()
            await ingest.flush()
            ing.cancel()
            await asyncio.gather(ing, return_exceptions=True)
            stored = store.count_events()
            store.close()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in st.stats.values()) or 1.0  # type: ignore[attr-defined]
    top = sorted(st.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore
    mods = ("tap.py", "ingest.py", "h11_impl.py", "_client.py", "httpcore")
    picked = [(f, v) for f, v in top if any(m in f[0] for m in mods)][:6]
    profile = "; ".join(f"{f[2]} ({f[0].rsplit('/', 1)[-1]}) cum {v[3] / total:.0%}"
                        for f, v in picked)
    return {"profile": profile,
            "direct": direct, "tapped": tapped, "rps_direct": rps_direct, "rps_tap": rps_tap,
            "stored": stored, "requests": tap.counters["requests"]}


def run(n: int = 2000, rounds: int = 10, seconds: float = 5.0,
        say: Callable[[str], None] = print) -> list[Row]:
    r = asyncio.run(_run(n, rounds, seconds))
    d, t = np.asarray(r["direct"]), np.asarray(r["tapped"])
    add50 = float(np.median(t) - np.median(d))
    add99 = float(np.percentile(t, 99) - np.percentile(d, 99))
    say(f"tap: +{add50:.2f} ms median, {r['rps_tap']:.0f} req/s vs {r['rps_direct']:.0f} direct")
    note = (f"{len(d)} sequential requests per path; direct median {np.median(d):.2f} ms / p99 "
            f"{np.percentile(d, 99):.2f} ms, via tap {np.median(t):.2f} / "
            f"{np.percentile(t, 99):.2f} ms; tap recorded {r['stored']} of {r['requests']} "
            f"requests into the store; profile of 300 tapped requests (client + tap, cumulative "
            f"share of this process's time): {r['profile']}")
    return [
        Row("tap added latency, median", add50, "ms", float(np.median(d)), "direct median",
            "< 1 ms", add50 < 1.0, note),
        Row("tap added latency, p99", add99, "ms", float(np.percentile(d, 99)), "direct p99", "",
            None, note),
        Row("tap sustained throughput (16 clients)", float(r["rps_tap"]), "requests/s",
            float(r["rps_direct"]), "direct to simulator", "", None, note),
    ]


if __name__ == "__main__":
    from bench.common import show
    show(run())
