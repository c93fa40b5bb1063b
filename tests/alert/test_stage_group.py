"""The group stage: a record opens, counts and shows the newest incident; groups wait together."""

from __future__ import annotations

from dataclasses import replace

from monitor.alert.render import fingerprint
from monitor.alert.stages import group
from monitor.core.findings import incident_id
from tests.alert.conftest import T0, foreign_order
from tests.alert.stagekit import opened


def test_open_state_is_a_pending_new_record_keeping_the_last_notice() -> None:
    f = foreign_order(1)
    prior = replace(opened(f), state="resolved", last_notified_ts=T0 - 5, last_alert_id="kw-1")
    st = group.open_state(f, fingerprint(f), "order_id=1", T0, prior)
    assert (st.state, st.kind, st.count, st.pending_since) == ("pending", "new", 1, T0)
    assert st.finding is f and st.incidents == ("order_id=1",)  # the object, not JSON
    assert (st.last_notified_ts, st.last_alert_id) == (T0 - 5, "kw-1")


def test_touch_counts_and_remembers_a_new_incident_up_to_the_cap() -> None:
    st = opened(foreign_order(0))
    for n in range(1, group.MAX_INCIDENTS + 5):
        f = foreign_order(n, ts=T0 + n)
        st = group.touch(st, f, incident_id(f.signal, f.evidence), fresh=True)
    assert st.count == group.MAX_INCIDENTS + 5 and st.last_seen == T0 + group.MAX_INCIDENTS + 4
    assert len(st.incidents) == group.MAX_INCIDENTS and st.incidents[-1] == "order_id=104"
    assert st.n_incidents == group.MAX_INCIDENTS + 5
    same = group.touch(st, foreign_order(104, ts=T0 - 1), "order_id=104", fresh=False)
    assert same.incidents == st.incidents and same.last_seen == st.last_seen  # older: kept


def test_join_shows_the_newest_evidence_of_the_newest_incident() -> None:
    first, second = foreign_order(1), foreign_order(2)
    st = opened(first)
    assert group.join(st, second, "order_id=2", fresh=True).finding is second
    again = foreign_order(1, ts=T0 + 5)
    assert group.join(st, again, "order_id=1", fresh=False).finding is again  # same incident
    shows_two = replace(st, finding=second)
    assert group.join(shows_two, again, "order_id=1", fresh=False).finding is second  # older one


def test_join_turns_a_waiting_repeat_into_an_update_on_a_new_incident() -> None:
    st = opened(foreign_order(1), kind="repeat")
    assert group.join(st, foreign_order(2), "order_id=2", fresh=True).kind == "update"
    assert group.join(st, foreign_order(1), "order_id=1", fresh=False).kind == "repeat"


def test_due_groups_by_account_after_the_oldest_waited() -> None:
    a1 = opened(foreign_order(1), pending_since=T0)
    a2 = opened(foreign_order(2), pending_since=T0 + 8_000)
    other = replace(opened(foreign_order(3)), account="other", pending_since=T0 + 5_000)
    firing = replace(opened(foreign_order(4)), account="zzz", state="firing")
    states = [other, a2, a1, firing]
    assert group.due(states, 10_000, T0 + 9_999) == []
    assert group.due(states, 10_000, T0 + 10_000) == [("main", [a2, a1])]
    assert [a for a, _ in group.due(states, 10_000, T0 + 15_000)] == ["main", "other"]
    assert [a for a, _ in group.due(states, 10_000, T0, final=True)] == ["main", "other"]
    assert group.waiting(a1) and not group.waiting(replace(a1, kind="resolved"))
