"""`keywatch run` with a store it cannot use: check-config's one line, exit 2, no traceback.

Through the real CLI in a subprocess, without `--skip-checks`: the store is judged before the
start-up checks make any network call (the config points Binance at a closed loopback port, so
a check that ran first would refuse with exit 3 and a monitor-key line instead)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.config.configkit import ENV, check_config, write_config

CLOSED = 'rest_url = "http://127.0.0.1:9"\nws_api_url = "ws://127.0.0.1:9/ws-api/v3"\n'


def _config(tmp_path: Path, store: Path) -> Path:
    path = write_config(tmp_path, tail="[binance]\n" + CLOSED)
    path.write_text(path.read_text().replace('store_path = "kw.db"', f'store_path = "{store}"'))
    return path


def _run(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "monitor.cli", "run", "-c", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV}, cwd=path.parent)


def _store_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "store_path" in ln]
    assert len(lines) == 1, stderr
    return lines[0]


def _assert_same_as_check_config(path: Path, expect: str) -> None:
    proc = _run(path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    line = _store_line(proc.stderr)
    assert line.startswith(f"refusing to start: {path}: store_path: ") and expect in line, line
    checked = check_config(path)
    assert checked.exit_code == 1
    # one definition: run prints the very problem check-config reports
    assert line.split(f"{path}: ", 1)[1] in checked.output.replace("\n    ", " "), checked.output


def test_a_folder_as_the_store_path(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _assert_same_as_check_config(_config(tmp_path, folder), "is not a regular file")


def test_a_store_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a folder")
    _assert_same_as_check_config(_config(tmp_path, tmp_path / "afile" / "kw.db"),
                                 "does not exist (or is not a folder)")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_a_store_in_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        _assert_same_as_check_config(_config(tmp_path, ro / "kw.db"), "cannot write there")
    finally:
        ro.chmod(0o755)


def test_a_folder_nobody_can_create_files_in(tmp_path: Path) -> None:
    """/proc takes no new file, not even root's: the 'cannot write there' line as any user."""
    _assert_same_as_check_config(_config(tmp_path, Path("/proc/keywatch-test.db")),
                                 "cannot write there")


def test_a_writable_store_is_not_refused(tmp_path: Path) -> None:
    """The guard the others need: a good store passes, and the service goes on to load its
    rules (a missing folder here, so it stops there at once, with that line instead)."""
    path = _config(tmp_path, tmp_path / "kw.db")
    path.write_text(f'rules_dir = "{tmp_path}/nope"\n' + path.read_text())
    proc = subprocess.run([sys.executable, "-m", "monitor.cli", "run", "--skip-checks", "-c",
                           str(path)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **ENV}, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "store_path" not in proc.stderr and "nope: not a directory" in proc.stderr
    assert (tmp_path / "kw.db").exists()
