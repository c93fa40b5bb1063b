"""What the standalone tap (`keywatch tap`, spooling) adds to a bot's request, and its throughput.

Why a second tap figure beside `bench/tapcost.py`: that one measures the collector's in-process
tap recording into a queue; this one runs the real `keywatch tap` process with its spool on the
disk the data dir would live on, so the cost of making each record durable before its answer is
released (write + fdatasync, group-committed) is in the figure. The simulator runs in its own
process (`bench.simproc`); this process is the bots: `GET /api/v3/time` with an `X-MBX-APIKEY`
header, one at a time (latency, alternating direct and tapped in rounds) and 16 at a time
(throughput). Run: `python -m bench.tapspool [-n 1000]`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.common import Row
from bench.tapcost import _sequential, _sustained
from bench.world import REPO, SimProcess
from monitor.core.clock import AcceleratedClock


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_port(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(400):
        if proc.returncode is not None:
            raise RuntimeError(f"keywatch tap ended early ({proc.returncode})")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("keywatch tap never listened")


async def _run(n: int, rounds: int, seconds: float, data_dir: str) -> dict[str, Any]:
    clock = AcceleratedClock(60)
    key = "bench" * 12  # a made-up key; not a real credential
    port = _free_port()
    async with SimProcess(clock) as sim:
        with tempfile.TemporaryDirectory(dir=data_dir) as tmp:
            spool = Path(tmp) / "tap-spool.jsonl"
            cfg = Path(tmp) / "keywatch.toml"
            cfg.write_text(f"""
[sources.tap]
enabled = true
mode = "process"
spool = "{spool}"
listen = "127.0.0.1:{port}"
upstream = "{sim.rest_url}"
[[accounts]]
name = "main"
  [[accounts.keys]]
  label = "bench"
  use_case = "spot-bot"
  api_key_env = "KW_BENCH_KEY"
""")
            env = {**os.environ, "KW_BENCH_KEY": key}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "monitor.cli", "tap", "-c", str(cfg), cwd=REPO, env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            try:
                await _wait_port(port, proc)
                paths = {"direct": sim.rest_url, "tap": f"http://127.0.0.1:{port}"}
                lat: dict[str, list[float]] = {p: [] for p in paths}
                async with httpx.AsyncClient(timeout=30) as client:
                    for url in paths.values():
                        await _sequential(client, url, 50, key)
                    for _ in range(rounds):
                        for name, url in paths.items():
                            lat[name] += await _sequential(client, url, n // rounds, key)
                rps = {name: await _sustained(url, seconds, key) for name, url in paths.items()}
            finally:
                proc.terminate()
                await proc.wait()
            lines = spool.read_bytes().count(b"\n")
    return {"lat": lat, "rps": rps, "lines": lines}


def run(n: int = 1000, rounds: int = 10, seconds: float = 4.0, data_dir: str | None = None,
        say: Callable[[str], None] = print) -> list[Row]:
    r = asyncio.run(_run(n, rounds, seconds, data_dir or str(REPO)))
    d, t = np.asarray(r["lat"]["direct"]), np.asarray(r["lat"]["tap"])
    add50 = float(np.median(t) - np.median(d))
    add99 = float(np.percentile(t, 99) - np.percentile(d, 99))
    rps = r["rps"]
    say(f"standalone tap: +{add50:.2f} ms median, +{add99:.2f} ms p99, {rps['tap']:.0f} req/s "
        f"vs {rps['direct']:.0f} direct; {r['lines']} spool lines")
    note = (f"{len(d)} sequential requests per path; direct median {np.median(d):.2f} / p99 "
            f"{np.percentile(d, 99):.2f} ms, via `keywatch tap` {np.median(t):.2f} / "
            f"{np.percentile(t, 99):.2f} ms; spool on the data dir's disk, {r['lines']} lines")
    return [
        Row("standalone tap added latency, median", add50, "ms", float(np.median(d)),
            "direct median", "", None, note),
        Row("standalone tap added latency, p99", add99, "ms", float(np.percentile(d, 99)),
            "direct p99", "", None, note),
        Row("standalone tap sustained throughput (16 clients)", float(rps["tap"]),
            "requests/s", float(rps["direct"]), "direct to simulator", "", None, note),
    ]


if __name__ == "__main__":
    import argparse

    from bench.common import show
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-n", type=int, default=1000)
    p.add_argument("--data-dir", default=None, help="where the spool goes (default: the repo)")
    a = p.parse_args()
    show(run(n=a.n, data_dir=a.data_dir))
