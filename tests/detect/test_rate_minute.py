"""rate_memory's one-minute form (`rateminute.judge_minute`, what a live close runs) equals the
numpy form (`RateMemory._judge`) fed one minute at a time, bit for bit: the same hits with the
same evidence and the same learned state, on random sparse, bursty and rising traffic. Against
the numpy form over all minutes at once (replay) the hits are the same and the state equal to
rounding: its CUSUM is a closed form over the run, summed in another order."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.detect.ratememory import KeyMemory, RateMemory
from monitor.detect.rateminute import judge_minute
from monitor.detect.rules import load_rules

ROOT = Path(__file__).resolve().parents[2]
(RULE,) = [r for r in load_rules(ROOT / "rules") if r.id == "call_rate.tap_requests"]


def _state(k: KeyMemory) -> dict[str, object]:
    return {f.name: (v.tolist() if isinstance(v := getattr(k, f.name), np.ndarray) else v)
            for f in dataclasses.fields(k)}


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(1450, 1500),
       shape=st.sampled_from(["sparse", "steady", "bursty", "rising"]))
def test_one_minute_at_a_time_equals_the_numpy_form(seed: int, n: int, shape: str) -> None:
    rng = np.random.default_rng(seed)
    # at least three days, so the rise is judged too (from a key's second day)
    gaps = {"sparse": rng.integers(1, 90, n), "steady": np.full(n, 3, np.int64),
            "bursty": rng.integers(2, 6, n),
            "rising": np.r_[np.full(n - 200, 2, np.int64), np.ones(200, np.int64)]}[shape]
    m = 28_000_000 + np.cumsum(gaps)
    x = rng.poisson(2.0, n).astype(float) + 1.0
    if shape == "bursty":
        x[rng.random(n) < 0.05] += rng.integers(50, 400)
    if shape == "rising":  # every minute, at three times the rate: the CUSUM runs
        x[n - 200:] = rng.poisson(6.0, 200) + 1.0
    dets = [RateMemory(RULE) for _ in range(3)]
    kv, k1, ko = (KeyMemory.new(int(m[0]), len(d.p.windows)) for d in dets)
    whole = dets[0]._judge(kv, m, x)
    per, got = [], []
    for i in range(n):
        per += [(i, ev, s) for _, ev, s in dets[1]._judge(k1, m[i:i + 1], x[i:i + 1])]
        got += [(i, ev, s) for _, ev, s in judge_minute(dets[2], ko, int(m[i]), float(x[i]))]
    assert got == per
    assert _state(ko) == _state(k1)
    assert [(i, ev.get("test")) for i, ev, _ in got] == [(i, ev.get("test")) for i, ev, _ in whole]
    so, sv = _state(ko), _state(kv)
    assert abs(float(so.pop("rise")) - float(sv.pop("rise"))) < 1e-9  # type: ignore[arg-type]
    assert abs(float(so.pop("run_n")) - float(sv.pop("run_n"))) < 1e-9  # type: ignore[arg-type]
    assert so == sv
