"""Rule files: the shipped set loads, and bad files give every error with file:line and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect.rules import RuleError, load_rules

RULES = Path(__file__).resolve().parents[2] / "rules"

GOOD = """\
rules:
  - id: ok.one
    title: Fine
    kind: threshold
    signal: call_rate_spike
    severity: high
    metric: requests
    value: 10
    description: d
    action: a
"""

BAD = """\
lists:
  codes: [-2015]
rules:
  - id: bad.kind
    title: t
    kind: thresold
    signal: call_rate_spike
    severity: high
    description: d
    action: a
  - id: bad.metric
    title: t
    kind: threshold
    signal: call_rate_spike
    severity: urgent
    metric: reqs
    value: 10
    description: d
  - id: bad.where
    title: t
    kind: event_match
    signal: failure_rate_jump
    severity: high
    where:
      cod: {in: codes}
      code: {in: missing_list}
    description: d
    action: a
  - id: ok.one
    title: dup of the other file
    kind: threshold
    signal: call_rate_spike
    severity: high
    metric: requests
    value: 10
    description: d
    action: a
"""


def test_shipped_rules_load_and_carry_the_seed_advice() -> None:
    rules = load_rules(RULES)
    assert len(rules) >= 20
    for r in rules:
        assert r.action and r.description and r.tags, r.id
    # every shipped rule has an (empty) exceptions hook operators can fill
    for path in RULES.glob("*.yaml"):
        for item in yaml.safe_load(path.read_text())["rules"]:
            assert "exceptions" in item, f"{path.name}: {item['id']} lacks `exceptions: []`"
    signals = {r.signal.value for r in rules}
    assert {"call_rate_spike", "unknown_ip", "failure_rate_jump",
            "oversized_rejected_order", "foreign_order", "withdrawal", "posture", "drift",
            "trading_status"} <= signals


def test_all_errors_reported_at_once_with_locations(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(BAD)
    (tmp_path / "c.yaml").write_text("rules: [\n  - id: x\n")
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    problems = info.value.problems
    b, c = tmp_path / "b.yaml", tmp_path / "c.yaml"
    expected = [
        (f"{b}:6:", "unknown kind 'thresold'; known: baseline_ratio, event_match"),
        (f"{b}:11:", "missing required field 'action'"),
        (f"{b}:15:", "severity 'urgent' is not one of info, warning, high, critical"),
        (f"{b}:16:", "unknown metric 'reqs'; known: requests"),
        (f"{b}:24:", "unknown field 'cod' in where"),
        (f"{b}:24:", "list 'missing_list' is not defined; add it under `lists:`"),
        (f"{b}:29:", "duplicate rule id 'ok.one'"),
        (f"{c}:", "not valid YAML"),
    ]
    for where, what in expected:
        assert any(p.startswith(where) and what in p for p in problems), (where, what, problems)
    assert len(problems) == len(expected)


@pytest.mark.parametrize("text, message", [
    ("rules:\n  - id: x\n    title: t\n    kind: baseline_ratio\n    signal: posture\n"
     "    severity: info\n    metric: failures\n    ratio: 3\n    description: d\n"
     "    action: a\n", "min_count"),
    ("rules:\n  - id: x\n    title: t\n    kind: posture\n    check: nope\n    signal: posture\n"
     "    severity: info\n    description: d\n    action: a\n", "unknown posture check 'nope'"),
    ("rules:\n  - id: x\n    title: t\n    kind: new_value\n    field: colour\n"
     "    signal: unknown_ip\n    severity: info\n    description: d\n    action: a\n",
     "new_value field must be one of"),
    ("ruls: []\n", "unknown top-level key 'ruls'"),
])
def test_each_kind_validates_its_parameters(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "r.yaml").write_text(text)
    with pytest.raises(RuleError) as info:
        load_rules(tmp_path)
    assert any(message in p and str(tmp_path / "r.yaml") in p for p in info.value.problems)


def test_check_rules_command(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["check-rules", str(RULES)])
    assert ok.exit_code == 0 and "rules OK" in ok.output
    (tmp_path / "b.yaml").write_text(BAD)
    bad = runner.invoke(app, ["check-rules", str(tmp_path)])
    assert bad.exit_code == 1
    assert f"{tmp_path / 'b.yaml'}:6: unknown kind 'thresold'" in bad.output
    assert "error(s)" in bad.output
