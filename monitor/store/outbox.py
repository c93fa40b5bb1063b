"""The alert outbox's tables: alerts, their per-channel deliveries, and the manager's state.

Records in and out are `store/alerts.py`'s typed ones, in real columns: an alert's lines in
`alert_items` (schema v6), an alert state on its row (v5), the Finding it shows as its JSON
text in one column and its incident ids and an alert's fingerprints as JSON arrays.

A mixin for `SQLiteStore` (which supplies `_conn`), kept apart because it is its own concern:
an alert and its pending deliveries are written atomically before any send.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
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
                f"INSERT OR IGNORE INTO alerts ({_ALERT_COLS}, payload) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '{}')",
                (alert_id, fingerprint, created_ts, severity, account, key, kind, title, body,
                 payload.markdown, json.dumps(list(payload.fingerprints)), payload.day),
            )
            if cur.rowcount == 0:
                return False
            conn.executemany(
                f"INSERT INTO alert_items (alert_id, pos, {_ITEM_COLS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(alert_id, pos, i.fingerprint, i.kind, i.rule_id, i.finding_id, i.key, i.signal,
                  i.count, i.incident, i.incidents) for pos, i in enumerate(payload.items)],
            )
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
        alerts = self._alerts("a.alert_id = ?", (alert_id,))
        return alerts[0] if alerts else None

    def load_alerts(self, since: int | None = None) -> list[StoredAlert]:
        return self._alerts("a.created_ts >= ?", (since or 0,))

    def _alerts(self, where: str, args: tuple[str | int, ...]) -> list[StoredAlert]:
        """One statement (one snapshot): each alert row with its lines joined, in order."""
        cols = ", ".join(f"a.{c}" for c in _ALERT_COLS.split(", "))
        items = ", ".join(f"i.{c}" for c in _ITEM_COLS.split(", "))
        rows = self._conn().execute(
            f"SELECT {cols}, i.pos, {items} FROM alerts AS a LEFT JOIN alert_items AS i "
            f"ON i.alert_id = a.alert_id WHERE {where} ORDER BY a.created_ts, a.alert_id, i.pos",
            args,
        ).fetchall()
        n = len(_ALERT_COLS.split(", "))
        heads: dict[str, Sequence[Any]] = {}
        lines: dict[str, list[AlertLine]] = {}
        for r in rows:
            heads.setdefault(r[0], r[:n])
            got = lines.setdefault(r[0], [])
            if r[n] is not None:
                got.append(AlertLine(*r[n + 1:]))
        return [_alert(head, lines[alert_id]) for alert_id, head in heads.items()]

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
    "alert_id, fingerprint, created_ts, severity, account, key, kind, title, body, markdown, "
    "fingerprints, day"
)
_ITEM_COLS = "fingerprint, kind, rule_id, finding_id, key, signal, count, incident, incidents"
_STATE_COLS = (
    "fingerprint, account, state, updated_ts, rule_id, key, kind, pending_since, first_seen, "
    "last_seen, count, finding, incidents, n_incidents, last_notified_ts, last_alert_id"
)


def _alert(row: Sequence[Any], lines: list[AlertLine]) -> StoredAlert:
    (alert_id, fp, created_ts, severity, account, key, kind, title, body, markdown,
     fingerprints, day) = row
    return StoredAlert(alert_id, fp, created_ts, severity, account, key, kind, title, body,
                       AlertPayload(markdown=markdown, fingerprints=tuple(json.loads(fingerprints)),
                                    items=tuple(lines), day=day))


def _state(row: Sequence[Any]) -> AlertState:
    (fp, account, state, _updated, rule_id, key, kind, since, first, last, count, finding,
     incidents, n_incidents, notified, alert_id) = row
    return AlertState(
        fingerprint=fp, account=account, rule_id=rule_id, key=key, state=state, kind=kind,
        pending_since=since, first_seen=first, last_seen=last, count=count,
        finding=Finding.model_validate_json(finding), incidents=tuple(json.loads(incidents)),
        n_incidents=n_incidents, last_notified_ts=notified, last_alert_id=alert_id,
    )
