"""Crossing triggers (issue 17): a line on a count or a maximum fires on the event that crosses
it, live and in replay alike, and the close of that minute adds nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext
from monitor.features.frame import events_to_frame
from tests.detect.helpers import MIN, T0, ev, make_config

RULES = Path(__file__).resolve().parents[2] / "rules"


def _engine(tmp_path: Path | None = None, rule_yaml: str | None = None) -> DetectionEngine:
    rules_dir = RULES
    if rule_yaml is not None:
        assert tmp_path is not None
        (tmp_path / "r.yaml").write_text("rules:\n" + rule_yaml)
        rules_dir = tmp_path
    return DetectionEngine(FeatureContext.from_config(make_config()), load_rules(rules_dir))


def _burst(t: int) -> list:
    """Seven refused calls, 2 s apart, from 10 s into a minute; the fifth is the crossing."""
    return [ev(ts=t + 10_000 + 2_000 * i, status=401, code=-2015) for i in range(7)]


def test_a_refusal_burst_pages_on_its_fifth_call_and_the_close_adds_nothing() -> None:
    eng = _engine()
    t = T0 + 5 * MIN
    calls = _burst(t)
    seen = [f for i in range(len(calls)) for f in eng.process(calls[i:i + 1])
            if f.rule_id == "unknown_ip.auth_burst"]
    assert len(seen) == 1
    (f,) = seen
    assert f.ts == calls[4].ts  # the fifth refused call, 18 s into the minute
    assert f.evidence["crossed_at_ms"] == calls[4].ts
    assert f.evidence["crossing_event_id"] == calls[4].event_id
    assert f.evidence["fail_auth"] == 5.0 and f.evidence["seconds_into_window"] == 18.0
    assert f.evidence["window_start_ms"] == t
    assert "18 s into the minute" in f.summary and "before the minute closed" in f.summary
    assert not [g for g in eng.tick(t + 3 * MIN) if g.rule_id == "unknown_ip.auth_burst"]


def test_replay_finds_the_same_crossing_as_live() -> None:
    t = T0 + 5 * MIN
    events = _burst(t) + [ev(ts=t + 61_000 + i, status=401, code=-2015) for i in range(4)]
    live = _engine()
    got = live.process(events) + live.tick(t + 5 * MIN)
    want = _engine().replay(events_to_frame(events))
    assert [f.model_dump_json() for f in got] == [f.model_dump_json() for f in want]
    assert [f.ts for f in want if f.rule_id == "unknown_ip.auth_burst"] == [events[4].ts]


MAX_RULE = """  - id: heavy
    kind: threshold
    metric: weight_max
    value: 4800
    scope: key
    title: t
    signal: call_rate_spike
    severity: high
    description: d
    action: a
"""


@pytest.mark.parametrize("path", ["live", "replay"])
def test_a_maximum_fires_on_the_first_event_past_the_line(tmp_path: Path, path: str) -> None:
    t = T0 + 2 * MIN
    weights = [1000, 4000, 4799, 4800, 5900, 100]
    events = [ev(ts=t + 1_000 * (i + 1), weight_1m=w) for i, w in enumerate(weights)]
    eng = _engine(tmp_path, MAX_RULE)
    found = (eng.process(events) + eng.tick(t + 3 * MIN) if path == "live"
             else eng.replay(events_to_frame(events)))
    (f,) = [f for f in found if f.rule_id == "heavy"]
    assert f.ts == events[3].ts and f.evidence["weight_max"] == 4800.0


def test_scope_key_never_fires_on_the_account_row(tmp_path: Path) -> None:
    rule = MAX_RULE.replace("metric: weight_max\n    value: 4800", "metric: requests\n"
                            "    value: 2")
    eng = _engine(tmp_path, rule)
    t = T0 + MIN
    events = [ev(ts=t + i, key=None) for i in range(5)]  # no key: the account row
    assert not [f for f in eng.process(events) if f.rule_id == "heavy"]
    assert not [f for f in eng.replay(events_to_frame(events)) if f.rule_id == "heavy"]


def test_a_line_on_a_feature_that_can_fall_waits_for_the_close(tmp_path: Path) -> None:
    """failure_ratio (failures / requests) can fall again within the minute: judged at close."""
    rule = MAX_RULE.replace("metric: weight_max\n    value: 4800",
                            "metric: failure_ratio\n    value: 0.5")
    eng = _engine(tmp_path, rule)
    t = T0 + MIN
    events = [ev(ts=t + 1_000, status=401, code=-2015)] + [ev(ts=t + 2_000 + i)
                                                            for i in range(3)]
    assert not [f for f in eng.process(events) if f.rule_id == "heavy"]  # 1/1 then 1/4
    assert not [f for f in eng.tick(t + 2 * MIN) if f.rule_id == "heavy"]
    eng2 = _engine(tmp_path, rule)
    two = [ev(ts=t + 1_000, status=401, code=-2015), ev(ts=t + 2_000)]
    assert not eng2.process(two)
    (f,) = eng2.tick(t + 2 * MIN)
    assert f.ts == t + MIN and "crossed_at_ms" not in f.evidence
