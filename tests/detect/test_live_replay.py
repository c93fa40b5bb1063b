"""Live (incremental batches + ticks) and replay (one vectorised pass) agree exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.detect.engine import DetectionEngine
from monitor.detect.forest import ForestModel
from monitor.detect.rules import load_rules
from monitor.evaluate.generator import generate
from monitor.features import FEATURES, FeatureContext, windows
from monitor.groundtruth import AttackType
from monitor.store import events_from_frame

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "default.skops"


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
