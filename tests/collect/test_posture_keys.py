"""Posture polling with other keys: a key that refuses this host is about that key, not the
monitor; it is reported once, retried hourly, and the other keys are still read."""

from __future__ import annotations

import logging

import httpx
from pydantic import SecretStr

from monitor.binance.rest import BinanceRest
from monitor.collect.poller import Poller
from monitor.core.clock import AcceleratedClock
from monitor.core.events import Event
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator

HOST = "127.0.0.5"


async def test_refusing_key_is_reported_once_and_others_still_polled(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)
    clock = AcceleratedClock(20)
    got: list[Event] = []

    async def put(events: list[Event]) -> None:
        got.extend(events)

    async with Simulator(clock=clock, seed=3) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 1000})
        mk, ms = c.create_key("main", "monitor", permissions={"enableReading": True},
                              ip_whitelist=[HOST])
        ok = c.create_key("main", "tracker", permissions={"enableReading": True},
                          ip_whitelist=[HOST, "127.0.0.2"])
        far = c.create_key("main", "tracker2", permissions={"enableReading": True},
                           ip_whitelist=["127.0.0.3"])  # this host is not in it
        http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=HOST))

        def rest(label: str, k: str, s: str, monitor: bool) -> BinanceRest:
            return BinanceRest(http, sim.rest_url, SecretStr(k), SecretStr(s), clock,
                               account="main", key_label=label, monitor_key=monitor)

        monitor = rest("monitor", mk, ms, True)
        await monitor.sync_time()
        posture = [rest("tracker", *ok, False), rest("tracker2", *far, False)]
        for r in posture:
            r.offset_ms, r.synced = monitor.offset_ms, True
        store = SQLiteStore(tmp_path / "kw.db")
        poller = Poller(monitor, store, put, posture=posture, posture_retry_ms=60_000)
        await poller.poll_once()
        await poller.poll_once()
        refused_in_two_rounds = poller.counters["posture_refused"]
        await clock.sleep(61)  # past the retry pause: the refusing key is asked again
        await poller.poll_once()
        refused_after_pause = poller.counters["posture_refused"]
        await http.aclose()
        store.close()

    keyed = {e.key for e in got if e.kind == "key_config"}
    assert {"monitor", "tracker"} <= keyed and "tracker2" not in keyed
    assert not any("monitor_key_rejected" in e.event_id for e in got)
    warnings = [r.getMessage() for r in caplog.records if "tracker2" in r.getMessage()]
    assert len(warnings) == 1 and "whitelist" in warnings[0], warnings
    assert not any("monitor key" in r.getMessage() for r in caplog.records)
    # asked once in two rounds (then paused), asked again after the pause
    assert (refused_in_two_rounds, refused_after_pause) == (1, 2)
