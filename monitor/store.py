"""Where every event, finding, alert and cursor lives: SQLite by default, one interface.

Callers only see `Store`; `SQLiteStore` is the embedded default. A PostgreSQL store would be a
second implementation of the same methods (idempotent inserts become `ON CONFLICT DO NOTHING`),
so no caller changes when a fleet outgrows one machine.

Durability rules that everything else relies on:
- inserts are batched in one transaction; a batch is all-or-nothing even if the process is
  killed mid-write (SQLite's journal in WAL mode);
- re-inserting an `event_id` (or a finding, or an alert) is a no-op, so backfills and restarts
  never duplicate;
- readers on other connections see a consistent snapshot while a writer writes (WAL).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.events import (
    EVENT_COLUMNS,
    FLOAT_COLUMNS,
    INT_COLUMNS,
    TIME_COLUMNS,
    Event,
    Kind,
    Source,
)
from monitor.findings import Finding

SCHEMA_VERSION = 3

# Each entry migrates from version i to i+1. A new column or table is a new entry; old
# databases are brought forward in order on open, never rebuilt.
_MIGRATIONS: list[str] = [
    """
    CREATE TABLE events (
        event_id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        received_ts INTEGER NOT NULL,
        account TEXT NOT NULL,
        key TEXT,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        ip TEXT, method TEXT, endpoint TEXT, status INTEGER, code INTEGER,
        weight_1m INTEGER, orders_10s INTEGER, orders_1d INTEGER, latency_ms REAL,
        symbol TEXT, side TEXT, order_type TEXT, qty REAL, price REAL, notional REAL,
        order_id INTEGER, client_order_id TEXT, exec_type TEXT, order_status TEXT,
        reject_reason TEXT, asset TEXT, free REAL, locked REAL,
        raw TEXT
    ) WITHOUT ROWID;
    CREATE INDEX events_ts ON events(ts);
    CREATE INDEX events_account_key_ts ON events(account, key, ts);

    CREATE TABLE findings (
        finding_id TEXT PRIMARY KEY,
        ts INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        account TEXT NOT NULL,
        key TEXT,
        severity TEXT NOT NULL,
        state TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX findings_ts ON findings(ts);

    CREATE TABLE alerts (
        alert_id TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        severity TEXT NOT NULL,
        account TEXT NOT NULL,
        key TEXT,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        body TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX alerts_fp ON alerts(fingerprint, created_ts);

    CREATE TABLE deliveries (
        alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_try_ts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        sent_ts INTEGER,
        PRIMARY KEY (alert_id, channel)
    );
    CREATE INDEX deliveries_state ON deliveries(state, next_try_ts);

    CREATE TABLE silences (
        silence_id INTEGER PRIMARY KEY AUTOINCREMENT,
        rule_id TEXT,
        account TEXT,
        key TEXT,
        created_ts INTEGER NOT NULL,
        expires_ts INTEGER NOT NULL,
        reason TEXT NOT NULL
    );

    CREATE TABLE cursors (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_ts INTEGER NOT NULL
    );

    CREATE TABLE key_snapshots (
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        ts INTEGER NOT NULL,
        snapshot TEXT NOT NULL,
        PRIMARY KEY (account, key, ts)
    );
    """,
    # v2: the alert manager's per-fingerprint state (pending/firing/resolved, last notice), so
    # dedupe, cooldown, resolved notices and findings waiting in a group survive a restart.
    """
    CREATE TABLE alert_state (
        fingerprint TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_ts INTEGER NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX alert_state_state ON alert_state(state);
    """,
    # v3: a silence can be scoped to one caller address (`keywatch silence add --ip`).
    """
    ALTER TABLE silences ADD COLUMN ip TEXT;
    """,
]

_INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)


@dataclass(frozen=True)
class Delivery:
    """One alert waiting for (or done with) one channel."""

    alert_id: str
    channel: str
    state: str  # pending | sent | failed
    attempts: int
    next_try_ts: int
    last_error: str | None
    sent_ts: int | None


ACCOUNT_WIDE = ""  # a silence's `key` for findings about no key (the account as a whole)


@dataclass(frozen=True)
class Silence:
    """None in a field matches anything; `key == ACCOUNT_WIDE` matches only key-less findings."""

    silence_id: int
    rule_id: str | None
    account: str | None
    key: str | None
    created_ts: int
    expires_ts: int
    reason: str
    ip: str | None = None

    def matches(self, rule_id: str, account: str, key: str | None, now_ms: int,
                ip: str | None = None) -> bool:
        return (
            self.created_ts <= now_ms < self.expires_ts
            and self.rule_id in (None, rule_id)
            and self.account in (None, account)
            and self.key in (None, key or ACCOUNT_WIDE)
            and self.ip in (None, ip)
        )

    def matches_finding(self, f: Finding, now_ms: int) -> bool:
        """The finding's caller address is its grouping IP, else the IP in its evidence."""
        ip = f.group.get("ip") or f.evidence.get("ip")
        return self.matches(f.rule_id, f.account, f.key, now_ms,
                            None if ip is None else str(ip))


class Store(ABC):
    """Everything the rest of Keywatch may ask of persistent storage."""

    # events
    @abstractmethod
    def insert_events(self, events: Iterable[Event]) -> int:
        """Insert a batch in one transaction; return how many were new."""

    @abstractmethod
    def insert_new_events(self, events: Sequence[Event]) -> list[Event]:
        """Like `insert_events`, but return the events that were new, in input order.

        Detection is fed from this, so an event seen twice (stream and backfill) is counted once.
        """

    @abstractmethod
    def load_events(
        self,
        since: int | pd.Timestamp | None = None,
        until: int | pd.Timestamp | None = None,
        account: str | None = None,
        key: str | None = None,
        kinds: Sequence[Kind | str] | None = None,
    ) -> pd.DataFrame:
        """Events with `since <= ts < until`, ordered by time, as a typed DataFrame."""

    @abstractmethod
    def count_events(self) -> int: ...

    @abstractmethod
    def event_ids(self, prefix: str = "") -> set[str]: ...

    # findings
    @abstractmethod
    def insert_findings(self, findings: Iterable[Finding]) -> int: ...

    @abstractmethod
    def load_findings(self, since: int | None = None, until: int | None = None) -> list[Finding]:
        ...

    # alert outbox
    @abstractmethod
    def enqueue_alert(
        self, alert_id: str, fingerprint: str, created_ts: int, severity: str, account: str,
        key: str | None, kind: str, title: str, body: str, payload: dict[str, Any],
        channels: Sequence[str],
    ) -> bool:
        """Write the alert and one pending delivery per channel atomically, before any send."""

    @abstractmethod
    def due_deliveries(self, now_ms: int, limit: int = 100) -> list[Delivery]: ...

    @abstractmethod
    def record_attempt(
        self, alert_id: str, channel: str, ok: bool, now_ms: int, next_try_ts: int = 0,
        error: str | None = None, give_up: bool = False,
    ) -> None: ...

    @abstractmethod
    def deliveries(self, alert_id: str | None = None) -> list[Delivery]: ...

    @abstractmethod
    def load_alert(self, alert_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def load_alerts(self, since: int | None = None) -> list[dict[str, Any]]: ...

    @abstractmethod
    def last_alert_ts(self, fingerprint: str) -> int | None: ...

    @abstractmethod
    def load_alert_states(
        self, state: str | None = None, fingerprints: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The alert manager's per-fingerprint records, optionally by state or fingerprint."""

    @abstractmethod
    def save_alert_states(self, states: Sequence[dict[str, Any]], now_ms: int) -> None:
        """Upsert records (each has `fingerprint`, `account`, `state`) in one transaction."""

    # silences
    @abstractmethod
    def add_silence(
        self, rule_id: str | None, account: str | None, key: str | None, created_ts: int,
        expires_ts: int, reason: str, *, ip: str | None = None,
    ) -> int: ...

    @abstractmethod
    def silences(self, now_ms: int | None = None) -> list[Silence]:
        """All silences, or only those active at `now_ms`."""

    @abstractmethod
    def expire_silence(self, silence_id: int, now_ms: int) -> bool: ...

    # cursors and key snapshots
    @abstractmethod
    def get_cursor(self, name: str) -> str | None: ...

    @abstractmethod
    def set_cursor(self, name: str, value: str) -> None: ...

    @abstractmethod
    def save_key_snapshot(self, account: str, key: str, ts: int, snapshot: dict[str, Any]) -> None:
        ...

    @abstractmethod
    def last_key_snapshot(self, account: str, key: str) -> tuple[int, dict[str, Any]] | None: ...

    @abstractmethod
    def close(self) -> None: ...


def _ms(value: int | pd.Timestamp | None) -> int | None:
    if value is None or isinstance(value, int):
        return value
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.value // 1_000_000)


def _event_row(ev: Event) -> tuple[Any, ...]:
    d = ev.__dict__
    return tuple(
        d[c].value if c in ("source", "kind") else d[c] for c in EVENT_COLUMNS
    )


def empty_events_frame() -> pd.DataFrame:
    return events_frame([])


def events_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Build the typed DataFrame every consumer reads (notebooks, features, replay)."""
    df = pd.DataFrame.from_records(list(rows), columns=list(EVENT_COLUMNS))
    for c in TIME_COLUMNS:
        df[c] = pd.to_datetime(df[c].astype("int64"), unit="ms", utc=True)
    for c in INT_COLUMNS:
        df[c] = df[c].astype("Int64")
    for c in FLOAT_COLUMNS:
        df[c] = df[c].astype("float64")
    df["source"] = pd.Categorical(df["source"], categories=[s.value for s in Source])
    df["kind"] = pd.Categorical(df["kind"], categories=[k.value for k in Kind])
    for c in EVENT_COLUMNS:
        if c not in TIME_COLUMNS + INT_COLUMNS + FLOAT_COLUMNS + ("source", "kind"):
            df[c] = df[c].astype("string")
    return df


def events_from_frame(df: pd.DataFrame) -> list[Event]:
    """The inverse of `events_frame`: rebuild validated events (for replay).

    Column by column rather than `to_dict("records")`: each column's missing-value test and
    conversion is chosen once, not per cell (a key-month of a million events: about a third
    less time; what remains is the Event validation itself).
    """
    cols = [_column_values(df[c], c) for c in EVENT_COLUMNS]
    out: list[Event] = []
    for row in zip(*cols, strict=True):
        out.append(Event(**{c: v for c, v in zip(EVENT_COLUMNS, row, strict=True)
                            if v is not _MISSING}))
    return out


_MISSING = object()


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _column_values(s: pd.Series, c: str) -> list[Any]:
    """One column as Python values for `Event`, `_MISSING` where the cell is empty."""
    vals = s.tolist()
    if c in TIME_COLUMNS:
        # ints are already epoch ms (the Event unit); timestamps are converted
        return [_MISSING if _missing(v) else int(v) if isinstance(v, int | np.integer)
                else int(pd.Timestamp(v).value // 1_000_000) for v in vals]
    if c in INT_COLUMNS:
        return [_MISSING if _missing(v) else int(v) for v in vals]
    return [_MISSING if _missing(v) else v for v in vals]


class SQLiteStore(Store):
    """The embedded store: one file, WAL mode, one connection per thread."""

    def __init__(self, path: str | Path, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = str(path)
        self._busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
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
                for stmt in _split_sql(_MIGRATIONS[version]):
                    conn.execute(stmt)
                version += 1
                conn.execute(f"PRAGMA user_version={version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _tx(self) -> _Tx:
        return _Tx(self._conn())

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
        rows = [_event_row(e) for e in events]
        if not rows:
            return 0
        conn = self._conn()
        with _Tx(conn):
            before = conn.total_changes
            conn.executemany(_INSERT_EVENT, rows)
            return conn.total_changes - before

    def insert_new_events(self, events: Sequence[Event]) -> list[Event]:
        if not events:
            return []
        conn = self._conn()
        with _Tx(conn):
            seen: set[str] = set()
            ids = [e.event_id for e in events]
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                seen.update(
                    r[0] for r in conn.execute(
                        f"SELECT event_id FROM events WHERE event_id IN "
                        f"({', '.join('?' for _ in chunk)})", chunk,
                    )
                )
            new: list[Event] = []
            for e in events:
                if e.event_id not in seen:
                    seen.add(e.event_id)
                    new.append(e)
            conn.executemany(_INSERT_EVENT, [_event_row(e) for e in new])
            return new

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
        s, u = _ms(since), _ms(until)
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
        with _Tx(conn):
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

    # -- alert outbox ----------------------------------------------------------------------
    def enqueue_alert(
        self, alert_id: str, fingerprint: str, created_ts: int, severity: str, account: str,
        key: str | None, kind: str, title: str, body: str, payload: dict[str, Any],
        channels: Sequence[str],
    ) -> bool:
        conn = self._conn()
        with _Tx(conn):
            cur = conn.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (alert_id, fingerprint, created_ts, severity, account, key, kind, title, body,
                 json.dumps(payload, default=str, sort_keys=True)),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                "INSERT OR IGNORE INTO deliveries (alert_id, channel, state, next_try_ts) "
                "VALUES (?, ?, 'pending', ?)",
                [(alert_id, ch, created_ts) for ch in channels],
            )
            return True

    def due_deliveries(self, now_ms: int, limit: int = 100) -> list[Delivery]:
        rows = self._conn().execute(
            "SELECT alert_id, channel, state, attempts, next_try_ts, last_error, sent_ts "
            "FROM deliveries WHERE state = 'pending' AND next_try_ts <= ? "
            "ORDER BY next_try_ts, alert_id LIMIT ?",
            (now_ms, limit),
        ).fetchall()
        return [Delivery(*r) for r in rows]

    def record_attempt(
        self, alert_id: str, channel: str, ok: bool, now_ms: int, next_try_ts: int = 0,
        error: str | None = None, give_up: bool = False,
    ) -> None:
        conn = self._conn()
        with _Tx(conn):
            if ok:
                conn.execute(
                    "UPDATE deliveries SET state = 'sent', attempts = attempts + 1, "
                    "sent_ts = ?, last_error = NULL WHERE alert_id = ? AND channel = ? "
                    "AND state = 'pending'",
                    (now_ms, alert_id, channel),
                )
            else:
                conn.execute(
                    "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_try_ts = ?, "
                    "last_error = ? WHERE alert_id = ? AND channel = ? AND state = 'pending'",
                    ("failed" if give_up else "pending", next_try_ts, error, alert_id, channel),
                )

    def deliveries(self, alert_id: str | None = None) -> list[Delivery]:
        sql = (
            "SELECT alert_id, channel, state, attempts, next_try_ts, last_error, sent_ts "
            "FROM deliveries"
        )
        args: tuple[Any, ...] = ()
        if alert_id is not None:
            sql += " WHERE alert_id = ?"
            args = (alert_id,)
        rows = self._conn().execute(sql + " ORDER BY alert_id, channel", args).fetchall()
        return [Delivery(*r) for r in rows]

    _ALERT_COLS = (
        "alert_id", "fingerprint", "created_ts", "severity", "account", "key", "kind", "title",
        "body", "payload",
    )

    def _alert_dict(self, row: Sequence[Any]) -> dict[str, Any]:
        d = dict(zip(self._ALERT_COLS, row, strict=True))
        d["payload"] = json.loads(d["payload"])
        return d

    def load_alert(self, alert_id: str) -> dict[str, Any] | None:
        row = self._conn().execute(
            "SELECT * FROM alerts WHERE alert_id = ?", (alert_id,)
        ).fetchone()
        return self._alert_dict(row) if row else None

    def load_alerts(self, since: int | None = None) -> list[dict[str, Any]]:
        rows = self._conn().execute(
            "SELECT * FROM alerts WHERE created_ts >= ? ORDER BY created_ts, alert_id",
            (since or 0,),
        ).fetchall()
        return [self._alert_dict(r) for r in rows]

    def last_alert_ts(self, fingerprint: str) -> int | None:
        row = self._conn().execute(
            "SELECT MAX(created_ts) FROM alerts WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def load_alert_states(
        self, state: str | None = None, fingerprints: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        where: list[str] = []
        args: list[Any] = []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if fingerprints is not None:
            fps = list(fingerprints)
            if not fps:
                return []
            where.append(f"fingerprint IN ({', '.join('?' for _ in fps)})")
            args.extend(fps)
        sql = "SELECT body FROM alert_state"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY fingerprint", args).fetchall()
        return [json.loads(r[0]) for r in rows]

    def save_alert_states(self, states: Sequence[dict[str, Any]], now_ms: int) -> None:
        rows = [
            (s["fingerprint"], s["account"], s["state"], now_ms,
             json.dumps(s, default=str, sort_keys=True))
            for s in states
        ]
        if not rows:
            return
        conn = self._conn()
        with _Tx(conn):
            conn.executemany(
                "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO "
                "UPDATE SET account = excluded.account, state = excluded.state, "
                "updated_ts = excluded.updated_ts, body = excluded.body",
                rows,
            )

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
        with _Tx(conn):
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
        with _Tx(conn):
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
        with _Tx(conn):
            conn.execute(
                "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
                "value = excluded.value, updated_ts = excluded.updated_ts",
                (name, value, int(time.time() * 1000)),
            )

    def save_key_snapshot(self, account: str, key: str, ts: int, snapshot: dict[str, Any]) -> None:
        conn = self._conn()
        with _Tx(conn):
            conn.execute(
                "INSERT OR REPLACE INTO key_snapshots VALUES (?, ?, ?, ?)",
                (account, key, ts, json.dumps(snapshot, sort_keys=True)),
            )

    def last_key_snapshot(self, account: str, key: str) -> tuple[int, dict[str, Any]] | None:
        row = self._conn().execute(
            "SELECT ts, snapshot FROM key_snapshots WHERE account = ? AND key = ? "
            "ORDER BY ts DESC LIMIT 1",
            (account, key),
        ).fetchone()
        return None if row is None else (int(row[0]), json.loads(row[1]))


class _Tx:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (the connection is autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]


def open_store(path: str | Path) -> Store:
    """The store named by a config path (`*.db` / `sqlite:///...` today)."""
    p = str(path)
    if p.startswith("sqlite:///"):
        p = p[len("sqlite:///"):]
    return SQLiteStore(p)
