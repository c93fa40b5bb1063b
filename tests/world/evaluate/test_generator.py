"""The synthetic traffic: deterministic per seed, valid Events, and the noise it promises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitor.store import events_from_frame
from monitor.world.evaluate.generator import generate
from monitor.world.groundtruth import AttackType


def test_same_seed_same_frame_other_seed_differs() -> None:
    a = generate(keys=2, days=0.2, seed=11).events
    b = generate(keys=2, days=0.2, seed=11).events
    c = generate(keys=2, days=0.2, seed=12).events
    pd.testing.assert_frame_equal(a, b)
    assert len(a) != len(c) or not a["ts"].equals(c["ts"])


def test_events_are_valid_records() -> None:
    syn = generate(keys=2, days=1.2, seed=13, attacks=list(AttackType)[:3])
    df = syn.events
    sample = df.groupby(["source", "kind"], dropna=False).head(20).copy()
    sample["ts"] = pd.to_datetime(sample["ts"], unit="ms", utc=True)
    sample["received_ts"] = pd.to_datetime(sample["received_ts"], unit="ms", utc=True)
    for c in ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id"):
        sample[c] = sample[c].astype("Int64")
    events = events_from_frame(sample)  # raises if any record is not a valid Event
    assert {e.kind.value for e in events} >= {"request", "order", "fill", "reject", "balance",
                                              "usage", "key_config"}
    assert df["event_id"].is_unique and df["ts"].is_monotonic_increasing


@pytest.mark.parametrize("seed", [21, 22])
def test_realistic_noise(seed: int) -> None:
    df = generate(keys=3, days=1, seed=seed).events
    req = df[(df["source"] == "tap") & (df["kind"] == "request")]
    hourly = req.groupby(req["ts"] // 3_600_000).size()
    assert hourly.max() > 1.3 * hourly.min()                      # a daily cycle
    second = (req["ts"] % 60_000) // 1000
    assert (second < 2).mean() > 0.2                              # bursts at the minute
    assert (req["code"] == -1021).sum() > 0                       # occasional clock skew
    assert (req["status"] == 429).sum() > 0                       # and rate limiting
    assert df["client_order_id"].dropna().str.contains("-").all()


def test_episodes_are_labelled_in_their_slots() -> None:
    syn = generate(keys=3, days=2.5, seed=5, attacks=list(AttackType))
    eps = syn.truth.episodes
    assert [e.type for e in eps] == list(AttackType)
    assert all(syn.truth.start_ms + 86_400_000 <= e.start_ms < e.end_ms <= syn.truth.end_ms
               for e in eps)
    starts = np.array([e.start_ms for e in eps])
    assert (np.diff(starts) > 0).all()
