"""The live path of the window features: `features.enrich` + `aggregate`, one event at a time.

The service hands the engine a few events every fraction of a second; building pandas frames
for each of those batches costs milliseconds of fixed overhead, so live uses these plain-Python
twins instead: `enrich_one` derives exactly the columns `features.enrich` adds (reading and
advancing the same `FeatureState`), and `WindowAccumulator` keeps per (account, key, minute)
counters that `close` turns into the rows `features.aggregate` would give. Every definition
mirrors the vectorised one line for line; tests/detect prove live == replay, bit for bit, on
generated traffic cut into random batches.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.events import Event
from monitor.features import (
    ACCOUNT_ROW,
    CODE_CLASS,
    FAIL_CLASSES,
    FEATURES,
    MINUTE_MS,
    NUM_COLS,
    ORDER_ENDPOINTS,
    FeatureContext,
    FeatureState,
)
from monitor.features_provenance import Held, Provenance, Verdict
from monitor.framecodes import quote_base, trading_status

NAN = float("nan")
_NUM = frozenset(NUM_COLS)
_SUMS = ("requests", "order_requests", "accepted_orders", "stream_orders", "fills", "rejects",
         "failures", "new_ips", "off_whitelist_ips", "foreign_orders", "orders_1d_growth",
         "unexplained_orders", "new_symbols", "withdrawals", "stream_problems",
         *[f"fail_{c}" for c in FAIL_CLASSES])
_MAXES = ("weight_max", "max_reject_notional", "reject_to_free", "reject_to_usual",
          "max_order_to_usual", "orders_10s_max")


def fdiv(a: float, b: float) -> float:
    """a / b with numpy's IEEE semantics (x/0 = +-inf, 0/0 = nan), as the vectorised path."""
    try:
        return a / b
    except ZeroDivisionError:
        if a != a or a == 0:
            return NAN
        return math.copysign(math.inf, a) * math.copysign(1.0, b)


class LiveFeatures:
    """Per-event enrichment plus open windows; shares `FeatureState` with `features.enrich`."""

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        self.ctx, self.state = ctx, state
        self.prov = Provenance(ctx, state.provenance)
        self._seq = 0
        self._wl: dict[tuple[str, str, str], bool | None] = {}
        self._trading: dict[str, tuple[float, bool]] = {}
        self.open: dict[tuple[str, str, int], dict[str, Any]] = {}

    # enrichment ---------------------------------------------------------------------------
    def feed(self, ev: Event) -> list[dict[str, Any]]:
        """One event in -> the enriched rows now ready, in the order replay enriches them.

        A tap/log record comes out at once, followed by any held reports it explains
        (`features._provenance` moves them to the same place). A stream/REST report that no
        record explains yet is held (nothing out) until a record explains it or `expire`.
        """
        seq, self._seq = self._seq, self._seq + 1
        source, kind = ev.source.value, ev.kind.value
        if source in ("tap", "log") and kind in ("request", "reject") and ev.key is not None:
            r = self.enrich_one(ev)
            hits = self.prov.record(
                r["account"], ev.key, source, r["ts"], ev.ip, ev.method, ev.endpoint,
                r["status"], r["code"], ev.symbol, r["order_id"], ev.client_order_id, ev.raw)
            return [r] + [self.enrich_one(h.payload, v) for h, v in hits]
        if source in ("stream", "rest") and kind in ("order", "fill"):
            got = self.prov.arrive(seq, ev.account, ev.ts, kind, ev.exec_type, ev.symbol,
                                   ev.order_id, ev.client_order_id)
            if isinstance(got, Held):
                got.payload = ev
                return []
            return [self.enrich_one(ev, got)]
        return [self.enrich_one(ev)]

    def expire(self, now_ms: int) -> list[dict[str, Any]]:
        """Held reports whose grace ended before `now_ms`, enriched as foreign."""
        return [self.enrich_one(h.payload, v) for h, v in self.prov.expire(now_ms)]

    def enrich_one(self, ev: Event, verdict: Verdict | None = None) -> dict[str, Any]:
        """One event -> the row `features.enrich` would produce for it (as a dict);
        `verdict`: the provenance of a stream/REST report (`feed` supplies it)."""
        r = dict(ev.__dict__)
        st, ctx = self.state, self.ctx
        source = r["source"] = ev.source.value
        kind = r["kind"] = ev.kind.value
        for c in _NUM:
            v = r[c]
            r[c] = NAN if v is None else float(v)
        acct, ts = r["account"], r["ts"]
        r["minute"] = (ts // MINUTE_MS) * MINUTE_MS
        tapped = source in ("tap", "log") and kind in ("request", "reject")
        wkey = ACCOUNT_ROW
        if tapped and r["key"] is not None:
            wkey = r["key"]
        if verdict is not None:
            wkey = verdict.wkey
        r["wkey"] = wkey
        ak = r["ak"] = f"{acct}\x1f{wkey}"
        order_evt = source in ("stream", "rest") and kind == "order"
        is_new = r["is_new_order"] = order_evt and r["exec_type"] == "NEW"
        foreign = r["foreign"] = is_new and verdict is not None and verdict.foreign
        r["foreign_cancel"] = order_evt and verdict is not None and verdict.foreign_cancel
        r["placed_by"] = verdict.placed_by if verdict is not None else wkey
        r["provenance"] = verdict.how if verdict is not None else ""
        status, code = r["status"], r["code"]
        is_reject = kind == "reject"
        failed = tapped and ((status >= 400) or code == code or is_reject)
        if not failed:
            fclass = "ok"
        else:
            fclass = CODE_CLASS.get(code) or ("rate" if status in (429.0, 418.0) else "other")
        r["fclass"], r["tapped"] = fclass, tapped
        order_req = r["is_order_req"] = tapped and (is_reject or (
            r["method"] == "POST" and r["endpoint"] in ORDER_ENDPOINTS))
        accepted = r["accepted_order"] = order_req and not failed
        ip = r["ip"]
        wl = None
        if tapped and ip is not None:
            t = (acct, wkey, ip)
            if t in self._wl:
                wl = self._wl[t]
            else:
                wl = self._wl[t] = ctx.whitelisted(acct, wkey, ip)
        r["ip_whitelisted"] = wl
        # first sightings (features._first_seen)
        has_key = wkey != ACCOUNT_ROW
        if has_key:
            st.key_first_ts.setdefault(ak, ts)
        r["key_first_ts"] = st.key_first_ts.get(ak, -1)
        for f in ("ip", "symbol", "endpoint"):
            first = False
            v = r[f]
            if has_key and v is not None and (tapped or f == "symbol"):
                t = (acct, wkey, v)
                seen = st.seen[f]
                if t not in seen:
                    seen.add(t)
                    first = True
            r[f"first_{f}"] = first
        # a tapped order without notional at the last fill/ticker price (features._price_orders)
        ref = NAN
        if kind in ("fill", "price"):
            if r["symbol"] is not None and r["price"] > 0:
                st.last_price[r["symbol"]] = r["price"]
        elif order_req and r["notional"] != r["notional"] and r["qty"] > 0 and (
                r["symbol"] is not None):
            ref = st.last_price.get(r["symbol"], NAN)
            r["notional"] = r["qty"] * ref
        r["ref_price"] = ref
        # usual order size (features._order_sizes): the key's own earlier orders
        notional = r["notional"]
        cnt = st.own_cnt.get(ak, 0.0)
        usual = st.own_sum.get(ak, 0.0) / cnt if cnt > 0 else NAN
        r["usual_notional"] = usual
        r["notional_to_usual"] = fdiv(notional, usual)
        if (accepted or (is_new and not foreign)) and notional == notional and has_key:
            st.own_sum[ak] = st.own_sum.get(ak, 0.0) + notional
            st.own_cnt[ak] = cnt + 1.0
        # free balance at a rejected order (features._reject_vs_balance)
        fv = NAN
        if order_req and fclass != "ok" and notional == notional:
            quote, base = quote_base(r["symbol"])
            sell = r["side"] == "SELL"
            need = base if sell else quote
            if need is not None:
                free = st.balance.get((acct, need), NAN)
                fv = free * (fdiv(notional, r["qty"]) if sell else 1.0)
        r["free_value"] = fv
        if fv > 0:
            r["notional_to_free"] = notional / fv
        elif fv == 0 and notional > 0:
            r["notional_to_free"] = math.inf
        else:
            r["notional_to_free"] = NAN
        if kind == "balance" and r["asset"] is not None:
            st.balance[(acct, r["asset"])] = r["free"]
        # account order counter vs the bots' orders (features._counter_growth)
        if accepted:
            st.bot_orders[acct] = st.bot_orders.get(acct, 0) + 1
        growth = unexpl = 0.0
        o1d = r["orders_1d"]
        if kind == "usage" and o1d == o1d:
            bots = st.bot_orders.get(acct, 0)
            last = st.last_usage.get(acct)
            if last is not None:
                growth = float(o1d - last[0]) if o1d >= last[0] else float(o1d)
                unexpl = max(0.0, growth - (bots - last[1]))
            st.last_usage[acct] = (int(o1d), bots)
        r["orders_1d_growth"], r["unexplained_orders"] = growth, unexpl
        ratio, locked = 0.0, False
        if kind == "usage" and r["raw"] is not None:
            raw = r["raw"]
            got = self._trading.get(raw)
            if got is None:
                if len(self._trading) >= 256:  # polls carry changing counts: stay bounded
                    self._trading.clear()
                got = self._trading[raw] = trading_status(raw)
            ratio, locked = got
        r["trading_ratio"], r["trading_locked"] = ratio, locked
        return r

    # windows ------------------------------------------------------------------------------
    def add(self, r: dict[str, Any]) -> None:
        """Count an enriched row into its (account, key, minute) window (features.aggregate)."""
        wk = (r["account"], r["wkey"], r["minute"])
        w = self.open.get(wk)
        if w is None:
            w = self.open[wk] = dict.fromkeys(_SUMS, 0.0) | dict.fromkeys(_MAXES) | {
                "_ips": set(), "_eps": set()}
        tapped = r["tapped"]
        failed = tapped and r["fclass"] != "ok"
        rejected = r["is_order_req"] and failed
        own_new = r["is_new_order"] and not r["foreign"]
        if tapped:
            w["requests"] += 1.0
            _max(w, "weight_max", r["weight_1m"])
            if r["ip"] is not None:
                w["_ips"].add(r["ip"])
            if r["endpoint"] is not None:
                w["_eps"].add(r["endpoint"])
        if r["is_order_req"]:
            w["order_requests"] += 1.0
        if r["accepted_order"]:
            w["accepted_orders"] += 1.0
        if own_new:
            w["stream_orders"] += 1.0
        kind = r["kind"]
        if kind == "fill":
            w["fills"] += 1.0
        elif kind == "withdrawal":
            w["withdrawals"] += 1.0
        elif kind == "stream_status":
            w["stream_problems"] += 1.0
        if failed:
            w["failures"] += 1.0
            w["fail_" + r["fclass"]] += 1.0
        if rejected:
            w["rejects"] += 1.0
            _max(w, "max_reject_notional", r["notional"])
            _max(w, "reject_to_free", r["notional_to_free"])
            _max(w, "reject_to_usual", r["notional_to_usual"])
        if r["accepted_order"] or own_new:
            _max(w, "max_order_to_usual", r["notional_to_usual"])
        if r["first_ip"]:
            w["new_ips"] += 1.0
            if r["ip_whitelisted"] is False:
                w["off_whitelist_ips"] += 1.0
        if r["foreign"]:
            w["foreign_orders"] += 1.0
        _max(w, "orders_10s_max", r["orders_10s"])
        w["orders_1d_growth"] += r["orders_1d_growth"]
        w["unexplained_orders"] += r["unexplained_orders"]
        if r["first_symbol"]:
            w["new_symbols"] += 1.0

    def close(self, now_ms: int) -> list[dict[str, Any]]:
        """Windows that ended at or before `now_ms`, as `aggregate` rows sorted by
        (account, key, minute); `untapped_1h` is left 0 for the engine's context step.
        A minute that still holds a report waiting for its record stays open (with every later
        one) until the report is decided: it must join its own window."""
        held = self.prov.held_min_minute(MINUTE_MS)
        done = sorted(k for k in self.open if k[2] + MINUTE_MS <= now_ms
                      and (held is None or k[2] < held))
        return [_row(k, self.open.pop(k)) for k in done]


def _max(w: dict[str, Any], name: str, v: float) -> None:
    if v == v:
        cur = w[name]
        if cur is None or v > cur:
            w[name] = v


def _clean(v: float | None) -> float:
    """`aggregate`'s last step: inf -> 1e9, nan/None -> 0."""
    if v is None or v != v:
        return 0.0
    return 1e9 if v == math.inf else float(v)


def _row(k: tuple[str, str, int], w: dict[str, Any]) -> dict[str, Any]:
    req = w["requests"]
    out: dict[str, Any] = {"account": k[0], "key": k[1], "minute": k[2]}
    vals = {n: w[n] for n in _SUMS} | {n: w[n] for n in _MAXES}
    vals["distinct_ips"] = float(len(w["_ips"]))
    vals["distinct_endpoints"] = float(len(w["_eps"]))
    vals["untapped_orders"] = max(vals["stream_orders"] - vals["accepted_orders"], 0.0)
    vals["untapped_1h"] = 0.0
    vals["failure_ratio"] = w["failures"] / req if req > 0 else None
    vals["order_share"] = w["order_requests"] / req if req > 0 else None
    for f in FEATURES:
        out[f] = _clean(vals[f])
    return out
