"""Helpers for integration tests: a collector config pointing at a running simulator.

Keys come from the simulator at run time (random), never from a literal.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import httpx
from pydantic import SecretStr

from monitor.binance.signing import sign_rest_query
from monitor.config import (
    AccountConfig,
    BinanceConfig,
    Config,
    KeyConfig,
    SourcesConfig,
    TapConfig,
    UseCase,
)

COLLECTOR_IP = "127.0.0.5"


async def until(cond: Callable[[], object], timeout_s: float = 10.0) -> bool:
    """Poll `cond` (wall clock) until it holds or `timeout_s` passed; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return bool(cond())
SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def collector_config(sim, key: str, secret: str, *, tap: bool = False, bot_key: str | None = None,
                     poll_interval_s: float = 120.0) -> Config:
    keys = [KeyConfig(label="monitor", use_case=UseCase.MONITORING, api_key_env="KW_K",
                      api_secret_env="KW_S", api_key=SecretStr(key), api_secret=SecretStr(secret))]
    if bot_key is not None:
        keys.append(KeyConfig(label="grid-bot", use_case=UseCase.SPOT_BOT,
                              api_key=SecretStr(bot_key)))
    return Config(
        accounts=[AccountConfig(name="main", monitor_key="monitor", keys=keys, symbols=SYMBOLS)],
        binance=BinanceConfig(rest_url=sim.rest_url, ws_api_url=sim.ws_api_url),
        sources=SourcesConfig(
            poll_interval_s=poll_interval_s,
            tap=TapConfig(enabled=tap, listen="127.0.0.1:0", upstream=sim.rest_url,
                          account="main"),
        ),
    )


class Bot:
    """A trading bot as a real HTTP client bound to its own loopback address."""

    def __init__(self, sim, key: str, secret: str, ip: str, seed: int = 0) -> None:
        self.sim, self.key, self.secret = sim, key, secret
        self.http = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address=ip),
                                      timeout=10.0)
        self.rng = random.Random(seed)
        self.open: list[tuple[str, int]] = []
        self.n = 0

    async def call(self, method: str, path: str, params: list[tuple[str, object]]
                   ) -> httpx.Response:
        now = self.sim.control.server_time_ms()
        q = sign_rest_query(SecretStr(self.secret), [*params, ("timestamp", now)])
        return await self.http.request(method, f"{self.sim.rest_url}{path}?{q}",
                                       headers={"X-MBX-APIKEY": self.key})

    async def step(self) -> None:
        """Place a resting or a marketable order, or cancel one."""
        r = self.rng.random()
        sym = self.rng.choice(SYMBOLS)
        self.n += 1
        if r < 0.3 and self.open:
            s, oid = self.open.pop(self.rng.randrange(len(self.open)))
            await self.call("DELETE", "/api/v3/order", [("symbol", s), ("orderId", oid)])
            return
        px = self.sim.control.price(sym)
        if r < 0.6:
            params = [("symbol", sym), ("side", "BUY"), ("type", "MARKET"), ("quantity", "0.01")]
        else:
            params = [("symbol", sym), ("side", "BUY"), ("type", "LIMIT"),
                      ("timeInForce", "GTC"), ("quantity", "0.01"),
                      ("price", f"{px * 0.9:.2f}"), ("newClientOrderId", f"bot-{self.n}")]
        resp = await self.call("POST", "/api/v3/order", params)
        if resp.status_code == 200 and resp.json().get("status") == "NEW":
            self.open.append((sym, resp.json()["orderId"]))

    async def aclose(self) -> None:
        await self.http.aclose()
