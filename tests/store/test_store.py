from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace

import pandas as pd
import pytest

from monitor.core.events import EVENT_COLUMNS
from monitor.core.findings import Finding, Severity, Signal
from monitor.core.keyrestrictions import KeyRestrictions
from monitor.store import SCHEMA_VERSION, AlertPayload, SQLiteStore, events_from_frame
from tests.factories import T0, full_event, small_event


def test_inserting_the_same_events_twice_keeps_one_copy(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    events = [small_event(i) for i in range(10_000)]
    assert store.insert_events(events) == 10_000
    assert store.insert_events(events) == 0
    assert store.insert_events(events[5000:] + [small_event(10_000)]) == 1
    assert store.count_events() == 10_001


def test_insert_new_events_returns_only_unseen_ones_once(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    first = [small_event(i) for i in range(5)]
    assert store.insert_new_events(first) == first
    mixed = [small_event(3), small_event(7), small_event(7), small_event(8)]
    assert [e.order_id for e in store.insert_new_events(mixed)] == [7, 8]
    assert store.count_events() == 7


def test_load_events_round_trips_every_field_and_dtype(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    events = [full_event(i) for i in range(3)]
    store.insert_events(events)
    df = store.load_events()
    assert list(df.columns) == list(EVENT_COLUMNS)
    assert str(df["ts"].dtype) == "datetime64[ms, UTC]" or str(df["ts"].dtype).endswith(", UTC]")
    assert df["ts"].iloc[0] == pd.Timestamp(T0, unit="ms", tz="UTC")
    assert str(df["status"].dtype) == "Int64" and str(df["order_id"].dtype) == "Int64"
    assert df["qty"].dtype == "float64"
    assert isinstance(df["kind"].dtype, pd.CategoricalDtype)
    assert pd.api.types.is_string_dtype(df["ip"])
    assert events_from_frame(df) == events


def test_load_events_filters(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    store.insert_events([full_event(i, key="a" if i % 2 else "b") for i in range(10)])
    store.insert_events([small_event(i) for i in range(10)])
    assert len(store.load_events(since=T0 + 2, until=T0 + 5)) == 6  # 3 full + 3 small
    assert len(store.load_events(key="a")) == 5
    assert len(store.load_events(kinds=["order"])) == 10
    assert len(store.load_events(account="nobody")) == 0
    since = pd.Timestamp(T0 + 8, unit="ms", tz="UTC")
    assert len(store.load_events(since=since)) == 4
    empty = store.load_events(account="nobody")
    assert list(empty.columns) == list(EVENT_COLUMNS)


WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {root!r})
    from monitor.store import SQLiteStore
    from tests.factories import small_event
    store = SQLiteStore({path!r})
    batch = {batch}
    n = 0
    while True:
        store.insert_events([small_event(n * batch + i) for i in range(batch)])
        n += 1
        print(n, flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.02, 0.15, 0.3])
def test_a_writer_killed_mid_batch_leaves_no_partial_batch(tmp_path, delay):
    path = str(tmp_path / "kw.db")
    batch = 20_000
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER.format(root=root, path=path, batch=batch)],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    proc.stdout.readline()  # one batch committed, the next one is in flight
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    count = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    conn.close()
    assert count >= batch
    assert count % batch == 0, f"{count} rows: a partial batch survived the kill"
    store = SQLiteStore(path)
    assert store.count_events() == count


def test_a_reader_sees_whole_batches_while_a_writer_writes(tmp_path):
    path = tmp_path / "kw.db"
    writer_store = SQLiteStore(path)
    reader_store = SQLiteStore(path)
    batch, batches = 500, 40
    done = threading.Event()
    errors: list[str] = []

    def write():
        for n in range(batches):
            writer_store.insert_events([small_event(n * batch + i) for i in range(batch)])
        done.set()

    def read():
        while not done.is_set():
            df = reader_store.load_events()
            if len(df) % batch:
                errors.append(f"saw {len(df)} rows")
            if len(df) and df["order_id"].max() != len(df) - 1:
                errors.append("rows out of step with their batch")

    t_w, t_r = threading.Thread(target=write), threading.Thread(target=read)
    t_r.start()
    t_w.start()
    t_w.join()
    t_r.join()
    assert not errors, errors[:3]
    assert reader_store.count_events() == batch * batches


def test_schema_version_and_migration_path(tmp_path):
    path = tmp_path / "kw.db"
    SQLiteStore(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this Keywatch"):
        SQLiteStore(path)


def test_findings_cursors_snapshots_silences(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    f = Finding(finding_id="r1:abc", ts=T0, rule_id="r1", signal=Signal.UNKNOWN_IP,
                severity=Severity.HIGH, account="main", key="grid-bot", title="t",
                summary="s", evidence={"ip": "127.66.0.9"}, group={"ip": "127.66.0.9"})
    assert store.insert_findings([f, f]) == 1
    assert store.load_findings() == [f]
    assert store.get_cursor("poller:main") is None
    store.set_cursor("poller:main", "41")
    store.set_cursor("poller:main", "42")
    assert store.get_cursor("poller:main") == "42"
    locked = KeyRestrictions(ip_restrict=True, create_time=T0, flags={"enableReading": True})
    store.save_key_snapshot("main", "monitor", T0, locked)
    store.save_key_snapshot("main", "monitor", T0 + 1, replace(locked, ip_restrict=False))
    assert store.last_key_snapshot("main", "monitor") == (T0 + 1, replace(locked,
                                                                          ip_restrict=False))
    store._conn().execute("INSERT INTO key_snapshots VALUES ('main', 'monitor', ?, '[1]')",
                          (T0 + 2,))
    assert store.last_key_snapshot("main", "monitor") == (T0 + 2, None)  # unreadable: no rights
    sid = store.add_silence("r1", None, "grid-bot", T0, T0 + 1000, "known maintenance")
    assert [s.silence_id for s in store.silences(T0 + 10)] == [sid]
    assert store.silences(T0 + 10)[0].matches("r1", "main", "grid-bot", T0 + 10)
    assert not store.silences(T0 + 10)[0].matches("r2", "main", "grid-bot", T0 + 10)
    assert store.expire_silence(sid, T0 + 20)
    assert store.silences(T0 + 30) == []
    with pytest.raises(ValueError, match="reason"):
        store.add_silence("r1", None, None, T0, T0 + 5, " ")


def test_outbox_records_each_delivery_once(tmp_path):
    store = SQLiteStore(tmp_path / "kw.db")
    assert store.enqueue_alert("a1", "fp", T0, "high", "main", "k", "firing", "title", "body",
                               AlertPayload(markdown="**title**", fingerprints=("fp",)),
                               ["json", "email"])
    assert not store.enqueue_alert("a1", "fp", T0, "high", "main", "k", "firing", "title", "b",
                                   AlertPayload(), ["json"])
    due = store.due_deliveries(T0)
    assert {d.channel for d in due} == {"json", "email"}
    store.record_attempt("a1", "json", ok=False, now_ms=T0, next_try_ts=T0 + 500, error="500")
    store.record_attempt("a1", "email", ok=True, now_ms=T0)
    store.record_attempt("a1", "email", ok=True, now_ms=T0 + 1)  # a repeat send is not re-recorded
    assert [d.channel for d in store.due_deliveries(T0 + 100)] == []
    assert [d.channel for d in store.due_deliveries(T0 + 500)] == ["json"]
    email = [d for d in store.deliveries("a1") if d.channel == "email"][0]
    assert (email.state, email.attempts, email.sent_ts) == ("sent", 1, T0)
    assert store.last_alert_ts("fp") == T0
    assert store.load_alert("a1").payload == AlertPayload(markdown="**title**",
                                                          fingerprints=("fp",))
