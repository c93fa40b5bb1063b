"""Every derived fact and every window feature, declared once; both paths are driven from here.

- `ROW_FACTS`: per-event facts that need nothing but the event (an expression each, `expr`).
- `ENRICH`: the steps that add the per-event facts, in order; the facts with history live in
  `history`, `polls` and `attribution`, each step holding both forms of its definition.
- `WINDOWS`: the one-minute features per (account, key) in their published order (rules and
  the forest read them by name): a name, a reducer (`reducers`) and the rows it reads (a mask).

`replay.enrich`/`replay.aggregate` (vectorised) and `live.LiveFeatures` (one event at a time)
read these tuples and nothing else; `FEATURES`, `FACTS` and `DERIVED_FIELDS` (what rules may
test) are computed from them. Adding a window feature is one `Window(...)` line here plus its
test; a row fact one `Fact(...)` line; a fact with history one step class in `history`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pandas as pd

from monitor.features.attribution import Attribution
from monitor.features.base import (
    CODE_CLASS,
    CONTEXT_MINUTES,
    FAIL_CLASSES,
    MINUTE_MS,
    ORDER_ENDPOINTS,
    STATUS_CLASS,
    Fact,
    FeatureContext,
    FeatureState,
    Row,
    Step,
)
from monitor.features.expr import (
    AtLeast,
    Classify,
    Flag,
    FloorTo,
    In,
    IsFalse,
    Present,
    compile_rows,
)
from monitor.features.history import (
    FirstSeen,
    OrderSizes,
    PriceOrders,
    RejectVsBalance,
    Whitelist,
)
from monitor.features.polls import CounterGrowth, TradingStatus
from monitor.features.provenance import Verdict
from monitor.features.reducers import Count, Distinct, Excess, Max, Ratio, Reducer, Rolling, Sum

TAPPED = In("source", ("tap", "log")) & In("kind", ("request", "reject"))
FAILED = Flag("failed")

ROW_FACTS: tuple[Fact, ...] = (
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
)


class RowFacts:
    """The step computing `ROW_FACTS`: each expression vectorised, or compiled for one row."""

    facts: ClassVar[tuple[Fact, ...]] = ROW_FACTS

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        self.row = compile_rows(  # type: ignore[method-assign,assignment]
            [(f.name, f.expr) for f in ROW_FACTS if f.expr is not None], "row_facts")

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        for f in ROW_FACTS:
            assert f.expr is not None
            df[f.name] = f.expr.values(df)
        return df

    def row(self, r: Row, verdict: Verdict | None) -> None:
        """Replaced per instance by the function compiled from `ROW_FACTS`."""
        raise NotImplementedError


ENRICH: tuple[type[Step], ...] = (RowFacts, Attribution, Whitelist, FirstSeen, PriceOrders,
                                  OrderSizes, RejectVsBalance, CounterGrowth, TradingStatus)


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
