"""Open an alert for investigation: the alert, its findings and the events around it.

The incident notebook calls `load_incident` once and hands the result to the table and plot
functions, so every cell reads the same frame. Events are enriched with the very functions the
detectors use (`monitor.features.enrich`), so "new IP", "free balance at the reject" and the
window features mean here exactly what they meant when the alert fired.
"""

from __future__ import annotations

import json
import sqlite3
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from monitor.config import Config
from monitor.core import resources
from monitor.core.clock import DAY_MS, MINUTE_MS
from monitor.core.findings import Finding
from monitor.core.wirefields import JsonObject
from monitor.detect.forest import ForestModel, ModelMismatch
from monitor.features import (
    ACCOUNT_ROW,
    FeatureContext,
    FeatureState,
    add_context,
    aggregate,
    enrich,
    normalise,
)
from monitor.store import SQLiteStore, Store, StoredAlert

DEFAULT_MODEL = resources.default_model()


class InvestigateError(Exception):
    """Something the person running the notebook can fix (a wrong path or alert id)."""


@dataclass(frozen=True)
class IncidentAlert:
    """The alert an incident opens, as the notebook shows it; `load_window`'s stand-in has no
    id (kind "window", severity "-")."""

    alert_id: str | None
    created_ts: int
    account: str
    key: str | None
    severity: str
    kind: str
    title: str
    finding_ids: frozenset[str] = frozenset()  # the findings its lines name

    @classmethod
    def of(cls, a: StoredAlert) -> IncidentAlert:
        return cls(a.alert_id, a.created_ts, a.account, a.key, a.severity, a.kind, a.title,
                   frozenset(i.finding_id for i in a.payload.items))


@dataclass
class Incident:
    """Everything the incident notebook shows, loaded once."""

    alert: IncidentAlert
    findings: list[Finding]
    account: str
    key: str | None  # None: the alert is account-wide (e.g. foreign orders only)
    start_ms: int  # first finding
    end_ms: int  # last finding (or the alert's creation, whichever is later)
    since_ms: int  # loaded window
    until_ms: int
    events: pd.DataFrame  # enriched events of the account in [since, until)
    windows: pd.DataFrame  # one-minute feature windows (all keys of the account)
    callers_before: pd.DataFrame  # key, ip, first_ts, last_ts, calls: callers before `since`
    flags_before: dict[str, JsonObject]  # key -> its last apiRestrictions answer before since
    ctx: FeatureContext
    config: Config | None
    forest: ForestModel | None
    notes: list[str] = field(default_factory=list)  # what could not be shown, and why

    @property
    def alert_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.alert.created_ts, unit="ms", tz="UTC")

    def key_mask(self, e: pd.DataFrame | None = None) -> pd.Series:
        """Rows of the incident's key (all keys of the account when the alert is account-wide)."""
        e = self.events if e is None else e
        if self.key is None:
            return pd.Series(True, index=e.index)
        return e["wkey"].eq(self.key)


def read_config(config: Config | str | Path | None) -> Config | None:
    """The config's structure (labels, prefixes, whitelists, use cases) without its secrets.

    A notebook never signs anything, so unlike `load_config` this does not require the API
    keys' environment variables to be set.
    """
    if config is None or isinstance(config, Config):
        return config
    path = Path(config)
    if not path.is_file():
        return None
    try:
        return Config.model_validate(tomllib.loads(path.read_text()))
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise InvestigateError(f"{path}: cannot read the config: {exc}") from None


def feature_context(cfg: Config | None) -> FeatureContext:
    return FeatureContext.from_config(cfg) if cfg else FeatureContext({}, {}, {}, {}, None)


def load_forest(cfg: Config | None, model_path: str | Path | None = None
                ) -> tuple[ForestModel | None, str | None]:
    """The model the config names (or the shipped default); (None, why) if it cannot load."""
    path = Path(model_path) if model_path else None
    if path is None and cfg is not None and Path(cfg.model_path).is_file():
        path = Path(cfg.model_path)
    path = path or DEFAULT_MODEL
    try:
        return ForestModel.load(path), None
    except ModelMismatch as exc:
        return None, str(exc)


def open_store_ro(db: str | Path | Store) -> Store:
    if isinstance(db, Store):
        return db
    path = Path(db)
    if not path.is_file():
        raise InvestigateError(f"{path}: no event store there; pass the path of the Keywatch "
                               "database (store_path in keywatch.toml)")
    return SQLiteStore(path)


def _close_if_opened(db: str | Path | Store, store: Store) -> None:
    if store is not db:
        store.close()


def _ms(v: int | str | pd.Timestamp) -> int:
    if isinstance(v, int):
        return v
    ts = pd.Timestamp(v)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


def pick_alert(store: Store, alert_id: str | None) -> IncidentAlert:
    """The named alert, or the latest alert that is not a digest."""
    if alert_id:
        alert = store.load_alert(alert_id)
        if alert is None:
            known = [a.alert_id for a in store.load_alerts()[-5:]]
            raise InvestigateError(f"alert {alert_id!r} is not in the store; latest: {known}")
        return IncidentAlert.of(alert)
    alerts = [a for a in store.load_alerts() if a.kind != "digest"]
    if not alerts:
        raise InvestigateError("the store holds no alerts yet")
    return IncidentAlert.of(alerts[-1])


def alert_findings(store: Store, alert: IncidentAlert) -> list[Finding]:
    """The findings an alert was built from (the payload names them by id)."""
    day = alert.created_ts - 7 * DAY_MS
    found = [f for f in store.load_findings(since=day, until=alert.created_ts + 1)
             if f.finding_id in alert.finding_ids]
    return sorted(found, key=lambda f: f.ts)


def incident_key(alert: IncidentAlert, findings: list[Finding]) -> str | None:
    """The key the alert is about: its own, else the one most of its findings name."""
    if alert.key:
        return alert.key
    keys = pd.Series([f.key for f in findings if f.key])
    return str(keys.mode().iloc[0]) if len(keys) else None


def load_incident(
    db: str | Path | Store, alert_id: str | None = None, *, config: Config | str | Path | None
    = None, model_path: str | Path | None = None, before: str = "2h", after: str = "30min",
    key: str | None = None,
) -> Incident:
    """Load an alert and the account's events from `before` its first finding to `after` it."""
    store = open_store_ro(db)
    try:
        alert = pick_alert(store, alert_id)
        findings = alert_findings(store, alert)
        start = min([f.ts for f in findings] or [alert.created_ts])
        end = max([f.ts for f in findings] + [alert.created_ts])
        return _load(store, alert, findings, alert.account,
                     key or incident_key(alert, findings), start, end, config, model_path,
                     before, after)
    finally:
        _close_if_opened(db, store)


def load_window(
    db: str | Path | Store, account: str, key: str | None, since: int | str | pd.Timestamp,
    until: int | str | pd.Timestamp, *, config: Config | str | Path | None = None,
    model_path: str | Path | None = None,
) -> Incident:
    """The same view for a time range and key, with no alert (e.g. a hunch, not a page)."""
    store = open_store_ro(db)
    s, u = _ms(since), _ms(until)
    findings = [f for f in store.load_findings(since=s, until=u)
                if f.account == account and (key is None or f.key in (key, None))]
    alert = IncidentAlert(None, u, account, key, "-", "window",
                          f"{account}/{key or '*'} from {pd.Timestamp(s, unit='ms')} UTC")
    try:
        return _load(store, alert, findings, account, key, s, u, config, model_path, "0min",
                     "0min")
    finally:
        _close_if_opened(db, store)


def _load(store: Store, alert: IncidentAlert, findings: list[Finding], account: str,
          key: str | None, start: int, end: int, config: Config | str | Path | None,
          model_path: str | Path | None, before: str, after: str) -> Incident:
    cfg = read_config(config)
    ctx = feature_context(cfg)
    notes = [] if cfg else ["no config given: whitelists, clientOrderId prefixes and use cases "
                            "are unknown, so orders cannot be attributed to keys"]
    since = (start - int(pd.Timedelta(before).total_seconds() * 1000)) // MINUTE_MS * MINUTE_MS
    until = (end + int(pd.Timedelta(after).total_seconds() * 1000)) // MINUTE_MS * MINUTE_MS
    until += MINUTE_MS
    raw = store.load_events(since=since, until=until, account=account)
    e = enrich(normalise(raw), ctx, FeatureState())
    e["time"] = pd.to_datetime(e["ts"], unit="ms", utc=True)
    w = add_context(aggregate(e)) if len(e) else aggregate(e)
    forest, why = load_forest(cfg, model_path)
    if why:
        notes.append(f"forest not shown: {why}")
    callers = known_callers(store, account, key, since)
    flags = _flags_before(store, account, key, since)
    return Incident(alert, findings, account, key, start, end, since, until, e, w, callers, flags,
                    ctx, cfg, forest, notes)


def _empty_callers() -> pd.DataFrame:
    return pd.DataFrame({"key": pd.Series(dtype=str), "ip": pd.Series(dtype=str),
                         "first_ts": pd.Series(dtype="int64"), "last_ts": pd.Series(dtype="int64"),
                         "calls": pd.Series(dtype="int64")})


def known_callers(store: Store, account: str, key: str | None, before_ms: int,
                  lookback_days: float = 30) -> pd.DataFrame:
    """Every (key, address) that called in the `lookback_days` before `before_ms`; one key, or
    every key of the account when `key` is None.

    On the SQLite store this is one read-only aggregate query (weeks of requests would be
    slow to load as a frame); any other store falls back to `load_events`.
    """
    since = before_ms - int(lookback_days * DAY_MS)
    if isinstance(store, SQLiteStore) and store.path != ":memory:":
        uri = f"file:{Path(store.path).resolve()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True)
        try:
            rows = conn.execute(
                "SELECT key, ip, MIN(ts), MAX(ts), COUNT(*) FROM events WHERE account = ? "
                "AND (? IS NULL OR key = ?) AND ts >= ? AND ts < ? AND ip IS NOT NULL "
                "AND source IN ('tap', 'log') GROUP BY key, ip",
                (account, key, key, since, before_ms)).fetchall()
        finally:
            conn.close()
        out = pd.DataFrame(rows, columns=["key", "ip", "first_ts", "last_ts", "calls"])
        return out if len(out) else _empty_callers()
    df = store.load_events(since=since, until=before_ms, account=account, key=key,
                           kinds=["request", "reject"])
    df = normalise(df)
    df = df[df["ip"].notna() & df["source"].isin(["tap", "log"])]
    if df.empty:
        return _empty_callers()
    g = df.groupby(["key", "ip"])["ts"].agg(["min", "max", "count"]).reset_index()
    return g.set_axis(["key", "ip", "first_ts", "last_ts", "calls"], axis=1)


def _flags_before(store: Store, account: str, key: str | None, before_ms: int
                  ) -> dict[str, JsonObject]:
    df = store.load_events(since=before_ms - DAY_MS, until=before_ms, account=account, key=key,
                           kinds=["key_config"])
    out: dict[str, JsonObject] = {}
    for k, raw in zip(df["key"], df["raw"], strict=True):
        flags = parse_flags(raw)
        if flags and isinstance(k, str):
            out[k] = flags  # in time order: the last poll wins
    return out


def parse_flags(raw: Any) -> JsonObject:
    """apiRestrictions flags from a key_config event's raw JSON ({} when unreadable): Binance's
    answer as stored, its fields read by `KeyConfigPoll`."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}
    if isinstance(data, dict) and isinstance(data.get("data"), dict):
        data = data["data"]
    return data if isinstance(data, dict) else {}


__all__ = ["ACCOUNT_ROW", "Incident", "IncidentAlert", "InvestigateError", "load_incident",
           "load_window", "read_config", "load_forest", "known_callers", "parse_flags",
           "pick_alert"]
