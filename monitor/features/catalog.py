"""Every derived fact and every window feature, declared once; both paths are driven from here.

- Facts, in `ENRICH` order: each `Fact(name, doc, ...)` is computed by an expression over its
  row (`expr=`, from `expr` and `arith`; earlier facts included) or, when it needs history, by
  one of `history`'s kinds (`how=`: `Lookup`, `FirstValue`, `FirstSighting`, `LastValue`,
  `RunningMean`, `RunningCount`), whose state `FeatureState.facts` keeps under the fact's name.
  `history.Facts` groups them into steps and generates both forms; `_name` facts are scratch.
  Only `attribution` (provenance, a state machine) is a hand-written step.
- `WINDOWS`: the one-minute features per (account, key) in their published order (rules and
  the forest read them by name): a name, a reducer (`reducers`) and the rows it reads (a mask).

`replay` (vectorised), `live` (one event at a time) and `context` (`Rolling` features) read
these declarations and nothing else; `FEATURES`, `FACTS` and `DERIVED_FIELDS` (what rules may
test) are computed from them. Adding a window feature is one `Window(...)` line here plus its
test, and adding a derived fact, with history or not, one `Fact(...)` line plus its test
(tests/features prove live == replay for every name listed here, with no edit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitor.core.framecodes import quote_base, trading_status
from monitor.features.arith import Apply, AtLeastOf, Col, Const, Div, Eq, Ge, Gt, Mul, Sub, Where
from monitor.features.attribution import Attribution
from monitor.features.base import (
    ACCOUNT_ROW,
    CODE_CLASS,
    CONTEXT_MINUTES,
    FAIL_CLASSES,
    MINUTE_MS,
    NEW_VALUE_FIELDS,
    ORDER_ENDPOINTS,
    STATUS_CLASS,
    Fact,
    FeatureContext,
    StepMaker,
)
from monitor.features.expr import (
    AtLeast,
    Classify,
    Flag,
    FloorTo,
    In,
    IsFalse,
    Known,
    Present,
)
from monitor.features.history import (
    Facts,
    FirstSighting,
    FirstValue,
    LastValue,
    Lookup,
    RunningCount,
    RunningMean,
)
from monitor.features.reducers import Count, Distinct, Excess, Max, Ratio, Reducer, Rolling, Sum

TAPPED = In("source", ("tap", "log")) & In("kind", ("request", "reject"))
FAILED = Flag("failed")

ROW_FACTS = Facts("row facts", (
    Fact("minute", "start of the event's one-minute window (ms)", expr=FloorTo("ts", MINUTE_MS)),
    Fact("tapped", "a request the tap or the access log recorded", public=True, expr=TAPPED),
    Fact("is_new_order", "an exchange report of a new order (stream or REST)",
         expr=In("source", ("stream", "rest")) & In("kind", ("order",))
         & In("exec_type", ("NEW",))),
    Fact("failed", "a tapped request that failed: HTTP >= 400, a Binance code, or a reject",
         expr=Flag("tapped") & (AtLeast("status", 400) | Present("code")
                                | In("kind", ("reject",)))),
    Fact("fclass", "why it failed: ok | auth | timestamp | rate | balance | filter | other",
         public=True, expr=Classify(FAILED, CODE_CLASS, STATUS_CLASS)),
    Fact("is_order_req", "a tapped order placement (or a rejected order)", public=True,
         expr=Flag("tapped") & (In("kind", ("reject",)) | (
             In("method", ("POST",)) & In("endpoint", ORDER_ENDPOINTS)))),
    Fact("accepted_order", "a tapped order placement that did not fail", public=True,
         expr=Flag("is_order_req") & ~FAILED),
))

# facts with history (`history`: each `how` holds both forms over its own state) -------------
HAS_KEY = ~In("wkey", (ACCOUNT_ROW,))  # a key's row, not the account row
TAPPED_ONLY = ("ip", "endpoint")  # first sightings counted on tapped calls only

WHITELIST = Facts("whitelist", (
    Fact("ip_whitelisted", "the caller's address against the key's declared whitelist: "
                           "True/False, None when none is declared", public=True,
         how=Lookup(FeatureContext.whitelisted, ("account", "wkey", "ip"),
                    when=Flag("tapped") & Known("ip"), with_ctx=True)),
))

FIRST_SEEN = Facts("first seen", (
    Fact("key_first_ts", "when this (account, key) was first seen (ms; -1: account row)",
         how=FirstValue("ak", "ts", when=HAS_KEY, default=-1)),
    *(Fact(f"first_{f}", f"first sighting ever of this {f} for this (account, key)",
           how=FirstSighting(("account", "wkey", f), when=(
               HAS_KEY & Known(f) & Flag("tapped") if f in TAPPED_ONLY else HAS_KEY & Known(f))))
      for f in NEW_VALUE_FIELDS),
))

# Notional of a tapped order that carries none (a MARKET order by quantity, refused or answered
# with ACK): its quantity at the symbol's last price the exchange reported before it, in event
# order: the account's fills and the poller's `price` events (ticker/price of the watched
# symbols), never a caller's limit price, which an attacker chooses. No price yet: unknown.
PRICE_ORDERS = Facts("price orders", (
    Fact("ref_price", "the exchange price an unpriced order was valued at", public=True,
         how=LastValue("price", ("symbol",),
                       update=In("kind", ("fill", "price")) & Known("symbol")
                       & Gt(Col("price"), Const(0.0)),
                       read=Flag("is_order_req") & ~Present("notional")
                       & Gt(Col("qty"), Const(0.0)) & Known("symbol"))),
    Fact("notional", "an unpriced order's notional: qty * ref_price", rewrite=True,
         expr=Where(Present("ref_price"), Mul(Col("qty"), Col("ref_price")), Col("notional"))),
))

OWN_ORDER = ((Flag("accepted_order") | (Flag("is_new_order") & ~Flag("foreign")))
             & Present("notional") & HAS_KEY)  # an order of the key's own, priced

ORDER_SIZES = Facts("order sizes", (
    Fact("usual_notional", "mean notional of the key's own earlier orders", public=True,
         how=RunningMean("ak", "notional", include=OWN_ORDER)),
    Fact("notional_to_usual", "this order's notional / usual_notional", public=True,
         expr=Div(Col("notional"), Col("usual_notional"))),
))


def spent_asset(symbol: str | None, side: str | None) -> str | None:
    """The asset an order on `symbol` spends: the base when it sells, else the quote."""
    quote, base = quote_base(symbol)
    return base if side == "SELL" else quote


REJECTED_PRICED = Flag("is_order_req") & ~In("fclass", ("ok",)) & Present("notional")
FREE = Col("free_value")

# Free balance (in quote) of the asset a rejected order would have spent: the last balance
# update for it that came before the reject, in event order (the state holds earlier ones).
REJECT_VS_BALANCE = Facts("reject vs balance", (
    Fact("_free", "free balance of the asset a rejected order spends, before it (its units)",
         how=LastValue("free", ("account", "asset"),
                       update=In("kind", ("balance",)) & Known("asset"), read=REJECTED_PRICED,
                       read_key=("account", Apply(spent_asset, ("symbol", "side"))))),
    Fact("free_value", "free balance of the asset a rejected order needed, in quote",
         public=True, expr=Mul(Col("_free"), Where(In("side", ("SELL",)),
                                                   Div(Col("notional"), Col("qty")),
                                                   Const(1.0)))),
    Fact("notional_to_free", "a rejected order's notional / free_value (inf: none free)",
         public=True, expr=Where(Gt(FREE, Const(0.0)), Div(Col("notional"), FREE),
                                 Where(Eq(FREE, Const(0.0)) & Gt(Col("notional"), Const(0.0)),
                                       Const(math.inf), Const(math.nan)))),
))

# At each usage poll: the account's order-counter growth since the last poll, minus the orders
# the tapped bots placed in between.
POLL = In("kind", ("usage",)) & Present("orders_1d")
LAST_1D = Col("_last_orders_1d")

COUNTER_GROWTH = Facts("counter growth", (
    Fact("_bots", "tapped orders the account's bots placed so far",
         how=RunningCount("account", Flag("accepted_order"))),
    Fact("_last_orders_1d", "the account's order counter at its previous poll",
         how=LastValue("orders_1d", ("account",), update=POLL, read=POLL)),
    Fact("_last_bots", "`_bots` at the previous poll",
         how=LastValue("_bots", ("account",), update=POLL, read=POLL)),
    Fact("orders_1d_growth", "growth of the account's order counter since the last poll",
         expr=Where(Present("_last_orders_1d"),
                    Where(Ge(Col("orders_1d"), LAST_1D), Sub(Col("orders_1d"), LAST_1D),
                          Col("orders_1d")), Const(0.0))),
    Fact("unexplained_orders", "that growth minus the orders tapped bots placed",
         expr=Where(Present("_last_orders_1d"), AtLeastOf(
             Sub(Col("orders_1d_growth"), Sub(Col("_bots"), Col("_last_bots"))), 0.0),
             Const(0.0))),
))


def trading_ratio(raw: str) -> float:
    return trading_status(raw)[0]


def trading_locked(raw: str) -> bool:
    return trading_status(raw)[1]


STATUS_POLL = In("kind", ("usage",)) & Known("raw")  # each text parsed once (256 kept)

TRADING_STATUS = Facts("trading status", (
    Fact("trading_ratio", "apiTradingStatus: the highest indicator/trigger ratio", public=True,
         how=Lookup(trading_ratio, ("raw",), when=STATUS_POLL, default=0.0, bound=256)),
    Fact("trading_locked", "apiTradingStatus: the account is locked from trading", public=True,
         how=Lookup(trading_locked, ("raw",), when=STATUS_POLL, default=False, bound=256)),
))

ENRICH: tuple[StepMaker, ...] = (ROW_FACTS, Attribution, WHITELIST, FIRST_SEEN, PRICE_ORDERS,
                                 ORDER_SIZES, REJECT_VS_BALANCE, COUNTER_GROWTH, TRADING_STATUS)


@dataclass(frozen=True)
class Window:
    name: str
    reducer: Reducer
    doc: str = ""


OWN_NEW = Flag("is_new_order") & ~Flag("foreign")  # a new order the stream says a bot placed
REJECTED = Flag("is_order_req") & FAILED

WINDOWS: tuple[Window, ...] = (
    Window("requests", Count(Flag("tapped")), "tapped requests"),
    Window("weight_max", Max("weight_1m", Flag("tapped")), "highest used request weight"),
    Window("order_requests", Count(Flag("is_order_req")), "tapped order placements"),
    Window("accepted_orders", Count(Flag("accepted_order")), "tapped placements that passed"),
    Window("stream_orders", Count(OWN_NEW), "new orders the stream reported for the key"),
    Window("untapped_orders", Excess("stream_orders", "accepted_orders"),
           "orders the stream reported that the tap never saw"),
    Window("fills", Count(In("kind", ("fill",)))),
    Window("rejects", Count(REJECTED), "failed order placements"),
    *(Window(f"fail_{c}", Count(FAILED & In("fclass", (c,))), f"failures of class {c}")
      for c in FAIL_CLASSES),
    Window("failures", Count(FAILED)),
    Window("failure_ratio", Ratio("failures", "requests")),
    Window("distinct_ips", Distinct("ip", Flag("tapped"))),
    Window("new_ips", Count(Flag("first_ip")), "addresses the key was never seen from"),
    Window("off_whitelist_ips", Count(Flag("first_ip") & IsFalse("ip_whitelisted"))),
    Window("max_reject_notional", Max("notional", REJECTED)),
    Window("reject_to_free", Max("notional_to_free", REJECTED)),
    Window("reject_to_usual", Max("notional_to_usual", REJECTED)),
    Window("max_order_to_usual", Max("notional_to_usual", Flag("accepted_order") | OWN_NEW)),
    Window("foreign_orders", Count(Flag("foreign")), "new orders no registered bot placed"),
    Window("orders_10s_max", Max("orders_10s")),
    Window("orders_1d_growth", Sum("orders_1d_growth")),
    Window("unexplained_orders", Sum("unexplained_orders")),
    Window("distinct_endpoints", Distinct("endpoint", Flag("tapped"))),
    Window("order_share", Ratio("order_requests", "requests")),
    Window("new_symbols", Count(Flag("first_symbol"))),
    Window("withdrawals", Count(In("kind", ("withdrawal",)))),
    Window("stream_problems", Count(In("kind", ("stream_status",)))),
    Window("untapped_1h", Rolling("untapped_orders", CONTEXT_MINUTES),
           "untapped orders in the key's last hour"),
)

FEATURES: tuple[str, ...] = tuple(w.name for w in WINDOWS)
FACTS: tuple[Fact, ...] = tuple(f for step in ENRICH for f in step.facts)
DERIVED_FIELDS: tuple[str, ...] = tuple(f.name for f in FACTS if f.public)
