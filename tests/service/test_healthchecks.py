"""HealthWatch's rules on plain records: stalls, the store failing, the queue staying full."""

from __future__ import annotations

import time

from monitor.service.healthchecks import CollectorHealth, HealthWatch, IngestState, SourceProgress
from monitor.service.metrics import Metrics

T = 1_785_000_000_000


def state(count: int = 0, queued: int = 0, failing_since_ms: int | None = None
          ) -> CollectorHealth:
    return CollectorHealth([SourceProgress("stream", "main", count, stall_s=90)],
                           IngestState(queued, 1000, failing_since_ms, "OperationalError: x"))


def test_a_stream_without_frames_past_its_stall_time_is_not_ok_until_frames_move() -> None:
    m = Metrics()
    w = HealthWatch(m)
    assert w.check(state(5), T).ok
    assert w.check(state(5), T + 89_000).ok
    v = w.check(state(5), T + 91_000)
    assert not v.ok and v.problems == ["stream main: no progress for 91 s (stall after 90 s)"]
    assert m.registry.get_sample_value("keywatch_source_last_progress_timestamp_seconds",
                                       {"source": "stream", "account": "main"}) == T / 1000
    assert w.check(state(6), T + 92_000).ok


def test_an_ingest_queue_that_stays_above_half_full_is_not_ok() -> None:
    now = [0.0]
    m = Metrics()
    w = HealthWatch(m, wall=lambda: now[0], queue_full_s=30)
    assert w.check(state(queued=600), T).ok
    now[0] = 29.0
    assert w.check(state(queued=900), T).ok
    now[0] = 31.0
    v = w.check(state(queued=700), T)
    assert not v.ok and "ingest queue above half full (700 of 1000 events)" in v.problems[0]
    assert m.registry.get_sample_value("keywatch_ingest_queue_events") == 700
    now[0] = 32.0
    assert w.check(state(queued=100), T).ok  # drained: ok again, the clock restarts


def test_a_store_rejecting_writes_for_longer_than_the_grace_is_not_ok() -> None:
    w = HealthWatch(Metrics(), store_failing_s=5)
    wall_ms = int(time.time() * 1000)
    assert w.check(state(failing_since_ms=wall_ms - 1000), T).ok  # a brief lock is no outage
    v = w.check(state(failing_since_ms=wall_ms - 6000), T)
    assert not v.ok and v.report["store"]["last_error"] == "OperationalError: x"


def test_the_new_series_start_at_zero_for_every_configured_source(tmp_path) -> None:
    from tests.service.test_metrics import primed

    m = primed(tmp_path)
    get = m.registry.get_sample_value
    for source in ("poller", "stream"):
        assert get("keywatch_source_last_progress_timestamp_seconds",
                   {"source": source, "account": "main"}) == 0
    for source in ("rest", "stream", "tap", "log"):
        assert get("keywatch_events_quarantined_total", {"source": source}) == 0
        assert get("keywatch_events_out_of_range_total", {"source": source}) == 0
    assert get("keywatch_store_write_errors_total") == 0
    assert get("keywatch_ingest_queue_events") == 0
    assert get("keywatch_store_wal_bytes") == 0
