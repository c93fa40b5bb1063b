"""Plain builders for test events; keys and secrets are obviously fake and made at run time."""

from __future__ import annotations

from monitor.core.events import Event, Kind, Source, make_event_id, raw_json

T0 = 1_785_000_000_000


def fake_secret(tag: str = "secret") -> str:
    """An obviously fake 64-character secret, built at run time (never a literal in git)."""
    return (f"FAKE{tag.upper()}" * 64)[:64]


def full_event(i: int, *, account: str = "main", key: str = "grid-bot") -> Event:
    """An event with every field set, so round trips exercise every column."""
    return Event(
        event_id=make_event_id(Source.TAP, f"req-{i}"),
        ts=T0 + i,
        received_ts=T0 + i + 5,
        account=account,
        key=key,
        source=Source.TAP,
        kind=Kind.REJECT,
        ip=f"127.66.{i % 250}.9",
        method="post",
        endpoint="/api/v3/order",
        status=400,
        code=-2010,
        weight_1m=17 + i,
        orders_10s=3,
        orders_1d=812,
        latency_ms=1.25,
        symbol="BTCUSDT",
        side="buy",
        order_type="limit",
        qty=0.01,
        price=65000.5,
        notional=650.005,
        order_id=28 + i,
        client_order_id=f"grid1-{i}",
        exec_type="rejected",
        order_status="rejected",
        reject_reason="INSUFFICIENT_BALANCES",
        asset="USDT",
        free=1520.5,
        locked=200.0,
        raw=raw_json({"code": -2010, "msg": "Account has insufficient balance"}),
    )


def small_event(i: int, prefix: str = "e") -> Event:
    return Event(
        event_id=make_event_id(Source.STREAM, prefix, i),
        ts=T0 + i,
        received_ts=T0 + i,
        account="main",
        key="monitor",
        source=Source.STREAM,
        kind=Kind.ORDER,
        order_id=i,
        symbol="BTCUSDT",
    )
