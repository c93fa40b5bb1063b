"""What the tap reads of one call and keeps of it: the ASGI scope's fields, the request's params
as Binance reads them, Binance's answer (its first bytes), an order call's facts, and the
record's `raw` payload. Plain functions over the call's bytes, so tests can build them alone."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict
from urllib.parse import parse_qsl


class HttpScope(TypedDict, total=False):
    """The fields of an ASGI connection scope (ASGI spec, HTTP and lifespan) the tap reads."""

    type: str
    method: str
    path: str
    raw_path: bytes | None
    query_string: bytes
    headers: list[tuple[bytes, bytes]]
    client: tuple[str, int] | None


class TapRaw(TypedDict, total=False):
    """What a tap event keeps in `raw` (spooled with it; the log tailer reads it back)."""

    params: dict[str, str]  # the request's params, as Binance reads them
    key_present: bool
    unknown_key_sha256_12: str  # an API key the config does not name: its fingerprint's start
    error: str | None  # why the tap answered or recorded it so (refused, upstream error, cut)
    ids: list[list[str | int | None]]  # order endpoints: the orders the ANSWER names
    msg: str  # Binance's error message, cut to 300 characters


class OrderFacts(TypedDict, total=False):
    """The `Event` fields an order call fills in (from its params and Binance's answer)."""

    symbol: str | None
    side: str | None
    order_type: str | None
    qty: float | None
    price: float | None
    notional: float | None
    order_id: int | None
    client_order_id: str | None


def request_params(query: bytes, body: bytes, content_type: str) -> dict[str, str]:
    """Request params as Binance reads them: body first, the query string wins on conflict."""
    out: dict[str, str] = {}
    if body and "json" not in content_type:
        out.update(_pairs(body))
    out.update(_pairs(query))
    return out


def _pairs(data: bytes) -> Iterable[tuple[str, str]]:
    try:
        return parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True)[:200]
    except ValueError:
        return []


def answer_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # an answer nested past the parser is no JSON
        return None


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f >= 0 and f == f and f != float("inf") else None


def order_facts(params: Mapping[str, str], resp: Mapping[str, Any]) -> OrderFacts:
    qty, price = _num(params.get("quantity")), _num(params.get("price"))
    quote = _num(params.get("quoteOrderQty"))
    notional = qty * price if qty is not None and price else quote
    if notional is None:
        notional = _num(resp.get("cummulativeQuoteQty")) or None
    oid = resp.get("orderId")
    cid = params.get("newClientOrderId") or resp.get("clientOrderId")
    return OrderFacts(
        symbol=params.get("symbol") or None, side=params.get("side") or None,
        order_type=params.get("type") or None, qty=qty, price=price or None,
        notional=notional,
        order_id=oid if isinstance(oid, int) and not isinstance(oid, bool) else None,
        client_order_id=cid if isinstance(cid, str) and cid else None,
    )
