"""Persistent anomaly: unusual minutes that keep coming back page (HIGH); a burst does not."""

from __future__ import annotations

import pytest

from monitor.core.findings import Severity
from monitor.detect.anomaly import FOREST_RULE
from monitor.detect.candidate import Candidate
from monitor.detect.engine import DetectionEngine
from monitor.features import FeatureContext

from .helpers import make_config

MIN = 60_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % MIN


def _cand(minute: int, key: str = "dca") -> Candidate:
    return Candidate(rule=FOREST_RULE, ts=minute + MIN, account="main", key=key, anchor=minute,
                     summary="unusual", evidence={"score": 0.7, "threshold": 0.6,
                                                  "reasons": ["untapped_1h 2 is above"]})


def _engine() -> tuple[DetectionEngine, object]:
    """An engine and the forest detector's persistence counter (fed as `on_windows` feeds it)."""
    from monitor.detect.anomaly import Persistence

    return DetectionEngine(FeatureContext.from_config(make_config()), [], None), Persistence()


@pytest.mark.parametrize("offsets_min, keys, fires_at", [
    ([0, 20, 40], ["dca"] * 3, 40),            # three, 40 min apart end to end: pages
    ([0, 15, 30], ["dca"] * 3, 30),            # exactly the 30 min spread: pages
    ([0, 1, 2], ["dca"] * 3, None),            # one burst of adjacent minutes: rules' job
    ([0, 29], ["dca"] * 2, None),              # two are not persistence
    ([0, 100, 200], ["dca"] * 3, None),        # the first fell out of the 3 h span
    ([0, 20, 40], ["dca", "grid", "dca"], None),  # keys are counted apart
    ([0, 1, 2, 60], ["dca"] * 4, 60),          # burst, then one more an hour later: pages
])
def test_persistent_anomaly_edges(offsets_min: list[int], keys: list[str],
                                  fires_at: int | None) -> None:
    eng, pers_ = _engine()
    found = []
    for off, key in zip(offsets_min, keys, strict=True):
        found += eng._finalise(pers_.follow([_cand(T0 + off * MIN, key)]))  # type: ignore[attr-defined]
    pers = [f for f in found if f.rule_id == "forest.persistent"]
    if fires_at is None:
        assert pers == []
    else:
        assert len(pers) == 1
        f = pers[0]
        assert f.ts == T0 + (fires_at + 1) * MIN and f.severity is Severity.HIGH
        assert f.detector == "forest" and f.evidence["anomalous_windows"] >= 3
        assert "unusual minutes for this key" in f.summary


def test_persistent_anomaly_cooldown_and_warning_findings() -> None:
    """Six hours of unusual minutes: one page; the per-minute warnings keep their 30 min
    cooldown."""
    eng, pers_ = _engine()
    found = []
    for off in range(0, 300, 10):
        found += eng._finalise(pers_.follow([_cand(T0 + off * MIN)]))  # type: ignore[attr-defined]
    assert [f.rule_id for f in found].count("forest.persistent") == 1
    assert [f.rule_id for f in found].count("forest.anomaly") == 10
