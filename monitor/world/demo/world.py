"""The demo's world in its own process: the simulator and the scenario's bots and attackers.

The exchange is somebody else's machine; running it in a separate process also gives the
service a core of its own, so an accelerated day is not distorted by one event loop serving
both sides. The two processes share one clock (same start and monotonic anchor) and talk over
the child's stdin/stdout, one JSON object per line:

  child -> parent  {"ready": {"rest_url", "ws_api_url", "stream_url",
                               "keys": {"acct/label": [key, secret]}}}
  parent -> child  {"tap_url": "http://127.0.0.1:..."}
  child -> parent  {"progress": "..."} ... then {"done": "<ground truth path>"}
  parent -> child  {"stop": true}   (or EOF; also while the scenario runs: Ctrl-C on the demo)

The keys on this pipe are the simulator's own, made up at start; no real secret exists here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator, load_scenario, run_scenario
from monitor.world.sim.runner import prepare


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _read_line() -> dict[str, object]:
    line = await asyncio.to_thread(sys.stdin.readline)
    return json.loads(line) if line.strip() else {"stop": True}


async def main(args: argparse.Namespace) -> int:
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    sc = load_scenario(args.scenario)
    sim = Simulator(clock=clock, seed=args.seed, port=args.port, stream_port=args.stream_port)
    await sim.start()
    try:
        keys = prepare(sim, sc)
        extra = {}
        for spec in args.key:
            account, label, ip = spec.split("/")
            extra[f"{account}/{label}"] = list(sim.control.create_key(
                account, label, permissions={"enableReading": True}, ip_whitelist=[ip]))
        _say({"ready": {
            "rest_url": sim.rest_url, "ws_api_url": sim.ws_api_url, "stream_url": sim.stream_url,
            "keys": {f"{a}/{label}": list(v) for (a, label), v in keys.items()} | extra,
        }})
        msg = await _read_line()
        if msg.get("stop"):
            return 0
        day = asyncio.create_task(run_scenario(
            sim, sc, seed=args.seed, tap_url=str(msg["tap_url"]), out_dir=Path(args.out),
            on_progress=lambda m: _say({"progress": m})))
        # the parent may stop us mid-day (Ctrl-C on the demo): listen while the day runs
        listen = asyncio.create_task(_read_line())
        await asyncio.wait({day, listen}, return_when=asyncio.FIRST_COMPLETED)
        if not day.done():
            day.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await day
            return 0
        truth = day.result()
        path = Path(args.out) / f"{sc.name}-seed{args.seed}.groundtruth.json"
        truth.save(path)
        _say({"done": str(path)})
        msg = await listen
        while not msg.get("stop"):
            msg = await _read_line()
        return 0
    finally:
        await sim.stop()


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", required=True)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, default=0, help="REST and WebSocket API (0: a free one)")
    p.add_argument("--stream-port", type=int, default=0, help="market-data streams (0: free)")
    p.add_argument("--key", action="append", default=[],
                   help="account/label/ip: an extra read-only key whitelisted to ip")
    return p.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(parse())))
