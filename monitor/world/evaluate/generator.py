"""Synthetic labelled traffic: the Events the collector and the tap would record, vectorised.

Normal bots each get their own seeded personality (call rate, order rate, daily cycle, burst
share at the top of the minute, order size, symbols, whitelist or not) and realistic noise
(occasional -1021 and 429, a few small -2010/-1013 rejects). `monitor.world.evaluate.episodes`
injects one labelled episode per requested AttackType. Everything is numpy blocks, so millions
of events take seconds; the same seed always gives the same frame.

This feeds the false-positive measurement, the default model's training and the benchmarks;
the evaluation also accepts real simulator runs (store + GroundTruth) through the same API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from monitor.config import Config
from monitor.core.clock import DAY_MS, MINUTE_MS
from monitor.world.evaluate.frames import FrameBuilder
from monitor.world.groundtruth import AttackType, GroundTruth

START_MS = 1_785_024_000_000  # a UTC midnight
PRICES = {"BTCUSDT": 65000.0, "ETHUSDT": 3200.0, "BNBUSDT": 600.0, "SOLUSDT": 150.0,
          "XRPUSDT": 0.6}
READ_ENDPOINTS = ("/api/v3/account", "/api/v3/openOrders", "/api/v3/myTrades", "/api/v3/time")
EGRESS_IP = "198.51.100.10"


@dataclass
class Bot:
    account: str
    label: str
    prefix: str
    ip: str
    whitelisted: bool
    rate: float  # read calls per minute (mean)
    orate: float  # orders per minute (mean)
    amp: float
    phase: float
    burst: float
    size: float  # usual order notional
    symbols: list[str]
    created_ms: int


@dataclass
class Synthetic:
    events: pd.DataFrame
    truth: GroundTruth
    config: Config
    bots: list[Bot] = field(default_factory=list)


def make_bots(rng: np.random.Generator, keys: int, accounts: int, start_ms: int) -> list[Bot]:
    bots = []
    for i in range(keys):
        acct = f"acct{i % accounts}"
        tag = "".join(rng.choice(list("abcdefghjkmnpqrstuvwxyz"), 3))
        bots.append(Bot(
            account=acct, label=f"bot{i}", prefix=f"{tag}{i}-",
            ip=f"10.{i // 250}.{i % 250}.{int(rng.integers(2, 250))}",
            whitelisted=bool(rng.random() < 0.5), rate=float(rng.uniform(3, 25)),
            orate=float(rng.uniform(0.2, 3)), amp=float(rng.uniform(0.2, 0.8)),
            phase=float(rng.uniform(0, 2 * np.pi)), burst=float(rng.uniform(0.3, 0.8)),
            size=float(np.exp(rng.uniform(np.log(20), np.log(800)))),
            symbols=list(rng.choice(list(PRICES), size=int(rng.integers(1, 4)), replace=False)),
            created_ms=start_ms - int(rng.uniform(1, 40) * DAY_MS),
        ))
    return bots


def make_config(bots: list[Bot], egress_ip: str = EGRESS_IP) -> Config:
    accounts: dict[str, list[dict[str, object]]] = {}
    for b in bots:
        accounts.setdefault(b.account, []).append({
            "label": b.label, "use_case": "spot-bot", "client_order_prefixes": [b.prefix],
            "ip_whitelist": [b.ip] if b.whitelisted else [],
        })
    return Config.model_validate({
        "egress_ip": egress_ip,
        "accounts": [{"name": a, "monitor_key": f"{a}-monitor",
                      "keys": [*ks, {"label": f"{a}-monitor", "use_case": "monitoring",
                                     "ip_whitelist": [egress_ip]}]}
                     for a, ks in sorted(accounts.items())],
    })


def _times(rng: np.random.Generator, b: Bot, mean: float, start_ms: int, minutes: int
           ) -> np.ndarray:
    """Event times with a daily cycle and a burst share at the top of each minute."""
    m = np.arange(minutes)
    cyc = 1 + b.amp * np.sin(2 * np.pi * m / 1440 + b.phase)
    counts = rng.poisson(mean * cyc)
    base = np.repeat(start_ms + m * MINUTE_MS, counts)
    burst = rng.random(len(base)) < b.burst
    off = np.where(burst, rng.integers(0, 2000, len(base)), rng.integers(0, MINUTE_MS, len(base)))
    return np.sort(base + off)


def bot_traffic(fb: FrameBuilder, rng: np.random.Generator, b: Bot, start_ms: int, minutes: int,
                order_times: dict[str, list[np.ndarray]]) -> None:
    """One bot's tapped requests, its orders, and the stream's reports of them."""
    t = _times(rng, b, b.rate, start_ms, minutes)
    n = len(t)
    status = np.full(n, 200.0)
    code = np.full(n, np.nan)
    skew = rng.random(n) < 0.002  # occasional clock skew
    status[skew], code[skew] = 400, -1021
    minute = t // MINUTE_MS
    limited_minutes = np.unique(minute)[rng.random(len(np.unique(minute))) < 0.003]
    # a well-behaved bot backs off after a 429 (Retry-After): a few per limited minute
    in_lim = np.isin(minute, limited_minutes)
    lim = in_lim & (rng.random(n) < 0.3)
    lim &= pd.Series(lim).groupby(minute).cumsum().to_numpy() <= rng.integers(1, 6, n)
    status[lim], code[lim] = 429, -1003
    pos = pd.Series(minute).groupby(minute).cumcount().to_numpy()
    fb.add(n, event_id=fb.ids("tap", n), ts=t, received_ts=t + 5, account=b.account,
           key=b.label, source="tap", kind="request", ip=b.ip, method="GET",
           endpoint=np.asarray(READ_ENDPOINTS, object)[rng.integers(0, 4, n)], status=status,
           code=code, weight_1m=2 * pos + 2, latency_ms=rng.gamma(2, 15, n))
    # orders
    ot = _times(rng, b, b.orate, start_ms, minutes)
    k = len(ot)
    sym = np.asarray(b.symbols, object)[rng.integers(0, len(b.symbols), k)]
    px = np.array([PRICES[s] for s in sym])
    notional = b.size * rng.lognormal(0, 0.35, k)
    side = np.where(rng.random(k) < 0.5, "BUY", "SELL").astype(object)
    u = rng.random(k)
    rej = u < 0.006
    code_o = np.where(u < 0.004, -2010.0, np.where(rej, -1013.0, np.nan))
    cid = (b.prefix + pd.Series(np.arange(k)).astype(str)).to_numpy(dtype=object)
    ok = ~rej
    fb.add(k, event_id=fb.ids("tap", k), ts=ot, received_ts=ot + 5, account=b.account,
           key=b.label, source="tap", kind=np.where(rej, "reject", "request").astype(object),
           ip=b.ip, method="POST", endpoint="/api/v3/order", status=np.where(rej, 400.0, 200.0),
           code=code_o, symbol=sym, side=side, order_type="LIMIT", qty=notional / px, price=px,
           notional=notional, client_order_id=cid, latency_ms=rng.gamma(2, 15, k))
    order_times.setdefault(b.account, []).append(ot[ok])
    st = ot[ok] + rng.integers(2, 40, ok.sum())
    oid = rng.integers(1, 2**40, ok.sum())
    common = dict(account=b.account, key=f"{b.account}-monitor", symbol=sym[ok], side=side[ok],
                  order_type="LIMIT", qty=notional[ok] / px[ok], price=px[ok],
                  notional=notional[ok], client_order_id=cid[ok], order_id=oid)
    fb.add(len(st), event_id=fb.ids("stream", len(st)), ts=st, source="stream", kind="order",
           exec_type="NEW", order_status="NEW", **common)
    filled = rng.random(len(st)) < 0.6
    ft = st[filled] + rng.integers(100, 30_000, filled.sum())
    fb.add(len(ft), event_id=fb.ids("stream", len(ft)), ts=ft, source="stream", kind="fill",
           exec_type="TRADE", order_status="FILLED",
           **{k2: (v[filled] if np.ndim(v) else v) for k2, v in common.items()})


def account_polls(fb: FrameBuilder, rng: np.random.Generator, account: str, bots: list[Bot],
                  start_ms: int, minutes: int, order_times: np.ndarray,
                  overrides: dict[str, list[tuple[int, int, str]]]) -> None:
    """Balances, usage counters (+apiTradingStatus) and apiRestrictions polls for an account."""
    m = np.arange(minutes)
    bt = start_ms + m * MINUTE_MS + 30_000
    usdt = float(rng.uniform(3000, 30000))
    free = usdt * (1 + 0.05 * rng.standard_normal(minutes)).clip(0.5)
    fb.add(minutes, event_id=fb.ids("stream", minutes), ts=bt, source="stream", kind="balance",
           account=account, key=f"{account}-monitor", asset="USDT", free=free, locked=0.0)
    for sym, px in PRICES.items():
        val = float(rng.uniform(1000, 10000)) / px
        fb.add(minutes, event_id=fb.ids("stream", minutes), ts=bt + 1, source="stream",
               kind="balance", account=account, key=f"{account}-monitor",
               asset=sym.removesuffix("USDT"), free=np.full(minutes, val), locked=0.0)
    ut = start_ms + m * MINUTE_MS + 45_000
    order_times = np.sort(order_times)
    cum = np.searchsorted(order_times, ut, side="right")
    day_start = np.searchsorted(order_times, (ut // DAY_MS) * DAY_MS, side="left")
    o10 = cum - np.searchsorted(order_times, ut - 10_000, side="right")
    raw = ('{"data":{"isLocked":false,"plannedRecoverTime":0,"triggerCondition":'
           '{"GCR":150,"IFER":150,"UFR":300},"updateTime":0},"counts":{"UFR":%d}}')
    fb.add(minutes, event_id=fb.ids("rest", minutes), ts=ut, source="rest", kind="usage",
           account=account, key=f"{account}-monitor", weight_1m=rng.integers(20, 80, minutes),
           orders_10s=o10, orders_1d=cum - day_start,
           raw=np.array([raw % v for v in rng.integers(0, 40, minutes)], dtype=object))
    for b in bots:
        pt = start_ms + np.arange(0, minutes, 5) * MINUTE_MS + 50_000
        raws = np.full(len(pt), key_flags(b.created_ms), dtype=object)
        for t0, t1, raw in overrides.get(b.label, []):
            raws[(pt >= t0) & (pt < t1)] = raw
        fb.add(len(pt), event_id=fb.ids("rest", len(pt)), ts=pt, source="rest",
               kind="key_config", account=account, key=b.label, raw=raws)
    mon = np.arange(0, minutes, 5)
    fb.add(len(mon), event_id=fb.ids("rest", len(mon)), ts=start_ms + mon * MINUTE_MS + 51_000,
           source="rest", kind="key_config", account=account, key=f"{account}-monitor",
           raw=key_flags(start_ms - 10 * DAY_MS, trading=False))


def key_flags(created_ms: int, *, trading: bool = True, ip_restrict: bool = True,
              withdrawals: bool = False) -> str:
    return ('{"createTime":%d,"enableFutures":false,"enableInternalTransfer":false,'
            '"enableMargin":false,"enableReading":true,"enableSpotAndMarginTrading":%s,'
            '"enableWithdrawals":%s,"ipRestrict":%s,"permitsUniversalTransfer":false}'
            % (created_ms, str(trading).lower(), str(withdrawals).lower(),
               str(ip_restrict).lower()))


def generate(keys: int = 4, days: float = 2.0, seed: int = 0, accounts: int = 1,
             attacks: list[AttackType] | None = None, start_ms: int = START_MS) -> Synthetic:
    """N bot keys over D days; one episode per attack type in `attacks` (after day one)."""
    from monitor.world.evaluate.episodes import inject

    rng = np.random.default_rng(seed)
    minutes = int(days * 1440)
    bots = make_bots(rng, keys, max(1, min(accounts, keys)), start_ms)
    fb = FrameBuilder()
    order_times: dict[str, list[np.ndarray]] = {}
    for b in bots:
        bot_traffic(fb, rng, b, start_ms, minutes, order_times)
    truth = GroundTruth(scenario="synthetic", seed=seed, speed=0.0, start_ms=start_ms,
                        end_ms=start_ms + minutes * MINUTE_MS)
    extra_orders, overrides = inject(fb, rng, bots, truth, attacks or [], start_ms, minutes)
    for acct in sorted({b.account for b in bots}):
        ots = order_times.get(acct, []) + extra_orders.get(acct, [])
        account_polls(fb, rng, acct, [b for b in bots if b.account == acct], start_ms, minutes,
                      np.concatenate(ots) if ots else np.zeros(0, "int64"), overrides)
    df = fb.frame()
    return Synthetic(df, truth, make_config(bots), bots)
