"""The store's schema: each migration takes version i to i+1, applied in order on open.

A new column or table is a new entry; old databases are brought forward, never rebuilt.
"""

from __future__ import annotations

from monitor.core.events import EVENT_COLUMNS

SCHEMA_VERSION = 7

MIGRATIONS: list[str] = [
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
    # v4: rows the store refused (an unstorable value), kept with their reason instead of
    # wedging the batch they came in; `keywatch_events_quarantined` counts them by source.
    """
    CREATE TABLE quarantine (
        event_id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        received_ts INTEGER NOT NULL,
        quarantined_ts INTEGER NOT NULL,
        reason TEXT NOT NULL,
        record TEXT NOT NULL
    );
    """,
    # v5: the alert manager's state in typed columns instead of one JSON body per fingerprint
    # (issue 16); each v4 body is converted in place (a key older bodies lack gets its default).
    """
    CREATE TABLE alert_state_v5 (
        fingerprint TEXT PRIMARY KEY,
        account TEXT NOT NULL,
        state TEXT NOT NULL,
        updated_ts INTEGER NOT NULL,
        rule_id TEXT NOT NULL,
        key TEXT,
        kind TEXT NOT NULL,
        pending_since INTEGER NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen INTEGER NOT NULL,
        count INTEGER NOT NULL,
        finding TEXT NOT NULL,
        incidents TEXT NOT NULL,
        n_incidents INTEGER NOT NULL,
        last_notified_ts INTEGER,
        last_alert_id TEXT
    );
    INSERT INTO alert_state_v5 SELECT
        fingerprint, account, state, updated_ts,
        json_extract(body, '$.rule_id'), json_extract(body, '$.key'),
        json_extract(body, '$.kind'), json_extract(body, '$.pending_since'),
        json_extract(body, '$.first_seen'), json_extract(body, '$.last_seen'),
        COALESCE(json_extract(body, '$.count'), 1), json_extract(body, '$.finding'),
        COALESCE(json_extract(body, '$.incidents'), '[]'),
        COALESCE(json_extract(body, '$.n_incidents'), 1),
        json_extract(body, '$.last_notified_ts'), json_extract(body, '$.last_alert_id')
    FROM alert_state;
    DROP TABLE alert_state;
    ALTER TABLE alert_state_v5 RENAME TO alert_state;
    CREATE INDEX alert_state_state ON alert_state(state);
    """,
    # v6: what an alert holds beyond its text in columns too (issue 16): its Markdown body,
    # fingerprints and digest day on the row, one `alert_items` row per fingerprint's line, each
    # converted from the v4/v5 payload JSON (a key older payloads lack gets its default). The
    # `payload` column stays (SQLite cannot drop a column everywhere) and is no longer read.
    """
    ALTER TABLE alerts ADD COLUMN markdown TEXT;
    ALTER TABLE alerts ADD COLUMN fingerprints TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE alerts ADD COLUMN day TEXT;
    UPDATE alerts SET
        markdown = json_extract(payload, '$.markdown'),
        fingerprints = COALESCE(json_extract(payload, '$.fingerprints'), '[]'),
        day = json_extract(payload, '$.day');
    CREATE TABLE alert_items (
        alert_id TEXT NOT NULL REFERENCES alerts(alert_id),
        pos INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        kind TEXT NOT NULL,
        rule_id TEXT NOT NULL,
        finding_id TEXT NOT NULL,
        key TEXT,
        signal TEXT NOT NULL,
        count INTEGER NOT NULL,
        incident TEXT,
        incidents INTEGER NOT NULL,
        PRIMARY KEY (alert_id, pos)
    );
    CREATE INDEX alert_items_finding ON alert_items(finding_id);
    INSERT INTO alert_items SELECT
        a.alert_id, CAST(j.key AS INTEGER),
        json_extract(j.value, '$.fingerprint'), json_extract(j.value, '$.kind'),
        json_extract(j.value, '$.rule_id'), json_extract(j.value, '$.finding_id'),
        json_extract(j.value, '$.key'), json_extract(j.value, '$.signal'),
        COALESCE(json_extract(j.value, '$.count'), 1), json_extract(j.value, '$.incident'),
        COALESCE(json_extract(j.value, '$.incidents'), 1)
    FROM alerts AS a, json_each(a.payload, '$.items') AS j;
    UPDATE alerts SET payload = '{}';
    """,
    # v7: what the detectors with memory learned (issue 17), one row per rule, key and part,
    # its values a JSON array; the service replaces them every few minutes and at stop.
    """
    CREATE TABLE baselines (
        rule_id TEXT NOT NULL,
        account TEXT NOT NULL,
        key TEXT NOT NULL,
        part TEXT NOT NULL,
        vals TEXT NOT NULL,
        saved_ts INTEGER NOT NULL,
        PRIMARY KEY (rule_id, account, key, part)
    ) WITHOUT ROWID;
    """,
]

INSERT_EVENT = (
    f"INSERT OR IGNORE INTO events ({', '.join(EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})"
)


def split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
