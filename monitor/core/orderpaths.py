"""The order endpoints, declared once: what each one does to orders and where its answer says so.

The tap and the log tailer record calls to these endpoints; the features match the account's
execution reports to those records (provenance: an order the tap saw a registered key place is
that key's, whatever its clientOrderId). Each entry names the actions a successful call takes
(`new`: an order now exists, `cancel`: an order is gone) and `answer_ids` reads, from Binance's
ANSWER, which orders those were: `(action, symbol, orderId, clientOrderId)`. The ids come from
the answer, not the request, because only the answer proves the exchange did it (a refused
cancel answers `{"code": -2011}` and names no order).

`places` marks the placements that count as order requests in the features (the rejected-order
signals): single new orders and their test twins, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NEW, CANCEL = "new", "cancel"
OrderIds = tuple[str, str | None, int | None, str | None]  # action, symbol, orderId, clientOrderId


@dataclass(frozen=True)
class OrderEndpoint:
    method: str
    path: str
    actions: tuple[str, ...]  # what a successful call does; () for test orders
    places: bool = False  # an order placement for the request features (is_order_req)
    shape: str = "order"  # how the answer names the orders: order|replace|list|many


ORDER_ENDPOINT_LIST: tuple[OrderEndpoint, ...] = (
    OrderEndpoint("POST", "/api/v3/order", (NEW,), places=True),
    OrderEndpoint("POST", "/api/v3/order/test", (), places=True),
    OrderEndpoint("POST", "/api/v3/sor/order", (NEW,), places=True),
    OrderEndpoint("POST", "/api/v3/sor/order/test", (), places=True),
    OrderEndpoint("DELETE", "/api/v3/order", (CANCEL,)),
    OrderEndpoint("POST", "/api/v3/order/cancelReplace", (CANCEL, NEW), shape="replace"),
    OrderEndpoint("POST", "/api/v3/orderList/oco", (NEW,), shape="list"),
    OrderEndpoint("POST", "/api/v3/orderList/oto", (NEW,), shape="list"),
    OrderEndpoint("POST", "/api/v3/orderList/otoco", (NEW,), shape="list"),
    OrderEndpoint("POST", "/api/v3/order/oco", (NEW,), shape="list"),  # deprecated OCO
    OrderEndpoint("DELETE", "/api/v3/orderList", (CANCEL,), shape="list"),
    OrderEndpoint("DELETE", "/api/v3/openOrders", (CANCEL,), shape="many"),
)
ORDER_ENDPOINTS: dict[tuple[str, str], OrderEndpoint] = {
    (e.method, e.path): e for e in ORDER_ENDPOINT_LIST}
# POST paths of single placements (order requests, rejects): the tap's and features' old lists
PLACEMENT_PATHS: tuple[str, ...] = tuple(e.path for e in ORDER_ENDPOINT_LIST if e.places)
# endpoints whose answer can name several orders: the recorder keeps them all in raw["ids"]
MULTI_SHAPES = frozenset({"replace", "list", "many"})


def endpoint(method: str | None, path: str | None) -> OrderEndpoint | None:
    if method is None or path is None:
        return None
    return ORDER_ENDPOINTS.get((method.upper(), path.split("?")[0]))


def is_placement(method: str | None, path: str | None) -> bool:
    ep = endpoint(method, path)
    return ep is not None and ep.places


def rejected_placement(method: str | None, path: str | None, status: int,
                       code: int | None) -> bool:
    """A placement Binance refused: an HTTP error, or a nonzero Binance code in the answer.

    The one reject rule the tap and the log readers apply when they record a call (its event
    is then kind `reject`, and the features count it as a failed order request)."""
    return is_placement(method, path) and (status >= 400 or bool(code))


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) and v else None


def _one(action: str, o: Mapping[str, Any], symbol: str | None) -> OrderIds | None:
    """One order object of an answer -> its ids (a cancel's own id is its origClientOrderId)."""
    oid = _int(o.get("orderId"))
    cid = _str(o.get("origClientOrderId")) if action == CANCEL else None
    cid = cid or _str(o.get("clientOrderId"))
    if oid is None and cid is None:
        return None
    return (action, _str(o.get("symbol")) or symbol, oid, cid)


def _list(action: str, o: Mapping[str, Any], symbol: str | None) -> list[OrderIds]:
    """An order list answer: its orderReports (full) or else its orders (ids only)."""
    reports = o.get("orderReports")
    items = reports if isinstance(reports, list) and reports else o.get("orders")
    out = []
    for it in items if isinstance(items, list) else []:
        if isinstance(it, Mapping) and (got := _one(action, it, symbol)) is not None:
            out.append(got)
    return out


def answer_ids(method: str | None, path: str | None, params: Mapping[str, Any],
               answer: Any) -> list[OrderIds]:
    """The orders a call to an order endpoint placed or cancelled, as its answer names them.

    Empty for anything else, for test orders and for error answers (a cancel-replace whose new
    order failed still names the cancelled one: Binance puts both halves under `data`).
    """
    ep = endpoint(method, path)
    if ep is None or not ep.actions:
        return []
    symbol = _str(params.get("symbol"))
    if isinstance(answer, Mapping) and ep.shape == "replace" and isinstance(
            answer.get("data"), Mapping):
        answer = answer["data"]
    if ep.shape == "many":
        out: list[OrderIds] = []
        for it in answer if isinstance(answer, list) else []:
            if not isinstance(it, Mapping):
                continue
            if "orderReports" in it or "orders" in it:
                out += _list(CANCEL, it, symbol)
            elif (got := _one(CANCEL, it, symbol)) is not None:
                out.append(got)
        return out
    if not isinstance(answer, Mapping) or answer.get("code"):
        return []
    if ep.shape == "order":
        got = _one(ep.actions[0], answer, symbol)
        return [got] if got is not None else []
    if ep.shape == "list":
        return _list(ep.actions[0], answer, symbol)
    out = []
    for action, part in ((CANCEL, "cancelResponse"), (NEW, "newOrderResponse")):
        sub = answer.get(part)
        if isinstance(sub, Mapping) and not sub.get("code"):
            if (got := _one(action, sub, symbol)) is not None:
                out.append(got)
    return out


def record_ids(method: str | None, path: str | None, symbol: str | None, order_id: Any,
               client_order_id: str | None, raw: str | None) -> list[OrderIds]:
    """The ids a tap or log record carries: raw["ids"] for multi-order answers, else the
    event's own order_id / client_order_id under the endpoint's one action."""
    ep = endpoint(method, path)
    if ep is None or not ep.actions:
        return []
    if ep.shape in MULTI_SHAPES or raw is not None and '"ids"' in raw:
        try:
            got = json.loads(raw) if raw else {}
        except ValueError:
            got = {}
        ids = got.get("ids") if isinstance(got, dict) else None
        if isinstance(ids, list):
            out = []
            for it in ids:
                if (isinstance(it, list) and len(it) == 4 and it[0] in (NEW, CANCEL)):
                    out.append((it[0], _str(it[1]), _int(it[2]), _str(it[3])))
            return out
        if ep.shape in MULTI_SHAPES:
            return []
    oid = None if order_id is None or order_id != order_id else int(order_id)
    cid = client_order_id if isinstance(client_order_id, str) and client_order_id else None
    if oid is None and cid is None:
        return []
    return [(ep.actions[0], symbol if isinstance(symbol, str) else None, oid, cid)]
