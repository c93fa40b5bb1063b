"""Warm-up made explicit (issue 17): every rule kind says when it starts judging a key, the plan
groups the shipped rules by it, and the engine says per key what is still learning."""

from __future__ import annotations

from pathlib import Path

from monitor.detect.anomaly import FOREST_RULE
from monitor.detect.engine import DetectionEngine
from monitor.detect.kinds import KINDS
from monitor.detect.rules import load_rules
from monitor.detect.warmup import WARM_UP, plan
from monitor.features import FeatureContext
from tests.detect.helpers import MIN, T0, ev, make_config

RULES = load_rules(Path(__file__).resolve().parents[2] / "rules")


def test_every_kind_declares_its_warm_up() -> None:
    assert set(WARM_UP) == set(KINDS) | {FOREST_RULE.kind}


def test_the_shipped_plan_runs_from_the_first_event_to_a_day() -> None:
    steps = plan(RULES)
    assert [s["after_minutes"] for s in steps] == sorted(s["after_minutes"] for s in steps)
    first, last = steps[0], steps[-1]
    assert first["when"] == "from the first event" and last["when"] == "after a day"
    assert any(r.startswith("unknown_ip.auth_burst:") for r in first["rules"])
    assert any(r.startswith("unknown_ip.new_caller:") for r in last["rules"])
    assert any("call_rate.tap_requests" in r for s in steps if 60 < s["after_minutes"] < 1440
               for r in s["rules"])


def test_a_key_seen_for_minutes_is_still_learning_and_a_whitelist_skips_the_caller_day(
        ) -> None:
    for whitelist, learns_callers in ((None, True), (["10.0.0.5"], False)):
        eng = DetectionEngine(FeatureContext.from_config(make_config(whitelist=whitelist)),
                              RULES)
        eng.process([ev(ts=T0), ev(ts=T0 + 5 * MIN)])
        (grid,) = [k for k in eng.warm_up_report(T0 + 10 * MIN)["keys"] if k["key"] == "grid"]
        assert grid["seen_minutes"] == 10
        learning: dict[str, list[int]] = {}
        for item in grid["learning"]:
            learning.setdefault(item["rule"].split(":")[0], []).append(item["ready_in_minutes"])
        assert ("unknown_ip.new_caller" in learning) is learns_callers
        if learns_callers:
            assert learning["unknown_ip.new_caller"] == [1440 - 10]
        assert "unknown_ip.auth_burst" not in learning  # judges from the first event
        assert learning["call_rate.tap_requests"] == [120 - 10, 1440 - 10]  # spikes, rises
        later = [k for k in eng.warm_up_report(T0 + 2 * 1440 * MIN)["keys"]
                 if k["key"] == "grid"][0]
        assert later["learning"] == []
