"""The store's files are private (issue 15 item 7) and its WAL is watched (item 6)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from monitor.store import SQLiteStore
from tests.factories import full_event


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_store_wal_and_shm_are_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual default, which made them 0644
    try:
        store = SQLiteStore(tmp_path / "kw.db")
        store.insert_events([full_event(1)])
        files = [tmp_path / "kw.db", tmp_path / "kw.db-wal", tmp_path / "kw.db-shm"]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
        store.close()
    finally:
        os.umask(old)


def test_an_older_world_readable_store_is_tightened_on_open(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    store.insert_events([full_event(1)])
    store.close()
    os.chmod(tmp_path / "kw.db", 0o644)
    store = SQLiteStore(tmp_path / "kw.db")
    assert _mode(tmp_path / "kw.db") == 0o600 and store.count_events() == 1
    store.close()
