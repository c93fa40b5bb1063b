"""The REST client against the real simulator: retries, resync, key rejection, no leaks."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from pydantic import SecretStr

from monitor.binance.rest import BinanceRest, MonitorKeyRejected, UnknownOutcome
from monitor.core.clock import AcceleratedClock
from monitor.core.events import Event, Kind
from monitor.world.sim import Simulator

IP = "127.0.0.7"


async def _client(sim, key: str, secret: str, clock, events: list[Event]) -> BinanceRest:
    http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=IP))
    return BinanceRest(http, sim.rest_url, SecretStr(key), SecretStr(secret), clock,
                       account="main", key_label="monitor", emit=events.extend)


async def test_retries_resync_rejection_and_no_secret_anywhere(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    clock = AcceleratedClock(50)
    events: list[Event] = []
    async with Simulator(clock=clock, seed=1) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 10})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True},
                                   ip_whitelist=[IP])
        rest = await _client(sim, key, secret, clock, events)
        await rest.sync_time()

        c.fail_rest(status=503, count=2)  # 5xx = unknown outcome: a read is retried
        res = await rest.get("/api/v3/account", weight=20)
        assert res.status == 200 and rest.counters["retries"] == 2

        c.fail_rest(status=503, count=1)  # ... but a non-idempotent call is not
        with pytest.raises(UnknownOutcome):
            await rest.request("POST", "/api/v3/order", {"symbol": "BTCUSDT"}, weight=1)

        c.shift_clock(-5000)  # -1021 -> resync -> one retry succeeds
        before = rest.counters["resyncs"]
        assert (await rest.get("/api/v3/account", weight=20)).status == 200
        assert rest.counters["resyncs"] == before + 1

        c.set_whitelist(key, ["127.0.0.8"])  # the monitor's own IP is no longer allowed
        with pytest.raises(MonitorKeyRejected) as err:
            await rest.get("/api/v3/account", weight=20)
        await rest._client.aclose()

    rejected = [e for e in events if e.kind is Kind.STREAM_STATUS]
    assert len(rejected) == 1 and "monitor_key_rejected" in (rejected[0].raw or "")
    assert any(e.kind is Kind.USAGE and e.weight_1m for e in events)
    texts = [r.getMessage() for r in caplog.records] + [str(err.value), repr(err.value)]
    texts += [e.model_dump_json() for e in events]
    for text in texts:
        assert secret not in text, "the API secret leaked"
        assert key not in text, "the full API key leaked"
        assert not re.search(r"[0-9a-f]{64}", text), "a signature leaked"
    assert any(key[:4] in t for t in texts)  # the hint (4 chars) is what operators see
