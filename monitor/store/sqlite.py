"""The embedded store: one SQLite file in WAL mode, one connection per thread.

Durability rules that everything else relies on:
- inserts are batched in one transaction; a batch is all-or-nothing even if the process is
  killed mid-write (SQLite's journal in WAL mode), and the cursors covering a batch are saved
  in its transaction (`write_events`);
- re-inserting an `event_id` (or a finding, or an alert) is a no-op, so backfills and restarts
  never duplicate;
- a row SQLite refuses is quarantined, never retried forever with its batch (`rows.py`);
- readers on other connections see a consistent snapshot while a writer writes (WAL).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.core.events import EVENT_COLUMNS, Event, Kind
from monitor.core.findings import Finding
from monitor.core.keyrestrictions import KeyRestrictions
from monitor.store.base import (
    BaselineRow,
    QuarantineRow,
    Silence,
    Store,
    WalState,
    WriteResult,
)
from monitor.store.frames import events_frame, to_ms
from monitor.store.outbox import OutboxTables
from monitor.store.rows import Tx, set_cursors, write_events
from monitor.store.schema import MIGRATIONS, SCHEMA_VERSION, split_sql

WAL_KEEP_BYTES = 64 << 20  # journal_size_limit: what a reset WAL may keep on disk


class SQLiteStore(OutboxTables, Store):
    """The embedded store: one file, WAL mode, one connection per thread."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            private_file(self.path)
        self._migrate(self._conn())

    # -- connections -----------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            # after a checkpoint resets the WAL, cut the file back to this size (a WAL grown to
            # gigabytes behind a long reader would otherwise keep its size on disk for good)
            conn.execute(f"PRAGMA journal_size_limit={WAL_KEEP_BYTES}")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path}: database schema v{version} is newer than this Keywatch "
                f"(v{SCHEMA_VERSION}); upgrade Keywatch or point it at another store path"
            )
        while version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in split_sql(MIGRATIONS[version]):
                    conn.execute(stmt)
                version += 1
                conn.execute(f"PRAGMA user_version={version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _tx(self) -> Tx:
        return Tx(self._conn())

    def close(self) -> None:
        with self._lock:
            for c in self._conns:
                try:
                    c.close()
                except sqlite3.ProgrammingError:
                    pass
            self._conns.clear()
        self._local = threading.local()

    # -- events ----------------------------------------------------------------------------
    def insert_events(self, events: Iterable[Event]) -> int:
        return len(self.write_events(list(events)).new)

    def write_events(self, events: Sequence[Event],
                     cursors: Mapping[str, str] | None = None) -> WriteResult:
        if not events and not cursors:
            return WriteResult()
        conn = self._conn()
        with Tx(conn):
            return write_events(conn, events, cursors or {}, int(time.time() * 1000))

    def checkpoint(self) -> WalState:
        """PASSIVE first (never waits, copies what no reader still needs); when that copied
        everything, TRUNCATE with no busy wait, so the WAL file goes back to zero bytes. A
        reader holding an old snapshot (a notebook's open transaction) makes both give way:
        the WAL then grows, which `wal_bytes` shows and health warns about."""
        if self.path == ":memory:":
            return WalState()
        conn = self._conn()
        busy, log_frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        truncated = False
        if not busy and log_frames == done:
            conn.execute("PRAGMA busy_timeout=0")
            try:
                busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                truncated = not busy
            finally:
                conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        else:
            busy = 1
        try:
            size = os.path.getsize(self.path + "-wal")
        except FileNotFoundError:
            size = 0
        return WalState(wal_bytes=size, busy=bool(busy), truncated=truncated)

    def quarantined(self) -> list[QuarantineRow]:
        rows = self._conn().execute(
            "SELECT event_id, source, kind, received_ts, quarantined_ts, reason, record "
            "FROM quarantine ORDER BY quarantined_ts, event_id").fetchall()
        return [QuarantineRow(*r) for r in rows]

    def load_events(
        self,
        since: int | pd.Timestamp | None = None,
        until: int | pd.Timestamp | None = None,
        account: str | None = None,
        key: str | None = None,
        kinds: Sequence[Kind | str] | None = None,
    ) -> pd.DataFrame:
        where: list[str] = []
        args: list[Any] = []
        s, u = to_ms(since), to_ms(until)
        if s is not None:
            where.append("ts >= ?")
            args.append(s)
        if u is not None:
            where.append("ts < ?")
            args.append(u)
        if account is not None:
            where.append("account = ?")
            args.append(account)
        if key is not None:
            where.append("key = ?")
            args.append(key)
        if kinds:
            ks = [Kind(k).value for k in kinds]
            where.append(f"kind IN ({', '.join('?' for _ in ks)})")
            args.extend(ks)
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, event_id"
        rows = self._conn().execute(sql, args).fetchall()
        return events_frame(rows)

    def count_events(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def event_ids(self, prefix: str = "") -> set[str]:
        cur = self._conn().execute(
            "SELECT event_id FROM events WHERE event_id >= ? AND event_id < ?",
            (prefix, prefix + "\U0010ffff"),
        )
        return {r[0] for r in cur}

    # -- findings --------------------------------------------------------------------------
    def insert_findings(self, findings: Iterable[Finding]) -> int:
        rows = [
            (f.finding_id, f.ts, f.rule_id, f.account, f.key, f.severity.value, f.state,
             f.model_dump_json())
            for f in findings
        ]
        if not rows:
            return 0
        conn = self._conn()
        with Tx(conn):
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO findings VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            return conn.total_changes - before

    def load_findings(self, since: int | None = None, until: int | None = None) -> list[Finding]:
        rows = self._conn().execute(
            "SELECT body FROM findings WHERE ts >= ? AND ts < ? ORDER BY ts, finding_id",
            (since or 0, until or 2**62),
        ).fetchall()
        return [Finding.model_validate_json(r[0]) for r in rows]

    # -- silences --------------------------------------------------------------------------
    def add_silence(
        self, rule_id: str | None, account: str | None, key: str | None, created_ts: int,
        expires_ts: int, reason: str, *, ip: str | None = None,
    ) -> int:
        if expires_ts <= created_ts:
            raise ValueError("a silence must end after it starts")
        if not reason.strip():
            raise ValueError("a silence needs a reason, so the next person knows why")
        conn = self._conn()
        with Tx(conn):
            cur = conn.execute(
                "INSERT INTO silences (rule_id, account, key, created_ts, expires_ts, reason, "
                "ip) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (rule_id, account, key, created_ts, expires_ts, reason, ip),
            )
            return int(cur.lastrowid or 0)

    def silences(self, now_ms: int | None = None) -> list[Silence]:
        sql = ("SELECT silence_id, rule_id, account, key, created_ts, expires_ts, reason, ip "
               "FROM silences")
        args: tuple[Any, ...] = ()
        if now_ms is not None:
            sql += " WHERE created_ts <= ? AND expires_ts > ?"
            args = (now_ms, now_ms)
        return [Silence(*r) for r in self._conn().execute(sql + " ORDER BY silence_id", args)]

    def expire_silence(self, silence_id: int, now_ms: int) -> bool:
        conn = self._conn()
        with Tx(conn):
            cur = conn.execute(
                "UPDATE silences SET expires_ts = ? WHERE silence_id = ? AND expires_ts > ?",
                (now_ms, silence_id, now_ms),
            )
            return cur.rowcount > 0

    # -- cursors and snapshots -------------------------------------------------------------
    def get_cursor(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM cursors WHERE name = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_cursor(self, name: str, value: str) -> None:
        conn = self._conn()
        with Tx(conn):
            set_cursors(conn, {name: value}, int(time.time() * 1000))

    def save_key_snapshot(self, account: str, key: str, ts: int, rec: KeyRestrictions) -> None:
        conn = self._conn()
        with Tx(conn):
            conn.execute(
                "INSERT OR REPLACE INTO key_snapshots VALUES (?, ?, ?, ?)",
                (account, key, ts, json.dumps(rec.to_dict(), sort_keys=True)),
            )

    def last_key_snapshot(self, account: str, key: str
                          ) -> tuple[int, KeyRestrictions | None] | None:
        row = self._conn().execute(
            "SELECT ts, snapshot FROM key_snapshots WHERE account = ? AND key = ? "
            "ORDER BY ts DESC LIMIT 1",
            (account, key),
        ).fetchone()
        return None if row is None else (int(row[0]), KeyRestrictions.from_raw(row[1]))

    # -- learned detector state ------------------------------------------------------------
    def save_baselines(self, rows: Sequence[BaselineRow], saved_ms: int) -> None:
        conn = self._conn()
        with Tx(conn):
            conn.execute("DELETE FROM baselines")
            conn.executemany(
                "INSERT OR REPLACE INTO baselines VALUES (?, ?, ?, ?, ?, ?)",
                [(r.rule_id, r.account, r.key, r.part, json.dumps(list(r.values)), saved_ms)
                 for r in rows],
            )

    def load_baselines(self) -> list[BaselineRow]:
        rows = self._conn().execute(
            "SELECT rule_id, account, key, part, vals FROM baselines").fetchall()
        return [BaselineRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]),
                            tuple(float(v) for v in json.loads(r[4]))) for r in rows]


def private_file(path: str) -> None:
    """Create the database file 0600 (or tighten an existing one) before SQLite opens it.

    The store holds who called what from where; nobody else on the host needs to read it.
    SQLite gives the -wal and -shm files it creates the database file's permissions, so the
    one file decides for all three (tightened too if an older Keywatch left them 0644).
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            if os.stat(path + suffix).st_mode & 0o077:
                os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


def open_store(path: str | Path) -> Store:
    """The store named by a config path (`*.db` / `sqlite:///...` today)."""
    p = str(path)
    if p.startswith("sqlite:///"):
        p = p[len("sqlite:///"):]
    return SQLiteStore(p)
