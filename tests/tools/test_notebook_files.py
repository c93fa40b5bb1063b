"""`keywatch notebook` writes its executed notebook and HTML owner-only (0600), even over an
older world-readable copy and under the usual umask 022: they hold the account's evidence."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import nbformat
import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.store import AlertPayload, SQLiteStore
from monitor.tools.investigate import run as nbrun
from monitor.tools.investigate.files import write_private

T0 = 1_785_000_000_000


def mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture()
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_write_private_is_0600_and_replaces_a_readable_copy(tmp_path, umask_022) -> None:
    target = tmp_path / "new" / "incident.html"
    target.parent.mkdir()
    target.write_text("old")
    os.chmod(target, 0o644)
    write_private(target, "<html>evidence</html>")
    assert mode(target) == 0o600 and target.read_text() == "<html>evidence</html>"
    assert [p.name for p in target.parent.iterdir()] == ["incident.html"]  # no temp left
    made = write_private(tmp_path / "fresh" / "sub" / "x.ipynb", "{}")
    assert mode(made) == 0o600 and mode(made.parent) == 0o700


def test_notebook_command_writes_0600_files(tmp_path, monkeypatch, umask_022) -> None:
    pytest.importorskip("nbconvert")
    db = tmp_path / "kw.db"
    store = SQLiteStore(db)
    store.enqueue_alert("kw-1", "fp", T0, "critical", "main", "bot", "new", "t", "b",
                        AlertPayload(), ["hook"])
    store.close()
    # the kernel run is not what this test is about: a one-cell notebook stands in for it
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("balances: 1 BTC")])
    monkeypatch.setattr(nbrun, "execute", lambda path, params: nb)
    html = tmp_path / "incident.html"
    html.write_text("old")
    os.chmod(html, 0o644)
    res = CliRunner().invoke(app, ["notebook", "kw-1", "--db", str(db), "-c",
                                   str(tmp_path / "none.toml"), "--out", str(tmp_path / "runs"),
                                   "--html", str(html)])
    assert res.exit_code == 0, res.output
    assert mode(html) == 0o600 and "balances" in html.read_text()
    ipynb = tmp_path / "runs" / "incident-kw-1.ipynb"
    assert mode(ipynb) == 0o600 and mode(ipynb.parent) == 0o700
