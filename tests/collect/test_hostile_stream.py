"""Issue 15 items 6 and 9 on the stream side: a hostile user-data stream cannot swell or blind
the collector. Before: the socket's reader appended every frame's events to an unbounded list
(a 20-35k frames/s flood took the service to 1.9 GB), and reconnects left "Future exception was
never retrieved" in the log.

The real collector subscribes over a real WebSocket on 127.0.0.1 to
`monitor.world.hostile.HostileUpstream` (the simulator's WS API, with frames pushed in).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from websockets.protocol import State

from monitor.binance.parse import Ctx
from monitor.binance.stream import StreamClosed, UserDataSocket
from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.core.events import Event
from monitor.store import SQLiteStore
from monitor.world.hostile import HostileUpstream, WsFault
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, collector_config, until

SPEED = 10.0
QUEUE_EVENTS = 200


def _collector(sim: Simulator, up: HostileUpstream, store: SQLiteStore, clock: AcceleratedClock,
               **kw: Any) -> Collector:
    c = sim.control
    c.create_account("main", {"USDT": 1000})
    key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                               ip_whitelist=[COLLECTOR_IP])
    cfg = collector_config(sim, key, secret, poll_interval_s=3600.0)
    cfg = cfg.model_copy(update={
        "binance": cfg.binance.model_copy(update={"rest_url": up.rest_url,
                                                  "ws_api_url": up.ws_url,
                                                  "weight_budget_pct": 25.0}),
        "sources": cfg.sources.model_copy(update={"poller": False})})
    return Collector(cfg, store, clock, local_host=COLLECTOR_IP, **kw)


async def test_a_frame_flood_waits_at_the_socket_and_every_fact_is_stored_once(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)

    def slow_detection(events: list[Event]) -> Awaitable[None]:
        return asyncio.sleep(0.01)  # detection behind: the store writer waits per batch

    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        store = SQLiteStore(tmp_path / "kw.db")
        col = _collector(sim, up, store, clock, queue_size=QUEUE_EVENTS,
                         on_events=slow_detection)
        st = col.streams["main"]
        await col.start()
        ahead: list[int] = []
        try:
            await up.subscribed()
            await until(lambda: st.counters["backfills"] >= 1)
            done = asyncio.Event()

            async def watch() -> None:  # how far the reader runs ahead of the store
                ing = col.ingest
                while not done.is_set():
                    ahead.append(st.counters["frames"] - ing.written - ing.duplicates
                                 - ing.queue.qsize())
                    await asyncio.sleep(0.005)

            watcher = asyncio.create_task(watch())
            sent = await up.send_frames(WsFault.VALID, n=4000)  # as fast as TCP takes them
            assert sent == 4000
            ids = up.sent_valid_ids("main")
            assert await until(lambda: st.counters["frames"] >= 4000, 20.0)
            await col.ingest.flush()
            done.set()
            await watcher
        finally:
            await col.stop()
        stored = store.event_ids("stream:order:main")
        assert all(i in stored for i in ids)
        assert store.count_events() == len(store.event_ids())
        assert col.ingest.queue.peak <= QUEUE_EVENTS
        # read but not yet stored: at most the queue's bound plus the writer's batch in
        # flight (was: the whole flood, held in a list by the reader)
        assert max(ahead) <= 2 * QUEUE_EVENTS + 2, max(ahead)
        store.close()


async def test_bad_frames_are_counted_and_the_stream_comes_back_after_each_cut(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
            store = SQLiteStore(tmp_path / "kw.db")
            col = _collector(sim, up, store, clock,
                             stream_options={"probe_after_s": 2.0, "dead_after_s": 2.0})
            st = col.streams["main"]
            await col.start()
            try:
                await up.subscribed()
                await up.send_frames(WsFault.MALFORMED, n=6)
                assert await until(lambda: st.counters["malformed"] >= 6)
                for _ in range(3):  # an oversized frame closes the socket (1009); we come back
                    before = st.counters["gaps"]
                    await up.send_frames(WsFault.OVERSIZED)
                    assert await until(lambda b=before: st.counters["gaps"] > b)  # type: ignore[misc]
                    await up.subscribed()
                for _ in range(3):  # cut mid-request: the watchdog's probe waits unanswered
                    up.ws_ignore_requests = True
                    assert await until(lambda: st._probe_sent is not None, 5.0)
                    await asyncio.sleep(0.05)
                    before = st.counters["gaps"]
                    await up.send_frames(WsFault.DROP)
                    up.ws_ignore_requests = False
                    assert await until(lambda b=before: st.counters["gaps"] > b)  # type: ignore[misc]
                    await up.subscribed()
                    gc.collect()
                await up.send_frames(WsFault.VALID, n=5)
                ids = up.sent_valid_ids("main")
                assert await until(lambda: all(i in store.event_ids("stream:order:main")
                                                for i in ids))
            finally:
                await col.stop()
            store.close()
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous)
    texts = [str(ctx.get("message")) for ctx in reported]
    assert not any("never retrieved" in t for t in texts), texts


async def test_a_request_sent_while_the_socket_closes_leaves_nothing_unretrieved() -> None:
    """The race behind the log line: a request (the watchdog's probe) is sent while the socket
    is closing (here: an oversized frame, 1009); websockets holds the send until the socket is
    closed, the reader fails the request's future, then the send raises and nobody ever looked
    at the future's exception."""
    clock = AcceleratedClock(SPEED)
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    try:
        async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
            c = sim.control
            c.create_account("main", {"USDT": 1000})
            key, secret = c.create_key("main", "monitor", permissions={"enableReading": True})
            for _ in range(3):
                sock = UserDataSocket(
                    up.ws_url, SecretStr(key), SecretStr(secret), clock,
                    server_now=clock.now_ms, on_frame=lambda _f: None,
                    ctx=lambda: Ctx(account="main", received_ts=clock.now_ms()))
                await sock.open()
                await up.subscribed()
                push = asyncio.create_task(up.send_frames(WsFault.OVERSIZED))
                assert sock._ws is not None
                while sock._ws.state is State.OPEN:
                    await asyncio.sleep(0)
                with pytest.raises(StreamClosed):
                    await sock.request("time")
                await push
                await sock.close("test")
                gc.collect()
    finally:
        loop.set_exception_handler(previous)
    texts = [str(ctx.get("message")) for ctx in reported]
    assert not any("never retrieved" in t for t in texts), texts


async def test_stop_does_not_wait_for_a_subscribe_the_server_never_answers(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(1.0)  # the subscribe waits 10 s for its answer
    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        store = SQLiteStore(tmp_path / "kw.db")
        col = _collector(sim, up, store, clock)
        up.ws_ignore_requests = True
        await col.start()
        # connected, subscribe unanswered; the weight budget holds a spend in the first and
        # last 5 s of a wall-clock minute, so the connect may wait up to 10 s at speed 1
        assert await until(lambda: bool(up._ws_conns), 12.0)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await col.stop()
        took = time.monotonic() - started
        store.close()
        assert took < 1.5, took  # was the collector's 5 s grace, then a cancel
