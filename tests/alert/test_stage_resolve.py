"""The resolve stage: resolved notices, flapping, and each record's place after a flush."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import pytest

from monitor.alert.stages import resolve
from tests.alert.conftest import T0, finding, foreign_order
from tests.alert.stagekit import opened


def test_a_resolved_finding_turns_firing_into_a_waiting_notice() -> None:
    firing = replace(opened(foreign_order(1)), state="firing")
    gone = foreign_order(1, ts=T0 + 9, state="resolved")
    out = resolve.on_resolved(firing, gone, T0 + 10)
    assert out is not None
    assert (out.state, out.kind, out.pending_since, out.last_seen, out.finding) == (
        "pending", "resolved", T0 + 10, T0 + 9, gone)


@pytest.mark.parametrize("state", [None, "pending", "resolved", "idle"])
def test_nothing_announced_is_nothing_to_resolve(state) -> None:
    st = None if state is None else replace(opened(foreign_order(1)), state=state)
    assert resolve.on_resolved(st, foreign_order(1, state="resolved"), T0) is None


def test_refire_inside_the_cooldown_is_quiet_and_cancels_a_waiting_notice() -> None:
    counters: dict[str, int] = defaultdict(int)
    done = replace(opened(foreign_order(1)), state="resolved", kind="resolved", count=3)
    again = foreign_order(1, ts=T0 + 7)
    out = resolve.refire(done, again, counters)
    assert (out.state, out.count, out.first_seen, out.kind) == ("firing", 1, T0 + 7, "resolved")
    assert counters["deduped"] == 1
    waiting = replace(done, state="pending")
    out = resolve.refire(waiting, again, counters)
    assert (out.state, out.kind, out.count) == ("firing", "new", 1)
    assert counters["deduped"] == 1


@pytest.mark.parametrize(("kind", "back"), [
    ("new", "idle"), ("repeat", "firing"), ("update", "firing"), ("resolved", "resolved"),
])
def test_settle_puts_a_dropped_record_back_where_it_was(kind, back) -> None:
    st = opened(foreign_order(1), kind=kind, count=4)
    (out,) = resolve.settle([st], [st], None, T0 + 1)
    assert (out.state, out.kind, out.count, out.last_notified_ts) == (back, kind, 4, None)


def test_settle_marks_the_sent_ones_notified() -> None:
    sent = opened(finding(ip="127.66.0.1"), count=4)
    notice = opened(finding(ip="127.66.0.2"), kind="resolved")
    dropped = opened(finding(ip="127.66.0.3"))
    out = {s.fingerprint: s for s in resolve.settle([sent, notice, dropped], [dropped],
                                                    "kw-9", T0 + 1)}
    assert (out[sent.fingerprint].state, out[sent.fingerprint].count) == ("firing", 0)
    assert out[notice.fingerprint].state == "resolved"
    assert out[sent.fingerprint].last_notified_ts == T0 + 1
    assert out[sent.fingerprint].last_alert_id == "kw-9"
    assert out[dropped.fingerprint].state == "idle"
