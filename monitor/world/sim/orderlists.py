"""Order lists (OCO, OTO, OTOCO): placing them, linking their legs, and their listStatus events.

Each placement runs its legs through `orderparams` (one prefixed parameter set per leg). The
OCO rules of rest-api.md come next: which leg may sit above or below, and above level > last
price > below level. The engine's -2010 checks and the balance come last. Nothing is booked
until every check has passed.

Lifecycle, as SIMULATOR CHOICEs where Binance is silent:
- events at placement: one executionReport per leg (x=NEW; a pending leg X=PENDING_NEW), then
  listStatus EXEC_STARTED/EXECUTING, then outboundAccountPosition.
- an OCO pair locks its funds once, on one leg. The leg that triggers or fills takes the lock.
  When one leg triggers or fills, the other is EXPIRED (eR OCO_TRIGGER).
- an OTO's pending legs lock nothing until the working leg is FILLED. They then lock, become NEW
  (an executionReport each, then listStatus UPDATED) and start to work. If the funds are gone
  by then, they are EXPIRED (eR REJECTED).
- the list is ALL_DONE, with one listStatus, once no leg is active. Cancelling any leg cancels
  the whole list.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING

from monitor.world.sim import errors
from monitor.world.sim.market import ORDER_TYPES, SYMBOLS
from monitor.world.sim.orderparams import (
    Draft,
    Lock,
    client_id,
    integer,
    lock_for,
    symbol_spec,
)
from monitor.world.sim.state import Account, Order, OrderList, lookup
from monitor.world.sim.views import new_order_view

if TYPE_CHECKING:
    from monitor.world.sim.engine import Engine

OCO_TYPES = ("LIMIT_MAKER", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
WORKING_TYPES = ("LIMIT", "LIMIT_MAKER")
LIST_RESP_DEFAULT = "RESULT"  # SIMULATOR CHOICE: the rest-api.md examples are RESULT-shaped
_LEG_FIELDS = {"type": "Type", "price": "Price", "stopPrice": "StopPrice",
               "timeInForce": "TimeInForce", "newClientOrderId": "ClientOrderId",
               "icebergQty": "IcebergQty", "trailingDelta": "TrailingDelta"}


def leg_params(params: Mapping[str, str], prefix: str, side: str, quantity: str
               ) -> tuple[dict[str, str], dict[str, str]]:
    """One leg's parameters under their plain names, plus plain name -> name as sent."""
    names = {plain: prefix + suffix for plain, suffix in _LEG_FIELDS.items()}
    names.update(side=side, quantity=quantity)
    out = {"symbol": params.get("symbol") or ""}
    out.update({plain: params[wire] for plain, wire in names.items() if wire in params})
    return out, names


def _leg(engine: Engine, params: Mapping[str, str], prefix: str, side: str, quantity: str,
         allowed: tuple[str, ...], bad_type: errors.ApiError) -> Draft:
    plain, names = leg_params(params, prefix, side, quantity)
    if plain.get("type") and plain["type"] not in allowed:
        raise bad_type
    return engine.draft(plain, names)


def _check_pair(side: str, above: Draft, below: Draft, px: Decimal) -> None:
    """rest-api.md OCO rules: where each leg may sit, then above > last price > below."""
    if side == "BUY":
        if above.type == "LIMIT_MAKER":
            raise errors.oco_leg_misplaced(-1165)
        if above.type.startswith("TAKE_PROFIT"):
            raise errors.oco_leg_misplaced(-1198)
        if below.type.startswith("STOP_LOSS"):
            raise errors.oco_leg_misplaced(-1196)
    else:
        if above.type.startswith("STOP_LOSS"):
            raise errors.oco_leg_misplaced(-1197)
        if below.type == "LIMIT_MAKER":
            raise errors.oco_leg_misplaced(-1166)
        if below.type.startswith("TAKE_PROFIT"):
            raise errors.oco_leg_misplaced(-1199)
    hi, lo = _level(above), _level(below)
    if not hi > px > lo:
        raise errors.order_rejected("The relationship of the prices for the orders is not correct.")


def _level(d: Draft) -> Decimal:
    """LIMIT_MAKER and TAKE_PROFIT_LIMIT are judged at their price, the rest at their stop."""
    level = d.price if d.type in ("LIMIT_MAKER", "TAKE_PROFIT_LIMIT") else d.stop_price
    assert level is not None  # parse_order required it for these types
    return level


def _pair_lock(engine: Engine, legs: list[Draft]) -> Lock:
    locks = [engine.lock_of(d) for d in legs]
    return locks[0][0], max(amount for _asset, amount in locks)


def _distinct_ids(account: Account, drafts: list[Draft], list_cid: str) -> None:
    ids = [d.client_order_id for d in drafts]
    if len(set(ids)) != len(ids) or any(
            lst.list_client_order_id == list_cid and lst.order_status == "EXECUTING"
            for lst in account.order_lists.values()):
        raise errors.duplicate_order()


def _stop_first(drafts: list[Draft]) -> list[Draft]:
    """Legs in the order the rest-api.md examples list them: the stop-loss leg first."""
    return sorted(drafts, key=lambda d: 0 if d.type.startswith("STOP_LOSS") else 1)


def _new_list(engine: Engine, account: Account, params: Mapping[str, str], contingency: str
              ) -> OrderList:
    spec = symbol_spec(params)
    cid = client_id(params, "listClientOrderId", "listClientOrderId")
    return OrderList(order_list_id=engine.books.order_list_id(), contingency_type=contingency,
                     list_client_order_id=cid, symbol=spec.symbol, order_ids=[],
                     transaction_ms=engine.now_ms())


def _book(engine: Engine, account: Account, lst: OrderList, drafts: list[Draft],
          locks: list[Lock], statuses: list[str], label: str, ip: str
          ) -> list[Order]:
    orders = []
    for d, lock, status in zip(drafts, locks, statuses, strict=True):
        order = engine.open(account, d, label, ip, lock=lock, list_id=lst.order_list_id,
                            status=status)
        lst.order_ids.append(order.order_id)
        orders.append(order)
    account.order_lists[lst.order_list_id] = lst
    for order in orders:
        engine.report(account, order, "NEW")
    emit_status(engine, account, lst)
    engine.position(account, [orders[0].locked_asset])
    return orders


def place_oco(engine: Engine, account: Account, params: Mapping[str, str], label: str,
              ip: str) -> tuple[OrderList, list[Order]]:
    """POST /api/v3/orderList/oco."""
    symbol_spec(params)
    side = params.get("side") or ""
    above = _leg(engine, params, "above", "side", "quantity", OCO_TYPES,
                 errors.oco_type_rejected())
    below = _leg(engine, params, "below", "side", "quantity", OCO_TYPES,
                 errors.oco_type_rejected())
    return _place_pair(engine, account, params, side, above, below, label, ip)


def place_legacy_oco(engine: Engine, account: Account, params: Mapping[str, str], label: str,
                     ip: str) -> tuple[OrderList, list[Order]]:
    """POST /api/v3/order/oco (deprecated): a LIMIT_MAKER leg at `price` and a STOP_LOSS leg
    at `stopPrice`, a STOP_LOSS_LIMIT one when `stopLimitPrice` is sent."""
    symbol_spec(params)
    side = params.get("side") or ""
    if params.get("stopLimitPrice") and not params.get("stopLimitTimeInForce"):
        raise errors.missing_param("stopLimitTimeInForce")
    base = {"symbol": params.get("symbol") or "", "side": side,
            "quantity": params.get("quantity") or ""}
    limit = {**base, "type": "LIMIT_MAKER", "price": params.get("price") or "",
             "newClientOrderId": params.get("limitClientOrderId") or "",
             "icebergQty": params.get("limitIcebergQty") or ""}
    stop = {**base, "type": "STOP_LOSS_LIMIT" if params.get("stopLimitPrice") else "STOP_LOSS",
            "stopPrice": params.get("stopPrice") or "", "price": params.get("stopLimitPrice") or "",
            "timeInForce": params.get("stopLimitTimeInForce") or "",
            "newClientOrderId": params.get("stopClientOrderId") or "",
            "icebergQty": params.get("stopIcebergQty") or ""}
    d_limit = engine.draft(limit, {"newClientOrderId": "limitClientOrderId",
                                   "icebergQty": "limitIcebergQty"})
    d_stop = engine.draft(stop, {"price": "stopLimitPrice", "timeInForce": "stopLimitTimeInForce",
                                 "newClientOrderId": "stopClientOrderId",
                                 "icebergQty": "stopIcebergQty"})
    above, below = (d_limit, d_stop) if side == "SELL" else (d_stop, d_limit)
    return _place_pair(engine, account, params, side, above, below, label, ip)


def _place_pair(engine: Engine, account: Account, params: Mapping[str, str], side: str,
                above: Draft, below: Draft, label: str, ip: str
                ) -> tuple[OrderList, list[Order]]:
    _check_pair(side, above, below, engine.price(above.symbol))
    lst = _new_list(engine, account, params, "OCO")
    legs = _stop_first([above, below])
    _distinct_ids(account, legs, lst.list_client_order_id)
    engine.check_counts(account, legs, lists=1)
    lock = _pair_lock(engine, legs)
    engine.admit(account, legs[0], lock)
    engine.admit(account, legs[1], None)
    orders = _book(engine, account, lst, legs, [lock, (lock[0], Decimal(0))], ["NEW", "NEW"],
                   label, ip)
    lst.pair = [o.order_id for o in orders]
    return lst, orders


def _working(engine: Engine, params: Mapping[str, str]) -> Draft:
    return _leg(engine, params, "working", "workingSide", "workingQuantity", WORKING_TYPES,
                errors.invalid_order_type())


def place_oto(engine: Engine, account: Account, params: Mapping[str, str], label: str,
              ip: str) -> tuple[OrderList, list[dict[str, object]]]:
    """POST /api/v3/orderList/oto; returns the list and the legs' placement-time snapshots."""
    symbol_spec(params)
    working = _working(engine, params)
    pending = _leg(engine, params, "pending", "pendingSide", "pendingQuantity", ORDER_TYPES,
                   errors.invalid_order_type())
    return _place_staged(engine, account, params, working, [pending], [], label, ip)


def place_otoco(engine: Engine, account: Account, params: Mapping[str, str], label: str,
                ip: str) -> tuple[OrderList, list[dict[str, object]]]:
    """POST /api/v3/orderList/otoco: a working leg, then an OCO pair once it is filled.

    SIMULATOR CHOICE: pendingBelowType is required (rest-api.md marks it optional, but an
    OTOCO without a below leg would be an OTO).
    """
    symbol_spec(params)
    working = _working(engine, params)
    if not params.get("pendingBelowType"):
        raise errors.missing_param("pendingBelowType")
    above = _leg(engine, params, "pendingAbove", "pendingSide", "pendingQuantity", OCO_TYPES,
                 errors.oco_type_rejected())
    below = _leg(engine, params, "pendingBelow", "pendingSide", "pendingQuantity", OCO_TYPES,
                 errors.oco_type_rejected())
    side = params.get("pendingSide") or ""
    _check_pair(side, above, below, _mid(above, below))
    pair = _stop_first([above, below])
    return _place_staged(engine, account, params, working, pair, pair, label, ip)


def _mid(above: Draft, below: Draft) -> Decimal:
    """SIMULATOR CHOICE: a pending pair is checked against the midpoint of its own levels,
    since the price when it will start to work is not known at placement."""
    return (_level(above) + _level(below)) / 2


def _place_staged(engine: Engine, account: Account, params: Mapping[str, str], working: Draft,
                  pending: list[Draft], pair: list[Draft], label: str, ip: str
                  ) -> tuple[OrderList, list[dict[str, object]]]:
    lst = _new_list(engine, account, params, "OTO")
    _distinct_ids(account, [working, *pending], lst.list_client_order_id)
    engine.check_counts(account, [working, *pending], lists=1)
    lock = engine.lock_of(working)
    engine.admit(account, working, lock)
    for d in pending:
        engine.admit(account, d, None, book=False)
    zero = [(engine.lock_of(d)[0], Decimal(0)) for d in pending]
    orders = _book(engine, account, lst, [working, *pending], [lock, *zero],
                   ["NEW", *["PENDING_NEW"] * len(pending)], label, ip)
    lst.working = orders[0].order_id
    lst.pending = [o.order_id for o in orders[1:]]
    lst.pair = lst.pending if pair else []
    resp = params.get("newOrderRespType") or LIST_RESP_DEFAULT
    snapshots = {o.order_id: new_order_view(o, [], resp, lst.transaction_ms) for o in orders[1:]}
    before = len(account.trades)
    engine.execute(account, orders[0])
    trades = [t for t in account.trades[before:] if t.order_id == orders[0].order_id]
    reports = [new_order_view(orders[0], trades, resp, lst.transaction_ms),
               *(snapshots[o.order_id] for o in orders[1:])]
    return lst, reports


# -- hooks the engine calls ---------------------------------------------------------------
def claim_lock(account: Account, order: Order) -> None:
    """The leg about to trade takes the funds its OCO pair locked once."""
    lst = account.order_lists.get(order.order_list_id)
    if lst is None or order.order_id not in lst.pair:
        return
    for oid in lst.pair:
        other = account.orders[oid]
        if oid != order.order_id and other.is_active and other.locked_amount:
            order.locked_amount += other.locked_amount
            other.locked_amount = Decimal(0)


def _expire_pair(engine: Engine, account: Account, lst: OrderList, order: Order) -> None:
    for oid in lst.pair:
        other = account.orders[oid]
        if oid != order.order_id and other.is_active:
            engine.expire(account, other, "OCO_TRIGGER")


def on_trigger(engine: Engine, account: Account, order: Order) -> None:
    lst = account.order_lists[order.order_list_id]
    if order.order_id in lst.pair:
        claim_lock(account, order)
        _expire_pair(engine, account, lst, order)


def after_change(engine: Engine, account: Account, order: Order) -> None:
    """A leg FILLED or EXPIRED: expire its OCO partner, start or drop the pending legs."""
    lst = account.order_lists[order.order_list_id]
    if order.status == "FILLED" and order.order_id in lst.pair:
        _expire_pair(engine, account, lst, order)
    if order.order_id == lst.working:
        if order.status == "FILLED":
            _activate(engine, account, lst)
        elif order.status == "EXPIRED":
            for oid in lst.pending:
                if account.orders[oid].is_active:
                    engine.expire(account, account.orders[oid], "OTO_PHASE_ONE_EXPIRED")
    _finish_if_done(engine, account, lst)


def _activate(engine: Engine, account: Account, lst: OrderList) -> None:
    legs = [account.orders[oid] for oid in lst.pending if account.orders[oid].status
            == "PENDING_NEW"]
    if not legs:
        return
    symbol = legs[0].symbol
    locks = [lock_for(SYMBOLS[symbol], o.side, o.orig_qty, o.price or o.stop_price,
                      engine.price(symbol)) for o in legs]
    asset, amount = locks[0][0], max(a for _x, a in locks)
    if account.balance(asset)[0] < amount:
        for o in legs:
            engine.expire(account, o, "REJECTED")
        return
    now = engine.now_ms()
    first = legs[0] if lst.pair else None
    for o, (leg_asset, leg_amount) in zip(legs, locks, strict=True):
        take = amount if o is first else (Decimal(0) if first else leg_amount)
        o.locked_asset, o.locked_amount, o.status, o.update_ms = leg_asset, take, "NEW", now
        account.move(leg_asset, -take, take)
        if not o.is_stop:
            o.working_ms = now
        engine.report(account, o, "NEW")
    lst.status_type, lst.transaction_ms = "UPDATED", now
    emit_status(engine, account, lst)
    for o in legs:
        if o.is_open:
            engine.execute(account, o)


def _finish_if_done(engine: Engine, account: Account, lst: OrderList) -> None:
    if lst.order_status == "ALL_DONE":
        return
    if any(account.orders[oid].is_active for oid in lst.order_ids):
        return
    lst.status_type, lst.order_status, lst.transaction_ms = "ALL_DONE", "ALL_DONE", engine.now_ms()
    emit_status(engine, account, lst)


def cancel_list(engine: Engine, account: Account, lst: OrderList, cancel_id: str) -> None:
    """Every active leg CANCELED (the cancel's id on each), then one listStatus ALL_DONE."""
    legs = [account.orders[oid] for oid in lst.order_ids if account.orders[oid].is_active]
    if not legs or lst.order_status != "EXECUTING":
        raise errors.unknown_order_list_cancel()
    for order in legs:
        engine.cancel_one(account, order, cancel_id)
    lst.status_type, lst.order_status, lst.transaction_ms = "ALL_DONE", "ALL_DONE", engine.now_ms()
    emit_status(engine, account, lst)
    engine.position(account, [legs[0].locked_asset])


def emit_status(engine: Engine, account: Account, lst: OrderList) -> None:
    engine.emit(account.name, {
        "e": "listStatus", "E": engine.now_ms(), "s": lst.symbol, "g": lst.order_list_id,
        "c": lst.contingency_type, "l": lst.status_type, "L": lst.order_status, "r": "NONE",
        "C": lst.list_client_order_id, "T": lst.transaction_ms,
        "O": [{"s": lst.symbol, "i": oid, "c": account.orders[oid].client_order_id}
              for oid in lst.order_ids]})


def find_list(account: Account, params: Mapping[str, str], cid_name: str,
              cancel: bool) -> OrderList:
    """By orderListId first; a list client id sent too must then match that list."""
    lid, cid = integer(params, "orderListId"), params.get(cid_name) or ""
    if lid is None and not cid:
        raise errors.missing_either("orderListId", cid_name)
    found = lookup(account.order_lists, lid, cid, lambda x: x.list_client_order_id)
    if found is None or (cancel and found.symbol != params.get("symbol")):
        raise errors.unknown_order_list_cancel() if cancel else errors.order_list_missing()
    return found

