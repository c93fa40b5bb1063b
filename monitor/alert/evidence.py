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

from monitor.features import CODE_CLASS, FAIL_CLASSES
from monitor.findings import Finding, Signal
from monitor.orderpaths import CANCEL, NEW, record_ids
from monitor.store import Store

TAPPED_SOURCES = ("tap", "log")
TAPPED_KINDS = ("request", "reject")
# an order's report follows the call that placed it by milliseconds to seconds; a minute either
# side finds the record without reading a busy key's whole history per finding
RECORD_SPAN_MS = 60_000
EXEC_ACTION = {"NEW": NEW, "CANCELED": CANCEL}


def with_store_evidence(store: Store, f: Finding) -> Finding:
    """`f` with `codes` and/or the caller `ip` added from the stored events, when they apply."""
    add: dict[str, Any] = {}
    codes = failure_codes(store, f)
    if codes:
        add["codes"] = codes
    caller = order_caller(store, f)
    if caller:
        add["ip"] = caller
    if not add:
        return f
    return f.model_copy(update={"evidence": {**f.evidence, **add}})


def failure_codes(store: Store, f: Finding) -> dict[str, int]:
    """{code: count} of the failure classes the finding counts, most frequent first."""
    ev = f.evidence
    classes = {m[len("fail_"):] for m in ev if m.startswith("fail_")} & set(FAIL_CLASSES)
    start, end = ev.get("window_start_ms"), ev.get("window_end_ms")
    if not classes or "codes" in ev or not isinstance(start, int) or not isinstance(end, int):
        return {}
    rows = _tapped(store.load_events(start, end, account=f.account, key=f.key or None,
                                     kinds=TAPPED_KINDS))
    seen: Counter[int] = Counter()
    for code in rows["code"].dropna():
        if CODE_CLASS.get(int(code)) in classes:
            seen[int(code)] += 1
    return {str(c): n for c, n in sorted(seen.items(), key=lambda cn: (-cn[1], cn[0]))}


def order_caller(store: Store, f: Finding) -> str | None:
    """The caller address of the record that names this unexplained order's suspect key."""
    ev = f.evidence
    action = EXEC_ACTION.get(str(ev.get("exec_type")))
    suspect = ev.get("placed_by") or f.key
    if f.signal is not Signal.FOREIGN_ORDER or ev.get("ip") or action is None or not suspect:
        return None
    oid, cid = _int(ev.get("order_id")), ev.get("client_order_id") or None
    if oid is None and cid is None:
        return None
    rows = _tapped(store.load_events(f.ts - RECORD_SPAN_MS, f.ts + RECORD_SPAN_MS,
                                     account=f.account, key=str(suspect), kinds=["request"]))
    found = None
    for r in rows.itertuples(index=False):
        method, path, sym, o_id, c_id, raw, ip, status, code = (
            None if pd.isna(v) else v for v in (r.method, r.endpoint, r.symbol, r.order_id,
                                                 r.client_order_id, r.raw, r.ip, r.status,
                                                 r.code))
        if not isinstance(ip, str) or code is not None or (status is not None and status >= 400):
            continue  # a refused call placed nothing
        ids = record_ids(method, path, sym, o_id, c_id, raw)
        if any(a == action and ((oid is not None and o == oid) or (cid and c == cid))
               for a, _s, o, c in ids):
            found = ip  # the latest such record
    return found


def _tapped(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["source"].isin(TAPPED_SOURCES)]


def _int(v: Any) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        return None
    return int(v)
