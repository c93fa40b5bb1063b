"""failure_rate.slow_probe (kind rate_shift): a spread-out rise of refused calls is caught on a
quiet key, usual failures and a restart are not, and live closes give replay's findings.

Issue 17's acceptance: one refused signed call every 90 s for 15 minutes, on a key that fails
less than once an hour, raises a finding within 15 minutes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext, events_to_frame

from .helpers import MIN, T0, ev, make_config

ROOT = Path(__file__).resolve().parents[2]
RULE = [r for r in load_rules(ROOT / "rules") if r.id == "failure_rate.slow_probe"]
HOUR = 60 * MIN


def engine() -> DetectionEngine:
    return DetectionEngine(FeatureContext.from_config(make_config()), RULE)


def calls(start: int, minutes: int, every_s: float = 30) -> list:
    """A bot's ordinary traffic: one successful call every `every_s` seconds."""
    n = int(minutes * 60 / every_s)
    return [ev(ts=start + int(i * every_s * 1000)) for i in range(n)]


def refused(ts: int, code: int = -2015, ip: str = "10.0.0.5") -> object:
    return ev(ts=ts, status=401 if code != -1022 else 400, code=code, ip=ip)


def findings(events: list) -> list:
    events = sorted(events, key=lambda e: e.ts)
    return [f for f in engine().replay(events_to_frame(events))
            if f.rule_id == "failure_rate.slow_probe"]


def quiet_history(hours: int) -> list:
    """`hours` of a bot's traffic with one refused call every 3 hours (well under 1 an hour)."""
    out = calls(T0, hours * 60, every_s=60)
    out += [refused(T0 + h * HOUR + 17 * MIN) for h in range(0, hours, 3)]
    return out


def test_slow_probing_is_caught_within_fifteen_minutes() -> None:
    start = T0 + 24 * HOUR + 5 * MIN
    probe = [refused(start + i * 90_000, ip="203.0.113.9") for i in range(10)]  # 15 minutes
    found = findings(quiet_history(24) + calls(T0 + 24 * HOUR, 30, every_s=60) + probe)
    assert len(found) == 1
    f = found[0]
    assert f.ts - start <= 15 * MIN
    assert f.evidence["usual_per_hour"] <= 1 and f.evidence["run_count"] >= 5  # the floor
    assert "its usual rate" in f.summary


def test_usual_failures_and_a_restart_do_not_page() -> None:
    """A day with the key's usual odd failure, then a restart: its start-up calls twice within
    a minute, one of them refused once (a stale timestamp is not auth; a -1022 retried is)."""
    restart = T0 + 24 * HOUR + 10 * MIN
    burst = [ev(ts=restart + i * 3000) for i in range(18)]
    found = findings(quiet_history(24) + burst + [refused(restart + 2000, -1022),
                                                  refused(restart + 40_000, -1022)])
    assert found == []


def test_a_key_that_usually_fails_more_learns_it() -> None:
    """Three refused calls an hour for two days are this key's normal: the same spread-out
    pace the probe test pages for on a quiet key does not page here, a faster one does."""
    base = calls(T0, 48 * 60, every_s=60)
    base += [refused(T0 + i * 20 * MIN + 7 * MIN) for i in range(48 * 3)]
    later = T0 + 48 * HOUR
    usual = [refused(later + i * 20 * MIN) for i in range(4)]
    assert findings(base + calls(later, 90, every_s=60) + usual) == []
    fast = [refused(later + i * 30_000) for i in range(30)]
    assert len(findings(base + calls(later, 30, every_s=60) + fast)) == 1


def test_live_closes_give_the_replay_findings() -> None:
    start = T0 + 24 * HOUR + 5 * MIN
    events = sorted(quiet_history(24) + [refused(start + i * 90_000) for i in range(12)],
                    key=lambda e: e.ts)
    want = [f for f in engine().replay(events_to_frame(events))]
    live, got = engine(), []
    for i in range(0, len(events), 50):
        batch = events[i:i + 50]
        got += live.process(batch)
        got += live.tick(batch[-1].ts)
    got += live.tick(events[-1].ts + 2 * MIN)
    assert want and sorted(f.model_dump_json() for f in got) == sorted(
        f.model_dump_json() for f in want)
    assert isinstance(want[0].ts, int) and not pd.isna(want[0].ts)
