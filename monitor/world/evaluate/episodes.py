"""Labelled attack episodes for the synthetic traffic, one builder per `AttackType`.

Each builder writes the events the collector would record during the attack (and only those:
calls that bypass the tap leave no request event; -2010/-1013 rejects leave no stream event)
and returns its `Episode` label. Sizes and rates are drawn from ranges, not fixed, so detectors
cannot be tuned to one constant.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from monitor.world.evaluate.frames import FrameBuilder
from monitor.world.evaluate.generator import DAY_MS, MINUTE_MS, PRICES, Bot, key_flags
from monitor.world.groundtruth import AttackType, Episode, GroundTruth

Orders = dict[str, list[np.ndarray]]
Overrides = dict[str, list[tuple[int, int, str]]]
DURATION_MIN = {
    AttackType.LEAKED_KEY_PUMP: 15, AttackType.PERMISSION_PROBE: 10,
    AttackType.OVERSIZED_ORDERS: 5, AttackType.RUNAWAY_BOT: 10,
    AttackType.IP_RESTRICTION_OFF: 60, AttackType.WITHDRAWAL_ENABLED: 30,
    AttackType.HOST_IP_CHANGED: 20, AttackType.SLOW_MISUSE: 180,
}


class Ctx:
    def __init__(self, fb: FrameBuilder, rng: np.random.Generator, orders: Orders,
                 overrides: Overrides) -> None:
        self.fb, self.rng, self.orders, self.overrides = fb, rng, orders, overrides

    def foreign_ip(self) -> str:
        return f"203.0.113.{int(self.rng.integers(1, 255))}"

    def times(self, t0: int, t1: int, n: int) -> np.ndarray:
        return np.sort(self.rng.integers(t0, t1, n))

    def cids(self, n: int) -> np.ndarray:
        alpha = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"))
        return np.array(["".join(r) for r in alpha[self.rng.integers(0, 62, (n, 22))]], object)


def _pump(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    ip = c.foreign_ip()
    n = int((t1 - t0) / MINUTE_MS * c.rng.uniform(10, 40))
    t = c.times(t0, t1, n)
    px = float(c.rng.uniform(0.01, 2))
    notional = b.size * c.rng.uniform(0.5, 3, n)
    cid = c.cids(n)
    c.fb.add(n, event_id=c.fb.ids("log", n, "x"), ts=t, account=b.account, key=b.label,
             source="log", kind="request", ip=ip, method="POST", endpoint="/api/v3/order",
             status=200.0, symbol="PUMPUSDT", side="BUY", qty=notional / px, price=px,
             notional=notional, client_order_id=cid)
    c.fb.add(n, event_id=c.fb.ids("stream", n, "x"), ts=t + 10, account=b.account,
             key=f"{b.account}-monitor", source="stream", kind="order", exec_type="NEW",
             order_status="NEW", symbol="PUMPUSDT", side="BUY", qty=notional / px, price=px,
             notional=notional, client_order_id=cid, order_id=c.rng.integers(1, 2**40, n))
    c.orders.setdefault(b.account, []).append(t)
    return ip


def _probe(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    ip = c.foreign_ip()
    n = int((t1 - t0) / MINUTE_MS * c.rng.uniform(15, 60))
    eps = np.array(["/api/v3/order", "/sapi/v1/capital/withdraw/apply", "/api/v3/account"],
                   object)
    code = np.where(c.rng.random(n) < 0.8, -2015.0, -2014.0)
    c.fb.add(n, event_id=c.fb.ids("log", n, "x"), ts=c.times(t0, t1, n), account=b.account,
             key=b.label, source="log", kind="request", ip=ip, method="POST",
             endpoint=eps[c.rng.integers(0, 3, n)], status=401.0, code=code)
    return ip


def _oversized(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    ip = b.ip if c.rng.random() < 0.5 else c.foreign_ip()
    n = int(c.rng.integers(3, 10))
    notional = c.rng.uniform(80_000, 400_000, n)
    px = PRICES["BTCUSDT"]
    c.fb.add(n, event_id=c.fb.ids("tap", n, "x"), ts=c.times(t0, t1, n), account=b.account,
             key=b.label, source="tap", kind="reject", ip=ip, method="POST",
             endpoint="/api/v3/order", status=400.0, code=-2010.0, symbol="BTCUSDT", side="BUY",
             qty=notional / px, price=px, notional=notional, client_order_id=c.cids(n))
    return ip


def _runaway(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    per_min = int(c.rng.uniform(800, 2000))
    # the flood is heavy enough to run into the 6,000/min limit (that is what defines it)
    weight = max(int(c.rng.integers(4, 10)), -(-7000 // per_min))
    minutes = (t1 - t0) // MINUTE_MS
    for m in range(minutes):
        base = t0 + m * MINUTE_MS
        t = c.times(base, base + MINUTE_MS, per_min)
        w = weight * (np.arange(per_min) + 1)
        over = w > 6000
        status = np.where(over, 418.0 if m >= 3 else 429.0, 200.0)
        c.fb.add(per_min, event_id=c.fb.ids("tap", per_min, "x"), ts=t, account=b.account,
                 key=b.label, source="tap", kind="request", ip=b.ip, method="GET",
                 endpoint="/api/v3/openOrders", status=status,
                 code=np.where(over, -1003.0, np.nan), weight_1m=np.minimum(w, 6000 + weight))
    return b.ip


def _restriction_off(c: Ctx, b: Bot, t0: int, t1: int) -> None:
    c.overrides.setdefault(b.label, []).append(
        (t0, t1, key_flags(b.created_ms, ip_restrict=False)))


def _withdrawal(c: Ctx, b: Bot, t0: int, t1: int) -> None:
    c.overrides.setdefault(b.label, []).append(
        (t0, t1, key_flags(b.created_ms, withdrawals=True)))
    t = t0 + int(c.rng.uniform(3, 10) * MINUTE_MS)
    amount = float(c.rng.uniform(500, 5000))
    c.fb.add(1, event_id=c.fb.ids("rest", 1, "x"), ts=t, account=b.account, key=None,
             source="rest", kind="withdrawal", asset="USDT", qty=amount, notional=amount,
             raw='{"coin":"USDT","status":6,"network":"ETH","amount":"%.2f"}' % amount)


def _host_changed(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    new_ip = f"10.200.{int(c.rng.integers(0, 250))}.{int(c.rng.integers(2, 250))}"
    c.fb.cut(b.label, t0, t1, b.prefix)
    n = int((t1 - t0) / MINUTE_MS * (b.rate + b.orate))
    c.fb.add(n, event_id=c.fb.ids("tap", n, "x"), ts=c.times(t0, t1, n), account=b.account,
             key=b.label, source="tap", kind="request", ip=new_ip, method="GET",
             endpoint="/api/v3/account", status=401.0, code=-2015.0)
    return new_ip


def _slow(c: Ctx, b: Bot, t0: int, t1: int) -> str:
    gaps = c.rng.uniform(6, 15, 40) * MINUTE_MS
    t = (t0 + np.cumsum(gaps)).astype("int64")
    t = t[t < t1]
    n = len(t)
    sym = b.symbols[0]
    notional = b.size * c.rng.uniform(2, 4, n)
    cid = np.array([f"{b.prefix}{int(x)}" for x in c.rng.integers(10**6, 10**7, n)], object)
    c.fb.add(n, event_id=c.fb.ids("stream", n, "x"), ts=t, account=b.account,
             key=f"{b.account}-monitor", source="stream", kind="order", exec_type="NEW",
             order_status="NEW", symbol=sym, side="BUY", qty=notional / PRICES[sym],
             price=PRICES[sym], notional=notional, client_order_id=cid,
             order_id=c.rng.integers(1, 2**40, n))
    c.orders.setdefault(b.account, []).append(t)
    return c.foreign_ip()


BUILDERS: dict[AttackType, Callable[[Ctx, Bot, int, int], str | None]] = {
    AttackType.LEAKED_KEY_PUMP: _pump, AttackType.PERMISSION_PROBE: _probe,
    AttackType.OVERSIZED_ORDERS: _oversized, AttackType.RUNAWAY_BOT: _runaway,
    AttackType.IP_RESTRICTION_OFF: _restriction_off, AttackType.WITHDRAWAL_ENABLED: _withdrawal,
    AttackType.HOST_IP_CHANGED: _host_changed, AttackType.SLOW_MISUSE: _slow,
}


def inject(fb: FrameBuilder, rng: np.random.Generator, bots: list[Bot], truth: GroundTruth,
           attacks: list[AttackType], start_ms: int, minutes: int) -> tuple[Orders, Overrides]:
    """One episode per attack, each in its own slot after the first day (learning period)."""
    orders: Orders = {}
    overrides: Overrides = {}
    if not attacks:
        return orders, overrides
    c = Ctx(fb, rng, orders, overrides)
    first = start_ms + min(DAY_MS, minutes * MINUTE_MS // 2)
    end = start_ms + minutes * MINUTE_MS
    slot = (end - first) // len(attacks)
    for i, kind in enumerate(attacks):
        dur = DURATION_MIN[kind] * MINUTE_MS
        if slot < dur + 20 * MINUTE_MS:
            raise ValueError(f"{len(attacks)} episodes do not fit in {minutes} minutes; "
                             "generate more days")
        lo = first + i * slot
        t0 = int(lo + rng.integers(0, slot - dur - 10 * MINUTE_MS)) // MINUTE_MS * MINUTE_MS
        t0 += int(rng.integers(0, MINUTE_MS))
        pool = [b for b in bots if b.whitelisted] if kind is AttackType.HOST_IP_CHANGED else []
        victim = (pool or bots)[int(rng.integers(0, len(pool or bots)))]
        actor = BUILDERS[kind](c, victim, t0, t0 + dur)
        truth.episodes.append(Episode(type=kind, account=victim.account, key=victim.label,
                                      actor_ip=actor, start_ms=t0, end_ms=t0 + dur))
    return orders, overrides
