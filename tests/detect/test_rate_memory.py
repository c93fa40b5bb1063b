"""call_rate.tap_requests (kind rate_memory): a key's rhythm learned over a week.

Issue 17's acceptance lines about call rates: a key with an hourly 200-call burst pages at
most once in a simulated week, and a 3x sustained rise on the same key over 30 minutes is
caught; a key making about 3 calls an hour is not paged for its usual traffic and is paged for
30 calls in 10 minutes; a bot's restart (18 calls in a minute on a key averaging 2 a minute)
does not page. Plus: live closes give the replay's findings, the learned state survives a
restart through the store, bad parameters are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.core.events import Event
from monitor.core.findings import Finding
from monitor.detect.engine import DetectionEngine
from monitor.detect.ratememory import RateMemory
from monitor.detect.rules import RuleError, load_rules
from monitor.features import FeatureContext
from monitor.service.startup import restore_memory, save_memory
from monitor.store import SQLiteStore, events_from_frame
from monitor.world.evaluate import rhythms as R

ROOT = Path(__file__).resolve().parents[2]
RULE_ID = "call_rate.tap_requests"
RULE = [r for r in load_rules(ROOT / "rules") if r.id == RULE_ID]
MIN = 60_000


def engine(tr: R.RhythmTraffic) -> DetectionEngine:
    return DetectionEngine(FeatureContext.from_config(tr.config), RULE)


def replay(shapes: list[R.Shape], seed: int = 0) -> tuple[R.RhythmTraffic, list[Finding]]:
    tr = R.rhythm_traffic(shapes, seed=seed)
    return tr, [f for f in engine(tr).replay(tr.events) if f.rule_id == RULE_ID]


def caught(tr: R.RhythmTraffic, found: list[Finding], within_min: int) -> bool:
    """Every marked interval has a finding on its key from its start to `within_min` after."""
    return all(any(f.key == key and t0 <= f.ts <= t0 + within_min * MIN for f in found)
               for key, t0, _, _ in tr.marked_ms())


@pytest.mark.parametrize("seed", [0, 1])
def test_hourly_burst_pages_at_most_once_in_a_week(seed: int) -> None:
    tr, found = replay([R.hourly_burst(burst=200)], seed)
    assert len(tr.events) > 7 * 24 * 200  # a week of it: 168 bursts
    assert len(found) <= 1


def test_hourly_burst_seen_first_after_warm_up_pages_once() -> None:
    """A key whose burst starts on its third day: the first burst is news, the rest recur."""
    s = R.hourly_burst(burst=200)
    s.exact[: 2 * 1440] = 0  # type: ignore[index]
    tr, found = replay([s])
    assert len(found) == 1 and found[0].evidence["test"] == "spike"
    assert "the usual for this hour" in found[0].summary


@pytest.mark.parametrize("at", [3000, 6100, None])  # a weekday night, a Friday, a Saturday
def test_sustained_threefold_rise_on_the_burst_key_is_caught(at: int | None) -> None:
    tr, found = replay([R.sustained_rise(R.hourly_burst(burst=200), factor=3.0, at=at)])
    assert caught(tr, found, within_min=30)
    assert len(found) == 1
    ev = found[0].evidence
    assert ev["test"] == "rise" and 2 <= ev["ratio"] <= 4
    assert ev["rise_start_ms"] >= tr.marked_ms()[0][1] - 2 * MIN


def test_weekly_cycle_is_normal_and_a_rise_on_it_is_caught() -> None:
    assert replay([R.weekly_cycle()], 3)[1] == []
    tr, found = replay([R.sustained_rise(R.weekly_cycle(), factor=3.0, at=4500)], 3)
    assert caught(tr, found, within_min=30)


def test_quiet_key_usual_traffic_never_pages_thirty_calls_in_ten_minutes_do() -> None:
    for seed in (0, 1, 2):
        assert replay([R.quiet(per_hour=3.0)], seed)[1] == []
    tr, found = replay([R.quiet_then_burst(per_hour=3.0, calls=30, span=10)])
    assert caught(tr, found, within_min=12) and len(found) == 1
    assert found[0].evidence["window_minutes"] == 10


def test_quiet_key_fourth_call_in_an_hour_does_not_page() -> None:
    s = R.quiet(minutes=2 * 1440, per_hour=3.0)
    s.mean[1500:1560] = 6 / 60  # twice its usual, for an hour
    assert replay([s])[1] == []


def test_bot_restart_does_not_page() -> None:
    for seed in (0, 1, 2):
        tr, found = replay([R.restart(rate=2.0, calls=18, times=4)], seed)
        minute = tr.events["ts"] // MIN
        assert (minute.value_counts() >= 17).sum() >= 4  # the restarts are there
        assert found == []


def test_a_flood_on_a_quiet_key_pages_within_two_minutes() -> None:
    """The runaway loop the old rule caught: hundreds a minute, seen at its first minute."""
    s = R.quiet(minutes=2 * 1440, per_hour=30.0)
    s.mean[2000:2010] = 500.0
    s.marked = [R.Marked(2000, 2010, "flood")]
    tr, found = replay([s])
    assert caught(tr, found, within_min=2)


def live(tr: R.RhythmTraffic, events: list[Event], seed: int, eng: DetectionEngine | None = None,
         sizes: tuple[int, ...] = (1, 7, 60, 900, 3000)) -> tuple[DetectionEngine, list[Finding]]:
    """Events through the live path in random batches (some of one event), ticking after
    each: many minutes closed at once, or one."""
    eng = eng or engine(tr)
    rng = np.random.default_rng(seed)
    got, i = [], 0
    while i < len(events):
        j = min(len(events), i + int(rng.choice(sizes)))
        got += eng.process(events[i:j])
        got += eng.tick(events[j - 1].ts)
        i = j
    return eng, [f for f in got if f.rule_id == RULE_ID]


def test_live_closes_give_the_replay_findings() -> None:
    shapes = [R.sustained_rise(R.hourly_burst(minutes=3 * 1440, burst=120), at=3000),
              R.quiet_then_burst(minutes=2 * 1440)]
    tr, want = replay(shapes)
    assert {f.evidence["test"] for f in want} == {"rise", "spike"}
    events = events_from_frame(tr.events)
    for seed in (0, 1):
        eng, got = live(tr, events, seed)
        got += [f for f in eng.tick(events[-1].ts + 2 * MIN) if f.rule_id == RULE_ID]
        assert [f.model_dump_json() for f in got] == [f.model_dump_json() for f in want]


def test_learned_state_survives_a_restart_through_the_store(tmp_path: Path) -> None:
    """Learn a day and a half, save to a real store, restore into a new engine: the rest of
    the week is judged as by the engine that never stopped (burst memory and levels kept)."""
    shapes = [R.sustained_rise(R.hourly_burst(minutes=3 * 1440, burst=60), at=3 * 1440 - 300),
              R.quiet_then_burst(minutes=3 * 1440)]
    tr = R.rhythm_traffic(shapes)
    events = events_from_frame(tr.events)
    stop = tr.start_ms + 2160 * MIN  # the service stops at a minute's end
    cut = next(i for i, e in enumerate(events) if e.ts >= stop)
    big = (500, 2000, 5000)
    first, _ = live(tr, events[:cut], 0, sizes=big)
    first.tick(stop)  # its last minute closed, as the service's final tick does
    store = SQLiteStore(tmp_path / "kw.db")
    assert save_memory(first, store, stop) > 0
    store.close()
    store = SQLiteStore(tmp_path / "kw.db")
    second = engine(tr)
    assert restore_memory(second, store) == 2  # two keys
    _, after = live(tr, events[cut:], 1, second, sizes=big)
    never, whole = live(tr, events, 1, sizes=big)
    tail = [f for f in whole if f.ts > stop]
    assert [f.model_dump_json() for f in after] == [f.model_dump_json() for f in tail]
    assert len(after) == 2  # the quiet key's burst, the burst key's rise

    def state(e: DetectionEngine) -> list[tuple]:
        (det,) = [d for d in e.detectors if isinstance(d, RateMemory)]
        return sorted((r.account, r.key, r.part, r.values) for r in det.snapshot())

    for a, b in zip(state(second), state(never), strict=True):
        assert a[:3] == b[:3] and np.allclose(a[3], b[3], rtol=1e-9, atol=1e-9)


def test_snapshot_rows_round_trip() -> None:
    tr = R.rhythm_traffic([R.hourly_burst(minutes=300)])
    eng = engine(tr)
    eng.replay(tr.events)
    det = next(d for d in eng.detectors if isinstance(d, RateMemory))
    rows = det.snapshot()
    other = RateMemory(RULE[0])
    assert other.restore(rows) == 1
    assert other.snapshot() == rows


BAD = [
    ("ratio: 1", "ratio"), ("windows: []", "windows"), ("windows: [0, 10]", "windows"),
    ("windows: five", "windows"), ("min_excess: -1", "min_excess"),
    ("clip: 1.5\n    rise_ratio: 2", "clip"), ("horizon_days: 0", "horizon_days"),
    ("metric: reqs", "metric"), ("rise_threshold: x", "rise_threshold"),
]


@pytest.mark.parametrize("extra, field", BAD)
def test_bad_parameters_are_refused(tmp_path: Path, extra: str, field: str) -> None:
    body = "\n".join(line for line in ["    metric: requests", f"    {extra}"]
                     if not (extra.startswith("metric") and line.endswith("requests")))
    (tmp_path / "r.yaml").write_text(f"""rules:
  - id: rm
    kind: rate_memory
{body}
    title: t
    signal: call_rate_spike
    severity: high
    description: d
    action: a
""")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    assert field in str(info.value)


def test_defaults_load(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("""rules:
  - id: rm
    kind: rate_memory
    metric: stream_orders
    title: t
    signal: call_rate_spike
    severity: high
    description: d
    action: a
""")
    (rule,) = load_rules(tmp_path)
    assert rule.params["windows"] == [1, 10] and rule.params["scope"] == "key"
