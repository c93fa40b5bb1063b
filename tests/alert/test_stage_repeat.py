"""Dedupe and repeat: the same incident is held back until max(repeat, cooldown) passed."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import pytest

from monitor.alert.stages.repeat import Repeat
from tests.alert.conftest import T0, alerts_cfg, foreign_order
from tests.alert.stagekit import opened

MIN = 60_000


def _firing(notified: int | None = T0):
    return replace(opened(foreign_order(1)), state="firing", count=0, last_notified_ts=notified)


@pytest.mark.parametrize(("repeat_s", "cooldown_s", "after_min", "kind"), [
    (3600, 300, 59, None),       # inside the repeat interval: a duplicate
    (3600, 300, 60, "repeat"),   # the interval passed: a reminder
    (60, 600, 5, None),          # a short repeat interval still waits out the cooldown
    (60, 600, 10, "repeat"),
    (0, 0, 0, "repeat"),
])
def test_the_same_incident_repeats_only_when_due(repeat_s, cooldown_s, after_min, kind) -> None:
    counters: dict[str, int] = defaultdict(int)
    stage = Repeat(alerts_cfg(repeat_interval_s=repeat_s, cooldown_s=cooldown_s), counters)
    st = _firing()
    again = foreign_order(1, ts=T0 + after_min * MIN)
    out = stage.step(st, again, T0 + after_min * MIN)
    if kind is None:
        assert out is st and counters["deduped"] == 1
    else:
        assert (out.state, out.kind, out.finding, out.pending_since) == (
            "pending", kind, again, T0 + after_min * MIN)
        assert counters["deduped"] == 0


def test_a_new_incident_is_an_update_at_once() -> None:
    st = _firing()
    f = foreign_order(2)
    out = Repeat.update(st, f, T0 + 1)
    assert (out.state, out.kind, out.finding, out.pending_since) == ("pending", "update", f,
                                                                      T0 + 1)


def test_cooling_is_the_cooldown_since_the_last_notice() -> None:
    stage = Repeat(alerts_cfg(cooldown_s=300), defaultdict(int))
    assert stage.cooling(_firing(), T0 + 299_999)
    assert not stage.cooling(_firing(), T0 + 300_000)
    assert not stage.cooling(_firing(notified=None), T0)
    assert stage.repeat_ms == 3_600_000
