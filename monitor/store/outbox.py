"""The alert outbox's tables: alerts, their per-channel deliveries, and the manager's state.

Records in and out are `store/alerts.py`'s typed ones; an alert state lives in real columns
(schema v5), the Finding it shows as its JSON text in one of them.

A mixin for `SQLiteStore` (which supplies `_conn`), kept apart because it is its own concern:
an alert and its pending deliveries are written atomically before any send.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from monitor.core.findings import Finding
from monitor.store.alerts import AlertLine, AlertPayload, AlertState, StateName, StoredAlert
from monitor.store.base import Delivery
from monitor.store.rows import Tx


class OutboxTables:
    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError

    def enqueue_alert(
        self, alert_id: str, fingerprint: str, created_ts: int, severity: str, account: str,
        key: str | None, kind: str, title: str, body: str, payload: AlertPayload,
        channels: Sequence[str],
    ) -> bool:
        conn = self._conn()
        with Tx(conn):
            cur = conn.execute(
                "INSERT OR IGNORE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (alert_id, fingerprint, created_ts, severity, account, key, kind, title, body,
                 payload_json(payload)),
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

    def load_alert(self, alert_id: str) -> StoredAlert | None:
        row = self._conn().execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE alert_id = ?", (alert_id,)
        ).fetchone()
        return _alert(row) if row else None

    def load_alerts(self, since: int | None = None) -> list[StoredAlert]:
        rows = self._conn().execute(
            f"SELECT {_ALERT_COLS} FROM alerts WHERE created_ts >= ? "
            "ORDER BY created_ts, alert_id",
            (since or 0,),
        ).fetchall()
        return [_alert(r) for r in rows]

    def last_alert_ts(self, fingerprint: str) -> int | None:
        row = self._conn().execute(
            "SELECT MAX(created_ts) FROM alerts WHERE fingerprint = ?", (fingerprint,)
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def load_alert_states(
        self, state: StateName | None = None, fingerprints: Sequence[str] | None = None
    ) -> list[AlertState]:
        where: list[str] = []
        args: list[str] = []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if fingerprints is not None:
            fps = list(fingerprints)
            if not fps:
                return []
            where.append(f"fingerprint IN ({', '.join('?' for _ in fps)})")
            args.extend(fps)
        sql = f"SELECT {_STATE_COLS} FROM alert_state"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._conn().execute(sql + " ORDER BY fingerprint", args).fetchall()
        return [_state(r) for r in rows]

    def save_alert_states(self, states: Sequence[AlertState], now_ms: int) -> None:
        rows = [
            (s.fingerprint, s.account, s.state, now_ms, s.rule_id, s.key, s.kind,
             s.pending_since, s.first_seen, s.last_seen, s.count, s.finding.model_dump_json(),
             json.dumps(list(s.incidents)), s.n_incidents, s.last_notified_ts, s.last_alert_id)
            for s in states
        ]
        if not rows:
            return
        cols = _STATE_COLS.split(", ")
        conn = self._conn()
        with Tx(conn):
            conn.executemany(
                f"INSERT INTO alert_state ({_STATE_COLS}) VALUES ({', '.join('?' for _ in cols)})"
                " ON CONFLICT(fingerprint) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in cols[1:]),
                rows,
            )


_ALERT_COLS = (
    "alert_id, fingerprint, created_ts, severity, account, key, kind, title, body, payload"
)
_STATE_COLS = (
    "fingerprint, account, state, updated_ts, rule_id, key, kind, pending_since, first_seen, "
    "last_seen, count, finding, incidents, n_incidents, last_notified_ts, last_alert_id"
)


def payload_json(p: AlertPayload) -> str:
    """The payload column's text (the same keys the outbox has always held)."""
    d: dict[str, object] = {"markdown": p.markdown, "fingerprints": list(p.fingerprints)}
    if p.items:
        d["items"] = [asdict(i) for i in p.items]
    if p.day is not None:
        d["day"] = p.day
    return json.dumps(d, sort_keys=True)


def _payload(text: str) -> AlertPayload:
    d = json.loads(text)
    return AlertPayload(
        markdown=d.get("markdown"), fingerprints=tuple(d.get("fingerprints") or ()),
        items=tuple(AlertLine(**i) for i in d.get("items") or ()), day=d.get("day"),
    )


def _alert(row: Sequence[Any]) -> StoredAlert:
    alert_id, fp, created_ts, severity, account, key, kind, title, body, payload = row
    return StoredAlert(alert_id, fp, created_ts, severity, account, key, kind, title, body,
                       _payload(payload))


def _state(row: Sequence[Any]) -> AlertState:
    (fp, account, state, _updated, rule_id, key, kind, since, first, last, count, finding,
     incidents, n_incidents, notified, alert_id) = row
    return AlertState(
        fingerprint=fp, account=account, rule_id=rule_id, key=key, state=state, kind=kind,
        pending_since=since, first_seen=first, last_seen=last, count=count,
        finding=Finding.model_validate_json(finding), incidents=tuple(json.loads(incidents)),
        n_incidents=n_incidents, last_notified_ts=notified, last_alert_id=alert_id,
    )
