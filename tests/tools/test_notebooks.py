"""Both notebooks run top to bottom against a database built from a short scenario.

The incident notebook runs through `keywatch notebook ... --html` (the path a person uses), the
baseline notebook through `monitor.tools.investigate.run.execute`; both in a real python3 kernel.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.tools.investigate.run import (
    BASELINE,
    INCIDENT,
    NOTEBOOKS,
    errors,
    execute,
    images,
    to_html,
)
from monitor.tools.investigate.synthetic import build_db
from monitor.tools.strip_notebooks import main as strip_check
from monitor.world.groundtruth import AttackType

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_db(tmp_path_factory.mktemp("nb") / "kw.db", keys=2, days=0.4, seed=3,
                    attacks=[AttackType.LEAKED_KEY_PUMP, AttackType.OVERSIZED_ORDERS])


def test_committed_notebooks_carry_no_outputs_and_take_parameters():
    assert strip_check(["--check", str(NOTEBOOKS)]) == 0
    for path in (INCIDENT, BASELINE):
        nb = json.loads(path.read_text())
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert "parameters" in code[0]["metadata"].get("tags", []), path.name


@pytest.fixture(scope="module")
def incident_run(built, tmp_path_factory):
    """`keywatch notebook ALERT_ID` for the leaked-key alert, as a person would run it."""
    out = tmp_path_factory.mktemp("run")
    alert_id = built.alert_for(AttackType.LEAKED_KEY_PUMP)
    res = CliRunner().invoke(app, [
        "notebook", alert_id, "--db", str(built.db), "--config", str(built.config),
        "--out", str(out), "--no-open"])
    assert res.exit_code == 0, res.output
    return alert_id, nbformat.read(str(out / f"incident-{alert_id}.ipynb"), as_version=4)


def test_incident_notebook_runs_for_the_leaked_key_alert(incident_run):
    alert_id, nb = incident_run
    assert errors(nb) == []
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and repr(alert_id) in injected[0].source
    pngs = images(nb)
    assert len(pngs) == 5 and all(p.startswith(PNG) for p in pngs)
    text = "".join(o.get("text", "") + json.dumps(o.get("data", {})) for c in nb.cells
                   if c.cell_type == "code" for o in c.outputs)
    assert alert_id in text and "Do this now" in text


def test_incident_notebook_renders_to_html(incident_run):
    pytest.importorskip("nbconvert")  # HTML needs nbconvert; executing does not
    _, nb = incident_run
    page = to_html(nb)
    assert page.count("<img ") >= 5 and "Do this now" in page


def test_incident_command_rejects_an_unknown_alert(built, tmp_path):
    res = CliRunner().invoke(app, ["notebook", "kw-0000000000", "--db", str(built.db),
                                   "--config", str(built.config), "--no-open"])
    assert res.exit_code == 1
    assert "not in" in res.output


def test_baseline_notebook_runs(built, tmp_path):
    nb = execute(BASELINE, {"DB": str(built.db), "CONFIG": str(built.config)}, cwd=tmp_path)
    assert errors(nb) == []
    pngs = images(nb)
    assert len(pngs) == 5 and all(p.startswith(PNG) for p in pngs)
