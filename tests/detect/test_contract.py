"""One contract every window detector passes (the forest and each windowed rule).

A detector scores windows: one finite, deterministic number per window, higher = more
anomalous, crossing its threshold exactly where it fires, and ranking its target attack's
windows above normal ones better than chance (AUC > 0.5) on seeded labelled streams.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.detect.candidate import Windows
from monitor.detect.engine import DetectionEngine
from monitor.detect.forest import ForestModel
from monitor.detect.kinds import build_detectors
from monitor.detect.rules import load_rules
from monitor.detect.windowrules import WindowRule
from monitor.features import FeatureContext, windows
from monitor.world.evaluate.generator import generate
from monitor.world.groundtruth import AttackType

ROOT = Path(__file__).resolve().parents[2]
RULES = {r.id: r for r in load_rules(ROOT / "rules")}
FOREST = ForestModel.load(ROOT / "models" / "default.skops")

# detector -> the attacks whose windows it should rank highest
TARGETS: dict[str, list[AttackType]] = {
    "forest.anomaly": [AttackType.LEAKED_KEY_PUMP, AttackType.PERMISSION_PROBE,
                       AttackType.HOST_IP_CHANGED],
    "call_rate.tap_requests": [AttackType.RUNAWAY_BOT],
    "call_rate.weight_near_limit": [AttackType.RUNAWAY_BOT],
    "failure_rate.jump": [AttackType.PERMISSION_PROBE, AttackType.HOST_IP_CHANGED],
    "failure_rate.rate_limited": [AttackType.RUNAWAY_BOT],
    "unknown_ip.auth_burst": [AttackType.PERMISSION_PROBE, AttackType.HOST_IP_CHANGED],
    "call_rate.account_order_counter": [AttackType.LEAKED_KEY_PUMP],
}
CTX = FeatureContext({}, {}, {}, {})
WINDOW_RULES = {d.rule.id: d for d in build_detectors(list(RULES.values()), CTX)
                if isinstance(d, WindowRule)}


def scorer(detector: str) -> tuple[Callable[[pd.DataFrame], np.ndarray], float]:
    if detector == "forest.anomaly":
        return FOREST.score, FOREST.threshold
    return WINDOW_RULES[detector].score, 1.0  # type: ignore[attr-defined]


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels], scores[~labels]
    ranks = pd.Series(np.concatenate([pos, neg])).rank().to_numpy()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2)
                 / (len(pos) * len(neg)))


@pytest.fixture(scope="module", params=[5, 6])
def stream(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, object]:
    syn = generate(keys=3, days=2, seed=request.param, attacks=[
        AttackType.RUNAWAY_BOT, AttackType.PERMISSION_PROBE, AttackType.SLOW_MISUSE,
        AttackType.HOST_IP_CHANGED, AttackType.LEAKED_KEY_PUMP])
    return windows(syn.events, FeatureContext.from_config(syn.config)), syn.truth


def labels_for(w: pd.DataFrame, truth: object, types: list[AttackType]) -> np.ndarray:
    lab = np.zeros(len(w), dtype=bool)
    for ep in truth.episodes:  # type: ignore[attr-defined]
        if ep.type in types:
            same = w["account"].astype(str).eq(ep.account) & (
                w["key"].astype(str).eq(ep.key) | w["key"].astype(str).eq(""))
            lab |= (same & (w["minute"] + 60_000 > ep.start_ms)
                    & (w["minute"] < ep.end_ms)).to_numpy()
    return lab


@pytest.mark.parametrize("detector", ["forest.anomaly", *WINDOW_RULES])
def test_detector_contract(detector: str, stream: tuple) -> None:
    w, truth = stream
    score, threshold = scorer(detector)
    s = score(w)
    assert s.shape == (len(w),) and np.isfinite(s).all()
    np.testing.assert_array_equal(s, score(w))  # deterministic
    if detector != "forest.anomaly":  # crosses its threshold exactly where the rule fires
        det = WINDOW_RULES[detector]
        fires = det.fires(w)
        assert ((s >= threshold) & det.scope.mask(Windows(w)) == fires).all()
    if detector in TARGETS:
        lab = labels_for(w, truth, TARGETS[detector])
        assert lab.any()
        assert auc(s, lab) > 0.5, f"{detector}: no better than chance on its attacks"


def test_detectors_share_no_state() -> None:
    """The eval splits one 'both' replay into rules-alone and forest-alone: prove it is valid."""
    syn = generate(keys=2, days=1, seed=9, attacks=[AttackType.LEAKED_KEY_PUMP])
    ctx = FeatureContext.from_config(syn.config)
    rules = list(RULES.values())
    both = DetectionEngine(ctx, rules, FOREST).replay(syn.events)
    alone = DetectionEngine(ctx, rules, FOREST, use_rules=False).replay(syn.events)
    only_rules = DetectionEngine(ctx, rules).replay(syn.events)
    assert [f for f in both if f.detector == "forest"] == alone
    assert [f for f in both if f.detector == "rule"] == only_rules
    assert alone  # the forest did fire on the pump
