"""`keywatch eval --scenario`: a shipped scenario through the real service, scored.

The simulator runs `one_hour` (every attack type once) in its own process; the service watches
it over real HTTP, WebSocket and the tap. Every episode must be caught, live and in the replay of
what the collector stored, each seed signal by its own rule, and the slow misuse (stamped with
the tapped DCA bot's prefix, but never through the tap) by foreign.order: provenance before
prefixes (issue 14).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.detect.forest import ForestModel
from monitor.store import SQLiteStore
from monitor.world.evaluate.realpath import run_scenario
from monitor.world.groundtruth import AttackType
from monitor.world.sim.clientbots import find_libfaketime

REPO = Path(__file__).resolve().parents[3]
SEED_SIGNALS = {
    "call_rate_spike": AttackType.RUNAWAY_BOT,
    "unknown_ip": AttackType.HOST_IP_CHANGED,
    "failure_rate_jump": AttackType.PERMISSION_PROBE,
    "oversized_rejected_order": AttackType.OVERSIZED_ORDERS,
}


@pytest.mark.timeout(300)
@pytest.mark.slow  # a simulated hour through the service, ~35 s: `make test-slow`
async def test_one_hour_through_the_real_service(tmp_path: Path) -> None:
    forest = ForestModel.load(REPO / "models" / "default.skops")
    report = await run_scenario("one_hour", rules_dir=REPO / "rules", forest=forest,
                                speed=120, seed=11, out=tmp_path)
    run = report.pop("run")
    assert run["events"] > 300
    assert set(report) == {"alerts", "live", "rules", "forest", "both"}
    for mode in ("live", "both"):
        missed = [a for a, r in report[mode]["per_attack"].items() if r["caught"] < r["total"]]
        assert not missed, (mode, missed)
        assert len(report[mode]["per_attack"]) == len(AttackType)
    both = report["both"]
    for signal, attack in SEED_SIGNALS.items():
        assert attack.value in both["per_signal"].get(signal, []), (signal, both["per_signal"])
    assert report["rules"]["per_attack"]["slow_misuse"]["caught"] == 1
    assert "slow_misuse" in both["per_signal"].get("foreign_order", []), both["per_signal"]
    assert both["false_findings"] == 0, both["per_detector"]
    # the DCA key declares no whitelist: its bot's own first address is prompted once, to confirm
    assert both["confirmations"] == 1, both
    assert report["alerts"]["false_findings"] == 0


@pytest.mark.timeout(300)
@pytest.mark.skipif(find_libfaketime() is None,
                    reason="libfaketime is not installed (Debian package 'faketime'; `make "
                           "test` installs it when run as root): the stock clients cannot keep "
                           "the accelerated clock")
async def test_stock_client_bots_through_the_real_service(tmp_path: Path) -> None:
    """An hour of unmodified ccxt, binance-connector and python-binance bots: the service
    stores their traffic (tapped and not) and raises nothing about it."""
    forest = ForestModel.load(REPO / "models" / "default.skops")
    said: list[str] = []
    report = await run_scenario("real_clients_hour", rules_dir=REPO / "rules", forest=forest,
                                speed=120, seed=3, out=tmp_path, say=said.append)
    run = report.pop("run")
    summaries = [line for line in said if "rounds ok=" in line]
    assert len(summaries) == 3 and all("failed=0" in line for line in summaries), said
    store = SQLiteStore(Path(run["run_dir"]) / "keywatch.db")
    try:
        events = store.load_events()
    finally:
        store.close()
    tapped = events[events["source"] == "tap"]
    assert {"ccxt-grid", "dca"} <= set(tapped["key"].dropna())
    orders = events[events["kind"] == "order"]
    assert orders["client_order_id"].str.startswith("x-TKT5PX2F").any()
    for mode in ("live", "both", "alerts"):
        assert report[mode]["false_findings"] == 0, (mode, report[mode])
