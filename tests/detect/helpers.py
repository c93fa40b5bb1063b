"""Plain builders for detection tests: a small config and events with sensible defaults."""

from __future__ import annotations

import itertools
from typing import Any

from monitor.config import Config
from monitor.core.events import Event, Kind, Source, make_event_id

T0 = 1_785_024_000_000  # a UTC midnight
MIN = 60_000
_serial = itertools.count()


def make_config(*, whitelist: list[str] | None = None, egress: str | None = None,
                use_case: str = "spot-bot", monitor_whitelist: list[str] | None = None) -> Config:
    return Config.model_validate({
        "egress_ip": egress,
        "accounts": [{"name": "main", "monitor_key": "mon", "keys": [
            {"label": "grid", "use_case": use_case, "client_order_prefixes": ["grid-"],
             "ip_whitelist": whitelist or []},
            {"label": "mon", "use_case": "monitoring", "ip_whitelist": monitor_whitelist or []},
        ]}],
    })


def ev(kind: str = "request", *, ts: int = T0, source: str = "tap", key: str | None = "grid",
       **kw: Any) -> Event:
    n = next(_serial)
    base: dict[str, Any] = {"event_id": make_event_id(Source(source), f"t{n}"), "ts": ts,
                            "received_ts": ts, "account": "main", "key": key,
                            "source": Source(source), "kind": Kind(kind)}
    if source in ("tap", "log") and kind in ("request", "reject"):
        base.update(ip="10.0.0.5", method="GET", endpoint="/api/v3/account", status=200)
    base.update(kw)
    return Event(**base)


def order(ts: int, *, status: int = 200, code: int | None = None, notional: float = 100.0,
          side: str = "BUY", ip: str = "10.0.0.5", cid: str = "grid-1") -> Event:
    kind = "reject" if code in (-2010, -1013) else "request"
    return ev(kind, ts=ts, method="POST", endpoint="/api/v3/order", status=status, code=code,
              symbol="BTCUSDT", side=side, qty=notional / 65000, price=65000.0,
              notional=notional, ip=ip, client_order_id=cid)
