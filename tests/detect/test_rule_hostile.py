"""Hostile rule files give one line each (file:line, what, the fix) quickly: no hang on a
billion-laughs or self-referential alias, no traceback on deep nesting or non-UTF-8 text.
Aliases themselves stay allowed: the shipped rules reuse values through them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from monitor.cli import app
from monitor.detect.rules import RuleError, load_rules

GOOD = Path(__file__).resolve().parents[2] / "rules" / "account.yaml"

LAUGHS = "lists:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n"
    for i in range(8)) + "rules: []\n"
SELF = "lists:\n  loop: &loop [*loop]\nrules: []\n"
DEEP = "lists:\n  deep: " + "[" * 5000 + "]" * 5000 + "\nrules: []\n"


def rules_dir(tmp_path: Path, body: bytes | str) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "good.yaml").write_text(GOOD.read_text())
    data = body.encode() if isinstance(body, str) else body
    (d / "hostile.yaml").write_bytes(data)
    return d


@pytest.mark.parametrize("body, line, expected", [
    (LAUGHS, 2, "its YAML aliases expand to more than 100,000 values"),
    (SELF, 2, "a YAML alias refers to the value it is part of"),
    (DEEP, 2, "nested more than 64 levels deep"),
    (b"rules:\n  - id: caf\xe9\n", 2, "not UTF-8 text"),
])
def test_a_hostile_rule_file_is_one_line_with_file_and_line(tmp_path: Path, body: str | bytes,
                                                            line: int, expected: str) -> None:
    d = rules_dir(tmp_path, body)
    t0 = time.monotonic()
    with pytest.raises(RuleError) as err:
        load_rules(d)
    assert time.monotonic() - t0 < 2
    (problem,) = err.value.problems
    assert problem.startswith(f"{d / 'hostile.yaml'}:{line}: ") and expected in problem, problem


def test_check_rules_reports_a_billion_laughs_without_hanging(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check-rules", str(rules_dir(tmp_path, LAUGHS))])
    assert result.exit_code == 1 and "expand to more than" in result.output
    assert "Traceback" not in result.output


def test_a_fifo_among_the_rule_files_does_not_block(tmp_path: Path) -> None:
    d = rules_dir(tmp_path, "rules: []\n")
    os.mkfifo(d / "pipe.yaml")
    with pytest.raises(RuleError, match="not a regular file"):
        load_rules(d)


def test_a_missing_rules_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(RuleError) as err:
        load_rules(tmp_path / "nope")
    assert len(err.value.problems) == 1 and "not a directory" in err.value.problems[0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(["rules:", "lists:", "  - ", "&a ", "*a ", "[", "]", "{", "}",
                              "id: x", ": ", "\n", "  ", "kind: threshold", "- *a"]),
             max_size=40).map("".join),
))
def test_any_bytes_as_a_rule_file_load_or_give_rule_errors(body: bytes | str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d = rules_dir(Path(tmp), body)
        try:
            rules = load_rules(d)
        except RuleError as exc:
            assert exc.problems and all(p.startswith(str(d)) for p in exc.problems)
        else:
            assert rules
