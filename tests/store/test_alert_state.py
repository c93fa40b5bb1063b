"""Alert state in typed columns (schema v5), and the v4 JSON bodies converted on open."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import pytest

from monitor.core.findings import Finding, Severity, Signal
from monitor.store import AlertLine, AlertPayload, AlertState, SQLiteStore
from monitor.store.schema import MIGRATIONS, split_sql
from tests.factories import T0


def _finding(n: int) -> Finding:
    return Finding(finding_id=f"foreign.order:{n}", ts=T0 + n, rule_id="foreign.order",
                   signal=Signal.FOREIGN_ORDER, severity=Severity.HIGH, account="main",
                   title="Order placed by no registered bot", summary="an order",
                   evidence={"order_id": n, "client_order_id": f"web_{n}"})


def _v4_db(path, bodies: list[dict], alerts: list[tuple] = ()) -> None:
    """A database as Keywatch v4 left it: the manager's state as JSON bodies, each alert's
    payload as JSON."""
    conn = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:4]:
        for stmt in split_sql(script):
            conn.execute(stmt)
    conn.execute("PRAGMA user_version=4")
    conn.executemany("INSERT INTO alert_state VALUES (?, ?, ?, ?, ?)", [
        (b["fingerprint"], b["account"], b["state"], T0, json.dumps(b, sort_keys=True))
        for b in bodies
    ])
    conn.executemany("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", alerts)
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


def test_v4_alert_payloads_read_back_typed_after_the_migration(tmp_path) -> None:
    items = [
        {"fingerprint": "fp-a", "kind": "new", "rule_id": "foreign.order", "finding_id": "f:1",
         "key": None, "signal": "foreign_order", "count": 3, "incident": "order_id=1",
         "incidents": 2},
        {"fingerprint": "fp-b", "kind": "repeat", "rule_id": "unknown_ip.new_caller",  # pre-14
         "finding_id": "f:2", "key": "bot", "signal": "unknown_ip", "count": 1},
    ]
    alert = ("kw-1", "group:x", T0, "high", "main", None, "firing", "title", "body",
             json.dumps({"markdown": "**md**", "fingerprints": ["fp-a", "fp-b"], "items": items}))
    digest = ("kw-2", "digest", T0 + 1, "warning", "*", None, "digest", "t", "b",
              json.dumps({"markdown": "d", "fingerprints": ["fp-c"], "day": "2026-07-25"}))
    _v4_db(tmp_path / "kw.db", [], [alert, digest])
    store = SQLiteStore(tmp_path / "kw.db")
    try:
        got = store.load_alert("kw-1")
        assert got is not None and (got.fingerprint, got.title, got.body) == (
            "group:x", "title", "body")
        assert got.payload == AlertPayload(markdown="**md**", fingerprints=("fp-a", "fp-b"), items=(
            AlertLine("fp-a", "new", "foreign.order", "f:1", None, "foreign_order", 3,
                      "order_id=1", 2),
            AlertLine("fp-b", "repeat", "unknown_ip.new_caller", "f:2", "bot", "unknown_ip", 1,
                      None, 1),
        ))
        assert [a.alert_id for a in store.load_alerts()] == ["kw-1", "kw-2"]
        assert store.load_alerts(since=T0 + 1)[0].payload == AlertPayload(
            markdown="d", fingerprints=("fp-c",), day="2026-07-25")
        assert store._conn().execute("SELECT COUNT(*) FROM alert_items").fetchone()[0] == 2
    finally:
        store.close()


def test_an_alert_keeps_its_lines_in_order_and_a_duplicate_adds_none(tmp_path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    try:
        lines = tuple(AlertLine(f"fp-{n}", "new", "r", f"f:{n}", None, "unknown_ip", 1,
                                f"ip=127.66.0.{n}", 1) for n in (3, 1, 2))
        payload = AlertPayload(markdown="m", fingerprints=("fp-1", "fp-2", "fp-3"), items=lines)
        args = ("kw-1", "group:x", T0, "high", "main", None, "firing", "t", "b")
        assert store.enqueue_alert(*args, payload, ["hook"])
        assert not store.enqueue_alert(*args, AlertPayload(), ["hook"])
        got = store.load_alert("kw-1")
        assert got is not None and got.payload == payload
        assert store.load_alert("kw-2") is None
    finally:
        store.close()
