"""Issue 15 items 5 and 6 on the REST side: a hostile upstream cannot crash, stick or swell the
poller. Before: a body nested 200,000 deep or junk gzip escaped `BinanceRest` (RecursionError,
httpx.DecodingError) and crash-looped the collector, a 512 MB body was read whole (3.1 GiB), and
a body trickled a byte at a time stuck the poller for good.

Everything talks real HTTP on 127.0.0.1 to `monitor.world.hostile.HostileUpstream`, which
serves the real simulator's answers and replaces the chosen ones.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from monitor.binance.parse import order_fact_id
from monitor.binance.rest import BinanceError, BinanceRest, MalformedAnswer, UnknownOutcome
from monitor.collect.collector import Collector
from monitor.core.clock import AcceleratedClock
from monitor.service.metrics import Metrics
from monitor.store import SQLiteStore
from monitor.world.hostile import HostileUpstream, RestFault
from monitor.world.sim import Simulator
from tests.collect.simkit import COLLECTOR_IP, Bot, collector_config

SPEED = 20.0
BOT_IP = "127.0.0.21"
MIB = 1 << 20


def _rest(up: HostileUpstream, key: str, secret: str, clock: AcceleratedClock,
          http: httpx.AsyncClient, *, max_retries: int = 0, **limits: float) -> BinanceRest:
    rest = BinanceRest(http, up.rest_url, SecretStr(key), SecretStr(secret), clock,
                       account="main", key_label="monitor", weight_budget=6000.0,
                       max_retries=max_retries)
    for name, value in limits.items():  # max_body_bytes, deadline_s
        setattr(rest, name, value)
    return rest


def _bad(metrics: Metrics, reason: str) -> float:
    v = metrics.registry.get_sample_value("keywatch_rest_bad_answers_total",
                                          {"account": "main", "reason": reason})
    return v or 0.0


async def _until(cond, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.05)
    return bool(cond())


# -- the poller against every bad answer, then the valid facts exactly once --------------------
FAULTS = [  # (fault, path it hits, the refusal reason it is counted as; None: not a refusal)
    (RestFault.DEEP, "/api/v3/rateLimit/order", "not_json"),
    (RestFault.JUNK_GZIP, "/api/v3/rateLimit/order", "undecodable"),
    (RestFault.LIST, "/sapi/v1/account/apiTradingStatus", "wrong_shape"),
    (RestFault.NUMBER, "/sapi/v1/account/apiRestrictions", "wrong_shape"),
    (RestFault.STRING, "/api/v3/allOrders", "wrong_shape"),
    (RestFault.HUGE, "/sapi/v1/account/apiTradingStatus", "too_large"),
    (RestFault.TRICKLE, "/api/v3/rateLimit/order", "deadline"),
    (RestFault.BIGINT, "/api/v3/rateLimit/order", None),
    (RestFault.RATE_429, "/sapi/v1/account/apiRestrictions", None),
    (RestFault.BAN_418, "/api/v3/rateLimit/order", None),
    (RestFault.DROP, "/sapi/v1/account/apiTradingStatus", None),
]


async def test_the_poller_survives_every_bad_answer_and_stores_valid_facts_once(
        tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock) as sim, HostileUpstream(
            sim, huge_bytes=64 * MIB, trickle_s=0.3) as up:
        c = sim.control
        c.create_account("main", {"USDT": 100_000, "BTC": 1, "ETH": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                                   ip_whitelist=[COLLECTOR_IP])
        bot_key, bot_secret = c.create_key("main", "grid-bot",
                                           permissions={"enableSpotAndMarginTrading": True})
        bot = Bot(sim, bot_key, bot_secret, BOT_IP, seed=3)
        for _ in range(6):
            await bot.step()
        cfg = collector_config(sim, key, secret, poll_interval_s=0.5 * SPEED)
        cfg = cfg.model_copy(update={
            "binance": cfg.binance.model_copy(update={"rest_url": up.rest_url,
                                                      "weight_budget_pct": 25.0}),
            "sources": cfg.sources.model_copy(update={"stream": False})})
        store = SQLiteStore(tmp_path / "kw.db")
        metrics = Metrics()
        metrics.prime(cfg)
        col = Collector(cfg, store, clock, local_host=COLLECTOR_IP, metrics=metrics)
        rest, poller = col.rests["main"], col.pollers["main"]
        rest.deadline_s = 1.0 * SPEED  # one wall second for a whole exchange
        rest.max_body_bytes = 4 * MIB
        for fault, path, _reason in FAULTS:
            up.inject(fault, path=path)
        await col.start()
        try:
            assert await _until(lambda: not up.injections, 30.0), up.injections
            served = poller.counters["rounds"]
            assert await _until(lambda: poller.counters["rounds"] >= served + 1, 10.0)
            await col.ingest.flush()
        finally:
            await col.stop()
            await bot.aclose()
        for fault, _path, _reason in FAULTS:
            assert up.rest_sent[fault] >= 1, fault
        for reason in {r for _f, _p, r in FAULTS if r is not None}:
            assert _bad(metrics, reason) >= 1, (reason, rest.counters)
        assert poller.counters["unexpected"] == 0  # every refusal was a typed BinanceError
        assert poller.counters["errors"] >= 5
        assert col.ingest.out_of_range >= 1  # the 2^64 counters: stored nulled, counted
        # every order the bot placed is stored, once (the store keys events by id), as the
        # stream's fact rebuilt from REST by the backfill the poller runs
        orders = [e for e in c.order_events("main") if e.get("x") == "NEW"]
        assert orders
        ids = store.event_ids("stream:order:main")
        for ev in orders:
            assert order_fact_id("main", str(ev["s"]), int(ev["i"]), "NEW") in ids
        assert store.count_events() == len(store.event_ids())
        store.close()


# -- the trickle: the deadline, in bounded wall time -------------------------------------------
async def test_a_trickled_body_hits_the_deadline_in_bounded_time() -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock) as sim, HostileUpstream(sim, trickle_s=0.5) as up:
        c = sim.control
        c.create_account("main", {"USDT": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True})
        async with httpx.AsyncClient(timeout=30.0) as http:  # per read: each byte resets it
            rest = _rest(up, key, secret, clock, http, max_retries=0, deadline_s=1.0 * SPEED)
            bad: list[str] = []
            rest.on_bad_answer = bad.append
            up.inject(RestFault.TRICKLE, path="/api/v3/time")  # ~14 s to trickle in full
            started = time.monotonic()
            with pytest.raises(UnknownOutcome):
                await rest.get("/api/v3/time", weight=1, signed=False)
            took = time.monotonic() - started
            assert took < 4.0, took  # the deadline (1 s) plus at most a budget window; not 14 s
            assert bad == ["deadline"]
            # the next call is answered normally
            assert (await rest.get("/api/v3/time", weight=1, signed=False)).status == 200


# -- 512 MiB: abandoned at the cap, memory never near the body ----------------------------------
def _vm_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/self/status")


async def test_a_512_mib_body_is_abandoned_at_the_cap_with_flat_memory() -> None:
    clock = AcceleratedClock(SPEED)
    cap = 16 * MIB
    async with Simulator(clock=clock) as sim, HostileUpstream(sim, huge_bytes=512 * MIB) as up:
        c = sim.control
        c.create_account("main", {"USDT": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True})
        async with httpx.AsyncClient(timeout=30.0) as http:
            rest = _rest(up, key, secret, clock, http, max_retries=0, max_body_bytes=cap)
            up.inject(RestFault.HUGE, path="/api/v3/account")
            before = _vm_kib("VmRSS")
            peak = before
            done = asyncio.Event()

            async def sample() -> None:
                nonlocal peak
                while not done.is_set():
                    peak = max(peak, _vm_kib("VmRSS"))
                    await asyncio.sleep(0.002)

            sampler = asyncio.create_task(sample())
            started = time.monotonic()
            try:
                with pytest.raises(MalformedAnswer) as err:
                    await rest.get("/api/v3/account", weight=20)
            finally:
                done.set()
                await sampler
            assert err.value.reason == "too_large"
            assert time.monotonic() - started < 3.0
            grown_mib = (peak - before) / 1024
            assert grown_mib < cap / MIB + 24, grown_mib  # the cap plus a margin, not 512
            assert (await rest.get("/api/v3/time", weight=1, signed=False)).status == 200


# -- property: any body, any status, only the BinanceError family -------------------------------
class _Upstream:
    """One simulator and hostile upstream on a loop in a thread, for a sync hypothesis test
    (each example makes its own short-lived loop and client)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.clock = AcceleratedClock(50.0)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = Simulator(clock=self.clock)
        self.up = HostileUpstream(self.sim)
        self._run(self.sim.start())
        self._run(self.up.start())
        c = self.sim.control
        self._run(self._async(c.create_account, "main", {"USDT": 10}))
        self.key, self.secret = self._run(self._async(
            c.create_key, "main", "monitor", permissions={"enableReading": True}))

    @staticmethod
    async def _async(fn, *args, **kw):  # type: ignore[no-untyped-def]
        return fn(*args, **kw)

    def _run(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def inject(self, body: bytes, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._run(self._async(self.up.inject_raw, body, status, headers))

    def close(self) -> None:
        self._run(self.up.stop())
        self._run(self.sim.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[_Upstream]:
    u = _Upstream()
    yield u
    u.close()


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids,
                                                              max_size=4),
    max_leaves=20)
BODIES = st.one_of(
    st.binary(max_size=300),
    JSONISH.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 5000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b'{"code": -1003, "msg": "x"}', b'{"code": "x", "msg": 5}',
                     b'{"serverTime": 1e400}', b'{"serverTime": 99999999999999999999999}']),
)
PATHS = ["/api/v3/time", "/api/v3/account", "/api/v3/rateLimit/order",
         "/sapi/v1/account/apiRestrictions", "/api/v3/ticker/price", "/api/v3/exchangeInfo"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(body=BODIES, status=st.sampled_from([200, 200, 200, 400, 401, 404, 418, 429, 500, 503]),
       gzipped=st.sampled_from(["no", "no", "real", "claimed"]), path=st.sampled_from(PATHS))
def test_any_answer_raises_only_the_binance_error_family(upstream: _Upstream, body: bytes,
                                                         status: int, gzipped: str,
                                                         path: str) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if gzipped != "no":
        headers.append((b"content-encoding", b"gzip"))
        body = gzip.compress(body) if gzipped == "real" else body
    upstream.inject(body, status, headers)

    async def call() -> None:
        async with httpx.AsyncClient(timeout=5.0) as http:
            rest = _rest(upstream.up, upstream.key, upstream.secret, upstream.clock, http,
                         max_retries=0, deadline_s=100.0)
            try:
                if path == "/api/v3/time":
                    await rest.sync_time()
                else:
                    await rest.get(path, weight=1, signed=path != "/api/v3/exchangeInfo")
            except BinanceError:
                pass  # the typed family: what every caller catches

    asyncio.run(call())



# -- the poller's own store calls under a real write lock; stop() mid-wait ----------------------
def _poller_collector(sim: Simulator, up: HostileUpstream, store: SQLiteStore, clock,  # type: ignore[no-untyped-def]
                      key: str, secret: str) -> Collector:
    cfg = collector_config(sim, key, secret, poll_interval_s=0.5 * clock.speed)
    cfg = cfg.model_copy(update={
        "binance": cfg.binance.model_copy(update={"rest_url": up.rest_url,
                                                  "weight_budget_pct": 25.0}),
        "sources": cfg.sources.model_copy(update={"stream": False})})
    return Collector(cfg, store, clock, local_host=COLLECTOR_IP)


async def test_a_locked_store_does_not_stop_the_poller(tmp_path: Path) -> None:
    clock = AcceleratedClock(SPEED)
    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        c = sim.control
        c.create_account("main", {"USDT": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                                   ip_whitelist=[COLLECTOR_IP])
        store = SQLiteStore(tmp_path / "kw.db", busy_timeout_ms=50)
        col = _poller_collector(sim, up, store, clock, key, secret)
        poller = col.pollers["main"]
        locker = sqlite3.connect(tmp_path / "kw.db", isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # a real second writer holds the lock
        await col.start()
        try:
            await _until(lambda: poller.counters.get("store_retries", 0) >= 2, 8.0)
            locker.execute("COMMIT")
            assert await _until(lambda: store.last_key_snapshot("main", "monitor") is not None,
                                8.0)
            rounds = poller.counters["rounds"]
            assert await _until(lambda: poller.counters["rounds"] > rounds, 8.0)
            assert not any(t.done() for t in col._tasks)  # nothing crashed
            assert poller.counters["store_retries"] >= 2
        finally:
            locker.close()
            await col.stop()
            store.close()


async def test_stop_does_not_wait_out_a_ban(tmp_path: Path) -> None:
    clock = AcceleratedClock(1.0)
    async with Simulator(clock=clock) as sim, HostileUpstream(sim, retry_after_s=60) as up:
        c = sim.control
        c.create_account("main", {"USDT": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                                   ip_whitelist=[COLLECTOR_IP])
        store = SQLiteStore(tmp_path / "kw.db")
        col = _poller_collector(sim, up, store, clock, key, secret)
        up.rest_mix = {RestFault.BAN_418: 1.0}  # every call: banned for a minute
        await col.start()
        assert await _until(lambda: up.rest_sent[RestFault.BAN_418] >= 1, 15.0)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await col.stop()
        took = time.monotonic() - started
        store.close()
        assert took < 1.5, took  # was the collector's 5 s grace, then a cancel
