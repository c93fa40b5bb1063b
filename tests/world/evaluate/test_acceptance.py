"""Issue 5's acceptance on the synthetic suite, with seeds the detectors were not tuned on.

Every attack caught by at least one detector; each of the seed's four signals caught by its
own rule; <= 1 false finding per key-day over >= 7 key-days of normal traffic; and the forest
catches a class (slow misuse) that no rule does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect.forest import ForestModel
from monitor.world.evaluate.suite import run_suite
from monitor.world.groundtruth import AttackType

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def forest() -> ForestModel:
    return ForestModel.load(ROOT / "models" / "default.skops")


@pytest.mark.parametrize("seed", [31, 57])
def test_acceptance(seed: int, forest: ForestModel) -> None:
    report = run_suite(ROOT / "rules", forest, keys=4, days=3, normal_days=2, seed=seed)
    normal, attacks = report["runs"]["normal"], report["runs"]["attacks"]
    assert normal["both"]["key_days"] >= 7
    assert normal["both"]["false_per_key_day"] <= 1.0
    assert attacks["both"]["false_per_key_day"] <= 1.0
    both = attacks["both"]["per_attack"]
    assert set(both) == {t.value for t in AttackType}
    missed = [t for t, r in both.items() if r["caught"] < r["total"]]
    assert not missed, f"missed: {missed}"
    sig = attacks["rules"]["per_signal"]
    assert "runaway_bot" in sig["call_rate_spike"]
    assert "permission_probe" in sig["unknown_ip"] and "leaked_key_pump" in sig["unknown_ip"]
    assert "permission_probe" in sig["failure_rate_jump"]
    assert "oversized_orders" in sig["oversized_rejected_order"]
    # slow misuse stays under every threshold but stamps a TAPPED bot's prefix: provenance
    # before prefixes (issue 14) makes its untapped orders foreign, so the rules catch it
    assert attacks["rules"]["per_attack"]["slow_misuse"]["caught"] == 1
    assert "slow_misuse" in sig["foreign_order"]


def test_eval_command_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    res = CliRunner().invoke(app, ["eval", "--keys", "2", "--days", "2.5", "--normal-days", "1",
                                   "--seed", "3", "--json", str(out),
                                   "--rules-dir", str(ROOT / "rules"),
                                   "--model", str(ROOT / "models" / "default.skops")])
    assert res.exit_code == 0, res.output
    assert "false findings/key-day" in res.output and out.is_file()
    import json

    data = json.loads(out.read_text())
    assert set(data["runs"]["attacks"]) == {"rules", "forest", "both"}
