"""The matching model: place, fill, cancel and withdraw, emitting user-data events.

Deliberately simple (issue 3 asks only for fills against a price path): LIMIT orders fill in
full when the symbol's price crosses their limit, MARKET orders fill at once at the current
price, commission is 0.1% of what is received. Filter failures (-1013) and balance failures
(-2010) raise before any state changes, so they produce no stream event (wire 8.9).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from monitor.sim import errors
from monitor.sim.market import SYMBOLS, PricePath, check_filters, fmt
from monitor.sim.state import Account, Books, Order, Trade, Withdrawal, random_client_order_id

COMMISSION = Decimal("0.001")
Emit = Callable[[str, dict[str, object]], None]


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

    # -- orders -------------------------------------------------------------------------
    def place(self, account: Account, params: dict[str, str], label: str, ip: str) -> Order:
        symbol = params.get("symbol") or ""
        if not symbol:
            raise errors.missing_param("symbol")
        spec = SYMBOLS.get(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        side = params.get("side", "")
        if side not in ("BUY", "SELL"):
            raise errors.missing_param("side") if not side else errors.bad_value("side")
        otype = params.get("type", "")
        if otype not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
            raise errors.missing_param("type") if not otype else errors.bad_value("type")
        ref = self.price(symbol)
        price: Decimal | None = None
        quote_qty = Decimal(0)
        tif = ""
        if otype == "MARKET":
            qty = _dec(params, "quantity", required=False)
            if qty is None:
                quote_qty = _dec(params, "quoteOrderQty") or Decimal(0)
                qty = (quote_qty / ref / spec.step).to_integral_value(rounding="ROUND_DOWN")
                qty = qty * spec.step
        else:
            qty = _dec(params, "quantity")
            price = _dec(params, "price")
            tif = params.get("timeInForce", "" if otype == "LIMIT_MAKER" else None) or ""
            if otype == "LIMIT" and tif not in ("GTC", "IOC", "FOK"):
                raise errors.missing_param("timeInForce") if not tif else errors.bad_value(
                    "timeInForce")
        assert qty is not None
        failed = check_filters(spec, qty, price, otype == "MARKET", ref)
        if failed:
            raise errors.filter_failure(failed)
        cid = params.get("newClientOrderId") or random_client_order_id()
        if any(o.client_order_id == cid and o.is_open for o in account.orders.values()):
            raise errors.duplicate_order()
        exec_price = price if price is not None else ref
        if side == "BUY":
            lock_asset, lock_amount = spec.quote, qty * exec_price
        else:
            lock_asset, lock_amount = spec.base, qty
        if account.balance(lock_asset)[0] < lock_amount:
            raise errors.insufficient_balance()
        now = self.now_ms()
        order = Order(symbol=symbol, order_id=self.books.order_id(), client_order_id=cid,
                      side=side, type=otype, time_in_force=tif or "GTC",
                      price=price if price is not None else Decimal(0), orig_qty=qty,
                      quote_order_qty=quote_qty, time_ms=now, update_ms=now,
                      locked_asset=lock_asset, locked_amount=lock_amount,
                      api_key_label=label, caller_ip=ip)
        account.orders[order.order_id] = order
        account.move(lock_asset, -lock_amount, lock_amount)
        account.update_ms = now
        self._report(account, order, "NEW")
        self._position(account, [lock_asset])
        marketable = otype == "MARKET" or (
            (side == "BUY" and ref <= order.price) or (side == "SELL" and ref >= order.price))
        if marketable:
            self._fill(account, order, ref if otype == "MARKET" else order.price, maker=False)
        return order

    def cancel(self, account: Account, params: dict[str, str]) -> Order:
        order = self.find(account, params, cancel=True)
        if not order.is_open:
            raise errors.unknown_order_cancel()
        order.status = "CANCELED"
        order.update_ms = self.now_ms()
        account.move(order.locked_asset, order.locked_amount, -order.locked_amount)
        order.locked_amount = Decimal(0)
        cancel_id = params.get("newClientOrderId") or random_client_order_id()
        self._report(account, order, "CANCELED", client_id=cancel_id,
                     orig_client_id=order.client_order_id)
        self._position(account, [order.locked_asset])
        return order

    def find(self, account: Account, params: dict[str, str], cancel: bool = False) -> Order:
        symbol = params.get("symbol") or ""
        if not symbol:
            raise errors.missing_param("symbol")
        oid, cid = params.get("orderId"), params.get("origClientOrderId")
        if not oid and not cid:
            raise errors.missing_param("orderId")
        for order in account.orders.values():
            if order.symbol != symbol:
                continue
            if (oid and str(order.order_id) == str(oid)) or (cid and order.client_order_id == cid):
                return order
        raise errors.unknown_order_cancel() if cancel else errors.order_missing()

    def match(self) -> None:
        """Fill every resting LIMIT order whose price the path has crossed."""
        for account in self.books.accounts.values():
            for order in list(account.orders.values()):
                if not order.is_open or order.type == "MARKET":
                    continue
                px = self.price(order.symbol)
                if (order.side == "BUY" and px <= order.price) or (
                        order.side == "SELL" and px >= order.price):
                    self._fill(account, order, order.price, maker=True)

    def _fill(self, account: Account, order: Order, px: Decimal, maker: bool) -> None:
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
        account.update_ms = now
        trade = Trade(order.symbol, self.books.trade_id(), order.order_id, px, qty, quote, fee,
                      got_asset, now, order.side == "BUY", maker)
        account.trades.append(trade)
        self._report(account, order, "TRADE", trade=trade)
        self._position(account, [spec.base, spec.quote])

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
        self._position(account, [coin])
        return wd

    # -- events -------------------------------------------------------------------------
    def _report(self, account: Account, order: Order, exec_type: str, *, client_id: str = "",
                orig_client_id: str = "", trade: Trade | None = None) -> None:
        now = self.now_ms()
        event: dict[str, object] = {
            "e": "executionReport", "E": now, "s": order.symbol,
            "c": client_id or order.client_order_id, "S": order.side, "o": order.type,
            "f": order.time_in_force, "q": fmt(order.orig_qty), "p": fmt(order.price),
            "P": fmt(0), "F": fmt(0), "g": -1, "C": orig_client_id, "x": exec_type,
            "X": order.status, "r": "NONE", "i": order.order_id,
            "l": fmt(trade.qty if trade else 0), "z": fmt(order.executed_qty),
            "L": fmt(trade.price if trade else 0), "n": fmt(trade.commission if trade else 0),
            "N": trade.commission_asset if trade else None, "T": now,
            "t": trade.trade_id if trade else -1, "I": self.books.exec_id(),
            "w": order.is_open, "m": bool(trade and trade.is_maker), "M": False,
            "O": order.time_ms, "Z": fmt(order.cum_quote),
            "Y": fmt(trade.quote_qty if trade else 0), "Q": fmt(order.quote_order_qty),
            "W": order.time_ms, "V": "EXPIRE_MAKER",
        }
        account.order_events.append(event)
        self.emit(account.name, event)

    def _position(self, account: Account, assets: list[str]) -> None:
        now = self.now_ms()
        balances = [{"a": a, "f": fmt(account.balance(a)[0]), "l": fmt(account.balance(a)[1])}
                    for a in dict.fromkeys(assets)]
        self.emit(account.name, {"e": "outboundAccountPosition", "E": now,
                                 "u": account.update_ms, "B": balances})
