"""What the rest of Keywatch may ask of persistent storage, and the records it hands back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from monitor.core.events import Event, Kind
from monitor.core.findings import Finding
from monitor.core.keyrestrictions import KeyRestrictions
from monitor.store.alerts import AlertPayload, AlertState, StateName, StoredAlert


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



@dataclass(frozen=True)
class Quarantined:
    """One event the store could not hold (e.g. an integer SQLite refuses), and why."""

    event: Event
    reason: str


@dataclass(frozen=True)
class QuarantineRow:
    """A quarantined row as stored: `record` is the event's fields as JSON text."""

    event_id: str
    source: str
    kind: str
    received_ts: int
    quarantined_ts: int
    reason: str
    record: str


@dataclass(frozen=True)
class WalState:
    """After a checkpoint: the WAL file's size, and whether a reader kept frames in it."""

    wal_bytes: int = 0
    busy: bool = False  # a reader's snapshot held back some frames (they stay in the WAL)
    truncated: bool = False


@dataclass(frozen=True)
class BaselineRow:
    """One part of a detector's learned state for one key (`rate_memory`: levels, peaks),
    kept so that a restart does not forget a week of learning."""

    rule_id: str
    account: str
    key: str
    part: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class WriteResult:
    """What one `write_events` transaction did: the new events (in input order) and the
    refused ones, quarantined in the same transaction with the cursors that cover them."""

    new: list[Event] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)


class Store(ABC):
    """Everything the rest of Keywatch may ask of persistent storage."""

    # events
    @abstractmethod
    def insert_events(self, events: Iterable[Event]) -> int:
        """Insert a batch in one transaction; return how many were new."""

    def insert_new_events(self, events: Sequence[Event]) -> list[Event]:
        """Like `insert_events`, but return the events that were new, in input order.

        Detection is fed from this, so an event seen twice (stream and backfill) is counted once.
        A row the store refuses is quarantined (see `write_events`), not raised.
        """
        return self.write_events(events).new

    @abstractmethod
    def write_events(self, events: Sequence[Event],
                     cursors: Mapping[str, str] | None = None) -> WriteResult:
        """One transaction: store the new events, quarantine the rows the store refuses, and
        save the cursors that cover them, so a cursor never gets ahead of what it covers.

        Raises only when the store itself rejects the write (disk full, read-only, locked);
        then nothing of the batch, and none of its cursors, is saved.
        """

    @abstractmethod
    def quarantined(self) -> list[QuarantineRow]:
        """Every quarantined row, oldest first."""

    def checkpoint(self) -> WalState:
        """Fold the write-ahead log back into the database where possible (a store without
        one has nothing to do)."""
        return WalState()

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
        key: str | None, kind: str, title: str, body: str, payload: AlertPayload,
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
    def load_alert(self, alert_id: str) -> StoredAlert | None: ...

    @abstractmethod
    def load_alerts(self, since: int | None = None) -> list[StoredAlert]: ...

    @abstractmethod
    def last_alert_ts(self, fingerprint: str) -> int | None: ...

    @abstractmethod
    def load_alert_states(
        self, state: StateName | None = None, fingerprints: Sequence[str] | None = None
    ) -> list[AlertState]:
        """The alert manager's per-fingerprint records, optionally by state or fingerprint."""

    @abstractmethod
    def save_alert_states(self, states: Sequence[AlertState], now_ms: int) -> None:
        """Upsert records (by fingerprint) in one transaction."""

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
    def save_key_snapshot(self, account: str, key: str, ts: int, rec: KeyRestrictions) -> None:
        """Keep a key's restrictions as polled (in the answer's own shape)."""

    @abstractmethod
    def last_key_snapshot(self, account: str, key: str
                          ) -> tuple[int, KeyRestrictions | None] | None:
        """The newest snapshot's time and restrictions (None: the stored one is unreadable)."""

    # learned detector state
    @abstractmethod
    def save_baselines(self, rows: Sequence[BaselineRow], saved_ms: int) -> None:
        """Replace every stored baseline row with `rows`, in one transaction."""

    @abstractmethod
    def load_baselines(self) -> list[BaselineRow]: ...

    @abstractmethod
    def close(self) -> None: ...

