"""The alert outbox's tables: alerts, their per-channel deliveries, and the manager's state.

A mixin for `SQLiteStore` (which supplies `_conn`), kept apart because it is its own concern:
an alert and its pending deliveries are written atomically before any send.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from monitor.store.base import Delivery
from monitor.store.rows import Tx


class OutboxTables:
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def enqueue_alert(
        self, alert_id: str, fingerprint: str, created_ts: int, severity: str, account: str,
        key: str | None, kind: str, title: str, body: str, payload: dict[str, Any],
        channels: Sequence[str],
    ) -> bool:
        conn = self._conn()
        with Tx(conn):
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
        with Tx(conn):
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
        with Tx(conn):
            conn.executemany(
                "INSERT INTO alert_state VALUES (?, ?, ?, ?, ?) ON CONFLICT(fingerprint) DO "
                "UPDATE SET account = excluded.account, state = excluded.state, "
                "updated_ts = excluded.updated_ts, body = excluded.body",
                rows,
            )
