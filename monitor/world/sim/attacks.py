"""The labelled attacks, one coroutine per AttackType, each a real client on its own address.

Each returns a short note for the ground truth; the runner records when it started and ended.
Attackers call Binance directly unless the scenario says `via_tap: true` (a key leaked on the
victim's own host would go out through the victim's tap).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal

import httpx

from monitor.world.groundtruth import AttackType
from monitor.world.sim.bots import Bot, RunCtx, round_to
from monitor.world.sim.client import ActorClient
from monitor.world.sim.market import SYMBOLS
from monitor.world.sim.scenario import AttackSpec

BATCH = 16


def _client(spec: AttackSpec, ctx: RunCtx) -> ActorClient:
    assert spec.ip is not None and spec.key is not None
    key, secret = ctx.keys.get((spec.account, spec.key), ("", ""))
    return ActorClient(ctx.base_url(spec.via_tap), spec.ip, key, secret, ctx.clock)


async def _send(ctx: RunCtx, client: ActorClient, what: str, method: str, path: str,
                params: dict[str, object] | None = None,
                api_key: str | None = None) -> httpx.Response | None:
    try:
        resp = await client.signed(method, path,
                                   {**(params or {}), "recvWindow": ctx.recv_window},
                                   api_key=api_key)
    except httpx.HTTPError:
        resp = None
    ctx.count(what, resp)
    return resp


async def _paced(ctx: RunCtx, spec: AttackSpec,
                 action: Callable[[int], Awaitable[None]]) -> None:
    """Run `count` actions spread over the duration, at most `parallel` in flight."""
    gate = asyncio.Semaphore(max(spec.parallel, 1))
    gap = spec.duration / max(spec.count, 1)

    async def one(i: int) -> None:
        await ctx.clock.sleep(i * gap)
        async with gate:
            await action(i)

    await asyncio.gather(*(one(i) for i in range(spec.count)))


async def leaked_key_pump(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    client = _client(spec, ctx)
    try:
        await _send(ctx, client, "pump", "GET", "/api/v3/account")
        ok = 0

        async def buy(_: int) -> None:
            nonlocal ok
            resp = await _send(ctx, client, "pump", "POST", "/api/v3/order", {
                "symbol": spec.symbol, "side": "BUY", "type": "MARKET",
                "quoteOrderQty": str(int(spec.amount))})  # no client id: exchange default
            ok += bool(resp is not None and resp.status_code == 200)

        await _paced(ctx, spec, buy)
        return f"{ok}/{spec.count} market buys of {spec.symbol} from a foreign address"
    finally:
        await client.aclose()


async def permission_probe(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    client = _client(spec, ctx)
    codes: dict[int, int] = {}

    async def attempt(i: int) -> None:
        step = i % 4
        if step == 0:
            resp = await _send(ctx, client, "probe", "GET", "/api/v3/account")
        elif step == 1:
            resp = await _send(ctx, client, "probe", "POST",
                               "/sapi/v1/capital/withdraw/apply",
                               {"coin": "USDT", "address": spec.address, "amount": "100"})
        elif step == 2:
            resp = await _send(ctx, client, "probe", "POST",
                               "/sapi/v1/capital/withdraw/apply",
                               {"coin": "BTC", "address": spec.address, "amount": "0.01"})
        elif i % 8 == 3:
            resp = await _send(ctx, client, "probe", "GET", "/api/v3/account",
                               api_key="probe-" + secrets.token_hex(4))
        else:
            resp = await _send(ctx, client, "probe", "GET", "/api/v3/account",
                               api_key=secrets.token_hex(32))
        if resp is not None and resp.headers.get("content-type") == "application/json":
            code = int(resp.json().get("code", 0)) if resp.status_code != 200 else 0
            codes[code] = codes.get(code, 0) + 1

    try:
        await _paced(ctx, spec, attempt)
        return "answers by code: " + ", ".join(f"{c}x{n}" for c, n in sorted(codes.items()))
    finally:
        await client.aclose()


async def oversized_orders(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    client = _client(spec, ctx)
    sym = SYMBOLS[spec.symbol]
    rejected = 0

    async def order(_: int) -> None:
        nonlocal rejected
        price = round_to(Decimal(str(ctx.control.price(spec.symbol))), sym.tick)
        qty = round_to(Decimal(str(spec.amount)) / price, sym.step)
        resp = await _send(ctx, client, "oversized", "POST", "/api/v3/order", {
            "symbol": spec.symbol, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "price": str(price), "quantity": str(qty)})
        rejected += bool(resp is not None and resp.status_code == 400)

    try:
        await _paced(ctx, spec, order)
        return f"{rejected}/{spec.count} orders of ~{spec.amount:.0f} {sym.quote} rejected"
    finally:
        await client.aclose()


async def runaway_bot(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    """A bot stuck in a retry loop: heavy calls, several in flight, ignoring 429 until banned.

    It starts at a minute boundary and keeps `BATCH` requests in flight so that even at high
    clock speeds (where a simulated minute is a fraction of a wall second) it can cross 6,000
    weight inside one window, as a real runaway does. It sends at least `count` requests and
    then keeps going until it is banned three times or `duration` has passed: a retry loop
    does not stop on its own, so how fast loopback carries requests must not decide whether
    it reaches the limit.
    """
    client = _client(spec, ctx)
    seen: dict[int, int] = {}
    await ctx.clock.sleep((60_000 - ctx.clock.now_ms() % 60_000) / 1000)
    until = ctx.clock.now_ms() + spec.duration * 1000
    try:
        sent = 0
        while seen.get(418, 0) < 3 and (sent < spec.count or ctx.clock.now_ms() < until):
            batch = [_send(ctx, client, "runaway", "GET", "/api/v3/openOrders")
                     for _ in range(BATCH)]
            sent += BATCH
            for resp in await asyncio.gather(*batch):
                status = resp.status_code if resp is not None else 0
                seen[status] = seen.get(status, 0) + 1
        return "statuses: " + ", ".join(f"{s}x{n}" for s, n in sorted(seen.items()))
    finally:
        await client.aclose()


async def ip_restriction_off(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    assert spec.key is not None
    api_key, _ = ctx.keys[(spec.account, spec.key)]
    before = ctx.control.whitelist(api_key)
    ctx.control.set_whitelist(api_key, None)
    return f"whitelist {before} removed; key now callable from any address"


async def withdrawal_enabled(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    assert spec.key is not None and spec.ip is not None
    api_key, _ = ctx.keys[(spec.account, spec.key)]
    wl = ctx.control.whitelist(api_key) or []
    ctx.control.set_whitelist(api_key, [*wl, spec.ip])  # the attacker adds its own address
    ctx.control.set_permissions(api_key, enableWithdrawals=True, enableFutures=True)
    await ctx.clock.sleep(min(60.0, spec.duration / 2))
    client = _client(spec, ctx)
    try:
        resp = await _send(ctx, client, "withdraw", "POST", "/sapi/v1/capital/withdraw/apply",
                           {"coin": "USDT", "address": spec.address, "amount": str(spec.amount),
                            "network": "ETH"})
        status = resp.status_code if resp is not None else "error"
        return f"withdrawals+futures enabled, {spec.ip} whitelisted, withdrawal -> {status}"
    finally:
        await client.aclose()


async def host_ip_changed(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    assert spec.bot is not None and spec.ip is not None
    bot = bots[spec.bot]
    old = bot.host_ip
    await bot.move_host(spec.ip)
    return f"bot {spec.bot} moved {old} -> {spec.ip}; the key's whitelist was not updated"


async def slow_misuse(spec: AttackSpec, ctx: RunCtx, bots: dict[str, Bot]) -> str:
    """A few small orders over hours. With `bot:` the attacker copied that bot's config and
    stamps its client-order-id prefix, so no prefix rule sees a foreign order: only the orders'
    absence from the tap (and their rhythm) gives it away."""
    client = _client(spec, ctx)
    sym = SYMBOLS[spec.symbol]
    rng = ctx.rng(f"slow:{spec.at}")
    prefix = bots[spec.bot].order_prefix if spec.bot in bots else f"{spec.bot}-"
    ok = 0

    async def order(_: int) -> None:
        nonlocal ok
        price = Decimal(str(ctx.control.price(spec.symbol)))
        qty = round_to(Decimal(str(spec.amount)) / price, sym.step) + sym.step
        params: dict[str, object] = {
            "symbol": spec.symbol, "side": "BUY", "type": "MARKET", "quantity": str(qty)}
        if spec.bot is not None:
            params["newClientOrderId"] = f"{prefix}{rng.randrange(10**6, 10**7)}"
        resp = await _send(ctx, client, "slow", "POST", "/api/v3/order", params)
        ok += bool(resp is not None and resp.status_code == 200)

    try:
        await _paced(ctx, spec, order)
        disguise = f" stamped {prefix}" if spec.bot else ""
        return f"{ok}/{spec.count} small foreign orders{disguise}"
    finally:
        await client.aclose()


Attack = Callable[[AttackSpec, RunCtx, dict[str, Bot]], Awaitable[str]]
ATTACKS: dict[AttackType, Attack] = {
    AttackType.LEAKED_KEY_PUMP: leaked_key_pump,
    AttackType.PERMISSION_PROBE: permission_probe,
    AttackType.OVERSIZED_ORDERS: oversized_orders,
    AttackType.RUNAWAY_BOT: runaway_bot,
    AttackType.IP_RESTRICTION_OFF: ip_restriction_off,
    AttackType.WITHDRAWAL_ENABLED: withdrawal_enabled,
    AttackType.HOST_IP_CHANGED: host_ip_changed,
    AttackType.SLOW_MISUSE: slow_misuse,
}
