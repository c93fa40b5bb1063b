"""Strict, total parsers: one Binance payload in, `Event`s out, never an exception.

Strict: every field we use is checked for type and range; a payload that fails becomes a
`stream_status` event saying what was wrong (`malformed_event`), which the collector counts.
Total: the public functions catch everything, so a hostile frame cannot stop a source.
Unknown fields are not lost: the whole payload (secrets removed) is kept in `raw`.

Order-fact ids are chosen so the *same fact* seen by the user-data stream and rebuilt from REST
(`allOrders` + `myTrades`) after a gap gets the *same* `event_id`, so the store keeps it once:

    stream:order:<account>:<symbol>:<orderId>:<x>          x in NEW, CANCELED, EXPIRED, ...
    stream:order:<account>:<symbol>:<orderId>:<x>:<T>      x in REPLACED, REJECTED, unknown x
    stream:fill:<account>:<symbol>:<orderId>:<tradeId>     x = TRADE

Only facts REST can reproduce go in the id (orderId, execution type, trade id); the event time
`E` is left out because REST never shows it. Such rebuilt facts carry `source=stream` (they are
the stream's facts, recovered) and say `"via": "rest"` in `raw`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, TypedDict

from pydantic import ValidationError

from monitor.core.events import Event, Kind, Source, make_event_id, raw_json
from monitor.core.wirefields import (
    JsonObject,
    Malformed,
    opt_dec,
    req_bool,
    req_dec,
    req_int,
    req_obj,
    req_str,
)

# Execution types that happen at most once per order, so the id needs no time.
ONCE_PER_ORDER = frozenset({"NEW", "CANCELED", "EXPIRED", "TRADE_PREVENTION", "PENDING_NEW"})
# REST order status -> the execution type of the report that ended the order that way.
TERMINAL_EXEC = {
    "CANCELED": "CANCELED",
    "EXPIRED": "EXPIRED",
    "REJECTED": "REJECTED",
    "EXPIRED_IN_MATCH": "TRADE_PREVENTION",
}


@dataclass(frozen=True)
class Ctx:
    """Who the payload is about and when we saw it."""

    account: str
    received_ts: int
    key: str | None = None


@dataclass
class Frame:
    """One WS API text frame: its events, a request's response, or a control signal."""

    events: list[Event] = field(default_factory=list)
    response: JsonObject | None = None  # a request's answer, as sent
    control: str | None = None  # "terminated" | "shutdown" | "malformed" | None


class _OrderCommon(TypedDict):
    """The `Event` fields every fact rebuilt from one REST order shares."""

    received_ts: int
    account: str
    key: str | None
    source: Source
    symbol: str
    side: str
    order_type: str
    order_id: int
    client_order_id: str


def _pos(v: float | None) -> float | None:
    return v if v is not None and v > 0 else None


# -- malformed ----------------------------------------------------------------------------------
def malformed_event(source: Source, ctx: Ctx, where: str, reason: str, payload: Any) -> Event:
    """The counted stand-in for a payload we could not read.

    The payload itself is not stored (it may be hostile or carry a secret a bot logged by
    mistake): only its size and a hash, so two reports of the same bad input can be matched.
    """
    text = payload if isinstance(payload, str | bytes) else repr(payload)
    data = text.encode("utf-8", "replace") if isinstance(text, str) else text
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Event(
        event_id=make_event_id(source, "malformed", ctx.account, digest, ctx.received_ts),
        ts=ctx.received_ts,
        received_ts=ctx.received_ts,
        account=ctx.account,
        key=ctx.key,
        source=source,
        kind=Kind.STREAM_STATUS,
        raw=raw_json(
            {"status": "malformed", "where": where, "reason": reason[:300], "bytes": len(data),
             "sha256_16": digest}
        ),
    )


def status_event(
    source: Source, ctx: Ctx, status: str, ts: int, id_parts: tuple[object, ...],
    **details: Any,
) -> Event:
    """A `stream_status` event: gaps, reconnects, terminations, a rejected monitor key."""
    return Event(
        event_id=make_event_id(source, "status", ctx.account, status, *id_parts),
        ts=ts,
        received_ts=ctx.received_ts,
        account=ctx.account,
        key=ctx.key,
        source=source,
        kind=Kind.STREAM_STATUS,
        raw=raw_json({"status": status, **details}),
    )


# -- order facts --------------------------------------------------------------------------------
def order_fact_id(
    account: str, symbol: str, order_id: int, exec_type: str, *, trade_id: int | None = None,
    tx_time: int | None = None,
) -> str:
    """The id of one order state change, identical whether seen live or rebuilt from REST."""
    x = exec_type.upper()
    if x == "TRADE":
        return make_event_id(Source.STREAM, "fill", account, symbol, order_id, trade_id)
    if x in ONCE_PER_ORDER:
        return make_event_id(Source.STREAM, "order", account, symbol, order_id, x)
    return make_event_id(Source.STREAM, "order", account, symbol, order_id, x, tx_time)


def _kind_for(exec_type: str) -> Kind:
    return {"TRADE": Kind.FILL, "REJECTED": Kind.REJECT}.get(exec_type, Kind.ORDER)


def execution_report(ev: JsonObject, ctx: Ctx) -> Event:
    """`executionReport` -> one order/fill/reject event (raises `Malformed`)."""
    symbol, side, otype = req_str(ev, "s"), req_str(ev, "S"), req_str(ev, "o")
    x, status = req_str(ev, "x"), req_str(ev, "X")
    order_id, tx_time = req_int(ev, "i"), req_int(ev, "T")
    req_int(ev, "E")
    trade_id = req_int(ev, "t") if x == "TRADE" else None
    q, p = req_dec(ev, "q"), req_dec(ev, "p")
    notional: float | None
    if x == "TRADE":
        qty, price = req_dec(ev, "l"), req_dec(ev, "L")
        notional = _pos(opt_dec(ev, "Y")) or qty * price
    else:
        qty, price = q, p
        notional = _pos(q * p) or _pos(opt_dec(ev, "Q"))
    cancel_of = ev.get("C")
    client_id = cancel_of if isinstance(cancel_of, str) and cancel_of else req_str(ev, "c")
    reason = ev.get("r")
    return Event(
        event_id=order_fact_id(ctx.account, symbol, order_id, x, trade_id=trade_id,
                               tx_time=tx_time),
        ts=tx_time, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.STREAM, kind=_kind_for(x), symbol=symbol, side=side, order_type=otype,
        qty=qty, price=_pos(price), notional=notional, order_id=order_id,
        client_order_id=client_id, exec_type=x, order_status=status,
        reject_reason=reason if isinstance(reason, str) and reason != "NONE" else None,
        raw=raw_json(ev),
    )


def order_facts_from_rest(
    order: JsonObject, trades: list[JsonObject], ctx: Ctx, endpoint: str
) -> list[Event]:
    """Rebuild the stream's facts for one REST order object and its trades (raises `Malformed`).

    REST shows only an order's latest state, so we rebuild what can be known exactly: the NEW
    report (at `time`), one TRADE report per trade, and the terminal report (at `updateTime`).
    """
    symbol, side, otype = req_str(order, "symbol"), req_str(order, "side"), req_str(order, "type")
    order_id, status = req_int(order, "orderId"), req_str(order, "status")
    created, updated = req_int(order, "time"), req_int(order, "updateTime")
    orig_qty, price = req_dec(order, "origQty"), req_dec(order, "price")
    client_id = req_str(order, "clientOrderId")
    quote_qty = opt_dec(order, "origQuoteOrderQty")
    common = _OrderCommon(
        received_ts=ctx.received_ts, account=ctx.account, key=ctx.key, source=Source.STREAM,
        symbol=symbol, side=side, order_type=otype, order_id=order_id,
        client_order_id=client_id,
    )
    via = {"via": "rest", "endpoint": endpoint}
    out: list[Event] = []
    if status != "PENDING_NEW":
        out.append(Event(
            event_id=order_fact_id(ctx.account, symbol, order_id, "NEW"), ts=created,
            kind=Kind.ORDER, qty=orig_qty, price=_pos(price),
            notional=_pos(orig_qty * price) or _pos(quote_qty), exec_type="NEW",
            order_status="NEW", raw=raw_json({**via, "order": order}), **common,
        ))
    cum = 0.0
    for tr in sorted(trades, key=lambda t: req_int(t, "id")):
        qty, px, trade_id = req_dec(tr, "qty"), req_dec(tr, "price"), req_int(tr, "id")
        cum += qty
        filled = orig_qty > 0 and cum >= orig_qty * (1 - 1e-9)
        out.append(Event(
            event_id=order_fact_id(ctx.account, symbol, order_id, "TRADE", trade_id=trade_id),
            ts=req_int(tr, "time"), kind=Kind.FILL, qty=qty, price=_pos(px),
            notional=_pos(opt_dec(tr, "quoteQty")) or qty * px, exec_type="TRADE",
            order_status="FILLED" if filled else "PARTIALLY_FILLED",
            raw=raw_json({**via, "trade": tr}), **common,
        ))
    x = TERMINAL_EXEC.get(status)
    if x is not None:
        out.append(Event(
            event_id=order_fact_id(ctx.account, symbol, order_id, x, tx_time=updated),
            ts=updated, kind=_kind_for(x), qty=orig_qty, price=_pos(price),
            notional=_pos(orig_qty * price) or _pos(quote_qty), exec_type=x,
            order_status=status, raw=raw_json({**via, "order": order}), **common,
        ))
    return out


def trade_without_order(tr: JsonObject, ctx: Ctx, endpoint: str) -> Event:
    """A trade whose order was not in the same REST answer (older than the order cursor)."""
    symbol, order_id, trade_id = req_str(tr, "symbol"), req_int(tr, "orderId"), req_int(tr, "id")
    qty, px = req_dec(tr, "qty"), req_dec(tr, "price")
    return Event(
        event_id=order_fact_id(ctx.account, symbol, order_id, "TRADE", trade_id=trade_id),
        ts=req_int(tr, "time"), received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.STREAM, kind=Kind.FILL, symbol=symbol,
        side="BUY" if req_bool(tr, "isBuyer") else "SELL", qty=qty, price=_pos(px),
        notional=_pos(opt_dec(tr, "quoteQty")) or qty * px, order_id=order_id,
        exec_type="TRADE", raw=raw_json({"via": "rest", "endpoint": endpoint, "trade": tr}),
    )


# -- other user-data events ---------------------------------------------------------------------
def account_position(ev: JsonObject, ctx: Ctx) -> list[Event]:
    """`outboundAccountPosition` -> one balance event per asset."""
    u, when = req_int(ev, "u"), req_int(ev, "E")
    rows = ev.get("B")
    if not isinstance(rows, list):
        raise Malformed("'B' must be a list of balances")
    out = []
    for row in rows:
        b = req_obj(row, "a balance in 'B'")
        asset = req_str(b, "a")
        out.append(Event(
            event_id=make_event_id(Source.STREAM, "balance", ctx.account, asset, u),
            ts=when, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
            source=Source.STREAM, kind=Kind.BALANCE, asset=asset, free=req_dec(b, "f"),
            locked=req_dec(b, "l"), raw=raw_json({"e": ev.get("e"), "E": when, "u": u, "B": b}),
        ))
    return out


def balance_delta(ev: JsonObject, ctx: Ctx) -> Event:
    """`balanceUpdate` / `externalLockUpdate`: a signed delta on one asset (kept in raw)."""
    asset, tx = req_str(ev, "a"), req_int(ev, "T")
    delta = req_dec(ev, "d", signed=True)
    return Event(
        event_id=make_event_id(Source.STREAM, ev["e"], ctx.account, asset, tx, ev["d"]),
        ts=req_int(ev, "E"), received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.STREAM, kind=Kind.BALANCE, asset=asset, raw=raw_json({**ev, "delta": delta}),
    )


def list_status(ev: JsonObject, ctx: Ctx) -> Event:
    g, tx = req_int(ev, "g"), req_int(ev, "T")
    return Event(
        event_id=make_event_id(Source.STREAM, "list", ctx.account, g, req_str(ev, "l"), tx),
        ts=tx, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.STREAM, kind=Kind.ORDER, symbol=req_str(ev, "s"),
        client_order_id=req_str(ev, "C"), order_status=req_str(ev, "L"), raw=raw_json(ev),
    )


def user_event(ev: Any, ctx: Ctx) -> tuple[list[Event], str | None]:
    """One inner user-data event -> (events, control). Raises `Malformed`."""
    ev = req_obj(ev, "event")
    etype = req_str(ev, "e")
    when = req_int(ev, "E")
    if etype == "executionReport":
        return [execution_report(ev, ctx)], None
    if etype == "outboundAccountPosition":
        return account_position(ev, ctx), None
    if etype in ("balanceUpdate", "externalLockUpdate"):
        return [balance_delta(ev, ctx)], None
    if etype == "listStatus":
        return [list_status(ev, ctx)], None
    if etype in ("eventStreamTerminated", "serverShutdown", "listenKeyExpired"):
        control = "shutdown" if etype == "serverShutdown" else "terminated"
        return [status_event(Source.STREAM, ctx, etype, when, (when,), event=redact_ev(ev))], \
            control
    # A type this version does not know: kept, visible, not an error.
    digest = hashlib.sha256(raw_json(ev).encode()).hexdigest()[:12]
    return [status_event(Source.STREAM, ctx, "unknown_event", when, (etype[:40], when, digest),
                         event=redact_ev(ev))], None


def redact_ev(ev: JsonObject) -> Any:
    return json.loads(raw_json(ev))


def ws_frame(text: str | bytes, ctx: Ctx) -> Frame:
    """Parse one WS API text frame. Total: a bad frame becomes `control="malformed"`."""
    try:
        data = json.loads(text)
        obj = req_obj(data, "frame")
        if "event" in obj:
            events, control = user_event(obj["event"], ctx)
            return Frame(events=events, control=control)
        if "id" in obj and ("result" in obj or "error" in obj or "status" in obj):
            return Frame(response=obj)
        raise Malformed("neither an event envelope nor a response")
    except (ValueError, TypeError, KeyError, ValidationError, RecursionError) as exc:
        where = "ws_frame"
        return Frame(events=[malformed_event(Source.STREAM, ctx, where, _why(exc), text)],
                     control="malformed")


def _why(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    return f"{type(exc).__name__}: {exc}"


def safely(source: Source, ctx: Ctx, where: str, payload: Any, fn: Any, *args: Any) -> list[Event]:
    """Run a raising parser; a failure becomes one malformed event instead of an exception."""
    try:
        out = fn(*args)
        return out if isinstance(out, list) else [out]
    except (ValueError, TypeError, KeyError, ValidationError, RecursionError) as exc:
        text = payload if isinstance(payload, str | bytes) else _dump(payload)
        return [malformed_event(source, ctx, where, _why(exc), text)]


def _dump(payload: Any) -> str:
    try:
        return json.dumps(payload, sort_keys=True, default=str)
    except (ValueError, TypeError, RecursionError):
        return repr(payload)
