from __future__ import annotations

import itertools
from typing import Any

import pytest
from pydantic import SecretStr

from monitor.config import AlertsConfig, ChannelConfig
from monitor.core.clock import ManualClock
from monitor.core.findings import Finding, Severity, Signal
from monitor.store import SQLiteStore

T0 = 1_785_000_000_000  # 2026-07-25 17:20 UTC (before the 08:00 digest hour is not assumed)
_seq = itertools.count()

# The one account every config-file test uses: a monitor key whose env vars the test sets.
MONITOR_ACCOUNT_TOML = """
[[accounts]]
name = "main"
monitor_key = "monitor"
  [[accounts.keys]]
  label = "monitor"
  use_case = "monitoring"
  api_key_env = "KW_KEY"
  api_secret_env = "KW_SECRET"
"""


def finding(
    *, rule: str = "unknown-ip", sev: Severity = Severity.CRITICAL, account: str = "main",
    key: str | None = "grid-bot", ip: str = "127.66.0.9", ts: int = T0, state: str = "firing",
    signal: Signal = Signal.UNKNOWN_IP, evidence: dict[str, Any] | None = None,
    group: dict[str, str] | None = None,
) -> Finding:
    return Finding(
        finding_id=f"{rule}:{next(_seq)}", ts=ts, rule_id=rule, signal=signal, severity=sev,
        account=account, key=key, title="Key called from an unknown IP",
        summary=f"{ip} called key {key} and is not in its whitelist.",
        evidence=evidence if evidence is not None else {
            "ip": ip, "requests": 42, "baseline_requests": 3.5, "first_ts": ts - 60_000,
        },
        group={"ip": ip} if group is None else group, state=state,
    )


def foreign_order(order_id: int, *, ts: int = T0, cid: str = "web_1", symbol: str = "BTCUSDT",
                  key: str | None = None, state: str = "firing") -> Finding:
    """An account-wide foreign-order finding as the engine builds it (no key, no group)."""
    return Finding(
        finding_id=f"foreign.order:{next(_seq)}", ts=ts, rule_id="foreign.order",
        signal=Signal.FOREIGN_ORDER, severity=Severity.HIGH, account="main", key=key,
        title="Order placed by no registered bot",
        summary=f"Order placed by no registered bot on account main ({symbol}).",
        evidence={"order_id": order_id, "client_order_id": cid, "symbol": symbol,
                  "side": "BUY", "source": "stream", "kind": "order"},
        state=state,
    )


def channel(name: str, url: str, tags: list[str] | None = None) -> ChannelConfig:
    """A channel as `load_config` resolves it (resolved_url set from url)."""
    return ChannelConfig(name=name, url=url, tags=tags or []).model_copy(
        update={"resolved_url": SecretStr(url)}
    )


def alerts_cfg(*channels: ChannelConfig, **kw: Any) -> AlertsConfig:
    base: dict[str, Any] = {"group_wait_s": 10, "repeat_interval_s": 3600, "cooldown_s": 300}
    base.update(kw)
    return AlertsConfig(channels=list(channels), **base)


@pytest.fixture()
def store(tmp_path):
    s = SQLiteStore(tmp_path / "kw.db")
    yield s
    s.close()


@pytest.fixture()
def clock():
    return ManualClock(T0)
