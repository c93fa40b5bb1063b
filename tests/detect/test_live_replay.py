"""Live (incremental batches + ticks) and replay (one vectorised pass) agree exactly."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect.candidate import Windows
from monitor.detect.engine import DetectionEngine
from monitor.detect.forest import ForestModel
from monitor.detect.rules import load_rules
from monitor.detect.windowrules import BaselineRatio
from monitor.features import FEATURES, FeatureContext, windows
from monitor.store import events_from_frame
from monitor.world.evaluate.generator import generate
from monitor.world.groundtruth import AttackType

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default.skops"


@functools.cache
def _forest() -> ForestModel:
    return ForestModel.load(MODEL)


def to_events(df: pd.DataFrame) -> list:
    frame = df.copy()
    frame["ts"] = pd.to_datetime(frame["ts"], unit="ms", utc=True)
    frame["received_ts"] = pd.to_datetime(frame["received_ts"], unit="ms", utc=True)
    for c in ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id"):
        frame[c] = frame[c].astype("Int64")
    return events_from_frame(frame)


@pytest.mark.parametrize("seed", [3, 4])
def test_live_equals_replay(seed: int) -> None:
    syn = generate(keys=2, days=0.35, seed=seed, attacks=[
        AttackType.PERMISSION_PROBE, AttackType.OVERSIZED_ORDERS, AttackType.RUNAWAY_BOT])
    ctx = FeatureContext.from_config(syn.config)
    rules = load_rules(ROOT / "rules")
    forest = ForestModel.load(MODEL)
    events = to_events(syn.events)

    replay = DetectionEngine(ctx, rules, forest)
    expected = replay.replay(syn.events)
    expected_windows = windows(syn.events, ctx)

    live = DetectionEngine(ctx, rules, forest)
    rng = np.random.default_rng(seed)
    got, wins, i = [], [], 0
    while i < len(events):
        j = min(len(events), i + int(rng.integers(300, 5000)))  # batches cut mid-minute
        got += live.process(events[i:j])
        got += live.tick(events[j - 1].ts)
        wins.append(live.last_windows)
        i = j
    got += live.tick(events[-1].ts + 120_000)
    wins.append(live.last_windows)

    live_windows = (pd.concat([w for w in wins if len(w)], ignore_index=True)
                    .sort_values(["account", "key", "minute"]).reset_index(drop=True))
    cols = ["account", "key", "minute", *FEATURES]
    pd.testing.assert_frame_equal(
        live_windows[cols].astype({"account": str, "key": str}),
        expected_windows[cols].astype({"account": str, "key": str}), check_dtype=False)

    def norm(fs: list) -> list:
        return sorted((f.ts, f.rule_id, f.finding_id, f.model_dump_json()) for f in fs)

    assert len(expected) >= 5
    assert {f.rule_id for f in expected} >= {"unknown_ip.auth_burst",
                                              "oversized.reject_vs_balance",
                                              "call_rate.tap_requests"}
    assert norm(got) == norm(expected)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 10_000), small=st.integers(1, 40))
def test_live_equals_replay_small_batches(seed: int, small: int) -> None:
    """The service's quiet-time batches (a handful of events, sometimes out of time order)
    give the replay's windows and findings too, bit for bit."""
    syn = generate(keys=2, days=0.08, seed=seed % 50, attacks=[AttackType.PERMISSION_PROBE])
    ctx = FeatureContext.from_config(syn.config)
    rules = load_rules(ROOT / "rules")
    forest = ForestModel.load(MODEL)
    events = to_events(syn.events)
    expected = DetectionEngine(ctx, rules, forest).replay(syn.events)
    live = DetectionEngine(ctx, rules, forest)
    rng = np.random.default_rng(seed)
    got, wins, i = [], [], 0
    while i < len(events):
        j = min(len(events), i + int(rng.integers(1, small + 1)))
        batch = events[i:j]
        if rng.random() < 0.3 and len({e.ts for e in batch}) == len(batch):
            batch = batch[::-1]  # out of order: the engine sorts by ts (ties keep their order)
        got += live.process(batch)
        if rng.random() < 0.2:
            got += live.tick(events[j - 1].ts)
            wins.append(live.last_windows)
        i = j
    got += live.tick(events[-1].ts + 120_000)
    wins.append(live.last_windows)
    cols = ["account", "key", "minute", *FEATURES]
    live_windows = (pd.concat([w for w in wins if len(w)], ignore_index=True)
                    .sort_values(["account", "key", "minute"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        live_windows[cols].astype({"account": str, "key": str}),
        windows(syn.events, ctx)[cols].astype({"account": str, "key": str}),
        check_dtype=False, check_exact=True)
    assert sorted(f.model_dump_json() for f in got) == sorted(
        f.model_dump_json() for f in expected)


@settings(deadline=None)
@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=80),
       st.integers(1, 60), st.integers(1, 10))
def test_live_baseline_from_kept_history_equals_the_full_replay(vals: list[float], n: int,
                                                                lo: int) -> None:
    """Live closes one minute at a time after the `history` windows the detector asked for;
    its baseline there is replay's over the whole series, exactly."""
    lo = min(lo, n)
    rule = next(r for r in load_rules(ROOT / "rules") if r.kind == "baseline_ratio")
    det = BaselineRatio(dataclasses.replace(rule, params={
        **rule.params, "baseline_windows": n, "min_history": lo}))
    w = pd.DataFrame({"account": "main", "key": "k", "minute": range(len(vals)),
                      rule.params["metric"]: vals})
    want = det.baseline(Windows(w)).tolist()  # replay: every window new at once
    got = []
    for i in range(len(vals)):  # live: the kept history, then the one new window
        kept = w.iloc[max(0, i - det.history):i + 1].assign(_new=False)
        kept.iloc[-1, kept.columns.get_loc("_new")] = True
        got.append(det.baseline(Windows(kept.reset_index(drop=True)))[-1])
    assert np.array_equal(np.array(got), np.array(want), equal_nan=True)


@settings(deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 1e6, allow_nan=False)),
                min_size=1, max_size=150),
       st.integers(1, 60), st.integers(1, 10))
def test_the_gathered_baseline_is_pandas_rolling_median(rows: list[tuple[int, float]], n: int,
                                                        lo: int) -> None:
    """Live closes gather each new window's predecessors; replay takes pandas' rolling median:
    the same numbers, exactly, for several keys at once."""
    lo = min(lo, n)
    rule = next(r for r in load_rules(ROOT / "rules") if r.kind == "baseline_ratio")
    det = BaselineRatio(dataclasses.replace(rule, params={
        **rule.params, "baseline_windows": n, "min_history": lo}))
    m = rule.params["metric"]
    w = (pd.DataFrame({"account": "main", "key": [f"k{k}" for k, _ in rows],
                       "minute": range(len(rows)), m: [v for _, v in rows]})
         .sort_values(["account", "key", "minute"], kind="stable").reset_index(drop=True))
    keys = [w["account"], w["key"]]
    want = (w[m].groupby(keys, sort=False).shift(1).groupby(keys, sort=False)
            .rolling(n, min_periods=lo).median().droplevel([0, 1]).reindex(w.index))
    got = det._gathered(Windows(w), np.arange(len(w)))
    assert np.array_equal(got, want.to_numpy(), equal_nan=True)


@settings(deadline=None, max_examples=50)
@given(st.lists(st.lists(st.floats(0, 14, allow_nan=False), min_size=8, max_size=8),
                min_size=1, max_size=300))
def test_forest_walk_equals_sklearn(rows: list[list[float]]) -> None:
    """The numpy walk over all trees is scikit-learn's score_samples, bit for bit."""
    forest = _forest()
    for g, m in enumerate(forest.models):
        x = np.array(rows)[:, :m.n_features_in_]
        assert np.array_equal(forest.score_samples(x, g), m.score_samples(x))


@pytest.mark.parametrize("seed", [5])
def test_live_equals_replay_learning_and_priced_market_orders(seed: int) -> None:
    """Issue 14 on generated traffic: keys without a declared whitelist (every address they
    learn is reported by unknown_ip.learned_caller) and refused orders whose notional the tap
    could not know (priced at the last fill), live == replay, and both fire."""
    syn = generate(keys=2, days=0.35, seed=seed, attacks=[
        AttackType.OVERSIZED_ORDERS, AttackType.HOST_IP_CHANGED])
    ctx = dataclasses.replace(FeatureContext.from_config(syn.config), whitelists={})
    df = syn.events.copy()
    blank = (df["kind"] == "reject").to_numpy()
    df.loc[blank, "notional"] = np.nan
    assert blank.sum() > 0
    # the poller's ticker/price of a symbol the account never filled (BTCUSDT here), each 5 min
    usage = df[df["kind"] == "usage"].iloc[::5].copy()
    usage = usage.assign(kind="price", symbol="BTCUSDT", price=65_000.0, endpoint=None,
                         weight_1m=np.nan, orders_10s=np.nan, orders_1d=np.nan, raw=None,
                         event_id=[f"rest:price:{i}" for i in range(len(usage))])
    df = pd.concat([df, usage]).sort_values("ts", kind="stable").reset_index(drop=True)
    rules = load_rules(ROOT / "rules")
    forest = ForestModel.load(MODEL)
    events = to_events(df)
    expected = DetectionEngine(ctx, rules, forest).replay(df)
    live = DetectionEngine(ctx, rules, forest)
    rng = np.random.default_rng(seed)
    got, wins, i = [], [], 0
    while i < len(events):
        j = min(len(events), i + int(rng.integers(1, 3000)))
        got += live.process(events[i:j])
        got += live.tick(events[j - 1].ts)
        wins.append(live.last_windows)
        i = j
    got += live.tick(events[-1].ts + 120_000)
    wins.append(live.last_windows)
    cols = ["account", "key", "minute", *FEATURES]
    live_windows = (pd.concat([w for w in wins if len(w)], ignore_index=True)
                    .sort_values(["account", "key", "minute"]).reset_index(drop=True))
    pd.testing.assert_frame_equal(
        live_windows[cols].astype({"account": str, "key": str}),
        windows(df, ctx)[cols].astype({"account": str, "key": str}),
        check_dtype=False, check_exact=True)
    assert sorted(f.model_dump_json() for f in got) == sorted(
        f.model_dump_json() for f in expected)
    rules_fired = {f.rule_id for f in expected}
    assert "unknown_ip.learned_caller" in rules_fired, rules_fired
    priced = {f.evidence["symbol"] for f in expected if f.rule_id.startswith("oversized.")
              and f.evidence.get("ref_price")}
    assert "BTCUSDT" in priced, rules_fired
