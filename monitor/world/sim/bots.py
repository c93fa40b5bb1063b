"""Normal traffic: a grid bot, a DCA bot and a portfolio tracker, as real HTTP clients.

Each bot has its own seeded RNG, follows a daily activity cycle (busier in the UTC afternoon),
and marks its orders with its client-order-id prefix ("grid1-", "dca-"), which is how Keywatch
tells its own fleet's orders from foreign ones. Bots read the price from the simulator's
control plane, standing in for the market-data stream that is outside this simulator's scope.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

import httpx

from monitor.core.clock import Clock
from monitor.world.sim.client import ActorClient
from monitor.world.sim.control import Control
from monitor.world.sim.market import SYMBOLS
from monitor.world.sim.scenario import BotSpec


@dataclass
class RunCtx:
    clock: Clock
    control: Control
    rest_url: str
    tap_url: str | None
    seed: int
    end_ms: int
    recv_window: int
    keys: dict[tuple[str, str], tuple[str, str]]
    progress: Callable[[str], None]
    stats: dict[str, int] = field(default_factory=dict)

    def rng(self, name: str) -> random.Random:
        return random.Random(f"{self.seed}:{name}")

    def base_url(self, via_tap: bool) -> str:
        return self.tap_url if (via_tap and self.tap_url) else self.rest_url

    def left_s(self) -> float:
        return (self.end_ms - self.clock.now_ms()) / 1000

    def count(self, what: str, resp: httpx.Response | None) -> None:
        tag = f"{what}:{resp.status_code if resp is not None else 'error'}"
        self.stats[tag] = self.stats.get(tag, 0) + 1


def daily_factor(now_ms: int) -> float:
    """Activity multiplier over the UTC day: 0.4 at 03:00, 1.6 at 15:00."""
    hour = (now_ms / 3_600_000) % 24
    return 1.0 + 0.6 * math.sin((hour - 9) / 24 * 2 * math.pi)


def round_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class Bot:
    def __init__(self, spec: BotSpec, ctx: RunCtx) -> None:
        self.spec, self.ctx = spec, ctx
        self.rng = ctx.rng(spec.name)
        key, secret = ctx.keys[(spec.account, spec.key)]
        self.client = ActorClient(ctx.base_url(spec.via_tap), spec.ip, key, secret, ctx.clock)
        self.n = 0

    @property
    def host_ip(self) -> str:
        return self.client.ip

    @property
    def order_prefix(self) -> str:
        """The client-order-id prefix its orders carry (what a copied config would stamp)."""
        prefixes = self.spec.order_prefixes
        return prefixes[0] if prefixes else f"{self.spec.name}-"

    async def move_host(self, ip: str) -> None:
        """The bot's host address changed: later calls leave from `ip`."""
        await self.client.rebind(ip)

    async def call(self, method: str, path: str, params: dict[str, object] | None = None,
                   ) -> httpx.Response | None:
        stale = self.rng.random() < self.spec.stale_rate
        query = {**(params or {}), "recvWindow": self.ctx.recv_window}
        try:
            resp = await self.client.signed(
                method, path, query,
                stale_ms=self.ctx.recv_window + 15_000 if stale else 0)
        except httpx.HTTPError:
            resp = None
        self.ctx.count(f"{self.spec.name}", resp)
        return resp

    async def run(self) -> None:
        try:
            while self.ctx.left_s() > 0:
                wait = self.next_wait()
                await self.ctx.clock.sleep(min(wait, max(self.ctx.left_s(), 0)))
                if self.ctx.left_s() <= 0:
                    break
                self.n += 1
                await self.tick()
        finally:
            await self.client.aclose()

    def next_wait(self) -> float:
        """Seconds of clock time to the next action: slower at night, jittered."""
        wait = self.spec.every / daily_factor(self.ctx.clock.now_ms())
        return wait * self.rng.uniform(0.8, 1.2)

    async def tick(self) -> None:
        raise NotImplementedError


class GridBot(Bot):
    """Keeps a buy and a sell around the price; re-quotes when they fill or go stale."""

    async def tick(self) -> None:
        sym = self.spec.symbol
        spec = SYMBOLS[sym]
        resp = await self.call("GET", "/api/v3/openOrders", {"symbol": sym})
        open_orders = resp.json() if resp is not None and resp.status_code == 200 else []
        now = self.ctx.clock.now_ms()
        for order in open_orders:
            if now - int(order["time"]) > 30 * 60_000:
                await self.call("DELETE", "/api/v3/order", {"symbol": sym,
                                                           "orderId": order["orderId"]})
        if len(open_orders) >= 2:
            return
        price = Decimal(str(self.ctx.control.price(sym)))
        qty = round_to(Decimal(20) / price, spec.step) + spec.step
        for side, mult in (("BUY", Decimal("0.995")), ("SELL", Decimal("1.005"))):
            await self.call("POST", "/api/v3/order", {
                "symbol": sym, "side": side, "type": "LIMIT", "timeInForce": "GTC",
                "quantity": str(qty), "price": str(round_to(price * mult, spec.tick)),
                "newClientOrderId": f"{self.spec.name}-{self.n}-{side[0].lower()}"})


class DcaBot(Bot):
    """Buys a small fixed amount at market, then checks its balance."""

    async def tick(self) -> None:
        amount = self.rng.choice([15, 20, 25])
        await self.call("POST", "/api/v3/order", {
            "symbol": self.spec.symbol, "side": "BUY", "type": "MARKET",
            "quoteOrderQty": str(amount), "newClientOrderId": f"{self.spec.name}-{self.n}"})
        await self.call("GET", "/api/v3/account", {"omitZeroBalances": "true"})


class Tracker(Bot):
    """Polls balances at the top of the minute (bursts at :00); audits orders hourly."""

    last_flood_ms: int = 0

    def next_wait(self) -> float:
        """Top of the next minute (plus whole extra minutes for a slower `every`)."""
        to_minute = (60_000 - self.ctx.clock.now_ms() % 60_000) / 1000
        extra = max(0, round(self.spec.every / daily_factor(self.ctx.clock.now_ms()) / 60) - 1)
        return to_minute + 60 * extra + self.rng.uniform(0.0, 0.5)

    async def tick(self) -> None:
        await self.call("GET", "/api/v3/account")
        if self.n % 10 == 0:
            await self.call("GET", "/sapi/v1/account/apiRestrictions")
        if self.n % 60 == 0:
            for sym in SYMBOLS:
                await self.call("GET", "/api/v3/allOrders", {"symbol": sym, "limit": 50})
        flood = self.spec.flood_every
        now = self.ctx.clock.now_ms()
        if flood and now - self.last_flood_ms > flood * 1000 and self.n > 1:
            # A rare misconfigured "refresh everything": heavy calls that can reach 429.
            self.last_flood_ms = now
            for _ in range(80):
                resp = await self.call("GET", "/api/v3/openOrders")
                if resp is not None and resp.status_code == 429:
                    break


BOT_KINDS: dict[str, type[Bot]] = {"grid": GridBot, "dca": DcaBot, "tracker": Tracker}
