"""Figure 4: what the tap adds to a bot's request, and how many requests/s it sustains.

Three processes, as in production: the simulator (`bench.simproc`, clock at 60x only so its
per-IP weight window, one minute of clock time, admits the load), the collector's own `Tap`
(`bench.tapproc`: uvicorn with `Collector.start`'s options, recording into a real `Ingest` +
SQLite store), and this process as the bots. Each request is `GET /api/v3/time` with an
`X-MBX-APIKEY` header (so the tap maps the key to its label), either straight to the simulator
or through the tap, alternating the paths in rounds so drift hits both. Latency: one request at
a time; throughput: 16 concurrent clients for a fixed time. The tap process is profiled
(cProfile) over 300 extra tapped requests. `python -m bench.tapcost --compare old_tap.py` also
runs a second tap process built from another tap.py, alternating with the first, for a
before/after in the same conditions.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from bench.common import Row
from bench.world import REPO, SimProcess
from monitor.collect.tap import fingerprint
from monitor.core.clock import AcceleratedClock


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


class TapProcess:
    """`python -m bench.tapproc` in front of the simulator; talks JSON lines on stdin/stdout."""

    def __init__(self, sim: SimProcess, key: str, tap_file: str | None = None) -> None:
        self.sim, self.key, self.tap_file = sim, key, tap_file
        self.url = ""
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> TapProcess:
        start_ms, anchor = self.sim.clock.anchor
        extra = ["--tap-file", self.tap_file] if self.tap_file else []
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.tapproc", "--upstream", self.sim.rest_url,
            "--key-sha256", fingerprint(self.key), "--speed", str(self.sim.clock.speed),
            "--start-ms", str(start_ms), "--anchor", repr(anchor), *extra,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
        self.url = (await self._line())["ready"]["url"]
        return self

    async def _line(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"tap process ended early ({await self._proc.wait()})")
        return dict(json.loads(line))

    async def tell(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write((json.dumps(obj) + "\n").encode())
        await self._proc.stdin.drain()
        return await self._line() if obj.get("profile") is False or obj.get("stop") else None

    async def __aexit__(self, *exc: object) -> None:
        if self._proc is None:
            return
        if self._proc.returncode is None:
            self._proc.kill()
        await self._proc.wait()


async def _run(n: int, rounds: int, seconds: float, compare: str | None) -> dict[str, Any]:
    clock = AcceleratedClock(60)
    key = "bench" * 12  # a made-up key the tap maps to a label; not a real credential
    async with SimProcess(clock) as sim, TapProcess(sim, key) as tap:
        other = TapProcess(sim, key, compare) if compare else None
        if other is not None:
            await other.__aenter__()
        try:
            paths = {"direct": sim.rest_url, "tap": tap.url}
            if other is not None:
                paths["compare"] = other.url
            lat: dict[str, list[float]] = {p: [] for p in paths}
            async with httpx.AsyncClient(timeout=30) as client:
                for url in paths.values():  # warm every path
                    await _sequential(client, url, 50, key)
                for _ in range(rounds):
                    for name, url in paths.items():
                        lat[name] += await _sequential(client, url, n // rounds, key)
                await tap.tell({"profile": True})
                await _sequential(client, tap.url, 300, key)
                prof = await tap.tell({"profile": False})
            rps = {name: await _sustained(url, seconds, key) for name, url in paths.items()}
            done = await tap.tell({"stop": True})
            done_other = await other.tell({"stop": True}) if other is not None else None
        finally:
            if other is not None:
                await other.__aexit__()
    assert prof is not None and done is not None
    return {"lat": lat, "rps": rps, "profile": prof["profile"], "cumulative": prof["cumulative"],
            "done": done["done"],
            "done_other": done_other["done"] if done_other else None}


def _profile_text(rows: list[list[Any]], k: int = 8) -> str:
    return "; ".join(f"{f} own {own:.0%} cum {cum:.0%}" for f, own, cum in rows[:k])


def run(n: int = 2000, rounds: int = 10, seconds: float = 5.0, compare: str | None = None,
        say: Callable[[str], None] = print) -> list[Row]:
    r = asyncio.run(_run(n, rounds, seconds, compare))
    d, t = np.asarray(r["lat"]["direct"]), np.asarray(r["lat"]["tap"])
    add50 = float(np.median(t) - np.median(d))
    add99 = float(np.percentile(t, 99) - np.percentile(d, 99))
    rps = r["rps"]
    say(f"tap: +{add50:.2f} ms median, {rps['tap']:.0f} req/s vs {rps['direct']:.0f} direct")
    done = r["done"]
    note = (f"{len(d)} sequential requests per path, tap in its own process; direct median "
            f"{np.median(d):.2f} ms / p99 {np.percentile(d, 99):.2f} ms, via tap "
            f"{np.median(t):.2f} / {np.percentile(t, 99):.2f} ms; tap recorded {done['stored']} "
            f"of {done['requests']} requests into the store; profile of the tap process over "
            f"300 tapped requests (own / cumulative share of its profiled time): "
            f"{_profile_text(r['profile'])}")
    rows = [
        Row("tap added latency, median", add50, "ms", float(np.median(d)), "direct median",
            "< 1 ms", add50 < 1.0, note),
        Row("tap added latency, p99", add99, "ms", float(np.percentile(d, 99)), "direct p99", "",
            None, note),
        Row("tap sustained throughput (16 clients)", float(rps["tap"]), "requests/s",
            float(rps["direct"]), "direct to simulator", "", None, note),
    ]
    if "compare" in r["lat"]:
        c = np.asarray(r["lat"]["compare"])
        cnote = (f"{compare}: median {np.median(c):.2f} / p99 {np.percentile(c, 99):.2f} ms, "
                 f"recorded {r['done_other']['stored']} of {r['done_other']['requests']}")
        rows += [
            Row("compared tap added latency, median", float(np.median(c) - np.median(d)), "ms",
                add50, "this tap's added median", "", None, cnote),
            Row("compared tap added latency, p99",
                float(np.percentile(c, 99) - np.percentile(d, 99)), "ms", add99,
                "this tap's added p99", "", None, cnote),
            Row("compared tap sustained throughput", float(rps["compare"]), "requests/s",
                float(rps["tap"]), "this tap", "", None, cnote),
        ]
    return rows


if __name__ == "__main__":
    import argparse

    from bench.common import show
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--compare", default=None, help="another tap.py to measure side by side")
    p.add_argument("-n", type=int, default=2000)
    a = p.parse_args()
    rows = run(n=a.n, compare=a.compare)
    show(rows)
    for row in rows:
        print(f"- {row.figure}: {row.note}")
