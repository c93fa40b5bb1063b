"""Fixtures: a real simulator on 127.0.0.1:0 and signed clients bound to loopback addresses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator
from monitor.world.sim.client import ActorClient

TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(clock=SystemClock(), seed=1) as s:
        s.control.create_account("main", {"USDT": 10_000, "BTC": 0.5, "DOGE": 0})
        yield s


@pytest.fixture
async def bot(sim: Simulator) -> AsyncIterator[ActorClient]:
    """A trading key whitelisted for 127.0.0.2, calling from 127.0.0.2."""
    key, secret = sim.control.create_key("main", "grid", permissions=TRADER,
                                         ip_whitelist=["127.0.0.2"])
    client = ActorClient(sim.rest_url, "127.0.0.2", key, secret, sim.clock)
    yield client
    await client.aclose()
