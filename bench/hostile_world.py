"""The hostile soak's exchange process: the real simulator behind two hostile upstreams.

Why two (`monitor.world.hostile.HostileUpstream`, both over the same simulated exchange):
the service's poller and user-data stream talk to `svc`, which the soak makes answer badly at
random and on command; the tap forwards the bots to `tap`, which answers badly only when told
(`inject` for one path), so the tap probe measures the tap, not an upstream that trickles
every answer. Orders the bots place through either land in the same exchange, so their
executionReports reach the service's subscription on `svc`. Keys are the simulator's own,
made up at start; no real secret exists here.

One JSON object per line, each command answered by one line:

  child -> parent  {"ready": {"rest_url", "ws_api_url", "tap_upstream", "control_url",
                              "keys": {label: [key, secret]}}}
  parent -> child  {"op": "mix", "faults": {fault: probability}}      -> {"ok": true}
                   {"op": "inject", "up": "svc"|"tap", "fault", "path", "times"} -> {"ok": true}
                   {"op": "frames", "fault", "n", "per_s", "wait_s"} -> {"sent": n, "ids"}
                       (waits up to wait_s for a live subscription; none: sent 0; `ids`: the
                       event ids of the valid facts just sent)
                   {"op": "cut_gone"} -> {"gone": bool}  (the last oversized/drop's sockets
                       are gone: the next flood cannot land on them; see `cut`)
                   {"op": "report"} -> {"report": {"svc_rest", "tap_rest", "ws",
                                                   "valid_ids", "order_events"}}
  parent -> child  EOF: stop.
Run: `python -m bench.hostile_world --speed 1 --start-ms ... --anchor ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bench.world import HOST_IP
from monitor.core.clock import AcceleratedClock
from monitor.world.hostile import HostileUpstream, RestFault, WsFault
from monitor.world.sim import Simulator

ACCOUNT = "main"
MIB = 2**20
# label -> (permissions, whitelist): the monitor key polls and streams; `bot` trades through
# the tap; `probe` times the tap; `hostile` sends the tap bad requests and asks for bad answers
KEYS: dict[str, tuple[dict[str, bool], list[str] | None]] = {
    "keywatch": ({"enableReading": True}, [HOST_IP]),
    "bot": ({"enableReading": True, "enableSpotAndMarginTrading": True}, [HOST_IP]),
    "probe": ({"enableReading": True}, [HOST_IP]),
    "hostile": ({"enableReading": True}, [HOST_IP]),
}


CUTS = (WsFault.OVERSIZED, WsFault.DROP)


def live_subscriptions(svc: HostileUpstream) -> list[object]:
    """The connections holding a subscription now (held, so `gone` compares identities)."""
    return [c for c in svc._ws_conns if c.sub_id is not None]  # no public view upstream


def gone(svc: HostileUpstream, doomed: list[object]) -> bool:
    return not any(c is d for c in svc._ws_conns for d in doomed)


async def cut(svc: HostileUpstream, fault: WsFault, timeout_s: float = 10.0) -> int:
    """Cut every live subscription with `fault`; return once those connections are gone.

    Why wait (issue 15, lost executionReports): an oversized frame ends a socket only when
    the client reads it, which under backpressure is seconds later; the upstream still counts
    that socket as subscribed, so the next flood was written behind the oversized frame onto a
    socket already doomed, and lost. A real Binance would have those orders in allOrders and
    the gap's backfill would bring them; the hostile frames are made up (no order exists in
    the simulator), so nothing can. Waiting keeps the next flood for the new subscription.
    (The world's command loop must stay responsive, so there the soak polls `cut_gone`.)"""
    doomed = live_subscriptions(svc)
    sent = await svc.send_frames(fault)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not gone(svc, doomed) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    return sent


def _say(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def _command(msg: dict[str, Any], svc: HostileUpstream, tap: HostileUpstream,
                   sim: Simulator, doomed: list[object]) -> dict[str, object]:
    op = msg["op"]
    if op == "mix":
        svc.rest_mix = {RestFault(k): float(v) for k, v in msg["faults"].items()}
        return {"ok": True}
    if op == "inject":
        up = svc if msg["up"] == "svc" else tap
        up.inject(RestFault(msg["fault"]), msg.get("path"), int(msg.get("times", 1)))
        return {"ok": True}
    if op == "frames":
        try:
            await svc.subscribed(float(msg.get("wait_s", 10.0)))
        except TimeoutError:  # the service is not subscribed now (reconnecting): none sent
            return {"sent": 0, "subscribed": False}
        fault = WsFault(msg["fault"])
        if fault in CUTS:
            doomed[:] = live_subscriptions(svc)
        before = len(svc.sent_orders)
        sent = await svc.send_frames(fault, int(msg.get("n", 1)), msg.get("per_s"))
        return {"sent": sent, "ids": svc.sent_valid_ids(ACCOUNT)[before:]}
    if op == "cut_gone":
        return {"gone": gone(svc, doomed)}
    if op == "report":
        return {"report": {
            "svc_rest": {str(k): v for k, v in svc.rest_sent.items()},
            "tap_rest": {str(k): v for k, v in tap.rest_sent.items()},
            "ws": {str(k): v for k, v in svc.ws_sent.items()},
            "valid_ids": svc.sent_valid_ids(ACCOUNT),
            "order_events": sim.control.order_events(ACCOUNT),
        }}
    raise ValueError(f"unknown op {op!r}")


async def main(args: argparse.Namespace) -> int:
    clock = AcceleratedClock(args.speed, start_ms=args.start_ms, anchor=args.anchor)
    sim = Simulator(clock=clock, seed=args.seed, control_port=0)
    await sim.start()
    svc = HostileUpstream(sim, seed=args.seed, huge_bytes=args.huge_mib * MIB,
                          trickle_s=args.trickle_s)
    tap = HostileUpstream(sim, seed=args.seed + 1, huge_bytes=args.tap_huge_mib * MIB,
                          trickle_s=args.tap_trickle_s)
    await svc.start()
    await tap.start()
    try:
        sim.control.create_account(ACCOUNT, {"USDT": 1_000_000.0, "BTC": 10.0, "ETH": 100.0})
        keys = {label: list(sim.control.create_key(ACCOUNT, label, permissions=perms,
                                                   ip_whitelist=wl))
                for label, (perms, wl) in KEYS.items()}
        _say({"ready": {"rest_url": svc.rest_url, "ws_api_url": svc.ws_url,
                        "tap_upstream": tap.rest_url, "control_url": sim.control_url,
                        "account": ACCOUNT, "keys": keys}})
        doomed: list[object] = []  # the connections the last cut was sent on
        while line := await asyncio.to_thread(sys.stdin.readline):
            try:
                _say(await _command(json.loads(line), svc, tap, sim, doomed))
            except Exception as exc:  # one bad command must not take the exchange down
                _say({"error": repr(exc)})
        return 0
    finally:
        await tap.stop()
        await svc.stop()
        await sim.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--speed", type=float, required=True)
    p.add_argument("--start-ms", type=int, required=True)
    p.add_argument("--anchor", type=float, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--huge-mib", type=int, default=512, help="the service's oversized answer")
    p.add_argument("--tap-huge-mib", type=int, default=64, help="the tap's oversized answer")
    p.add_argument("--trickle-s", type=float, default=5.0, help="the service's trickle")
    p.add_argument("--tap-trickle-s", type=float, default=0.2,
                   help="the tap's trickle (a byte per 0.2 s: a tapped price in ~10 s)")
    raise SystemExit(asyncio.run(main(p.parse_args())))
