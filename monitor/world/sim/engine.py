"""The matching model: place, trigger, fill, expire and cancel orders, emitting user-data events.

Deliberately simple, because issue 3 asks only for fills against a price path. An order that
works fills in full when the symbol's price crosses its limit. Market-like orders fill at once
at the current price. Commission is 0.1% of what is received. Stop orders (STOP_LOSS*,
TAKE_PROFIT*) wait, not working (`working_ms == -1`), until the price reaches their stopPrice.
An IOC/FOK order that cannot trade at once expires.

Rejects never change state, so they produce no stream event (wire 8.9): parameter and filter
failures (-11xx, -1013) are raised by `orderparams`, and engine rejects (-2010) by `admit`.
Order lists live in `orderlists`; the engine calls its hooks when a list leg triggers, fills
or expires.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation

from monitor.world.sim import errors, orderlists
from monitor.world.sim.market import SYMBOLS, PricePath, check_open_limits, fmt
from monitor.world.sim.orderparams import (
    MARKET_LIKE,
    Draft,
    Lock,
    client_id,
    crosses,
    integer,
    lock_for,
    parse_order,
    symbol_spec,
    triggers,
)
from monitor.world.sim.state import (
    COMMISSION,
    Account,
    Books,
    Order,
    OrderList,
    Trade,
    Withdrawal,
    lookup,
)

Emit = Callable[[str, dict[str, object]], None]
CANCEL_RESTRICTIONS = {"ONLY_NEW": "NEW", "ONLY_PARTIALLY_FILLED": "PARTIALLY_FILLED"}


def _dec(params: dict[str, str], name: str, required: bool = True) -> Decimal | None:
    raw = params.get(name)
    if raw in (None, ""):
        if required:
            raise errors.missing_param(name)
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation as exc:
        raise errors.bad_value(name) from exc
    if not value.is_finite() or value <= 0:
        raise errors.bad_value(name)
    return value


class Engine:
    def __init__(self, books: Books, now_ms: Callable[[], int], seed: int, emit: Emit) -> None:
        self.books = books
        self.now_ms = now_ms
        self.emit = emit
        t0 = now_ms()
        self.paths = {s: PricePath(spec, seed, t0) for s, spec in SYMBOLS.items()}

    def price(self, symbol: str) -> Decimal:
        return self.paths[symbol].at(self.now_ms())

    # -- placing ------------------------------------------------------------------------
    def draft(self, params: Mapping[str, str], names: Mapping[str, str] | None = None) -> Draft:
        """Every API-side check of an order, no state change (also what order/test runs)."""
        return parse_order(params, self.price, names)

    def lock_of(self, d: Draft) -> Lock:
        return lock_for(d.spec, d.side, d.quantity, d.level, self.price(d.symbol))

    def place(self, account: Account, params: dict[str, str], label: str, ip: str) -> Order:
        d = self.draft(params)
        return self.place_draft(account, d, label, ip)

    def place_draft(self, account: Account, d: Draft, label: str, ip: str) -> Order:
        lock = self.lock_of(d)
        self.check_counts(account, [d])
        self.admit(account, d, lock)
        order = self.open(account, d, label, ip, lock=lock)
        self.report(account, order, "NEW")
        self.position(account, [order.locked_asset])
        self.execute(account, order)
        return order

    def check_counts(self, account: Account, drafts: list[Draft], lists: int = 0) -> None:
        """MAX_NUM_ORDERS / MAX_NUM_ALGO_ORDERS / MAX_NUM_ORDER_LISTS (-1013) for the account's
        open orders on the symbol plus the ones this request adds."""
        symbol = drafts[0].symbol
        mine = [o for o in account.orders.values() if o.symbol == symbol and o.is_active]
        failed = check_open_limits(
            drafts[0].spec, open_orders=len(mine),
            open_algo_orders=sum(1 for o in mine if o.is_stop),
            open_order_lists=sum(1 for x in account.order_lists.values()
                                 if x.symbol == symbol and x.order_status == "EXECUTING"),
            new_orders=len(drafts), new_algo_orders=sum(1 for d in drafts if d.stop_price),
            new_order_lists=lists)
        if failed:
            raise errors.filter_failure(failed)

    def admit(self, account: Account, d: Draft, lock: Lock | None, book: bool = True) -> None:
        """Engine rejects (-2010), in this order (SIMULATOR CHOICE): duplicate client id, a
        LIMIT_MAKER that would take, a stop that would trigger at once, then the balance."""
        if any(o.client_order_id == d.client_order_id and o.is_active
               for o in account.orders.values()):
            raise errors.duplicate_order()
        px = self.price(d.symbol)
        if book and d.type == "LIMIT_MAKER" and d.price is not None and crosses(
                d.side, d.price, px):
            raise errors.order_rejected("Order would immediately match and take.")
        if book and d.stop_price is not None and triggers(d.type, d.side, d.stop_price, px):
            raise errors.order_rejected("Order would trigger immediately.")
        if lock is not None and account.balance(lock[0])[0] < lock[1]:
            raise errors.insufficient_balance()

    def open(self, account: Account, d: Draft, label: str, ip: str, *, lock: Lock,
             list_id: int = -1, status: str = "NEW") -> Order:
        """Book the order and lock its funds; no event (the caller orders the events)."""
        now = self.now_ms()
        working = now if status == "NEW" and d.stop_price is None else -1
        order = Order(symbol=d.symbol, order_id=self.books.order_id(),
                      client_order_id=d.client_order_id, side=d.side, type=d.type,
                      time_in_force=d.time_in_force or "GTC",
                      price=d.price if d.price is not None else Decimal(0),
                      orig_qty=d.quantity, quote_order_qty=d.quote_qty, time_ms=now,
                      update_ms=now, locked_asset=lock[0], locked_amount=lock[1],
                      api_key_label=label, caller_ip=ip,
                      stop_price=d.stop_price or Decimal(0), iceberg_qty=d.iceberg_qty,
                      order_list_id=list_id, working_ms=working, status=status)
        account.orders[order.order_id] = order
        account.move(lock[0], -lock[1], lock[1])
        account.update_ms = now
        return order

    # -- working ------------------------------------------------------------------------
    def execute(self, account: Account, order: Order) -> None:
        """An order that has just started to work: trigger, trade or expire as its type says."""
        if order.is_stop and order.working_ms == -1:
            if triggers(order.type, order.side, order.stop_price, self.price(order.symbol)):
                self.trigger(account, order)
            return
        self._work(account, order, maker=False)

    def trigger(self, account: Account, order: Order) -> None:
        """The stop price was reached: the order starts to work as a market or limit order.

        SIMULATOR CHOICE: the trigger itself emits no event (Binance documents none); the
        next executionReport (TRADE, or EXPIRED for an IOC) carries `W`, the working time.
        """
        order.working_ms = self.now_ms()
        if order.order_list_id != -1:
            orderlists.on_trigger(self, account, order)
        self._work(account, order, maker=False)

    def _work(self, account: Account, order: Order, maker: bool) -> None:
        px = self.price(order.symbol)
        if order.type in MARKET_LIKE:
            self._fill(account, order, px, maker=False)
        elif crosses(order.side, order.price, px):
            self._fill(account, order, order.price, maker)
        if order.is_open and order.time_in_force in ("IOC", "FOK"):
            reason = ("UNFILLED_IOC_QUANTITY_EXPIRED" if order.time_in_force == "IOC"
                      else "UNFILLED_FOK_ORDER_EXPIRED")
            self.expire(account, order, reason)
            self.position(account, [order.locked_asset])

    def match(self) -> None:
        """Trigger every stop the path has reached; fill every working limit it has crossed."""
        for account in self.books.accounts.values():
            for order in list(account.orders.values()):
                if not order.is_open:
                    continue
                px = self.price(order.symbol)
                if order.is_stop and order.working_ms == -1:
                    if triggers(order.type, order.side, order.stop_price, px):
                        self.trigger(account, order)
                elif order.type not in MARKET_LIKE and crosses(order.side, order.price, px):
                    self._fill(account, order, order.price, maker=True)

    def _fill(self, account: Account, order: Order, px: Decimal, maker: bool) -> None:
        if order.order_list_id != -1:
            orderlists.claim_lock(account, order)
        spec = SYMBOLS[order.symbol]
        qty = order.orig_qty - order.executed_qty
        quote = qty * px
        now = self.now_ms()
        if order.side == "BUY":
            got_asset, got = spec.base, qty
            account.move(spec.quote, order.locked_amount - quote, -order.locked_amount)
            self.paths[order.symbol].bump(quote)
        else:
            got_asset, got = spec.quote, quote
            account.move(spec.base, Decimal(0), -order.locked_amount)
            self.paths[order.symbol].bump(-quote)
        fee = got * COMMISSION
        account.move(got_asset, got - fee)
        order.locked_amount = Decimal(0)
        order.executed_qty += qty
        order.cum_quote += quote
        order.status = "FILLED"
        order.update_ms = now
        if order.working_ms == -1:
            order.working_ms = now
        account.update_ms = now
        trade = Trade(order.symbol, self.books.trade_id(), order.order_id, px, qty, quote, fee,
                      got_asset, now, order.side == "BUY", maker)
        account.trades.append(trade)
        self.report(account, order, "TRADE", trade=trade)
        if order.order_list_id != -1:
            orderlists.after_change(self, account, order)
        self.position(account, [spec.base, spec.quote])

    def _release(self, account: Account, order: Order, status: str) -> None:
        order.status = status
        order.update_ms = self.now_ms()
        account.move(order.locked_asset, order.locked_amount, -order.locked_amount)
        order.locked_amount = Decimal(0)
        account.update_ms = order.update_ms

    def expire(self, account: Account, order: Order, reason: str) -> None:
        """EXPIRED by order-type rules (IOC/FOK, the other OCO leg, an OTO whose working leg
        died); emits the report, not the balance (callers batch it)."""
        self._release(account, order, "EXPIRED")
        self.report(account, order, "EXPIRED", reason=reason)
        if order.order_list_id != -1:
            orderlists.after_change(self, account, order)

    # -- cancelling ---------------------------------------------------------------------
    def cancel(self, account: Account, params: Mapping[str, str]) -> Order:
        """DELETE /api/v3/order: one order, or the whole list the order belongs to."""
        restriction = params.get("cancelRestrictions") or ""
        if restriction and restriction not in CANCEL_RESTRICTIONS:
            raise errors.invalid_cancel_restrictions()
        order = self.find(account, params, cancel=True)
        if not order.is_active:
            raise errors.unknown_order_cancel()
        if restriction and order.status != CANCEL_RESTRICTIONS[restriction]:
            raise errors.cancel_rejected("Order was not canceled due to cancel restrictions.")
        cancel_id = client_id(params, "newClientOrderId", "newClientOrderId")
        if order.order_list_id != -1:
            lst = account.order_lists[order.order_list_id]
            orderlists.cancel_list(self, account, lst, cancel_id)
        else:
            self.cancel_one(account, order, cancel_id)
            self.position(account, [order.locked_asset])
        return order

    def cancel_one(self, account: Account, order: Order, cancel_id: str) -> None:
        self._release(account, order, "CANCELED")
        self.report(account, order, "CANCELED", client_id=cancel_id,
                    orig_client_id=order.client_order_id)

    def cancel_all(self, account: Account, params: Mapping[str, str], cancel_id: str
                   ) -> list[Order | OrderList]:
        """DELETE /api/v3/openOrders: every active order on the symbol, lists as wholes.

        With nothing to cancel Binance answers -2011 "Unknown order sent." [obs]; the cancel
        id is shared by every cancelled order, as in the rest-api.md example.
        """
        spec = symbol_spec(params)
        singles = [o for o in account.orders.values()
                   if o.symbol == spec.symbol and o.is_active and o.order_list_id == -1]
        lists = [lst for lst in account.order_lists.values()
                 if lst.symbol == spec.symbol and lst.order_status == "EXECUTING"]
        if not singles and not lists:
            raise errors.unknown_order_cancel()
        for order in singles:
            self.cancel_one(account, order, cancel_id)
            self.position(account, [order.locked_asset])
        for lst in lists:
            orderlists.cancel_list(self, account, lst, cancel_id)
        return [*singles, *lists]

    def find(self, account: Account, params: Mapping[str, str], cancel: bool = False) -> Order:
        """By orderId first; an origClientOrderId sent too must then match that order."""
        spec = symbol_spec(params)
        oid, cid = integer(params, "orderId"), params.get("origClientOrderId") or ""
        if oid is None and not cid:
            raise errors.missing_either("origClientOrderId", "orderId")
        found = lookup(account.orders, oid, cid, lambda o: o.client_order_id)
        if found is None or found.symbol != spec.symbol:
            raise errors.unknown_order_cancel() if cancel else errors.order_missing()
        return found

    # -- wallet -------------------------------------------------------------------------
    def withdraw(self, account: Account, params: dict[str, str]) -> Withdrawal:
        coin = params.get("coin") or ""
        address = params.get("address") or ""
        if not coin:
            raise errors.missing_param("coin")
        if not address:
            raise errors.missing_param("address")
        amount = _dec(params, "amount")
        assert amount is not None
        if account.balance(coin)[0] < amount:
            raise errors.ApiError(400, -4026, "User has insufficient balance")
        now = self.now_ms()
        wd = Withdrawal(id=secrets.token_hex(16), coin=coin, address=address, amount=amount,
                        network=params.get("network") or coin,
                        withdraw_order_id=params.get("withdrawOrderId") or "", apply_ms=now)
        account.withdrawals.append(wd)
        account.move(coin, -amount)
        account.update_ms = now
        self.emit(account.name, {"e": "balanceUpdate", "E": now, "a": coin,
                                 "d": fmt(-amount), "T": now})
        self.position(account, [coin])
        return wd

    # -- events -------------------------------------------------------------------------
    def report(self, account: Account, order: Order, exec_type: str, *, client_id: str = "",
               orig_client_id: str = "", trade: Trade | None = None, reason: str = "") -> None:
        now = self.now_ms()
        event: dict[str, object] = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": client_id or order.client_order_id, "S": order.side, "o": order.type,
            "f": order.time_in_force, "q": fmt(order.orig_qty), "p": fmt(order.price),
            "P": fmt(order.stop_price), "F": fmt(order.iceberg_qty), "g": order.order_list_id,
            "C": orig_client_id, "x": exec_type, "X": order.status, "r": "NONE",
            "i": order.order_id, "l": fmt(trade.qty if trade else 0),
            "z": fmt(order.executed_qty), "L": fmt(trade.price if trade else 0),
            "n": fmt(trade.commission if trade else 0),
            "N": trade.commission_asset if trade else None, "T": now,
            "t": trade.trade_id if trade else -1, "I": self.books.exec_id(),
            "w": order.is_open and order.working_ms != -1,
            "m": bool(trade and trade.is_maker), "M": False, "O": order.time_ms,
            "Z": fmt(order.cum_quote), "Y": fmt(trade.quote_qty if trade else 0),
            "Q": fmt(order.quote_order_qty), "V": "EXPIRE_MAKER",
        }
        if order.working_ms != -1:
            event["W"] = order.working_ms
        if reason:
            event["eR"] = reason
        account.order_events.append(event)
        self.emit(account.name, event)

    def position(self, account: Account, assets: list[str]) -> None:
        now = self.now_ms()
        balances = [{"a": a, "f": fmt(account.balance(a)[0]), "l": fmt(account.balance(a)[1])}
                    for a in dict.fromkeys(assets)]
        self.emit(account.name, {"e": "outboundAccountPosition", "E": now,
                                 "u": account.update_ms, "B": balances})
