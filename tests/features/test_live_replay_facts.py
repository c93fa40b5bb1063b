"""Live == replay for every declared fact and every window feature, one test id each.

The declarations in `monitor.features.catalog` drive both paths; this is the guard that they
still agree: generated traffic (the generator's production-shaped frame, turned into the
`Event`s the collector would hand the engine) through `replay.enrich` + `aggregate` at once and
through `LiveFeatures` one event at a time, settled and closed at random points as the engine
does; the windows' context (`Rolling`) by `add_context` over each path's windows (the engine's
incremental closes are tests/detect/test_live_replay.py's).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.features import (
    FACTS,
    FEATURES,
    FeatureContext,
    FeatureState,
    LiveFeatures,
    add_context,
    aggregate,
    enrich,
    normalise,
)
from monitor.store import events_from_frame
from monitor.world.evaluate.generator import generate
from monitor.world.groundtruth import AttackType


def _events(df: pd.DataFrame) -> list[Any]:
    frame = df.copy()
    for c in ("ts", "received_ts"):
        frame[c] = pd.to_datetime(frame[c], unit="ms", utc=True)
    for c in ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id"):
        frame[c] = frame[c].astype("Int64")
    return events_from_frame(frame)


ATTACKS = [AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE, AttackType.OVERSIZED_ORDERS,
           AttackType.WITHDRAWAL_ENABLED]
LOCKED = json.dumps({"data": {"isLocked": True, "indicators": {
    "BTCUSDT": [{"i": "UFR", "c": 20, "v": 0.6, "t": 0.99}]}}})


def _rare(df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """The facts ordinary bot traffic seldom shows, each a few times: a cancel nobody asked
    for, a 500 without a code from an address off the whitelist, a 429, a trading-status poll
    near its limit, an order counter that grows past what the bots placed, a stream problem."""
    def pick(mask: Any, n: int) -> pd.DataFrame:
        rows = np.flatnonzero(np.asarray(mask, dtype=bool))
        return df.iloc[rng.choice(rows, size=min(n, len(rows)), replace=False)].copy()

    cancels = pick((df["source"] == "stream") & (df["kind"] == "order"), 4)
    cancels = cancels.assign(exec_type="CANCELED", order_status="CANCELED",
                             order_id=[9_000_000 + i for i in range(len(cancels))],
                             client_order_id=[f"web_{i}" for i in range(len(cancels))])
    errors = pick((df["source"] == "tap") & (df["kind"] == "request"), 4).assign(
        status=500.0, code=np.nan, ip="203.0.113.9")  # and from outside the whitelist
    limited = pick((df["source"] == "tap") & (df["kind"] == "request"), 3).assign(
        status=429.0, code=np.nan)
    problems = pick(df["kind"] == "usage", 3).assign(kind="stream_status", source="stream",
                                                     orders_1d=np.nan, raw=None)
    parts = [cancels, errors, limited, problems]
    for i, p in enumerate(parts):
        p["event_id"] = [f"{src}:rare{i}:{j}" for j, src in enumerate(p["source"].astype(str))]
    df = df.copy()
    usage = np.flatnonzero((df["kind"] == "usage").to_numpy())
    df.loc[df.index[usage[::4]], "raw"] = LOCKED
    df.loc[df.index[usage], "orders_1d"] = (df["orders_1d"].to_numpy()[usage]
                                            + 3 * np.arange(len(usage)))
    return pd.concat([df, *parts]).sort_values("ts", kind="stable").reset_index(drop=True)


@functools.cache
def _traffic(seed: int, learning: bool) -> tuple[FeatureContext, pd.DataFrame]:
    """Two keys, five hours with four attacks and `_rare` rows, each key whitelisted to its
    first address; `learning`: no declared whitelist
    and refused market orders that carry no notional, with the poller's price events for a
    symbol the bots never fill."""
    syn = generate(keys=2, days=0.3, seed=seed, attacks=ATTACKS)
    ctx = FeatureContext.from_config(syn.config)
    df = _rare(syn.events, np.random.default_rng(seed))
    if not learning:  # each key's whitelist: the address it called from first
        tap = df[df["source"] == "tap"].drop_duplicates(["account", "key"])
        ctx = dataclasses.replace(ctx, whitelists={
            (a, k): [ipaddress.ip_network(ip)]
            for a, k, ip in zip(tap["account"], tap["key"], tap["ip"], strict=True)})
    if learning:
        ctx = dataclasses.replace(ctx, whitelists={})
        df = df.copy()
        df.loc[(df["kind"] == "reject").to_numpy(), "notional"] = np.nan
        usage = df[df["kind"] == "usage"].iloc[::3].copy()
        usage = usage.assign(kind="price", symbol="BTCUSDT", price=65_000.0, endpoint=None,
                             weight_1m=np.nan, orders_10s=np.nan, orders_1d=np.nan, raw=None,
                             event_id=[f"rest:price:{i}" for i in range(len(usage))])
        df = pd.concat([df, usage]).sort_values("ts", kind="stable").reset_index(drop=True)
    return ctx, df


@functools.cache
def _events_of(seed: int, learning: bool) -> list[Any]:
    return _events(_traffic(seed, learning)[1])


@functools.cache
def _both(seed: int, learning: bool, cut: int) -> tuple[pd.DataFrame, dict[str, dict[str, Any]],
                                                        pd.DataFrame, pd.DataFrame]:
    ctx, df = _traffic(seed, learning)
    replay = enrich(normalise(df), ctx, FeatureState())
    live = LiveFeatures(ctx, FeatureState())
    rows, wins = [], []
    rng = np.random.default_rng(cut)
    events = _events_of(seed, learning)

    def close(now: int) -> None:
        wins.extend(live.close(now))

    for ev in events:
        for r in live.feed(ev):
            rows.append(r)
            live.add(r)
        if rng.random() < 1 / cut:  # the engine's tick: settle held reports, close windows
            for r in live.expire(ev.ts):
                rows.append(r)
                live.add(r)
            close(ev.ts)
    for r in live.expire(2**62):
        rows.append(r)
        live.add(r)
    close(2**62)
    cols = ["account", "key", "minute", *FEATURES]
    live_w = add_context(pd.DataFrame.from_records(wins, columns=cols)).astype(
        {"account": str, "key": str})
    replay_w = add_context(aggregate(replay)).astype({"account": str, "key": str})
    return replay, {r["event_id"]: r for r in rows}, live_w, replay_w


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _same(a: Any, b: Any) -> bool:
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return bool(a) == bool(b) and type(a) is not str and type(b) is not str
    if isinstance(a, (int, float, np.number)) and isinstance(b, (int, float, np.number)):
        return float(a) == float(b)
    return bool(a == b)


CASES = st.tuples(st.just(0), st.booleans(), st.sampled_from([5, 10**9]))  # 4 cached runs


@pytest.mark.parametrize("fact", [f.name for f in FACTS])
@settings(max_examples=4, deadline=None)
@given(case=CASES)
def test_each_fact_live_equals_replay(fact: str, case: tuple[int, bool, int]) -> None:
    replay, live, _, _ = _both(*case)
    assert len(live) == len(replay)
    vals = replay[fact].to_numpy(dtype=object)
    ids = replay["event_id"].to_numpy()
    bad = [(ids[i], vals[i], live[ids[i]][fact]) for i in range(len(replay))
           if not _same(vals[i], live[ids[i]][fact])]
    assert not bad, f"{fact}: {len(bad)} rows differ, first (event, replay, live): {bad[:3]}"


@pytest.mark.parametrize("feature", FEATURES)
@settings(max_examples=4, deadline=None)
@given(case=CASES)
def test_each_window_feature_live_equals_replay(feature: str, case: tuple[int, bool, int]
                                                ) -> None:
    _, _, live_w, replay_w = _both(*case)
    keys = ["account", "key", "minute"]
    pd.testing.assert_frame_equal(live_w[keys], replay_w[keys], check_dtype=False)
    got, want = live_w[feature].to_numpy(float), replay_w[feature].to_numpy(float)
    assert np.array_equal(got, want), (feature, np.flatnonzero(got != want)[:5])


def test_the_traffic_exercises_every_fact_and_feature() -> None:
    """A comparison over columns that never vary proves nothing: each fact takes two values
    (or one besides missing) and each window feature is non-zero somewhere."""
    replay, _, _, w = _both(0, True, 5)
    replay2, _, _, w2 = _both(0, False, 5)
    flat = [f.name for f in FACTS if replay[f.name].astype(str).nunique() < 2
            and replay2[f.name].astype(str).nunique() < 2]
    assert flat == [], flat
    quiet = [f for f in FEATURES if not (w[f].any() or w2[f].any())]
    assert quiet == [], quiet
