"""Strict parsers for the poller's REST answers: key posture, counters, balances, withdrawals.

Same rules as `parse.py` (raise `Malformed`, wrap with `parse.safely`), for the `/sapi` and
account endpoints only the poller calls, plus the usage headers every response carries.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict

from monitor.binance.parse import (
    Ctx,
    Malformed,
    req_bool,
    req_dec,
    req_int,
    req_obj,
    req_str,
)
from monitor.core.events import Event, Kind, Source, make_event_id, raw_json
from monitor.core.keyrestrictions import ENDPOINT, KeyConfigPoll, KeyRestrictions

WITHDRAW_STATUS = {0: "EMAIL_SENT", 1: "CANCELLED", 2: "AWAITING_APPROVAL", 3: "REJECTED",
                   4: "PROCESSING", 5: "FAILURE", 6: "COMPLETED"}


def key_restrictions(body: Any) -> KeyRestrictions:
    """Validate an `apiRestrictions` answer into the key's one typed record."""
    return KeyRestrictions.from_answer(body)


def key_config_event(
    ctx: Ctx, ts: int, rec: KeyRestrictions, previous: KeyRestrictions | None,
    *, retired_for: tuple[str, ...] = (),
) -> Event | None:
    """The `key_config` event for a poll: the first one, a changed one, or the one on which
    Keywatch stopped using the key (`retired_for`); None when nothing changed. The raw is the
    record in the answer's own flat shape, which is what posture reads."""
    if previous == rec and not retired_for:
        return None
    return Event(
        event_id=make_event_id(Source.REST, "key_config", ctx.account, ctx.key, ts),
        ts=ts, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.REST, kind=Kind.KEY_CONFIG, endpoint=ENDPOINT,
        raw=KeyConfigPoll(rec, retired_for).to_json(),
    )


def trading_status(body: Any, ctx: Ctx, ts: int) -> Event:
    """`apiTradingStatus` -> a usage sample carrying the lock flag and trigger indicators."""
    data = req_obj(req_obj(body, "apiTradingStatus").get("data"), "data")
    req_bool(data, "isLocked")
    req_int(data, "plannedRecoverTime")
    triggers = req_obj(data.get("triggerCondition"), "triggerCondition")
    for k in triggers:
        req_int(triggers, k)
    return Event(
        event_id=make_event_id(Source.REST, "trading_status", ctx.account, ts),
        ts=ts, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.REST, kind=Kind.USAGE, endpoint="/sapi/v1/account/apiTradingStatus",
        raw=raw_json(body),
    )


def order_counts(body: Any, ctx: Ctx, ts: int) -> Event:
    """`rateLimit/order` -> a usage sample with the account-wide order counters."""
    if not isinstance(body, list):
        raise Malformed("rateLimit/order must be a list")
    counts: dict[str, int] = {}
    for row in body:
        r = req_obj(row, "a rate limit")
        unit = f"{req_int(r, 'intervalNum')}{req_str(r, 'interval')[:1]}"
        req_int(r, "limit")
        counts[unit] = req_int(r, "count")
    return Event(
        event_id=make_event_id(Source.REST, "order_count", ctx.account, ts),
        ts=ts, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
        source=Source.REST, kind=Kind.USAGE, endpoint="/api/v3/rateLimit/order",
        orders_10s=counts.get("10S"), orders_1d=counts.get("1D"), raw=raw_json(body),
    )


def account_balances(body: Any, ctx: Ctx) -> list[Event]:
    """`/api/v3/account` -> one balance event per listed asset."""
    d = req_obj(body, "account")
    upd = req_int(d, "updateTime")
    rows = d.get("balances")
    if not isinstance(rows, list):
        raise Malformed("'balances' must be a list")
    out = []
    for row in rows:
        b = req_obj(row, "a balance")
        asset = req_str(b, "asset")
        out.append(Event(
            event_id=make_event_id(Source.REST, "balance", ctx.account, asset, upd),
            ts=upd, received_ts=ctx.received_ts, account=ctx.account, key=ctx.key,
            source=Source.REST, kind=Kind.BALANCE, endpoint="/api/v3/account", asset=asset,
            free=req_dec(b, "free"), locked=req_dec(b, "locked"), raw=raw_json(b),
        ))
    return out


def _utc_ms(text: str) -> int:
    try:
        dt = datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise Malformed(f"not a 'YYYY-MM-DD HH:MM:SS' time: {text[:30]!r}") from None
    return int(dt.timestamp() * 1000)


def withdrawal(row: Any, ctx: Ctx) -> Event:
    """One withdraw-history row; a status change is a new fact, so the status is in the id."""
    w = req_obj(row, "withdrawal")
    wid, coin, status = req_str(w, "id"), req_str(w, "coin"), req_int(w, "status")
    return Event(
        event_id=make_event_id(Source.REST, "withdrawal", ctx.account, wid, status),
        ts=_utc_ms(req_str(w, "applyTime")), received_ts=ctx.received_ts, account=ctx.account,
        key=ctx.key, source=Source.REST, kind=Kind.WITHDRAWAL,
        endpoint="/sapi/v1/capital/withdraw/history", asset=coin, qty=req_dec(w, "amount"),
        order_status=WITHDRAW_STATUS.get(status, f"STATUS_{status}"), raw=raw_json(w),
    )


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    v = headers.get(name)
    if v is None:
        return None
    try:
        n = int(v.strip())
    except ValueError:
        return None
    return n if n >= 0 else None


class UsageFacts(TypedDict):
    """What Binance's usage headers say, as the `Event` fields of the same names."""

    weight_1m: int | None
    orders_10s: int | None
    orders_1d: int | None


def usage_facts(headers: Mapping[str, str]) -> UsageFacts:
    """Weight and order-count facts from response headers (case-insensitive mapping)."""
    weight = header_int(headers, "x-mbx-used-weight-1m")
    if weight is None:
        weight = header_int(headers, "x-sapi-used-ip-weight-1m")
    return UsageFacts(weight_1m=weight, orders_10s=header_int(headers, "x-mbx-order-count-10s"),
                      orders_1d=header_int(headers, "x-mbx-order-count-1d"))


def usage_headers_raw(headers: Mapping[str, str]) -> dict[str, str]:
    return {
        k.lower(): v for k, v in headers.items()
        if k.lower().startswith(("x-mbx-used", "x-mbx-order", "x-sapi-used")) or
        k.lower() == "retry-after"
    }
