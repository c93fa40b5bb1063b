"""Alert state in typed columns (schema v5), and the v4 JSON bodies converted on open."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

from monitor.core.findings import Finding, Severity, Signal
from monitor.store import AlertState, SQLiteStore
from monitor.store.schema import MIGRATIONS, split_sql
from tests.factories import T0


def _finding(n: int) -> Finding:
    return Finding(finding_id=f"foreign.order:{n}", ts=T0 + n, rule_id="foreign.order",
                   signal=Signal.FOREIGN_ORDER, severity=Severity.HIGH, account="main",
                   title="Order placed by no registered bot", summary="an order",
                   evidence={"order_id": n, "client_order_id": f"web_{n}"})


def _v4_db(path, bodies: list[dict]) -> None:
    """A database as Keywatch v4 left it, with the manager's state as JSON bodies."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:
        for stmt in split_sql(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version=4")
    conn.executemany("INSERT INTO alert_state VALUES (?, ?, ?, ?, ?)", [
        (b["fingerprint"], b["account"], b["state"], T0, json.dumps(b, sort_keys=True))
        for b in bodies
    ])
    conn.close()


def test_v4_state_bodies_read_back_typed_after_the_migration(tmp_path) -> None:
    f1, f2 = _finding(1), _finding(2)
    firing = {  # as AlertManager._fold and _flush_group wrote them before v5
        "fingerprint": "fp-firing", "account": "main", "rule_id": "foreign.order", "key": None,
        "state": "firing", "kind": "update", "pending_since": T0, "first_seen": T0 + 1,
        "last_seen": T0 + 2, "count": 0, "finding": f2.model_dump_json(),
        "incidents": ["order_id=1", "order_id=2"], "n_incidents": 2,
        "last_notified_ts": T0 + 10, "last_alert_id": "kw-0123456789",
    }
    old = {  # written before issue 14: no incident bookkeeping, never notified
        "fingerprint": "fp-old", "account": "main", "rule_id": "foreign.order", "key": "bot",
        "state": "pending", "kind": "new", "pending_since": T0, "first_seen": T0,
        "last_seen": T0, "count": 3, "finding": f1.model_dump_json(),
    }
    _v4_db(tmp_path / "kw.db", [firing, old])
    store = SQLiteStore(tmp_path / "kw.db")
    try:
        got = {s.fingerprint: s for s in store.load_alert_states()}
        assert got["fp-firing"] == AlertState(
            fingerprint="fp-firing", account="main", rule_id="foreign.order", key=None,
            state="firing", kind="update", pending_since=T0, first_seen=T0 + 1,
            last_seen=T0 + 2, count=0, finding=f2, incidents=("order_id=1", "order_id=2"),
            n_incidents=2, last_notified_ts=T0 + 10, last_alert_id="kw-0123456789")
        assert got["fp-old"].finding == f1 and got["fp-old"].key == "bot"
        assert (got["fp-old"].incidents, got["fp-old"].n_incidents) == ((), 1)
        assert (got["fp-old"].last_notified_ts, got["fp-old"].last_alert_id) == (None, None)
        assert [s.fingerprint for s in store.load_alert_states(state="pending")] == ["fp-old"]
        cols = {r[1] for r in store._conn().execute("PRAGMA table_info(alert_state)")}
        assert "body" not in cols and {"kind", "finding", "incidents"} <= cols
    finally:
        store.close()


def test_states_round_trip_and_upsert_by_fingerprint(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    try:
        st = AlertState(fingerprint="fp", account="main", rule_id="foreign.order", key=None,
                        state="pending", kind="new", pending_since=T0, first_seen=T0,
                        last_seen=T0, count=1, finding=_finding(1), incidents=("order_id=1",))
        store.save_alert_states([st], T0)
        later = replace(st, state="firing", count=0, last_notified_ts=T0 + 5,
                        last_alert_id="kw-1")
        store.save_alert_states([later], T0 + 5)
        assert store.load_alert_states() == [later]
        assert store.load_alert_states(fingerprints=[]) == []
        assert store.load_alert_states(state="pending") == []
    finally:
        store.close()


def test_an_unknown_state_is_refused_where_it_is_built() -> None:
    with pytest.raises(ValueError, match="fp: unknown state 'sleeping'"):
        AlertState(fingerprint="fp", account="main", rule_id="r", key=None,
                   state="sleeping", kind="new", pending_since=T0,  # type: ignore[arg-type]
                   first_seen=T0, last_seen=T0, count=1, finding=_finding(1))


def test_a_group_waiting_at_the_upgrade_is_sent_after_it(tmp_path) -> None:
    from monitor.alert.manager import AlertManager
    from monitor.core.clock import ManualClock
    from tests.alert.conftest import alerts_cfg

    f = _finding(1)
    _v4_db(tmp_path / "kw.db", [{
        "fingerprint": "fp-old", "account": "main", "rule_id": "foreign.order", "key": None,
        "state": "pending", "kind": "new", "pending_since": T0, "first_seen": T0,
        "last_seen": T0, "count": 2, "finding": f.model_dump_json(),
    }])
    store = SQLiteStore(tmp_path / "kw.db")
    try:
        mgr = AlertManager(store, ManualClock(T0 + 10_000), alerts_cfg(), channels=[])
        (alert_id,) = mgr.flush()
        alert = store.load_alert(alert_id)
        assert alert is not None and alert.payload.items[0].finding_id == f.finding_id
        assert alert.payload.items[0].count == 2
        (st,) = store.load_alert_states()
        assert (st.state, st.last_alert_id) == ("firing", alert_id)
    finally:
        store.close()
