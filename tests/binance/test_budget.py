"""The weight budget: calendar minutes, a head and a guard, a reserve for the watchdog."""

from __future__ import annotations

from monitor.binance.budget import WeightBudget, pool_for

M = 60_000
T0 = 29_750_000 * M  # the start of a minute


def test_minute_allowance_head_guard_and_reserve() -> None:
    b = WeightBudget(per_minute=60, guard_ms=10_000, reserve=10, head_ms=5_000)
    assert b.charge(20, T0 + 1_000) == 5_000 - 1_000 + 1  # too early in the minute
    assert b.charge(40, T0 + 6_000) == 0
    assert b.charge(20, T0 + 7_000) > 0  # 60 would eat the reserve
    assert b.charge(10, T0 + 7_000) == 0
    assert b.charge(10, T0 + 7_000, priority=True) == 0  # the reserve is for the watchdog
    assert b.charge(1, T0 + 7_000, priority=True) > 0  # never past the whole allowance
    assert b.charge(1, T0 + 55_000, priority=True) == M - 55_000 + 5_000 + 1  # guard
    assert b.charge(40, T0 + M + 5_000) == 0  # a new minute


def test_heavy_call_alone_then_blocks_long_enough() -> None:
    b = WeightBudget(per_minute=1800, guard_ms=5_000, head_ms=5_000)
    assert b.charge(18000, T0 + 6_000) == 0
    assert b.charge(1, T0 + 5 * M + 6_000) > 0
    assert b.charge(1, T0 + 10 * M + 6_000) == 0


def test_pools() -> None:
    assert pool_for("/api/v3/account") == "api"
    assert pool_for("/sapi/v1/account/apiRestrictions") == "sapi_ip"
    assert pool_for("/sapi/v1/capital/withdraw/history") == "sapi_uid"
