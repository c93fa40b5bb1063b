"""Evidence the stored events add to a finding before it is kept and alerted.

A window rule sees counts (`fail_auth` = 7), not which answers made them, and an execution
report says an order exists, not from where it was placed. The store holds the calls behind
both, so the alert manager's first stage looks them up once, before the finding is persisted:

- a failure count (`fail_<class>` in the evidence, `features.FAIL_CLASSES`) gets `codes`, the
  Binance codes of that class the key's tapped calls got in the window, with their counts
  (`{"-1022": 7}`): the title then says what was really refused (a bad signature after a
  secret change is not a probe of the whitelist);
- an order (or cancel) that no registered bot explained gets `ip`, the address a tap or log
  record shows its suspect key placing (or cancelling) it from: a registered key used from an
  address it is not expected at, e.g. a bot whose host moved. That address is what
  `findings.incident_id` folds such orders by, so a moved bot's orders are one incident, not
  one alert per order. Orders no record names (a pump straight at Binance) keep their own ids.

Both are read with the definitions detection uses: `features.CODE_CLASS` for a code's class,
`orderpaths.record_ids` for the orders a record placed or cancelled.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from monitor.core.findings import Finding, Signal
from monitor.core.orderpaths import CANCEL, NEW, record_ids
from monitor.features import CODE_CLASS, FAIL_CLASSES
from monitor.store import Store

TAPPED_SOURCES = ("tap", "log")
TAPPED_KINDS = ("request", "reject")
# an order's report follows the call that placed it by milliseconds to seconds; a minute either
# side finds the record without reading a busy key's whole history per finding
RECORD_SPAN_MS = 60_000
EXEC_ACTION = {"NEW": NEW, "CANCELED": CANCEL}
_Ask = tuple[int, str, str | None, int | None, str | None]  # finding index, action, symbol, ids


def with_store_evidence(store: Store, findings: list[Finding]) -> list[Finding]:
    """The findings with `codes` and/or the caller `ip` added from the stored events.

    A window close brings many findings at once (one per key that crossed a threshold) and
    unexplained orders come in bursts (a moved bot, a runaway), so the records are read once
    per batch and account (failure codes) or suspect key (orders), not once per finding: this
    runs on the service's event loop before the page is sent.
    """
    callers = order_callers(store, findings)
    codes = failure_codes(store, findings)
    out = []
    for i, f in enumerate(findings):
        add: dict[str, Any] = {}
        if codes.get(i):
            add["codes"] = codes[i]
        if i in callers:
            add["ip"] = callers[i]
        out.append(f.model_copy(update={"evidence": {**f.evidence, **add}}) if add else f)
    return out


def failure_codes(store: Store, findings: list[Finding]) -> dict[int, dict[str, int]]:
    """Index in `findings` -> {code: count} of the failure classes that finding counts in its
    window, most frequent first (findings that count no failure class are left out)."""
    wanted: dict[str, list[tuple[int, set[str], int, int]]] = {}
    for i, f in enumerate(findings):
        ev = f.evidence
        classes = {m[len("fail_"):] for m in ev if m.startswith("fail_")} & set(FAIL_CLASSES)
        start, end = ev.get("window_start_ms"), ev.get("window_end_ms")
        if classes and "codes" not in ev and isinstance(start, int) and isinstance(end, int):
            wanted.setdefault(f.account, []).append((i, classes, start, end))
    out: dict[int, dict[str, int]] = {}
    for account, asks in wanted.items():
        rows = _tapped(store.load_events(min(a[2] for a in asks), max(a[3] for a in asks),
                                         account=account, kinds=TAPPED_KINDS))
        rows = rows[rows["code"].notna()]
        key_col = rows["key"].astype(object)  # a missing key (account rows) equals nothing
        ts = rows["ts"].to_numpy(dtype="datetime64[ms]").astype("int64")
        codes = rows["code"].to_numpy()
        for i, classes, start, end in asks:
            key = findings[i].key
            mine = (ts >= start) & (ts < end)
            if key:
                mine &= key_col.eq(key).to_numpy(dtype=bool, na_value=False)
            seen: Counter[int] = Counter(
                c for c in (int(v) for v in codes[mine]) if CODE_CLASS.get(c) in classes)
            out[i] = {str(c): n for c, n in sorted(seen.items(), key=lambda cn: (-cn[1], cn[0]))}
    return out


def order_callers(store: Store, findings: list[Finding]) -> dict[int, str]:
    """Index in `findings` -> the caller address of the record that names that unexplained
    order's (or cancel's) suspect key, for those a record names."""
    wanted: dict[tuple[str, str], list[_Ask]] = {}
    for i, f in enumerate(findings):
        ev = f.evidence
        action = EXEC_ACTION.get(str(ev.get("exec_type")))
        suspect = ev.get("placed_by") or f.key
        oid, cid = _int(ev.get("order_id")), ev.get("client_order_id") or None
        if (f.signal is Signal.FOREIGN_ORDER and not ev.get("ip") and action is not None
                and suspect and (oid is not None or cid is not None)):
            sym = ev.get("symbol") if isinstance(ev.get("symbol"), str) else None
            wanted.setdefault((f.account, str(suspect)), []).append((i, action, sym, oid, cid))
    out: dict[int, str] = {}
    for (account, key), asks in wanted.items():
        ts = [findings[i].ts for i, *_ in asks]
        rows = _tapped(store.load_events(min(ts) - RECORD_SPAN_MS, max(ts) + RECORD_SPAN_MS,
                                         account=account, key=key, kinds=["request"]))
        oids = {o for *_, o, _ in asks if o is not None}
        cids = {c for *_, c in asks if c is not None}
        rows = rows[rows["ip"].notna() & rows["code"].isna() & ~(rows["status"] >= 400)
                    .fillna(False).astype(bool)  # a refused call placed nothing
                    & (rows["order_id"].isin(oids) | rows["client_order_id"].isin(cids)
                       | rows["raw"].str.contains('"ids"', regex=False).fillna(False)
                       .astype(bool))]
        # keyed as provenance matches: an order id within its symbol (a record without one,
        # e.g. a log line, matches any), a client order id alone
        by_id: dict[tuple[object, ...], str] = {}
        for r in rows.itertuples(index=False):  # in time order: the latest record wins
            method, path, sym, o_id, c_id, raw = (
                None if pd.isna(v) else v
                for v in (r.method, r.endpoint, r.symbol, r.order_id, r.client_order_id, r.raw))
            for a, s, o, c in record_ids(method, path, sym, o_id, c_id, raw):
                if o is not None:
                    by_id[(a, "o", s, o)] = str(r.ip)
                if c:
                    by_id[(a, "c", c)] = str(r.ip)
        for i, action, sym, oid, cid in asks:
            ip = (by_id.get((action, "o", sym, oid)) or by_id.get((action, "o", None, oid))
                  if oid is not None else None)
            ip = ip or (by_id.get((action, "c", cid)) if cid else None)
            if ip:
                out[i] = ip
    return out


def _tapped(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["source"].isin(TAPPED_SOURCES)]


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return None
    return int(v)
