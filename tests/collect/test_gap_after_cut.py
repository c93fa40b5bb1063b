"""Issue 15, lost executionReports after a stream drop: what a gap loses, and what it gets back.

The hostile soak found 32-206 of its pushed executionReports never stored after an oversized
frame closed the socket and the gap's backfill met spoiled allOrders answers. The cause was not
the backfill (its retry keeps the gap until a pass succeeds: the first test, with real orders
on the exchange, spoiled answers and all), but the soak: an oversized frame ends a socket only
when the client reads it, which under backpressure is seconds later, and meanwhile the upstream
still counts the socket as subscribed, so the next flood went onto the doomed socket behind the
oversized frame (or, if the socket was already closing, the upstream counted as sent a frame
its write failed for). The hostile frames are made up (no such order exists in the simulator),
so no backfill can bring them, while a real Binance's allOrders would. The second test shows
the loss and that `bench.hostile_world.cut` (the soak's way to cut now: wait until the cut
socket is gone) keeps the next flood whole.

Real parts over 127.0.0.1: the simulator behind `HostileUpstream`, the real collector.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from bench.hostile_world import cut
from bench.soak import emitted_ids
from monitor.collect.backfill import BackfillResult
from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.core.events import Event
from monitor.store import SQLiteStore
from monitor.world.hostile import HostileUpstream, RestFault, WsFault
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, Bot, collector_config, until

SPEED = 10.0
BOT_IP = "127.0.0.6"


def _collector(sim: Simulator, up: HostileUpstream, store: SQLiteStore, clock: AcceleratedClock,
               **kw: Any) -> Collector:
    cfg = collector_config(sim, *sim.control.key_for("main", "monitor"), poll_interval_s=3600.0)
    cfg = cfg.model_copy(update={
        "binance": cfg.binance.model_copy(update={"rest_url": up.rest_url,
                                                  "ws_api_url": up.ws_url,
                                                  "weight_budget_pct": 25.0}),
        "sources": cfg.sources.model_copy(update={"poller": False})})
    return Collector(cfg, store, clock, local_host=COLLECTOR_IP, **kw)


def _account(sim: Simulator) -> tuple[str, str]:
    c = sim.control
    c.create_account("main", {"USDT": 1_000_000.0, "BTC": 10.0, "ETH": 100.0})
    c.create_key("main", "monitor", permissions={"enableReading": True},
                 ip_whitelist=[COLLECTOR_IP])
    return c.create_key("main", "bot", permissions={"enableReading": True,
                                                    "enableSpotAndMarginTrading": True},
                        ip_whitelist=[BOT_IP])


def _statuses(store: SQLiteStore) -> list[dict[str, Any]]:
    df = store.load_events()
    return [json.loads(r) for r in df[df["kind"] == "stream_status"]["raw"]]


async def test_orders_made_during_a_gap_come_back_through_spoiled_allorders_answers(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(2 * SPEED)  # an unanswered subscribe times out at the 0.5 s floor
    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        bot_key, bot_secret = _account(sim)
        store = SQLiteStore(tmp_path / "kw.db")
        col = _collector(sim, up, store, clock)
        st = col.streams["main"]
        bot = Bot(sim, bot_key, bot_secret, BOT_IP, seed=3)
        await col.start()
        try:
            await up.subscribed()
            assert await until(lambda: st.counters["backfills"] >= 1)
            for _ in range(4):
                await bot.step()  # on the stream: the symbols are known
            up.ws_ignore_requests = True  # the next subscribe goes unanswered: a long gap
            await up.send_frames(WsFault.DROP)
            assert await until(lambda: st.counters["gaps"] >= 1)
            n_live = len(sim.control.order_events("main"))
            for _ in range(12):  # while no subscription is live
                await bot.step()
            assert len(sim.control.order_events("main")) > n_live
            # the gap's backfill meets allOrders not JSON, then undecodable, then valid
            up.inject_raw(b"<html>502 Bad Gateway</html>", path="/api/v3/allOrders")
            up.inject(RestFault.JUNK_GZIP, path="/api/v3/allOrders")
            up.ws_ignore_requests = False
            await up.subscribed()
            assert await until(lambda: any(s.get("status") == "gap"
                                            for s in _statuses(store)), 15.0)
            await col.ingest.flush()
        finally:
            await col.stop()
            await bot.aclose()
        statuses = [s.get("status") for s in _statuses(store)]
        assert "backfill_failed" in statuses, statuses  # the spoiled answers were met
        assert statuses.index("gap") > statuses.index("backfill_failed")
        want, _ = emitted_ids({"main": sim.control.order_events("main")})
        stored = store.event_ids("stream:")
        assert want and want <= stored, sorted(want - stored)[:5]
        store.close()


async def test_a_flood_behind_an_unread_oversized_frame_is_lost_unless_the_cut_is_awaited(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)

    def slow_detection(events: list[Event]) -> Awaitable[None]:
        # 3 ms a fact: the store writer waits, the reader falls ~1 s behind a flood of 300
        return asyncio.sleep(0.003 * len(events))

    async with Simulator(clock=clock) as sim, HostileUpstream(sim, oversized_bytes=1 << 21) as up:
        _account(sim)
        store = SQLiteStore(tmp_path / "kw.db")
        col = _collector(sim, up, store, clock, queue_size=200, on_events=slow_detection)
        st = col.streams["main"]
        await col.start()
        try:
            await up.subscribed()
            assert await until(lambda: st.counters["backfills"] >= 1)
            # before: the soak's way. A flood the reader is behind on, the oversized frame,
            # and the next flood at once: the upstream still counts the socket as subscribed
            await up.send_frames(WsFault.VALID, n=300)
            first = set(up.sent_valid_ids("main"))
            await up.send_frames(WsFault.OVERSIZED)
            await up.subscribed()
            await up.send_frames(WsFault.VALID, n=200)
            behind = set(up.sent_valid_ids("main")) - first
            assert await until(lambda: st.counters["gaps"] >= 1, 20.0)
            await up.subscribed()
            assert await until(lambda: st.counters["backfills"] >= 2, 20.0)
            # after: cut, wait until the cut socket is gone, then flood
            await up.send_frames(WsFault.VALID, n=150)
            second = set(up.sent_valid_ids("main"))
            await cut(up, WsFault.OVERSIZED, timeout_s=20.0)
            await up.subscribed()
            await up.send_frames(WsFault.VALID, n=100)
            after = set(up.sent_valid_ids("main")) - second
            assert await until(lambda: after <= store.event_ids("stream:order:main"), 20.0)
            await col.ingest.flush()
        finally:
            await col.stop()
        stored = store.event_ids("stream:order:main")
        assert first <= stored and second - first - behind <= stored  # read before the cut
        lost = behind - stored
        assert lost, "the flood behind the oversized frame was expected on the doomed socket"
        # none of them exists on the exchange: no backfill could have brought them
        exchange = {int(ev["i"]) for ev in sim.control.order_events("main")}
        assert not exchange & {oid for _s, oid in up.sent_orders}
        assert after <= stored  # awaited cut: the next flood reached the new subscription whole
        store.close()


async def test_a_pass_failing_with_any_error_keeps_its_gap_for_the_next_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: only BinanceError was retried; anything else (a store error, a bug) ended the
    worker with the gap already taken off the list, so no pass ever filled it."""
    clock = AcceleratedClock(2 * SPEED)
    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        _account(sim)
        store = SQLiteStore(tmp_path / "kw.db")
        col = _collector(sim, up, store, clock)
        st = col.streams["main"]
        await col.start()
        try:
            await up.subscribed()
            assert await until(lambda: st.counters["backfills"] >= 1)
            real, calls = st.backfill.run, []

            async def fails_once() -> BackfillResult:
                calls.append(1)
                if len(calls) == 1:
                    raise RuntimeError("disk I/O error")
                return await real()

            monkeypatch.setattr(st.backfill, "run", fails_once)
            await up.send_frames(WsFault.DROP)
            assert await until(lambda: any(s.get("status") == "gap"
                                            for s in _statuses(store)), 10.0)
            await col.ingest.flush()
        finally:
            await col.stop()
        statuses = _statuses(store)
        failed = [s for s in statuses if s.get("status") == "backfill_failed"]
        assert [s["error"] for s in failed] == ["RuntimeError"]  # the type, not the message
        gap = next(s for s in statuses if s.get("status") == "gap")
        assert gap["gap_from"] in failed[0]["gaps"] and not st.gap_open
        store.close()
