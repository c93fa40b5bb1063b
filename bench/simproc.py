"""The simulated exchange in its own process, for benchmarks that must not share a core with it.

Prints one JSON line {"rest_url", "ws_api_url", "control_url"} once listening, then serves until
its stdin closes. The caller drives it through the control plane over HTTP (create_account,
create_key, weight_log), the same way an operator would, so nothing is shared in memory.
Run: `python -m bench.simproc --speed 1 --start-ms <ms> --anchor <monotonic>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator


async def main(args: argparse.Namespace) -> int:
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    sim = Simulator(clock=clock, seed=args.seed, control_port=0)
    await sim.start()
    try:
        sys.stdout.write(json.dumps({"rest_url": sim.rest_url, "ws_api_url": sim.ws_api_url,
                                     "control_url": sim.control_url}) + "\n")
        sys.stdout.flush()
        await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
        return 0
    finally:
        await sim.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    raise SystemExit(asyncio.run(main(p.parse_args())))
