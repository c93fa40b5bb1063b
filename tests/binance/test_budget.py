"""The weight budget: calendar minutes, a head and a guard, a reserve for the watchdog."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from monitor.binance.budget import Budgets, SharedWeight, WeightBudget, pool_for

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


def _rec(ts: int, path: str = "/api/v3/openOrders", weight: int | None = None,
         status: int = 200) -> SimpleNamespace:
    return SimpleNamespace(ts=ts, endpoint=path, weight_1m=weight, status=status)


@pytest.mark.parametrize("records, at, weight, wait", [
    ([], 10_000, 40, 0),                                          # nothing seen
    ([_rec(10_000, weight=5900)], 12_000, 40, 0),                 # room for 40
    ([_rec(10_000, weight=5990)], 12_000, 40, 60_000 - 12_000 + 5_001),  # none: next minute
    ([_rec(10_000, weight=5990)], 61_000, 40, 0),                 # the minute rolled
    ([_rec(10_000, status=429)], 12_000, 1, 60_000 - 12_000 + 5_001),   # a 429: minute spent
    ([_rec(10_000, "/sapi/v1/account/apiRestrictions", 9000)], 12_000, 40, 0),  # other pool
    ([_rec(70_000, weight=100), _rec(10_000, weight=5990)], 72_000, 40, 0),  # late old record
])
def test_shared_weight_waits_only_as_long_as_the_ip_limit_forces(
        records: list[SimpleNamespace], at: int, weight: float, wait: int) -> None:
    shared = SharedWeight()
    shared.observe(records)
    assert shared.wait_ms(weight, at, head_ms=5_000) == wait


def test_a_429_pauses_its_pool_only() -> None:
    b = Budgets(60.0)
    b.pause("api", 50_000)
    assert b.charge("api", 1, 20_000) == 30_000
    assert b.charge("sapi_ip", 1, 20_000) == 0
