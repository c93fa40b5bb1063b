"""The addresses Keywatch's calls leave from are configurable: the tap forwards from the bots'
whitelisted host address, and Keywatch's own calls from the monitor key's, on a multi-homed
host (or a standalone `keywatch run` against the simulator's loopback hosts)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from monitor.collect.collector import Collector
from monitor.config import BinanceConfig, TapConfig
from monitor.core.clock import SystemClock
from monitor.store import SQLiteStore
from monitor.world.sim import Simulator
from tests.collect.simkit import collector_config

TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


def test_an_address_that_is_not_an_ip_is_refused_with_an_example() -> None:
    with pytest.raises(ValidationError, match="not an IP address"):
        TapConfig(source_address="nohost")
    with pytest.raises(ValidationError, match="not an IP address"):
        BinanceConfig(source_address="bot-host")
    assert TapConfig(source_address="").source_address is None


async def test_the_tap_forwards_from_the_configured_address(tmp_path) -> None:
    async with Simulator(clock=SystemClock(), seed=2) as sim:
        sim.control.create_account("main", {"USDT": 1000})
        mk, ms = sim.control.create_key("main", "monitor", ip_whitelist=["127.0.0.5"])
        bk, _bs = sim.control.create_key("main", "grid", permissions=TRADER,
                                         ip_whitelist=["127.0.0.7"])
        results = {}
        for source in (None, "127.0.0.7"):
            cfg = collector_config(sim, mk, ms, tap=True, bot_key=bk)
            cfg = cfg.model_copy(update={"sources": cfg.sources.model_copy(update={
                "tap": cfg.sources.tap.model_copy(update={"source_address": source})})})
            store = SQLiteStore(tmp_path / f"kw-{source}.db")
            col = Collector(cfg, store, sim.clock, local_host="127.0.0.5")
            assert col.tap is not None
            transport = httpx.ASGITransport(app=col.tap)
            async with httpx.AsyncClient(transport=transport, base_url="http://tap") as bot:
                r = await bot.get("/api/v3/openOrders", headers={"X-MBX-APIKEY": bk},
                                  params={"timestamp": sim.clock.now_ms(), "signature": "0"})
            results[source] = (r.status_code, r.json().get("code"))
            await col.tap.aclose()
            store.close()
    # from the monitor's host the bot key's whitelist refuses the call before the signature
    assert results[None] == (401, -2015)
    # from the configured bot host it gets past the whitelist to the (fake) signature check
    assert results["127.0.0.7"] == (400, -1022)
