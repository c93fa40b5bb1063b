"""Where every event, finding, alert and cursor lives: SQLite by default, one interface.

Callers only see `Store` (`base.py`); `SQLiteStore` (`sqlite.py`) is the embedded default. A
PostgreSQL store would be a second implementation of the same methods (idempotent inserts
become `ON CONFLICT DO NOTHING`), so no caller changes when a fleet outgrows one machine.
The package holds: `base` (the interface and its records), `schema` (migrations), `rows`
(batched event writes, quarantine, cursors in the same transaction), `alerts` (the typed alert
and alert-state records), `outbox` (alert tables),
`frames` (the typed DataFrame), `sqlite` (the store itself).
"""

from monitor.store.alerts import AlertLine, AlertPayload, AlertState, StoredAlert
from monitor.store.base import (
    ACCOUNT_WIDE,
    Delivery,
    Quarantined,
    QuarantineRow,
    Silence,
    Store,
    WalState,
    WriteResult,
)
from monitor.store.frames import empty_events_frame, events_frame, events_from_frame
from monitor.store.schema import SCHEMA_VERSION
from monitor.store.sqlite import SQLiteStore, open_store

__all__ = [
    "ACCOUNT_WIDE", "SCHEMA_VERSION", "AlertLine", "AlertPayload", "AlertState", "StoredAlert",
    "Delivery", "QuarantineRow", "Quarantined",
    "SQLiteStore", "Silence", "Store", "WalState", "WriteResult", "empty_events_frame",
    "events_frame", "events_from_frame", "open_store",
]
