"""Per (account, key) one-minute windows: the fixed, named feature set every detector reads.

One implementation serves both paths. `enrich` adds per-event facts that need history (has this
key seen this IP before, what was the free balance when this order was rejected, what is the
key's usual order size, how fast did the account's order counter grow compared with the orders
the tapped bots placed) from a `FeatureState` it carries forward; `aggregate` turns enriched
events into windows. Replay calls both once on the whole frame; live calls them on each batch
with the same state object, so both produce the same windows (tests/detect prove it).

Attribution: tap/log requests carry the key label; stream/REST order events carry the monitor's
label (the stream is per account), so they are re-attributed by the registered clientOrderId
prefixes. Orders no prefix explains are "foreign" and land on the account-level row (key "").
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import Config, UseCase
from monitor.events import EVENT_COLUMNS, Event

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
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL")
ORDER_ENDPOINTS = ("/api/v3/order", "/api/v3/order/test", "/api/v3/sor/order")
NEW_VALUE_FIELDS = ("ip", "symbol", "endpoint")
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
        else:
            out[c] = s.astype(object).where(s.notna(), None).to_numpy()
    res = pd.DataFrame(out)
    ts = res["ts"].to_numpy()
    if n > 1 and (np.diff(ts) < 0).any():
        res = res.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)
    return res


def _quote_base(symbol: pd.Series) -> tuple[pd.Series, pd.Series]:
    quote = pd.Series([None] * len(symbol), index=symbol.index, dtype=object)
    s = symbol.astype(object).fillna("").astype(str)
    for q in QUOTES:
        m = quote.isna() & s.str.endswith(q) & (s.str.len() > len(q))
        quote[m] = q
    base = pd.Series([b[: len(b) - len(q)] if q else None for b, q in zip(s, quote, strict=True)],
                     index=symbol.index, dtype=object)
    return quote, base


def _joined(df: pd.DataFrame, cols: list[str]) -> np.ndarray:
    """One string per row joining `cols`, built once per distinct combination (fast)."""
    g = df.groupby(cols, sort=False, observed=True, dropna=False)
    codes = g.ngroup().to_numpy()
    names = np.array(["\x1f".join("" if v is None or v != v else str(v) for v in
                                    (k if isinstance(k, tuple) else (k,)))
                      for k in g.groups.keys()] if len(df) else [], dtype=object)
    return names[codes] if len(df) else np.zeros(0, dtype=object)


def enrich(df: pd.DataFrame, ctx: FeatureContext, state: FeatureState) -> pd.DataFrame:
    """Add per-event derived columns to a normalised frame; advance `state` past it."""
    df = df.copy()
    n = len(df)
    kind, source = df["kind"], df["source"]
    df["minute"] = (df["ts"] // MINUTE_MS) * MINUTE_MS
    tapped = (source.isin(["tap", "log"]) & kind.isin(["request", "reject"])).to_numpy()
    is_order_evt = (source.isin(["stream", "rest"]) & kind.eq("order")).to_numpy()
    # window key: tap/log carry the label; orders are attributed by clientOrderId prefix
    wkey = np.full(n, ACCOUNT_ROW, dtype=object)
    keys = df["key"].astype(object).to_numpy()
    has = tapped & pd.notna(keys)
    wkey[has] = keys[has]
    attributed = np.zeros(n, dtype=bool)
    ord_or_fill = (source.isin(["stream", "rest"]) & kind.isin(["order", "fill"])).to_numpy()
    accounts = df["account"].astype(object).to_numpy()
    for acct, pairs in ctx.prefixes.items():
        idx = np.flatnonzero(ord_or_fill & (accounts == acct))
        if not len(idx) or not pairs:
            continue
        raw_cid = df["client_order_id"].to_numpy()[idx]
        cid = np.array(["" if v is None or v != v else v for v in raw_cid], dtype=str)
        done = np.zeros(len(idx), dtype=bool)
        for prefix, label in pairs:  # fixed-width numpy strings: C-speed prefix tests
            m = ~done & np.char.startswith(cid, prefix)
            wkey[idx[m]] = label
            done |= m
        attributed[idx[done]] = True
    df["wkey"] = pd.Categorical(wkey)
    df["ak"] = _joined(df, ["account", "wkey"])
    df["is_new_order"] = is_order_evt & df["exec_type"].eq("NEW").to_numpy()
    registered = df["account"].isin([a for a, pairs in ctx.prefixes.items() if pairs]).to_numpy()
    df["foreign"] = df["is_new_order"].to_numpy() & ~attributed & registered
    status = np.nan_to_num(df["status"].to_numpy(), nan=0.0)
    code = df["code"].to_numpy()
    is_reject = kind.eq("reject").to_numpy()
    failed = tapped & ((status >= 400) | ~np.isnan(code) | is_reject)
    fclass = np.full(n, "ok", dtype=object)
    fclass[failed] = "other"
    fclass[failed & np.isin(status, [429, 418])] = "rate"
    for c, cls in CODE_CLASS.items():
        fclass[failed & (code == c)] = cls
    df["fclass"] = pd.Categorical(fclass)
    df["tapped"] = tapped
    df["is_order_req"] = tapped & (is_reject | (
        df["method"].eq("POST") & df["endpoint"].isin(ORDER_ENDPOINTS)).to_numpy())
    df["accepted_order"] = df["is_order_req"].to_numpy() & ~failed
    df["ip_whitelisted"] = _whitelist_flags(df, tapped, ctx)
    _first_seen(df, pd.Series(tapped, index=df.index), state)
    _order_sizes(df, state)
    _reject_vs_balance(df, state)
    _counter_growth(df, state)
    df["trading_ratio"], df["trading_locked"] = _trading_status(df)
    return df


def _whitelist_flags(df: pd.DataFrame, tapped: np.ndarray, ctx: FeatureContext) -> np.ndarray:
    out = np.full(len(df), None, dtype=object)
    rows = np.flatnonzero(tapped & df["ip"].notna().to_numpy())
    if not len(rows):
        return out
    sub = df.iloc[rows][["account", "wkey", "ip"]]
    g = sub.groupby(["account", "wkey", "ip"], sort=False, observed=True)
    look = [ctx.whitelisted(str(a), str(k), str(ip)) for a, k, ip in g.groups.keys()]
    out[rows] = np.array(look + [None], dtype=object)[g.ngroup().to_numpy()]
    return out


def _first_seen(df: pd.DataFrame, tapped: pd.Series, state: FeatureState) -> None:
    """`first_<field>`: first sighting ever of this value for this (account, key)."""
    has_key = df["wkey"].ne(ACCOUNT_ROW).to_numpy()
    firsts = df[has_key].groupby("ak", sort=False)["ts"].min()
    for ak, t in firsts.items():
        state.key_first_ts.setdefault(ak, int(t))
    df["key_first_ts"] = pd.Series(df["ak"]).map(state.key_first_ts).fillna(-1).astype("int64")
    for f in NEW_VALUE_FIELDS:
        elig = has_key & df[f].notna().to_numpy()
        if f in ("ip", "endpoint"):
            elig &= tapped.to_numpy()
        col = np.zeros(len(df), dtype=bool)
        sub = df.loc[elig, ["account", "wkey", f]].astype(object)
        first = sub[~sub.duplicated()]
        seen = state.seen[f]
        for idx, t in zip(first.index, first.itertuples(index=False, name=None), strict=True):
            if t not in seen:
                col[idx] = True
                seen.add(t)
        df[f"first_{f}"] = col


def _group_cum(df: pd.DataFrame, mask: pd.Series, values: pd.Series, by: list[str]) -> pd.Series:
    v = values.where(mask, 0.0)
    return v.groupby([df[b] for b in by], sort=False).cumsum()



def _order_sizes(df: pd.DataFrame, state: FeatureState) -> None:
    """Usual order size: mean notional of the key's own earlier orders (exclusive of this one)."""
    own = (df["accepted_order"] | (df["is_new_order"] & ~df["foreign"])) & df["notional"].notna()
    own &= df["wkey"].ne(ACCOUNT_ROW).to_numpy()
    notional = df["notional"].fillna(0.0)
    csum = _group_cum(df, own, notional, ["ak"]) - notional.where(own, 0.0)
    ccnt = _group_cum(df, own, pd.Series(1.0, index=df.index), ["ak"]) - own.astype(float)
    ak = pd.Series(df["ak"])
    base_s = ak.map(state.own_sum).fillna(0.0).to_numpy(dtype=float)
    base_c = ak.map(state.own_cnt).fillna(0.0).to_numpy(dtype=float)
    tot_c = ccnt.to_numpy() + base_c
    with np.errstate(invalid="ignore", divide="ignore"):
        usual = np.where(tot_c > 0, (csum.to_numpy() + base_s) / np.maximum(tot_c, 1), np.nan)
    df["usual_notional"] = usual
    df["notional_to_usual"] = df["notional"] / df["usual_notional"]
    g = df[own].groupby("ak", sort=False)["notional"].agg(["sum", "count"])
    for k, sm, ct in zip(g.index, g["sum"], g["count"], strict=True):
        state.own_sum[k] = state.own_sum.get(k, 0.0) + float(sm)
        state.own_cnt[k] = state.own_cnt.get(k, 0.0) + float(ct)


def _reject_vs_balance(df: pd.DataFrame, state: FeatureState) -> None:
    """Free balance (in quote) of the asset a rejected order would have spent, as of its time."""
    df["free_value"] = np.nan
    bal = df.loc[df["kind"].eq("balance") & df["asset"].notna(), ["ts", "account", "asset",
                                                                   "free"]]
    rej = df[df["is_order_req"] & df["fclass"].ne("ok") & df["notional"].notna()]
    if not rej.empty:
        quote, base = _quote_base(rej["symbol"])
        need = np.where(rej["side"].eq("SELL"), base, quote)
        left = pd.DataFrame({"ts": rej["ts"].to_numpy(), "account": rej["account"].to_numpy(),
                             "asset": need, "i": rej.index.to_numpy()})
        left = left[left["asset"].notna()]
        prior = pd.DataFrame([(-1, a, s, f) for (a, s), f in state.balance.items()],
                             columns=["ts", "account", "asset", "free"])
        right = pd.concat([prior, bal], ignore_index=True) if len(prior) else bal.copy()
        if len(left) and len(right):
            right = right.astype({"ts": "int64", "free": "float64"})
            right["account"] = right["account"].astype(str)
            right["asset"] = right["asset"].astype(str)
            left["account"] = left["account"].astype(str)
            left["asset"] = left["asset"].astype(str)
            m = pd.merge_asof(left.sort_values("ts"), right.sort_values("ts", kind="stable"),
                              on="ts", by=["account", "asset"], direction="backward")
            sell = df.loc[m["i"], "side"].eq("SELL").to_numpy()
            px = (df.loc[m["i"], "notional"] / df.loc[m["i"], "qty"]).to_numpy()
            val = m["free"].to_numpy() * np.where(sell, px, 1.0)
            df.loc[m["i"].to_numpy(), "free_value"] = val
    df["notional_to_free"] = df["notional"] / df["free_value"].where(df["free_value"] > 0, np.nan)
    df.loc[df["free_value"].eq(0) & df["notional"].gt(0), "notional_to_free"] = np.inf
    for t in bal.drop_duplicates(["account", "asset"], keep="last").itertuples(index=False):
        state.balance[(t.account, t.asset)] = float(t.free) if t.free == t.free else 0.0


def _counter_growth(df: pd.DataFrame, state: FeatureState) -> None:
    """At each usage poll: account order-counter growth minus tapped bots' orders since the last."""
    acc_order = df["accepted_order"].astype("int64")
    cum_bots = acc_order.groupby(df["account"], sort=False, observed=True).cumsum()
    prior = df["account"].astype(object).map(state.bot_orders).fillna(0).astype("int64")
    cum_bots = cum_bots + prior
    df["orders_1d_growth"] = 0.0
    df["unexplained_orders"] = 0.0
    usage = df[df["kind"].eq("usage") & df["orders_1d"].notna()]
    if not usage.empty:
        growth, unexpl = [], []
        for i, acct, o1d in zip(usage.index, usage["account"], usage["orders_1d"], strict=True):
            bots = int(cum_bots[i])
            last = state.last_usage.get(acct)
            if last is None:
                g = u = 0.0
            else:
                g = float(o1d - last[0]) if o1d >= last[0] else float(o1d)
                u = max(0.0, g - (bots - last[1]))
            state.last_usage[acct] = (int(o1d), bots)
            growth.append(g)
            unexpl.append(u)
        df.loc[usage.index, "orders_1d_growth"] = growth
        df.loc[usage.index, "unexplained_orders"] = unexpl
    for acct, c in acc_order.groupby(df["account"], sort=False, observed=True).sum().items():
        state.bot_orders[acct] = state.bot_orders.get(acct, 0) + int(c)


def _trading_status(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """apiTradingStatus in a usage event's raw: locked flag and max indicator/trigger ratio."""
    ratio = np.zeros(len(df))
    locked = np.zeros(len(df), dtype=bool)
    sub = df[df["kind"].eq("usage") & df["raw"].notna()]
    for i, raw in zip(sub.index, sub["raw"], strict=True):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        data = data.get("data", data) if isinstance(data, dict) else {}
        if not isinstance(data, dict):
            continue
        locked[i] = bool(data.get("isLocked", False))
        trig = data.get("triggerCondition") or {}
        counts = data.get("counts") or {}
        best = 0.0
        for name, limit in trig.items():
            c = counts.get(name)
            if isinstance(c, (int, float)) and isinstance(limit, (int, float)) and limit > 0:
                best = max(best, c / limit)
        for items in (data.get("indicators") or {}).values():
            for it in items if isinstance(items, list) else []:
                v, t = it.get("v"), it.get("t")
                if isinstance(v, (int, float)) and isinstance(t, (int, float)) and t > 0:
                    best = max(best, v / t)
        ratio[i] = best
    return ratio, locked


def aggregate(e: pd.DataFrame) -> pd.DataFrame:
    """Enriched events -> one row per (account, key, minute) with FEATURES, in a stable order."""
    cols = ["account", "key", "minute", *FEATURES]
    if e.empty:
        return pd.DataFrame(columns=cols)
    failed = e["fclass"].ne("ok") & e["tapped"]
    rejected = e["is_order_req"] & failed
    d = pd.DataFrame({
        "account": e["account"], "key": e["wkey"], "minute": e["minute"],
        "requests": e["tapped"].astype(float),
        "weight_max": e["weight_1m"].where(e["tapped"], np.nan),
        "order_requests": e["is_order_req"].astype(float),
        "accepted_orders": e["accepted_order"].astype(float),
        "stream_orders": (e["is_new_order"] & ~e["foreign"]).astype(float),
        "fills": e["kind"].eq("fill").astype(float),
        "rejects": rejected.astype(float),
        "failures": failed.astype(float),
        "new_ips": e["first_ip"].astype(float),
        "off_whitelist_ips": (e["first_ip"] & e["ip_whitelisted"].eq(False)).astype(float),
        "max_reject_notional": e["notional"].where(rejected, np.nan),
        "reject_to_free": e["notional_to_free"].where(rejected, np.nan),
        "reject_to_usual": e["notional_to_usual"].where(rejected, np.nan),
        "max_order_to_usual": e["notional_to_usual"].where(
            e["accepted_order"] | (e["is_new_order"] & ~e["foreign"]), np.nan),
        "foreign_orders": e["foreign"].astype(float),
        "orders_10s_max": e["orders_10s"],
        "orders_1d_growth": e["orders_1d_growth"],
        "unexplained_orders": e["unexplained_orders"],
        "new_symbols": e["first_symbol"].astype(float),
        "withdrawals": e["kind"].eq("withdrawal").astype(float),
        "stream_problems": e["kind"].eq("stream_status").astype(float),
        "ip": e["ip"].where(e["tapped"], None),
        "endpoint": e["endpoint"].where(e["tapped"], None),
    })
    for c in FAIL_CLASSES:
        d[f"fail_{c}"] = (failed & e["fclass"].eq(c)).astype(float)
    g = d.groupby(["account", "key", "minute"], sort=True)
    sums = ["requests", "order_requests", "accepted_orders", "stream_orders", "fills", "rejects",
            "failures", "new_ips", "off_whitelist_ips", "foreign_orders", "orders_1d_growth",
            "unexplained_orders", "new_symbols", "withdrawals", "stream_problems",
            *[f"fail_{c}" for c in FAIL_CLASSES]]
    maxes = ["weight_max", "max_reject_notional", "reject_to_free", "reject_to_usual",
             "max_order_to_usual", "orders_10s_max"]
    w = g[sums].sum().join(g[maxes].max()).join(
        g[["ip", "endpoint"]].nunique().rename(
            columns={"ip": "distinct_ips", "endpoint": "distinct_endpoints"}))
    w = w.reset_index()
    w["untapped_orders"] = (w["stream_orders"] - w["accepted_orders"]).clip(lower=0)
    w["untapped_1h"] = 0.0  # filled by add_context, which needs the key's earlier windows
    w["failure_ratio"] = w["failures"] / w["requests"].where(w["requests"] > 0, np.nan)
    w["order_share"] = w["order_requests"] / w["requests"].where(w["requests"] > 0, np.nan)
    w[list(FEATURES)] = w[list(FEATURES)].astype(float).replace([np.inf], 1e9).fillna(0.0)
    return w[cols].reset_index(drop=True)


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
