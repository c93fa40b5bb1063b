"""Fold: which stage decides each finding, the records it hands back, and the restart."""

from __future__ import annotations

from collections import defaultdict

from monitor.alert.stages.fold import Fold
from monitor.alert.stages.repeat import Repeat
from tests.alert.conftest import T0, alerts_cfg, foreign_order


def _fold(store) -> tuple[Fold, dict[str, int]]:
    counters: dict[str, int] = defaultdict(int)
    return Fold(store, Repeat(alerts_cfg(), counters), counters), counters


def test_findings_of_one_fingerprint_fold_into_one_pending_record(store) -> None:
    fold, counters = _fold(store)
    one, two = foreign_order(1), foreign_order(2, ts=T0 + 1)
    (st,) = fold.run([one, two, foreign_order(1)], T0)
    assert (st.state, st.kind, st.count, st.n_incidents) == ("pending", "new", 3, 2)
    assert st.incidents == ("order_id=1", "order_id=2") and st.finding is two
    assert (counters["new"], counters["grouped"], counters["new_incidents"]) == (1, 2, 1)
    assert fold.pending() == [st]


def test_a_resolved_finding_of_nothing_announced_changes_nothing(store) -> None:
    fold, _ = _fold(store)
    assert fold.run([foreign_order(1, state="resolved")], T0) == []
    assert fold.pending() == []


def test_a_restarted_fold_resumes_the_saved_pending_records(store) -> None:
    fold, _ = _fold(store)
    store.save_alert_states(fold.run([foreign_order(1)], T0), T0)
    again, counters = _fold(store)
    (st,) = again.pending()
    assert st.finding == foreign_order(1).model_copy(update={"finding_id": st.finding.finding_id})
    (st,) = again.run([foreign_order(2)], T0 + 1)
    assert st.count == 2 and counters["new"] == 0  # folded into the resumed record
