"""API-side checks of one order's parameters, done before anything reaches the engine.

Binance rejects a malformed order at the API (-11xx codes, -1013 filter failures) without
touching the book or emitting an event. This module is that layer. POST /api/v3/order,
order/test, cancelReplace and every order-list leg share it. A leg's parameters carry a
prefix (`abovePrice`, `workingQuantity`), so each check names the parameter the way it was
sent.

The order of the checks is a SIMULATOR CHOICE, because Binance does not document one:
symbol, side, type, the symbol's order-type support, timeInForce, quantity, price, stopPrice,
iceberg, client id, then filters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from monitor.world.sim import errors
from monitor.world.sim.market import ORDER_TYPES, SYMBOLS, SymbolSpec, check_filters
from monitor.world.sim.state import STOP_TYPES, random_client_order_id

# Binance's sides and times in force (wire 3.10, enums.md); order types are market.ORDER_TYPES.
SIDES = ("BUY", "SELL")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")
NEEDS_PRICE = ("LIMIT", "LIMIT_MAKER", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
NEEDS_TIF = ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT")
MARKET_LIKE = ("MARKET", "STOP_LOSS", "TAKE_PROFIT")  # execute at market once they work

# Python forms of the legal ranges that the -1100 message quotes (errors.INT_RANGE etc.).
_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INT = re.compile(r"^[0-9]{1,20}$")
_SYMBOL = re.compile(r"^[A-Z0-9_.\-]{1,20}$")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_\-]{1,36}$")


@dataclass
class Draft:
    """An order that passed every API-side check; the engine may still reject it (-2010)."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None
    quote_qty: Decimal
    client_order_id: str
    iceberg_qty: Decimal
    resp_type: str

    @property
    def spec(self) -> SymbolSpec:
        return SYMBOLS[self.symbol]

    @property
    def level(self) -> Decimal | None:
        """The price the order is judged at before it trades: its limit, else its stop."""
        return self.price if self.price is not None else self.stop_price


def symbol_spec(params: Mapping[str, str], name: str = "symbol") -> SymbolSpec:
    raw = params.get(name) or ""
    if not raw:
        raise errors.missing_param(name)
    if not _SYMBOL.match(raw):
        raise errors.illegal_chars(name, errors.SYMBOL_RANGE)
    spec = SYMBOLS.get(raw)
    if spec is None:
        raise errors.invalid_symbol()
    return spec


def decimal(params: Mapping[str, str], key: str, wire: str, required: bool) -> Decimal | None:
    raw = params.get(key)
    if raw is None or raw == "":
        if required:
            raise errors.missing_param(wire)
        return None
    if not _DECIMAL.match(raw):
        raise errors.illegal_chars(wire, errors.DECIMAL_RANGE)
    value = Decimal(raw)
    if value <= 0:
        raise errors.bad_value(wire)
    return value


def integer(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _INT.match(raw):
        raise errors.illegal_chars(name, errors.INT_RANGE)
    return int(raw)


def client_id(params: Mapping[str, str], key: str, wire: str) -> str:
    """The sent id, checked against Binance's legal range, or a fresh random one."""
    raw = params.get(key) or ""
    if not raw:
        return random_client_order_id()
    if not _CLIENT_ID.match(raw):
        raise errors.illegal_chars(wire, errors.CLIENT_ID_RANGE)
    return raw


def enum(params: Mapping[str, str], name: str, allowed: tuple[str, ...],
         default: str | None = None) -> str:
    """A required (or defaulted) enum parameter other than side/type/timeInForce.

    Binance has no per-enum message for these; SIMULATOR CHOICE: -1130 naming the parameter.
    """
    raw = params.get(name) or default
    if not raw:
        raise errors.missing_param(name)
    if raw not in allowed:
        raise errors.invalid_param(name)
    return raw


def parse_order(params: Mapping[str, str], price_of: Callable[[str], Decimal],
                names: Mapping[str, str] | None = None) -> Draft:
    """Every API-side check of one order. `names` maps a plain name to the one sent."""
    names = names or {}

    def n(key: str) -> str:
        return names.get(key, key)

    spec = symbol_spec(params)
    info = spec.info()
    side = params.get("side") or ""
    if not side:
        raise errors.missing_param(n("side"))
    if side not in SIDES:
        raise errors.invalid_side()
    otype = params.get("type") or ""
    if not otype:
        raise errors.missing_param(n("type"))
    if otype not in ORDER_TYPES:
        raise errors.invalid_order_type()
    order_types = info["orderTypes"]
    assert isinstance(order_types, list)
    if otype not in order_types:
        raise errors.unsupported_order_type(otype)
    tif = params.get("timeInForce") or ""
    if tif and tif not in TIME_IN_FORCE:
        raise errors.invalid_tif()
    if otype in NEEDS_TIF and not tif:
        raise errors.missing_param(n("timeInForce"))
    ref = price_of(spec.symbol)
    quote_qty = Decimal(0)
    if otype == "MARKET":
        qty = decimal(params, "quantity", n("quantity"), required=False)
        if qty is None:
            quote = decimal(params, "quoteOrderQty", n("quoteOrderQty"), required=False)
            if quote is None:
                raise errors.missing_either(n("quantity"), n("quoteOrderQty"))
            if not info.get("quoteOrderQtyMarketAllowed"):
                raise errors.order_rejected(
                    "Quote order qty market orders are not support for this symbol.")
            quote_qty = quote
            qty = (quote / ref / spec.step).to_integral_value(rounding=ROUND_DOWN) * spec.step
    else:
        qty = decimal(params, "quantity", n("quantity"), required=True)
    assert qty is not None
    price = decimal(params, "price", n("price"), required=True) if otype in NEEDS_PRICE else None
    stop = None
    if otype in STOP_TYPES:
        # SIMULATOR CHOICE: trailing stops are not simulated; trailingDelta is checked against
        # TRAILING_DELTA but a stopPrice is still required.
        if params.get("trailingDelta") and not info.get("allowTrailingStop"):
            raise errors.order_rejected("Trailing stop orders are not supported for this symbol.")
        stop = decimal(params, "stopPrice", n("stopPrice"), required=True)
    iceberg = decimal(params, "icebergQty", n("icebergQty"), required=False) or Decimal(0)
    if iceberg:
        if not info.get("icebergAllowed"):
            raise errors.order_rejected("Iceberg orders are not supported for this symbol.")
        if iceberg > qty:
            raise errors.order_rejected("IcebergQty exceeds QTY.")
    cid = client_id(params, "newClientOrderId", n("newClientOrderId"))
    resp = params.get("newOrderRespType") or ("FULL" if otype in ("LIMIT", "MARKET") else "ACK")
    if resp not in RESP_TYPES:
        raise errors.invalid_param(n("newOrderRespType"))
    delta = integer(params, "trailingDelta")
    failed = check_filters(spec, qty, price, otype in MARKET_LIKE, ref, side, stop_price=stop,
                           iceberg_qty=iceberg or None, trailing_delta=delta, order_type=otype)
    if failed:
        raise errors.filter_failure(failed)
    return Draft(symbol=spec.symbol, side=side, type=otype, time_in_force=tif, quantity=qty,
                 price=price, stop_price=stop, quote_qty=quote_qty, client_order_id=cid,
                 iceberg_qty=iceberg, resp_type=resp)


Lock = tuple[str, Decimal]


def lock_for(spec: SymbolSpec, side: str, qty: Decimal, level: Decimal | None,
             ref: Decimal) -> Lock:
    """What an order locks: the base it sells, or the quote it may spend at its price.

    A market-like BUY is valued at its stop price, or the current price when it has none.
    """
    if side == "SELL":
        return spec.base, qty
    return spec.quote, qty * (level if level is not None and level > 0 else ref)


def triggers(order_type: str, side: str, stop: Decimal, px: Decimal) -> bool:
    """Has the last price `px` reached a stop order's `stopPrice`?

    STOP_LOSS* sells when the price falls to the stop and buys when it rises to it; TAKE_PROFIT*
    does the opposite (Binance order-type docs).
    """
    if order_type.startswith("STOP_LOSS"):
        return px <= stop if side == "SELL" else px >= stop
    return px >= stop if side == "SELL" else px <= stop


def crosses(side: str, limit: Decimal, px: Decimal) -> bool:
    """Would a limit order at `limit` trade against the last price `px`?"""
    return px <= limit if side == "BUY" else px >= limit
