"""Issue 14, alerts a person can act on, through the running service.

The real simulator on loopback, the real collector with its in-process tap and user-data
stream, the service with the shipped rules, alerts through real Apprise (`json://`) to a local
receiver. Bots are real HTTP clients bound to their own loopback address, calling through the
tap. The clock runs 30x so the provenance grace, the group wait and a minute's close take
fractions of a second.

- A bot whose host moved (as the simulator's `host_ip_changed` does: the same client, bound to
  a new address) places orders from an address its key does not declare: the new
  caller is shown beside the declared whitelist and the addresses the key was seen from, and
  its orders are ONE delivered incident with their count, not an alert per order; a pump on
  the same account straight at Binance afterwards is a new incident and is delivered.
- A bot signing with an old secret gets -1022s: the refused-calls alert says "bad signature"
  and counts the codes, never "-2015/-2014".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from monitor.binance.signing import sign_rest_query
from monitor.collect.collector import Collector
from monitor.config import Config
from monitor.core.clock import AcceleratedClock, Clock
from monitor.service.pipeline import Service, build_engine
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.alert.conftest import alerts_cfg, channel
from tests.alert.receivers import JsonSink
from tests.collect.simkit import COLLECTOR_IP, collector_config

ROOT = Path(__file__).resolve().parents[2]
SPEED = 30.0
BOT_IP, MOVED_IP, THIEF_IP = "127.0.0.6", "127.0.0.9", "127.66.0.9"
TRADE = {"enableReading": True, "enableSpotAndMarginTrading": True}


class Client:
    """A bot's HTTP client: signs like Binance's connectors, leaves from its own address."""

    def __init__(self, sim: Simulator, base: str, key: str, secret: str, ip: str) -> None:
        self.sim, self.base, self.key, self.secret = sim, base, key, secret
        self.http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=ip),
                                      timeout=10.0)

    async def call(self, method: str, path: str, params: list[tuple[str, object]]
                   ) -> httpx.Response:
        q = sign_rest_query(SecretStr(self.secret),
                            [*params, ("recvWindow", 60_000),  # the clock runs 30x
                             ("timestamp", self.sim.control.server_time_ms())])
        return await self.http.request(method, f"{self.base}{path}?{q}",
                                       headers={"X-MBX-APIKEY": self.key})

    async def buy(self, symbol: str = "BTCUSDT", qty: str = "0.001") -> httpx.Response:
        return await self.call("POST", "/api/v3/order", [
            ("symbol", symbol), ("side", "BUY"), ("type", "MARKET"), ("quantity", qty)])

    async def aclose(self) -> None:
        await self.http.aclose()


def _config(sim: Simulator, keys: dict[str, tuple[str, str]], sink: JsonSink, tmp: Path,
            group_wait_s: float) -> Config:
    """The bot key declares BOT_IP as its only address (on Binance the tap's egress is listed:
    the tap forwards from the collector's host)."""
    (mk, ms), (bk, _) = keys["monitor"], keys["grid-bot"]
    cfg = collector_config(sim, mk, ms, tap=True, bot_key=bk, poll_interval_s=60)
    acct = cfg.accounts[0]
    bot_keys = [k.model_copy(update={"ip_whitelist": [BOT_IP]}) if k.label == "grid-bot" else k
                for k in acct.keys]
    return cfg.model_copy(update={
        "store_path": str(tmp / "kw.db"), "rules_dir": str(ROOT / "rules"),
        "model_path": None,  # rules only: loading the forest takes seconds and judges nothing here
        "accounts": [acct.model_copy(update={"keys": bot_keys})],
        # no poller: nothing here needs it, and its stop waits out a sleep (5 s at shutdown)
        "sources": cfg.sources.model_copy(update={"poller": False}),
        "alerts": alerts_cfg(channel("hook", sink.url), group_wait_s=group_wait_s),
    })


@asynccontextmanager
async def running(cfg: Config, clock: Clock) -> AsyncIterator[tuple[Service, str]]:
    """The service with its real collector; yields it and the tap's URL."""
    store = SQLiteStore(cfg.store_path)
    svc: Service

    def source(on_events: Callable[[list[Any]], Any]) -> Collector:
        return Collector(cfg, store, clock, on_events=on_events, local_host=COLLECTOR_IP,
                         metrics=svc.metrics)

    svc = Service(cfg, store, clock, source_factory=source, engine=build_engine(cfg))
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await _until(lambda: _ready(svc))
        yield svc, _ready(svc) or ""
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()


def _ready(svc: Service) -> str | None:
    """The tap's URL once it listens and the user-data stream is connected."""
    col = svc.source
    if not isinstance(col, Collector) or not col.streams["main"].connected.is_set():
        return None
    try:
        return col.tap_url
    except AttributeError:  # uvicorn's Server has no `servers` until it started
        return None


async def _until(cond: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _with(sink: JsonSink, needle: str) -> list[dict[str, Any]]:
    return [m for m in sink.received if needle in m["message"]]


@pytest.fixture()
async def sink() -> AsyncIterator[JsonSink]:
    s = await JsonSink().start()
    yield s
    await s.stop()


@pytest.mark.timeout(60)
async def test_a_moved_bot_is_one_incident_beside_its_known_addresses_and_a_pump_still_pages(
        tmp_path, sink) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock, seed=3) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100_000, "BTC": 1})
        keys = {"monitor": c.create_key("main", "monitor", permissions={"enableReading": True},
                                        ip_whitelist=[COLLECTOR_IP]),
                "grid-bot": c.create_key("main", "grid-bot", permissions=TRADE)}
        bk, bs = keys["grid-bot"]
        # 45 s of clock (1.5 s of wall) holds the first alert while the moved bot's orders
        # are judged (the provenance grace, 3 s, plus the lateness allowance) and fold into it
        cfg = _config(sim, keys, sink, tmp_path, group_wait_s=45)
        async with running(cfg, clock) as (svc, tap):
            home = Client(sim, tap, bk, bs, BOT_IP)
            for _ in range(2):
                assert (await home.buy()).status_code == 200
            await home.aclose()
            moved = Client(sim, tap, bk, bs, MOVED_IP)  # the same bot on its new host
            placed = [(await moved.buy()).json()["orderId"] for _ in range(5)]
            await moved.aclose()
            await _until(lambda: _with(sink, "foreign.order"))
            (first,) = _with(sink, "foreign.order")  # one alert for the five orders
            await _until(lambda: _with(sink, "unknown_ip.new_caller"))
            new_caller = _with(sink, "unknown_ip.new_caller")[0]["message"]
            # a pump on the same account, straight at Binance with the leaked key
            thief = Client(sim, sim.rest_url, bk, bs, THIEF_IP)
            pump = (await thief.buy("ETHUSDT", "0.01")).json()["orderId"]
            await thief.aclose()
            await _until(lambda: len(_with(sink, "foreign.order")) == 2)
            alerts = svc.store.load_alerts()

    assert "declared whitelist: 127.0.0.6\n" in new_caller, new_caller
    assert "addresses seen before: 127.0.0.6\n" in new_caller, new_caller
    body = first["message"]
    assert f"from {MOVED_IP}, an address it is not expected at" in first["title"] + body
    assert "caller IP: 127.0.0.9" in body and "occurrences: 5" in body, body
    assert f"order id: {placed[-1]}" in body  # the newest evidence
    assert "NEW INCIDENT" not in body and "incidents so far" not in body
    second = _with(sink, "foreign.order")[1]
    assert "NEW INCIDENT" in second["message"] and f"order id: {pump}" in second["message"]
    assert "ETHUSDT" in second["message"] and "caller IP" not in second["message"]
    foreign = [a for a in alerts if any(i.rule_id == "foreign.order"
                                        for i in a.payload.items)]
    assert [i.incident for a in foreign for i in a.payload.items
            if i.rule_id == "foreign.order"] == [f"ip={MOVED_IP}", f"order_id={pump}"]
    assert len(sink.received) == len(alerts)  # every alert was delivered


@pytest.mark.timeout(60)
async def test_refused_calls_with_an_old_secret_are_titled_bad_signature(tmp_path, sink
                                                                        ) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock, seed=4) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 1000})
        keys = {"monitor": c.create_key("main", "monitor", permissions={"enableReading": True},
                                        ip_whitelist=[COLLECTOR_IP]),
                "grid-bot": c.create_key("main", "grid-bot", permissions=TRADE)}
        bk, _ = keys["grid-bot"]
        cfg = _config(sim, keys, sink, tmp_path, group_wait_s=0)
        async with running(cfg, clock) as (svc, tap):
            stale = Client(sim, tap, bk, "an-old-secret-" + "x" * 50, BOT_IP)
            answers = [(await stale.call("GET", "/api/v3/account", [])).json()["code"]
                       for _ in range(6)]
            await stale.aclose()
            await _until(lambda: _with(sink, "unknown_ip.auth_burst"), timeout=30)
            (msg,) = _with(sink, "unknown_ip.auth_burst")
            (f,) = [f for f in svc.store.load_findings() if f.rule_id == "unknown_ip.auth_burst"]

    assert answers == [-1022] * 6
    assert f.evidence["codes"] == {"-1022": 6}  # kept with the finding, in the store
    assert "Calls with a bad signature (-1022)" in msg["title"], msg["title"]
    body = msg["message"]
    assert "answers: -1022 bad signature x6" in body, body
    assert "your own bot after a secret change" in body
    assert "-2015" not in msg["title"] + body and "-2014" not in msg["title"] + body
