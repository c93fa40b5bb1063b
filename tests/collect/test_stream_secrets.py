"""The user-data socket: subscribe against the simulator with every logger at DEBUG, and
prove neither the secret, the full key nor a signature reaches a log line or an event."""

from __future__ import annotations

import asyncio
import logging
import re

import httpx
from pydantic import SecretStr

from monitor.binance.parse import Ctx, Frame
from monitor.binance.rest import BinanceRest
from monitor.binance.stream import UserDataSocket
from monitor.core.clock import AcceleratedClock
from monitor.world.sim import Simulator
from tests.collect.simkit import Bot


async def test_subscribe_and_receive_without_leaking(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    clock = AcceleratedClock(20)
    frames: list[Frame] = []
    async with Simulator(clock=clock, seed=2) as sim:
        c = sim.control
        c.create_account("main", {"USDT": 100000})
        key, secret = c.create_key("main", "monitor", permissions={"enableReading": True})
        bk, bs = c.create_key("main", "bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True})
        http = httpx.AsyncClient()
        rest = BinanceRest(http, sim.rest_url, SecretStr(key), SecretStr(secret), clock,
                           account="main", key_label="monitor")
        await rest.sync_time()
        sock = UserDataSocket(sim.ws_api_url, SecretStr(key), SecretStr(secret), clock,
                              server_now=rest.server_now, ctx=lambda: Ctx("main", clock.now_ms()),
                              on_frame=frames.append)
        assert await sock.open() == 0
        bot = Bot(sim, bk, bs, "127.0.1.1")
        await bot.step()
        for _ in range(50):
            if frames:
                break
            await asyncio.sleep(0.05)
        assert (await sock.request("time"))["serverTime"] > 0
        await sock.close("test")
        await bot.aclose()
        await http.aclose()
    assert frames and frames[0].events
    texts = [r.getMessage() for r in caplog.records]
    texts += [e.model_dump_json() for f in frames for e in f.events]
    # websockets logged the frames we sent (the subscribe frame first), so the filter was hit
    assert any(t.startswith("> TEXT") for t in texts)
    for text in texts:
        assert secret not in text and key[:8] not in text
        assert not re.search(r"[0-9a-f]{64}", text), text[:200]
