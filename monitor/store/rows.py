"""Writing events: one transaction per batch, a refused row quarantined instead of the batch lost.

A batch is first inserted whole (`executemany`, the fast path). If a row cannot be bound or
stored (an integer out of SQLite's range, a constraint), the batch is retried row by row inside
the same transaction, each row under its own SAVEPOINT: the good rows are stored, the refused
ones go to the `quarantine` table with the reason, and the cursors that cover the batch are
saved last, in that transaction too. Failures of the store itself (disk full, read-only,
locked, I/O) are not a row's fault: they propagate and the whole transaction rolls back.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.core.events import EVENT_COLUMNS, Event
from monitor.store.base import Quarantined, WriteResult
from monitor.store.schema import INSERT_EVENT

# What a row can be refused for; anything else (sqlite3.OperationalError and other
# DatabaseErrors: disk full, locked, read-only, corrupt) is the store failing, not the row.
ROW_ERRORS: tuple[type[Exception], ...] = (
    OverflowError, TypeError, ValueError, KeyError, AttributeError,
    sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError,
    sqlite3.DataError,
)


def event_row(ev: Event) -> tuple[Any, ...]:
    d = ev.__dict__
    return tuple(
        d[c].value if c in ("source", "kind") else d[c] for c in EVENT_COLUMNS
    )


class Tx:
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


def set_cursors(conn: sqlite3.Connection, cursors: Mapping[str, str], now_ms: int) -> None:
    conn.executemany(
        "INSERT INTO cursors VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE SET "
        "value = excluded.value, updated_ts = excluded.updated_ts",
        [(name, value, now_ms) for name, value in cursors.items()],
    )


def write_events(conn: sqlite3.Connection, events: Sequence[Event],
                 cursors: Mapping[str, str], now_ms: int) -> WriteResult:
    """See the module docstring; `conn` must be inside a transaction (`Tx`)."""
    new = _unseen(conn, events)
    quarantined: list[Quarantined] = []
    if new:
        conn.execute("SAVEPOINT batch")
        try:
            conn.executemany(INSERT_EVENT, [event_row(e) for e in new])
            conn.execute("RELEASE batch")
        except ROW_ERRORS:
            conn.execute("ROLLBACK TO batch")
            conn.execute("RELEASE batch")
            new, quarantined = _row_by_row(conn, new, now_ms)
    if cursors:
        set_cursors(conn, cursors, now_ms)
    return WriteResult(new=new, quarantined=quarantined)


def _unseen(conn: sqlite3.Connection, events: Sequence[Event]) -> list[Event]:
    """The events whose id the store does not hold yet (nor an earlier one in the batch)."""
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
    out: list[Event] = []
    for e in events:
        if e.event_id not in seen:
            seen.add(e.event_id)
            out.append(e)
    return out


def _row_by_row(conn: sqlite3.Connection, events: list[Event], now_ms: int
                ) -> tuple[list[Event], list[Quarantined]]:
    stored: list[Event] = []
    refused: list[Quarantined] = []
    for ev in events:
        conn.execute("SAVEPOINT row")
        try:
            conn.execute(INSERT_EVENT, event_row(ev))
            stored.append(ev)
        except ROW_ERRORS as exc:
            conn.execute("ROLLBACK TO row")
            q = Quarantined(ev, f"{type(exc).__name__}: {exc}"[:300])
            if _quarantine(conn, q, now_ms):  # a re-read of a refused row is a duplicate
                refused.append(q)
        conn.execute("RELEASE row")
    return stored, refused


def _quarantine(conn: sqlite3.Connection, q: Quarantined, now_ms: int) -> bool:
    """The refused event as JSON text (numbers of any size fit in text), once per event id."""
    d = q.event.__dict__
    record = json.dumps({c: d.get(c) for c in EVENT_COLUMNS}, default=str, sort_keys=True)
    cur = conn.execute(
        "INSERT OR IGNORE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)",
        (str(d.get("event_id")), str(getattr(d.get("source"), "value", d.get("source"))),
         str(getattr(d.get("kind"), "value", d.get("kind"))), _int_or(d.get("received_ts"), now_ms),
         now_ms, q.reason, record),
    )
    return cur.rowcount > 0


def _int_or(v: object, default: int) -> int:
    return v if isinstance(v, int) and -(2**63) <= v < 2**63 else default
