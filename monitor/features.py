"""Per (account, key) one-minute windows: the fixed, named feature set every detector reads.

`enrich` adds per-event facts that need history (has this key seen this IP before, what was
the free balance when this order was rejected, what is the key's usual order size, how fast did
the account's order counter grow compared with the orders the tapped bots placed) from a
`FeatureState` it carries forward; `aggregate` turns enriched events into windows. Replay calls
both once on the whole frame, vectorised (text columns as integer codes, see `framecodes`).
Live runs the same definitions one event at a time in `features_live` (a frame per small batch
costs milliseconds); the order-dependent parts (sums of order sizes, the balance before a
reject) are defined in event order so both paths give the same floats: tests/detect prove live
== replay, windows and findings, bit for bit.

Attribution: tap/log requests carry the key label; stream/REST order events carry the monitor's
label (the stream is per account), so they are re-attributed by provenance first (the tap or log
record of the call that placed or cancelled them, matched by orderId / clientOrderId from the
answer: `features_provenance`), by the registered clientOrderId prefixes of untapped bots second.
Orders nothing explains are "foreign" (cancels: "foreign_cancel") and land on the account-level
row (key ""); `placed_by` names the suspect key. A report waiting for its record (its grace,
`provenance_grace_ms`) is enriched once decided: replay places a report explained by a later
record right after that record, where live enriches it, so both see the same state order.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import Config, UseCase
from monitor.events import EVENT_COLUMNS, Event
from monitor.features_provenance import GRACE_MS, Held, Provenance, ProvenanceState, Verdict
from monitor.framecodes import (
    combine,
    group_codes,
    isin_codes,
    joined,
    quote_base,
    text_codes,
    trading_status,
)
from monitor.orderpaths import PLACEMENT_PATHS

MINUTE_MS = 60_000
ACCOUNT_ROW = ""  # window key for account-level facts (counters, foreign orders, withdrawals)

FEATURES: tuple[str, ...] = (
    "requests", "weight_max", "order_requests", "accepted_orders", "stream_orders",
    "untapped_orders", "fills", "rejects",
    "fail_auth", "fail_timestamp", "fail_rate", "fail_balance", "fail_filter", "fail_other",
    "failures", "failure_ratio",
    "distinct_ips", "new_ips", "off_whitelist_ips",
    "max_reject_notional", "reject_to_free", "reject_to_usual", "max_order_to_usual",
    "foreign_orders", "orders_10s_max", "orders_1d_growth", "unexplained_orders",
    "distinct_endpoints", "order_share", "new_symbols", "withdrawals", "stream_problems",
    "untapped_1h",
)
CONTEXT_MINUTES = 60  # `untapped_1h` looks back this far: live keeps at least this history
FAIL_CLASSES = ("auth", "timestamp", "rate", "balance", "filter", "other")
CODE_CLASS = {-2014: "auth", -2015: "auth", -1022: "auth", -1021: "timestamp", -1003: "rate",
              -2010: "balance", -1013: "filter"}
ORDER_ENDPOINTS = PLACEMENT_PATHS  # placements (monitor/orderpaths.py declares every endpoint)
NEW_VALUE_FIELDS = ("ip", "symbol", "endpoint")
_FCLASS = tuple(sorted({"ok", *FAIL_CLASSES}))
_STR_COLS = ("event_id", "account", "key", "source", "kind", "ip", "method", "endpoint",
             "symbol", "side", "client_order_id", "exec_type", "order_status", "asset", "raw")


@dataclass(frozen=True)
class FeatureContext:
    """What the config declares that features need: prefixes, whitelists, use cases."""

    prefixes: dict[str, list[tuple[str, str]]]  # account -> [(prefix, key label)]
    whitelists: dict[tuple[str, str], list[Any]]  # (account, key) -> networks
    use_cases: dict[tuple[str, str], UseCase]
    monitor_keys: dict[str, str]
    egress_ip: str | None = None
    # how long (event time) a report waits for the tap/log record that explains it
    provenance_grace_ms: int = GRACE_MS

    @classmethod
    def from_config(cls, cfg: Config) -> FeatureContext:
        prefixes, wl, uc, mk = {}, {}, {}, {}
        for a in cfg.accounts:
            mk[a.name] = a.monitor_key
            prefixes[a.name] = sorted(
                ((p, k.label) for k in a.keys for p in k.client_order_prefixes),
                key=lambda t: -len(t[0]),  # longest prefix wins
            )
            for k in a.keys:
                wl[(a.name, k.label)] = k.whitelist_networks()
                uc[(a.name, k.label)] = k.use_case
        return cls(prefixes, wl, uc, mk, cfg.egress_ip)

    def whitelisted(self, account: str, key: str, ip: str) -> bool | None:
        """True/False against the declared whitelist; None when none is declared."""
        nets = self.whitelists.get((account, key))
        if not nets:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in nets)


@dataclass
class FeatureState:
    """History that outlives a batch; carried by the live engine, fresh for a replay."""

    seen: dict[str, set[tuple[str, str, str]]] = field(
        default_factory=lambda: {f: set() for f in NEW_VALUE_FIELDS})
    key_first_ts: dict[str, int] = field(default_factory=dict)  # "account\x1fkey" -> ms
    balance: dict[tuple[str, str], float] = field(default_factory=dict)
    own_sum: dict[str, float] = field(default_factory=dict)
    own_cnt: dict[str, float] = field(default_factory=dict)
    bot_orders: dict[str, int] = field(default_factory=dict)  # account -> tapped orders so far
    last_usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # (orders_1d, bots)
    last_price: dict[str, float] = field(default_factory=dict)  # symbol -> fill/ticker price
    provenance: ProvenanceState = field(default_factory=ProvenanceState)


def events_to_frame(events: list[Event]) -> pd.DataFrame:
    """Events -> the column layout `enrich` reads (no per-column validation: already valid)."""
    cols: dict[str, list[Any]] = {c: [] for c in EVENT_COLUMNS}
    for e in events:
        d = e.__dict__
        for c in EVENT_COLUMNS:
            v = d[c]
            cols[c].append(v.value if hasattr(v, "value") else v)
    return normalise(pd.DataFrame(cols))


CAT_COLS = ("account", "key", "source", "kind", "ip", "method", "endpoint", "symbol", "side",
            "order_type", "exec_type", "order_status", "asset", "reject_reason")
NUM_COLS = ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id", "latency_ms",
            "qty", "price", "notional", "free", "locked")


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """Any events frame (store, generator, live batch) -> int ms times, plain dtypes, ts order.

    Low-cardinality text columns become categoricals (comparisons on codes, not strings: this
    is most of replay's speed). Ties keep their input order (a store load is already ordered
    by ts, event_id), so live batches fed in that order see exactly what a replay sees.
    """
    out: dict[str, Any] = {}
    n = len(df)
    for c in EVENT_COLUMNS:
        s = df[c].reset_index(drop=True) if c in df.columns else pd.Series([None] * n)
        if c in ("ts", "received_ts"):
            if isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(s):
                s = s.astype("datetime64[ms, UTC]").astype("int64")
            out[c] = s.astype("int64").to_numpy()
        elif c in NUM_COLS:
            out[c] = pd.to_numeric(s, errors="coerce").astype("float64").to_numpy()
        elif c in CAT_COLS:
            out[c] = s if isinstance(s.dtype, pd.CategoricalDtype) else (
                s.astype(object).astype("category"))
        elif isinstance(s.dtype, pd.StringDtype):
            out[c] = s  # what the object round trip below would infer again (pandas 3)
        else:
            out[c] = s.astype(object).where(s.notna(), None).to_numpy()
    res = pd.DataFrame(out)
    ts = res["ts"].to_numpy()
    if n > 1 and (np.diff(ts) < 0).any():
        res = res.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)
    return res


def enrich(df: pd.DataFrame, ctx: FeatureContext, state: FeatureState) -> pd.DataFrame:
    """Add per-event derived columns to a normalised frame; advance `state` past it."""
    df = df.copy(deep=False)  # only adds columns: copy-on-write keeps the input intact
    df, pv = _provenance(df, ctx, state)  # may move late-explained reports after their record
    n = len(df)
    kind, source = df["kind"], df["source"]
    df["minute"] = (df["ts"] // MINUTE_MS) * MINUTE_MS
    exchange = isin_codes(source, ("stream", "rest"))
    tapped = isin_codes(source, ("tap", "log")) & isin_codes(kind, ("request", "reject"))
    is_order_evt = exchange & isin_codes(kind, ("order",))
    cats, wcodes = np.unique(pv["wkey"].astype(str), return_inverse=True)  # sorted, as before
    df["wkey"] = pd.Categorical.from_codes(wcodes.reshape(-1), validate=False,
                                           categories=pd.Index(cats.astype(object), dtype=object))
    df["ak"] = joined(df, ["account", "wkey"])  # categorical: lookups per key, not per row
    df["is_new_order"] = is_order_evt & isin_codes(df["exec_type"], ("NEW",))
    df["foreign"] = df["is_new_order"].to_numpy() & pv["foreign"]
    df["foreign_cancel"] = is_order_evt & pv["foreign_cancel"]
    df["placed_by"] = pv["placed_by"]
    df["provenance"] = pv["how"]
    status = np.nan_to_num(df["status"].to_numpy(), nan=0.0)
    code = df["code"].to_numpy()
    is_reject = isin_codes(kind, ("reject",))
    failed = tapped & ((status >= 400) | ~np.isnan(code) | is_reject)
    fcode = np.full(n, _FCLASS.index("ok"), dtype=np.int8)
    fcode[failed] = _FCLASS.index("other")
    fcode[failed & np.isin(status, [429, 418])] = _FCLASS.index("rate")
    for c, cls in CODE_CLASS.items():
        fcode[failed & (code == c)] = _FCLASS.index(cls)
    df["fclass"] = pd.Categorical.from_codes(fcode, categories=pd.Index(_FCLASS, dtype=object),
                                             validate=False)
    df["tapped"] = tapped
    df["is_order_req"] = tapped & (is_reject | (
        isin_codes(df["method"], ("POST",)) & isin_codes(df["endpoint"], ORDER_ENDPOINTS)))
    df["accepted_order"] = df["is_order_req"].to_numpy() & ~failed
    df["ip_whitelisted"] = _whitelist_flags(df, tapped, ctx)
    _first_seen(df, tapped, state)
    _price_orders(df, state)
    _order_sizes(df, state)
    _reject_vs_balance(df, state)
    _counter_growth(df, state)
    df["trading_ratio"], df["trading_locked"] = _trading_status(df)
    return df


def _provenance(df: pd.DataFrame, ctx: FeatureContext, state: FeatureState
                ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Each row's window key and origin verdict (`features_provenance`), in event order.

    Only tapped rows with a key and stream/REST order and fill reports take part (a Python
    pass over those few rows; everything else keeps its label). The frame is taken as complete:
    reports still waiting at its end are decided foreign. A report a later record explains
    moves to just after that record (where live enriches it); all else keeps its place.
    """
    n = len(df)
    kind, source = df["kind"], df["source"]
    exchange = isin_codes(source, ("stream", "rest")) & isin_codes(kind, ("order", "fill"))
    tapped = isin_codes(source, ("tap", "log")) & isin_codes(kind, ("request", "reject"))
    keys = df["key"].to_numpy()
    wkey = np.where(tapped & df["key"].notna().to_numpy(), keys, ACCOUNT_ROW).astype(object)
    placed_by = wkey.copy()
    how = np.full(n, "", dtype=object)
    foreign = np.zeros(n, dtype=bool)
    fcancel = np.zeros(n, dtype=bool)
    rows = np.flatnonzero(exchange | (tapped & df["key"].notna().to_numpy()))
    major = np.arange(n)
    minor = np.zeros(n, dtype=np.int64)
    moved = 0
    if len(rows):
        prov = Provenance(ctx, state.provenance)
        cols = {c: df[c].to_numpy()[rows].tolist() for c in (
            "account", "key", "source", "ts", "ip", "method", "endpoint", "status", "code",
            "symbol", "order_id", "client_order_id", "raw", "kind", "exec_type")}
        is_tap = tapped[rows].tolist()

        def put(i: int, v: Verdict) -> None:
            wkey[i], placed_by[i], how[i] = v.wkey, v.placed_by, v.how
            foreign[i], fcancel[i] = v.foreign, v.foreign_cancel

        def text(v: Any) -> Any:
            return v if isinstance(v, str) else None

        for j, i in enumerate(rows.tolist()):
            ts = int(cols["ts"][j])
            if state.provenance.dues and state.provenance.dues[0][0] < ts:
                for h, v in prov.expire(ts):
                    put(h.seq, v)
            a = cols["account"][j]
            if is_tap[j]:
                for h, v in prov.record(
                        a, text(cols["key"][j]), cols["source"][j], ts, text(cols["ip"][j]),
                        text(cols["method"][j]), text(cols["endpoint"][j]), cols["status"][j],
                        cols["code"][j], text(cols["symbol"][j]), cols["order_id"][j],
                        text(cols["client_order_id"][j]), text(cols["raw"][j])):
                    put(h.seq, v)
                    moved += 1
                    major[h.seq], minor[h.seq] = i, moved
                continue
            got = prov.arrive(i, a, ts, cols["kind"][j], text(cols["exec_type"][j]),
                              text(cols["symbol"][j]), cols["order_id"][j],
                              text(cols["client_order_id"][j]))
            if not isinstance(got, Held):
                put(i, got)
        for h, v in prov.expire(2**62):
            put(h.seq, v)
    pv = {"wkey": wkey, "placed_by": placed_by, "how": how, "foreign": foreign,
          "foreign_cancel": fcancel}
    if moved:
        perm = np.lexsort((minor, major))
        df = df.iloc[perm].reset_index(drop=True)
        pv = {k: v[perm] for k, v in pv.items()}
    return df, pv


def _whitelist_flags(df: pd.DataFrame, tapped: np.ndarray, ctx: FeatureContext) -> np.ndarray:
    out = np.full(len(df), None, dtype=object)
    ips, ipu = text_codes(df["ip"])
    rows = np.flatnonzero(tapped & (ips >= 0))
    if not len(rows):
        return out
    acs, acu = text_codes(df["account"])
    wks, wku = text_codes(df["wkey"])
    inv, _ = pd.factorize(combine((acs[rows], acu), (wks[rows], wku), (ips[rows], ipu)))
    first = np.flatnonzero(~pd.Series(inv).duplicated().to_numpy())
    look = [ctx.whitelisted(str(acu[acs[rows[i]]]), str(wku[wks[rows[i]]]),
                            str(ipu[ips[rows[i]]])) for i in first]
    out[rows] = np.array(look + [None], dtype=object)[inv]
    return out


def _first_seen(df: pd.DataFrame, tapped: np.ndarray, state: FeatureState) -> None:
    """`first_<field>`: first sighting ever of this value for this (account, key)."""
    has_key = df["wkey"].ne(ACCOUNT_ROW).to_numpy()
    akc, aku = text_codes(df["ak"])
    ts = df["ts"].to_numpy()
    rows = np.flatnonzero(has_key)
    # frames are in time order: a key's first row holds its min ts
    for i in rows[~pd.Series(akc[rows]).duplicated().to_numpy()]:
        state.key_first_ts.setdefault(aku[akc[i]], int(ts[i]))
    look = np.array([state.key_first_ts.get(k, -1) for k in aku] + [-1], dtype=np.int64)
    df["key_first_ts"] = look[akc]
    acs, acu = text_codes(df["account"])
    wks, wku = text_codes(df["wkey"])
    for f in NEW_VALUE_FIELDS:
        vc, vu = text_codes(df[f])
        elig = has_key & (vc >= 0)
        if f in ("ip", "endpoint"):
            elig &= tapped
        col = np.zeros(len(df), dtype=bool)
        rows = np.flatnonzero(elig)
        combo = combine((acs[rows], acu), (wks[rows], wku), (vc[rows], vu))
        seen = state.seen[f]
        for i in rows[~pd.Series(combo).duplicated().to_numpy()]:
            t = (acu[acs[i]], wku[wks[i]], vu[vc[i]])
            if t not in seen:
                col[i] = True
                seen.add(t)
        df[f"first_{f}"] = col


def _price_orders(df: pd.DataFrame, state: FeatureState) -> None:
    """Notional of a tapped order that carries none (a MARKET order by quantity, refused or
    answered with ACK): its quantity at the symbol's last price the exchange reported before
    it, in event order (`ref_price`; the state holds earlier ones): the account's fills and
    the poller's `price` events (ticker/price of the watched symbols), never a caller's limit
    price, which an attacker chooses. No price of the symbol yet: the notional stays unknown."""
    n = len(df)
    ref = np.full(n, np.nan)
    symc, symu = text_codes(df["symbol"])
    price = df["price"].to_numpy(dtype=float)
    frows = np.flatnonzero(isin_codes(df["kind"], ("fill", "price")) & (symc >= 0)
                           & (price > 0))
    notional = df["notional"].to_numpy(dtype=float)
    qty = df["qty"].to_numpy(dtype=float)
    need = np.flatnonzero(df["is_order_req"].to_numpy() & np.isnan(notional) & (qty > 0)
                          & (symc >= 0))
    if len(need):
        fsym = symc[frows]
        new_notional = notional.copy()
        for i in need:
            c = symc[i]
            rows = frows[fsym == c]
            k = int(np.searchsorted(rows, i)) - 1  # fills strictly before the order
            px = price[rows[k]] if k >= 0 else state.last_price.get(str(symu[c]), np.nan)
            ref[i] = px
            new_notional[i] = qty[i] * px
        df["notional"] = new_notional
    df["ref_price"] = ref
    for c in pd.unique(symc[frows]):
        state.last_price[str(symu[c])] = float(price[frows[symc[frows] == c][-1]])


def _order_sizes(df: pd.DataFrame, state: FeatureState) -> None:
    """Usual order size: mean notional of the key's own earlier orders (exclusive of this one).

    Sums run strictly in event order from the carried state (np.cumsum is sequential), so a
    replay and live batches of any size add the same floats in the same order: bit-identical.
    """
    own = ((df["accepted_order"] | (df["is_new_order"] & ~df["foreign"])) & df["notional"].notna()
           ).to_numpy() & df["wkey"].ne(ACCOUNT_ROW).to_numpy()
    notional = df["notional"].to_numpy(dtype=float)
    n = len(df)
    excl_sum, excl_cnt = np.zeros(n), np.zeros(n)
    if n:
        v = np.where(own, notional, 0.0)
        codes, names = df["ak"].cat.codes.to_numpy(), df["ak"].cat.categories
        order = np.argsort(codes, kind="stable")
        cuts = np.flatnonzero(np.diff(codes[order])) + 1
        for idx in np.split(order, cuts):
            k = names[codes[idx[0]]]
            cs = np.cumsum(np.concatenate(([state.own_sum.get(k, 0.0)], v[idx])))
            cc = np.cumsum(np.concatenate(([state.own_cnt.get(k, 0.0)], own[idx].astype(float))))
            excl_sum[idx], excl_cnt[idx] = cs[:-1], cc[:-1]
            if own[idx].any():
                state.own_sum[k], state.own_cnt[k] = float(cs[-1]), float(cc[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        usual = np.where(excl_cnt > 0, excl_sum / np.maximum(excl_cnt, 1), np.nan)
        df["usual_notional"] = usual
        df["notional_to_usual"] = notional / usual


def _reject_vs_balance(df: pd.DataFrame, state: FeatureState) -> None:
    """Free balance (in quote) of the asset a rejected order would have spent: the last balance
    update for it that came before the reject, in event order (the state holds earlier ones)."""
    n = len(df)
    fv = np.full(n, np.nan)
    acs, acu = text_codes(df["account"])
    ascs, asu = text_codes(df["asset"])
    free = df["free"].to_numpy(dtype=float)
    brows = np.flatnonzero(df["kind"].eq("balance").to_numpy() & (ascs >= 0))
    bkey = acs[brows] * (len(asu) + 1) + ascs[brows]
    notional = df["notional"].to_numpy(dtype=float)
    rej = np.flatnonzero(df["is_order_req"].to_numpy() & df["fclass"].ne("ok").to_numpy()
                         & ~np.isnan(notional))
    if len(rej):
        series: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        for k in pd.unique(bkey):  # each (account, asset): its balance rows, in order
            rows = brows[bkey == k]
            series[(str(acu[acs[rows[0]]]), str(asu[ascs[rows[0]]]))] = (rows, free[rows])
        sym, side = df["symbol"].to_numpy()[rej], df["side"].to_numpy()[rej]
        with np.errstate(invalid="ignore", divide="ignore"):
            px = notional[rej] / df["qty"].to_numpy(dtype=float)[rej]
        for j, i in enumerate(rej):
            quote, base = quote_base(sym[j] if isinstance(sym[j], str) else None)
            sell = side[j] == "SELL"
            need = base if sell else quote
            if need is None:
                continue
            key = (str(acu[acs[i]]), need)
            f = state.balance.get(key, np.nan)
            if key in series:
                rows, vals = series[key]
                k = int(np.searchsorted(rows, i)) - 1  # balance rows strictly before the reject
                if k >= 0:
                    f = vals[k]
            fv[i] = f * (px[j] if sell else 1.0)
    df["free_value"] = fv
    with np.errstate(invalid="ignore", divide="ignore"):
        ntf = np.where(fv > 0, notional / np.where(fv > 0, fv, 1.0), np.nan)
    ntf[(fv == 0) & (notional > 0)] = np.inf
    df["notional_to_free"] = ntf
    for k in pd.unique(bkey):
        last = brows[bkey == k][-1]
        state.balance[(str(acu[acs[last]]), str(asu[ascs[last]]))] = float(free[last])


def _counter_growth(df: pd.DataFrame, state: FeatureState) -> None:
    """At each usage poll: account order-counter growth minus tapped bots' orders since the last."""
    acc_order = df["accepted_order"].to_numpy().astype(np.int64)
    acs, acu = text_codes(df["account"])
    cum_bots = np.zeros(len(df), dtype=np.int64)
    totals: dict[str, int] = {}
    for a in np.unique(acs[acc_order > 0]) if acc_order.any() else []:
        rows = np.flatnonzero(acs == a)
        cum_bots[rows] = np.cumsum(acc_order[rows])
        totals[str(acu[a])] = int(cum_bots[rows[-1]])
    growth = np.zeros(len(df))
    unexpl = np.zeros(len(df))
    o1d_all = df["orders_1d"].to_numpy()
    usage = np.flatnonzero(df["kind"].eq("usage").to_numpy() & ~np.isnan(o1d_all))
    for i in usage:
        acct, o1d = str(acu[acs[i]]), o1d_all[i]
        bots = int(cum_bots[i]) + state.bot_orders.get(acct, 0)
        last = state.last_usage.get(acct)
        if last is not None:
            growth[i] = float(o1d - last[0]) if o1d >= last[0] else float(o1d)
            unexpl[i] = max(0.0, growth[i] - (bots - last[1]))
        state.last_usage[acct] = (int(o1d), bots)
    df["orders_1d_growth"] = growth
    df["unexplained_orders"] = unexpl
    for acct, c in totals.items():
        state.bot_orders[acct] = state.bot_orders.get(acct, 0) + c


def _trading_status(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per usage event with a raw body: `trading_status` (each distinct text parsed once)."""
    ratio = np.zeros(len(df))
    locked = np.zeros(len(df), dtype=bool)
    rows = np.flatnonzero((df["kind"].eq("usage") & df["raw"].notna()).to_numpy())
    seen: dict[str, tuple[float, bool]] = {}
    raws = df["raw"].to_numpy()
    for i in rows:
        raw = raws[i]
        got = seen.get(raw)
        if got is None:
            got = seen[raw] = trading_status(raw)
        ratio[i], locked[i] = got
    return ratio, locked


def aggregate(e: pd.DataFrame) -> pd.DataFrame:
    """Enriched events -> one row per (account, key, minute) with FEATURES, in a stable order.

    Plain numpy over one group index (bincount sums, fmax.reduceat maxima that skip nan):
    the counts are whole numbers, so any summation order gives the same floats as a groupby.
    """
    cols = ["account", "key", "minute", *FEATURES]
    if e.empty:
        return pd.DataFrame(columns=cols)
    ac, acu = group_codes(e["account"])
    kc, kcu = group_codes(e["wkey"])
    minute = e["minute"].to_numpy(dtype=np.int64)
    mi = (minute - int(minute.min())) // MINUTE_MS
    nak = len(acu) * (len(kcu) + 1)
    # hash the (minute, account, key) triples (cheap: rows come in time order), then rank the
    # few distinct windows by (account, key, minute), the order groupby(sort=True) gives
    codes, uniq = pd.factorize(mi * nak + ac * (len(kcu) + 1) + kc)
    ng = len(uniq)
    rank = np.empty(ng, dtype=np.int64)
    rank[np.lexsort((uniq // nak, uniq % nak))] = np.arange(ng)
    inv = rank[codes]

    def col(name: str) -> np.ndarray:
        return e[name].to_numpy()

    def is_(name: str, value: str) -> np.ndarray:
        c, u = text_codes(e[name])
        hit = np.flatnonzero(u == value)
        return c == hit[0] if len(hit) else np.zeros(len(c), dtype=bool)

    tapped = col("tapped").astype(bool)
    failed = ~is_("fclass", "ok") & tapped
    order_req, accepted = col("is_order_req").astype(bool), col("accepted_order").astype(bool)
    new_order, foreign = col("is_new_order").astype(bool), col("foreign").astype(bool)
    rejected = order_req & failed
    own_new = new_order & ~foreign
    first_ip = col("first_ip").astype(bool)
    wl_false = np.equal(col("ip_whitelisted"), False).astype(bool)  # None/True -> False
    out: dict[str, np.ndarray] = {}

    def total(x: np.ndarray) -> np.ndarray:
        return np.bincount(inv, weights=np.asarray(x, dtype=float), minlength=ng)

    def most(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        ok = ~np.isnan(x) if mask is None else mask & ~np.isnan(x)
        res = np.full(ng, np.nan)
        np.fmax.at(res, inv[ok], x[ok])
        return res

    def distinct(name: str) -> np.ndarray:
        vc, vu = text_codes(e[name])
        rows = np.flatnonzero(tapped & (vc >= 0))
        pairs = pd.unique(inv[rows] * (len(vu) + 1) + vc[rows])
        return np.bincount(pairs // (len(vu) + 1), minlength=ng).astype(float)

    out["requests"] = total(tapped)
    out["order_requests"] = total(order_req)
    out["accepted_orders"] = total(accepted)
    out["stream_orders"] = total(own_new)
    out["fills"] = total(is_("kind", "fill"))
    out["rejects"] = total(rejected)
    out["failures"] = total(failed)
    out["new_ips"] = total(first_ip)
    out["off_whitelist_ips"] = total(first_ip & wl_false)
    out["foreign_orders"] = total(foreign)
    out["orders_1d_growth"] = total(col("orders_1d_growth"))
    out["unexplained_orders"] = total(col("unexplained_orders"))
    out["new_symbols"] = total(col("first_symbol").astype(bool))
    out["withdrawals"] = total(is_("kind", "withdrawal"))
    out["stream_problems"] = total(is_("kind", "stream_status"))
    for c in FAIL_CLASSES:
        out[f"fail_{c}"] = total(failed & is_("fclass", c))
    out["weight_max"] = most(col("weight_1m"), tapped)
    out["max_reject_notional"] = most(col("notional"), rejected)
    out["reject_to_free"] = most(col("notional_to_free"), rejected)
    out["reject_to_usual"] = most(col("notional_to_usual"), rejected)
    out["max_order_to_usual"] = most(col("notional_to_usual"), accepted | own_new)
    out["orders_10s_max"] = most(col("orders_10s"))
    out["distinct_ips"] = distinct("ip")
    out["distinct_endpoints"] = distinct("endpoint")
    out["untapped_orders"] = np.maximum(out["stream_orders"] - out["accepted_orders"], 0.0)
    out["untapped_1h"] = np.zeros(ng)  # filled by add_context (needs the key's earlier windows)
    req = np.where(out["requests"] > 0, out["requests"], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["failure_ratio"] = out["failures"] / req
        out["order_share"] = out["order_requests"] / req
    for f in FEATURES:
        v = out[f]
        out[f] = np.nan_to_num(np.where(v == np.inf, 1e9, v), nan=0.0, posinf=1e9, neginf=-np.inf)
    first = np.empty(ng, dtype=np.int64)
    first[inv] = np.arange(len(inv))  # a row of each window (they share account, key, minute)
    acct = (pd.Categorical.from_codes(ac[first], categories=acu)
            if isinstance(acu, pd.Index) else acu[ac[first]])
    key = (pd.Categorical.from_codes(kc[first], categories=kcu)
           if isinstance(kcu, pd.Index) else kcu[kc[first]])
    return pd.DataFrame({"account": acct, "key": key, "minute": minute[first],
                         **{f: out[f] for f in FEATURES}})[cols]


def add_context(w: pd.DataFrame) -> pd.DataFrame:
    """Slow context over a key's windows (sorted by account, key, minute): `untapped_1h` is the
    number of stream-reported orders the tap never saw in the last hour (this minute included).
    Vectorised with a cumulative sum and a searchsorted per row; live passes enough history.
    """
    if w.empty:
        return w
    w = w.sort_values(["account", "key", "minute"], kind="stable").reset_index(drop=True)
    codes = w.groupby(["account", "key"], sort=False).ngroup().to_numpy(dtype=np.int64)
    minute = w["minute"].to_numpy(dtype=np.int64)
    order_key = codes * (1 << 45) + minute
    cs = np.concatenate([[0.0], np.cumsum(w["untapped_orders"].to_numpy(dtype=float))])
    lo = np.searchsorted(order_key, order_key - (CONTEXT_MINUTES - 1) * MINUTE_MS, "left")
    w["untapped_1h"] = cs[1:] - cs[lo]
    return w


def windows(df: pd.DataFrame, ctx: FeatureContext) -> pd.DataFrame:
    """Replay path: a whole events frame -> its windows with context (fresh state)."""
    return add_context(aggregate(enrich(normalise(df), ctx, FeatureState())))
