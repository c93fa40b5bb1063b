"""The soak's simulator process: the exchange plus the scenario's bots and attacker.

Like `monitor.world.demo.world` but with the control plane on its own port, so the benchmark can ask
the exchange (not the service) what it emitted. One JSON object per line:

  child -> parent  {"ready": {"rest_url", "ws_api_url", "control_url",
                              "keys": {"acct/label": [key, secret]},
                              "monitor": {"acct": [key, secret]}}}
  parent -> child  {"tap_url": "http://127.0.0.1:..."}
  child -> parent  {"progress": "..."} ... then {"done": {"calls": {"actor:status": n}}}
  parent -> child  EOF (the simulator keeps serving until then)

The keys on this pipe are the simulator's own, made up at start; no real secret exists here.
Run: `python -m bench.soakworld --scenario run/bench_soak.yaml --speed 480 --start-ms ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bench.world import HOST_IP
from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator, load_scenario, run_scenario
from monitor.world.sim.runner import prepare

CALLS = "calls by actor and status: "


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def parse_calls(msg: str) -> dict[str, int]:
    """The runner's closing line 'calls by actor and status: a:200=5, b:error=1' as a dict."""
    out: dict[str, int] = {}
    for part in msg.removeprefix(CALLS).split(", "):
        tag, _, n = part.rpartition("=")
        if tag:
            out[tag] = int(n)
    return out


async def main(args: argparse.Namespace) -> int:
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    sc = load_scenario(args.scenario)
    sim = Simulator(clock=clock, seed=args.seed, control_port=0)
    await sim.start()
    try:
        keys = prepare(sim, sc)
        monitor = {acct: list(sim.control.create_key(
            acct, "keywatch", permissions={"enableReading": True}, ip_whitelist=[HOST_IP]))
            for acct in sc.accounts}
        _say({"ready": {
            "rest_url": sim.rest_url, "ws_api_url": sim.ws_api_url,
            "control_url": sim.control_url, "monitor": monitor,
            "keys": {f"{a}/{label}": list(v) for (a, label), v in keys.items()},
        }})
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.strip():
            return 0
        calls: dict[str, int] = {}

        def progress(msg: str) -> None:
            if msg.startswith(CALLS):
                calls.update(parse_calls(msg))
            _say({"progress": msg})

        await run_scenario(sim, sc, seed=args.seed, tap_url=str(json.loads(line)["tap_url"]),
                           out_dir=Path(args.out), on_progress=progress)
        _say({"done": {"calls": calls}})
        await asyncio.to_thread(sys.stdin.read)  # serve the control plane until EOF
        return 0
    finally:
        await sim.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scenario", required=True)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    raise SystemExit(asyncio.run(main(p.parse_args())))
