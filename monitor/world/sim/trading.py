"""Trading endpoints beyond place/query/cancel: order/test, cancel-all, cancel-replace,
order lists (OCO, OTO, OTOCO, the deprecated order/oco) and the account's commission rates.

Weights and unfilled order counts are those of binance-wire-2.md section 2.2. Every call
here that changes orders costs 0 weight when it succeeds (SD CHANGELOG 2026-03-27), the
same as POST /api/v3/order. Successful placements send the X-MBX-ORDER-COUNT headers.
"""

from __future__ import annotations

from monitor.world.sim import errors, orderlists
from monitor.world.sim.endpoint import READ, TRADE, Ctx, Endpoint, fixed
from monitor.world.sim.errors import ApiError
from monitor.world.sim.orderparams import client_id, enum, integer, symbol_spec
from monitor.world.sim.state import Order, OrderList
from monitor.world.sim.views import (
    cancel_view,
    commission_view,
    new_order_view,
    order_commission_view,
    order_list_view,
)

DAY_MS = 24 * 3600 * 1000


def _count_orders(ctx: Ctx, n: int) -> None:
    """Add `n` to the account's unfilled order count and report it in the headers."""
    ex, name = ctx.ex, ctx.account.name
    for _ in range(n):
        ex.limits.count_order(name, ex.now_ms())
    c10, c1d = ex.limits.order_counts(name, ex.now_ms())
    ctx.headers["X-MBX-ORDER-COUNT-10S"] = str(c10)
    ctx.headers["X-MBX-ORDER-COUNT-1D"] = str(c1d)


def _label(ctx: Ctx) -> str:
    assert ctx.key is not None
    return ctx.key.label


def h_order_test(ctx: Ctx) -> object:
    """Every check a real order gets at the API, nothing booked (rest-api.md: the test order
    is "not sent into the matching engine", so balance and book checks are not run)."""
    ctx.ex.engine.draft(ctx.params)
    if enum(ctx.params, "computeCommissionRates", ("true", "false"), "false") == "true":
        return order_commission_view()
    return {}


def h_cancel_all(ctx: Ctx) -> object:
    acct = ctx.account
    cancel_id = client_id(ctx.params, "newClientOrderId", "newClientOrderId")
    out: list[object] = []
    for item in ctx.ex.engine.cancel_all(acct, ctx.params, cancel_id):
        if isinstance(item, Order):
            out.append(cancel_view(item, cancel_id))
        else:
            out.append(_list_cancel_view(ctx, item, cancel_id))
    return out


def _list_cancel_view(ctx: Ctx, lst: OrderList, cancel_id: str) -> dict[str, object]:
    orders = ctx.account.orders
    reports = [cancel_view(orders[oid], cancel_id) for oid in lst.order_ids
               if orders[oid].status == "CANCELED"]
    return order_list_view(lst, orders, reports)


def h_cancel_replace(ctx: Ctx) -> object:
    """Cancel one order, then place another, answering by the rest-api.md matrix.

    The new order's API-side checks (parameters, filters) and the order count come first, so
    they fail the whole request without cancelling anything. The count grows by 1 even when
    the new order is NOT_ATTEMPTED. SIMULATOR CHOICE where the doc's table is ambiguous: with
    orderRateLimitExceededMode=CANCEL_ONLY and the count exceeded, the cancel is still tried
    and the new order fails with the -1015. The answer is then 409, or 400 if the cancel
    failed too.
    """
    p, ex, acct = ctx.params, ctx.ex, ctx.account
    mode = enum(p, "cancelReplaceMode", ("STOP_ON_FAILURE", "ALLOW_FAILURE"))
    rate_mode = enum(p, "orderRateLimitExceededMode", ("DO_NOTHING", "CANCEL_ONLY"),
                     "DO_NOTHING")
    if p.get("cancelRestrictions") and p["cancelRestrictions"] not in (
            "ONLY_NEW", "ONLY_PARTIALLY_FILLED"):
        raise errors.invalid_cancel_restrictions()
    integer(p, "cancelOrderId")
    if not p.get("cancelOrderId") and not p.get("cancelOrigClientOrderId"):
        raise errors.missing_either("cancelOrigClientOrderId", "cancelOrderId")
    draft = ex.engine.draft(p)
    over: ApiError | None = None
    try:
        ex.limits.check_orders(acct.name, ex.now_ms())
        _count_orders(ctx, 1)
    except ApiError as err:
        if rate_mode == "DO_NOTHING":
            raise
        over = err
    cancel_id = client_id(p, "cancelNewClientOrderId", "cancelNewClientOrderId")
    cancel_params = {"symbol": p.get("symbol") or "", "orderId": p.get("cancelOrderId") or "",
                     "origClientOrderId": p.get("cancelOrigClientOrderId") or "",
                     "newClientOrderId": cancel_id,
                     "cancelRestrictions": p.get("cancelRestrictions") or ""}
    cancel_ok, cancel_resp = True, {}
    try:
        cancel_resp = cancel_view(ex.engine.cancel(acct, cancel_params), cancel_id)
    except ApiError as err:
        cancel_ok, cancel_resp = False, err.body()
    if not cancel_ok and mode == "STOP_ON_FAILURE":
        raise errors.cancel_replace_failed({
            "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
            "cancelResponse": cancel_resp, "newOrderResponse": None})
    new_ok, new_resp = False, over.body() if over is not None else {}
    if over is None:
        before = len(acct.trades)
        try:
            order = ex.engine.place_draft(acct, draft, _label(ctx), ctx.ip)
            new_ok = True
            new_resp = new_order_view(order, acct.trades[before:], draft.resp_type,
                                      order.time_ms)
        except ApiError as err:
            new_resp = err.body()
    body: dict[str, object] = {
        "cancelResult": "SUCCESS" if cancel_ok else "FAILURE",
        "newOrderResult": "SUCCESS" if new_ok else "FAILURE",
        "cancelResponse": cancel_resp, "newOrderResponse": new_resp}
    if cancel_ok and new_ok:
        return body
    if cancel_ok or new_ok:
        raise errors.cancel_replace_partial(body)
    raise errors.cancel_replace_failed(body)


def _list_answer(ctx: Ctx, lst: OrderList, orders: list[Order], n: int) -> object:
    _count_orders(ctx, n)
    resp = ctx.params.get("newOrderRespType") or orderlists.LIST_RESP_DEFAULT
    reports = [new_order_view(o, [], resp, lst.transaction_ms) for o in orders]
    return order_list_view(lst, ctx.account.orders, reports)


def _check_count(ctx: Ctx) -> None:
    ctx.ex.limits.check_orders(ctx.account.name, ctx.ex.now_ms())


def h_oco(ctx: Ctx) -> object:
    _check_count(ctx)
    lst, orders = orderlists.place_oco(ctx.ex.engine, ctx.account, ctx.params, _label(ctx),
                                       ctx.ip)
    return _list_answer(ctx, lst, orders, 2)


def h_legacy_oco(ctx: Ctx) -> object:
    _check_count(ctx)
    lst, orders = orderlists.place_legacy_oco(ctx.ex.engine, ctx.account, ctx.params,
                                              _label(ctx), ctx.ip)
    return _list_answer(ctx, lst, orders, 2)


def h_oto(ctx: Ctx) -> object:
    _check_count(ctx)
    lst, reports = orderlists.place_oto(ctx.ex.engine, ctx.account, ctx.params, _label(ctx),
                                        ctx.ip)
    _count_orders(ctx, 2)
    return order_list_view(lst, ctx.account.orders, reports)


def h_otoco(ctx: Ctx) -> object:
    _check_count(ctx)
    lst, reports = orderlists.place_otoco(ctx.ex.engine, ctx.account, ctx.params, _label(ctx),
                                          ctx.ip)
    _count_orders(ctx, 3)
    return order_list_view(lst, ctx.account.orders, reports)


def h_cancel_list(ctx: Ctx) -> object:
    symbol_spec(ctx.params)
    lst = orderlists.find_list(ctx.account, ctx.params, "listClientOrderId", cancel=True)
    cancel_id = client_id(ctx.params, "newClientOrderId", "newClientOrderId")
    orderlists.cancel_list(ctx.ex.engine, ctx.account, lst, cancel_id)
    return _list_cancel_view(ctx, lst, cancel_id)


def h_get_list(ctx: Ctx) -> object:
    lst = orderlists.find_list(ctx.account, ctx.params, "origClientOrderId", cancel=False)
    return order_list_view(lst, ctx.account.orders)


def h_all_lists(ctx: Ctx) -> object:
    """Oldest first, as rest-api.md's general rule says (its example happens to list newest
    first). `fromId` excludes startTime/endTime; a time window spans at most 24 hours."""
    p = ctx.params
    from_id, start, end = integer(p, "fromId"), integer(p, "startTime"), integer(p, "endTime")
    if from_id is not None and (start is not None or end is not None):
        raise errors.bad_param_combo()
    if start is not None and end is not None and end - start > DAY_MS:
        raise errors.lookup_too_long(24)
    limit = integer(p, "limit") or 500
    if not 1 <= limit <= 1000:
        raise errors.bad_value("limit")
    lists = sorted(ctx.account.order_lists.values(), key=lambda x: x.order_list_id)
    if from_id is not None:
        lists = [x for x in lists if x.order_list_id >= from_id]
    if start is not None:
        lists = [x for x in lists if x.transaction_ms >= start]
    if end is not None:
        lists = [x for x in lists if x.transaction_ms <= end]
    picked = lists[:limit] if (from_id is not None or start is not None) else lists[-limit:]
    return [order_list_view(x, ctx.account.orders) for x in picked]


def h_open_lists(ctx: Ctx) -> object:
    return [order_list_view(x, ctx.account.orders)
            for x in sorted(ctx.account.order_lists.values(), key=lambda x: x.order_list_id)
            if x.order_status == "EXECUTING"]


def h_commission(ctx: Ctx) -> object:
    return commission_view(symbol_spec(ctx.params).symbol)


def _test_weight(params: dict[str, str]) -> int:
    return 20 if params.get("computeCommissionRates") == "true" else 1


ENDPOINTS: list[Endpoint] = [
    Endpoint("POST", "/api/v3/order/test", _test_weight, TRADE, h_order_test),
    Endpoint("DELETE", "/api/v3/openOrders", fixed(1), TRADE, h_cancel_all,
             zero_on_success=True),
    Endpoint("POST", "/api/v3/order/cancelReplace", fixed(1), TRADE, h_cancel_replace,
             zero_on_success=True),
    Endpoint("POST", "/api/v3/orderList/oco", fixed(1), TRADE, h_oco, zero_on_success=True),
    Endpoint("POST", "/api/v3/orderList/oto", fixed(1), TRADE, h_oto, zero_on_success=True),
    Endpoint("POST", "/api/v3/orderList/otoco", fixed(1), TRADE, h_otoco,
             zero_on_success=True),
    Endpoint("POST", "/api/v3/order/oco", fixed(1), TRADE, h_legacy_oco, zero_on_success=True),
    Endpoint("DELETE", "/api/v3/orderList", fixed(1), TRADE, h_cancel_list,
             zero_on_success=True),
    Endpoint("GET", "/api/v3/orderList", fixed(4), READ, h_get_list),
    Endpoint("GET", "/api/v3/allOrderList", fixed(20), READ, h_all_lists),
    Endpoint("GET", "/api/v3/openOrderList", fixed(6), READ, h_open_lists),
    Endpoint("GET", "/api/v3/account/commission", fixed(20), READ, h_commission),
]
