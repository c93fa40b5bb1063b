"""kill -9 of `keywatch tap` under concurrent tapped traffic loses no answered call (issue 15).

The red team lost 1 of 1,431 answered calls: the tap recorded each call after its answer had
gone out, so a SIGKILL in that gap left a bot holding an answer with no record. Now a record is
written and fdatasync'd (group-committed) before its answer's last byte. Here eight bots place
and query orders through a real `keywatch tap` process in front of the simulator; the instant
the round's Nth answer arrives, the test SIGKILLs the tap (the other calls are mid-flight), then
checks that every call a bot got an answer for is in the spool and, read the way the service
ingests it, in a store. Restart, repeat: ten rounds (about 1.3 s each).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx

from monitor.collect.logfile import parse_line
from monitor.core.clock import SystemClock
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient
from tests.collect.test_tap_process import BAD_CHANNEL, start, wait_listening, write_config
from tests.service.test_service import BOT_IP, free_port

WORKERS = 8


def setup(sim: Simulator) -> dict[str, tuple[str, str]]:
    c = sim.control
    c.create_account("main", {"USDT": 10**9, "BTC": 1})
    perms = {"enableReading": True, "enableSpotAndMarginTrading": True}
    return {
        "keywatch": c.create_key("main", "keywatch", permissions={"enableReading": True},
                                 ip_whitelist=["127.0.0.1"]),
        "bot": c.create_key("main", "bot", permissions=perms,
                            ip_whitelist=["127.0.0.1", BOT_IP]),
    }


def spooled_calls(spool: Path) -> set[tuple[str, str]]:
    """(method, client order id) of each spooled call: placed (new...) or queried (orig...)."""
    out = set()
    for line in spool.read_text().splitlines():
        try:
            d = json.loads(line)
        except ValueError:  # the torn record of a call the kill cut before its answer
            continue
        params = d["raw"]["params"]
        out.add((d["method"], params.get("newClientOrderId") or params.get("origClientOrderId")))
    return out


async def one_round(tmp: Path, cfg: Path, port: int, keys: dict[str, tuple[str, str]],
                    tag: str, kill_after: int) -> set[tuple[str, str]]:
    """Start the tap, run the bots until the `kill_after`th answer, SIGKILL it; the answered."""
    tap = start(tmp, "tap", "-c", str(cfg), log=f"tap-{tag}.log")
    answered: set[tuple[str, str]] = set()
    killed = asyncio.Event()
    clock = SystemClock()
    bots = [ActorClient(f"http://127.0.0.1:{port}", BOT_IP, *keys["bot"], clock)
            for _ in range(WORKERS)]

    def got(method: str, cid: str) -> None:
        answered.add((method, cid))
        if len(answered) >= kill_after and not killed.is_set():
            os.kill(tap.pid, signal.SIGKILL)  # at once: the other calls are in flight
            killed.set()

    async def bot(i: int, client: ActorClient) -> None:
        n = 0
        while not killed.is_set():
            cid = f"bot1-{tag}w{i}n{n}"
            n += 1
            try:
                await client.signed("POST", "/api/v3/order", {
                    "symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                    "quantity": "0.01", "price": "20000", "newClientOrderId": cid})
                got("POST", cid)
                await client.signed("GET", "/api/v3/order", {"symbol": "BTCUSDT",
                                                             "origClientOrderId": cid})
                got("GET", cid)
            except httpx.HTTPError:
                return  # the tap is gone: this call was never answered

    try:
        await wait_listening(port, tap, tmp, f"tap-{tag}.log")
        await asyncio.wait_for(asyncio.gather(*(bot(i, b) for i, b in enumerate(bots))), 30)
        await asyncio.to_thread(tap.wait, 10)
    finally:
        for b in bots:
            await b.aclose()
        if tap.poll() is None:
            tap.kill()
            tap.wait(10)
    assert tap.returncode == -signal.SIGKILL, (tmp / f"tap-{tag}.log").read_text()
    return answered


async def kill_rounds(tmp: Path, rounds: int) -> None:
    async with Simulator(clock=SystemClock()) as sim:
        keys = setup(sim)
        port = free_port()
        # fsync_interval_s: the background check only; durability no longer waits for it
        cfg = write_config(tmp, sim, keys, port, BAD_CHANNEL, fsync_s=30)
        spool = tmp / "tap-spool.jsonl"
        total = 0
        for r in range(rounds):
            answered = await one_round(tmp, cfg, port, keys, f"r{r}", 30 + 7 * r)
            missing = answered - spooled_calls(spool)
            assert not missing, f"round {r}: answered but not spooled: {sorted(missing)}"
            total += len(answered)
    # what the service would ingest: every line the tailer's parser reads, once each
    now = SystemClock().now_ms()
    lines = spool.read_text().splitlines()
    events = [parse_line(line, "main", now, spool=True) for line in lines]
    store = SQLiteStore(tmp / "kw.db")
    try:
        store.insert_events(events)
        stored = store.event_ids("tap:")
    finally:
        store.close()
    assert stored == {e.event_id for e in events} and len(stored) == len(lines) >= total
    placed = {e.client_order_id for e in events if e.method == "POST"}
    assert len(placed) == len([e for e in events if e.method == "POST"])  # none twice


async def test_kill_9_ten_times_under_concurrent_traffic_loses_no_answered_call(
        tmp_path: Path) -> None:
    await kill_rounds(tmp_path, 10)
