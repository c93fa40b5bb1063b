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


def _batch(start: int, n: int) -> list:
    return [full_event(i).model_copy(update={"raw": '{"pad":"' + "x" * 2000 + '"}'})
            for i in range(start, start + n)]


async def test_a_held_reader_grows_the_wal_visibly_and_its_end_lets_it_truncate(
        tmp_path: Path) -> None:
    """Issue 15 item 6: a notebook holding a read transaction grew the WAL unseen. Now the
    writer's checkpoint reports the WAL's size (metric + health warning) and, once the reader
    is gone, truncates it to zero."""
    import sqlite3

    from monitor.collect.ingest import Ingest
    from monitor.service.healthchecks import CollectorHealth, HealthWatch, IngestState
    from monitor.service.metrics import Metrics

    store = SQLiteStore(tmp_path / "kw.db")
    metrics = Metrics()
    ing = Ingest(store, metrics=metrics)
    watch = HealthWatch(metrics, wal_warn_bytes=1 << 20)

    def verdict():  # what Collector.health hands the watch
        return watch.check(CollectorHealth([], IngestState(0, 10, None, None, ing.wal_bytes)),
                           0)

    await ing.put(_batch(0, 50))
    await ing.flush()
    reader = sqlite3.connect(tmp_path / "kw.db", isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 50  # snapshot held
    for k in range(1, 6):
        await ing.put(_batch(k * 1000, 400))
        await ing.flush()
        await ing.checkpoint()
    wal = metrics.registry.get_sample_value("keywatch_store_wal_bytes")
    assert wal == ing.wal_bytes == (tmp_path / "kw.db-wal").stat().st_size > 1 << 20
    held = verdict()
    assert held.ok and len(held.warnings) == 1 and "reader holds an old snapshot" in (
        held.warnings[0])
    reader.execute("COMMIT")
    reader.close()
    await ing.checkpoint()
    assert ing.wal_bytes == 0 and (tmp_path / "kw.db-wal").stat().st_size == 0
    assert metrics.registry.get_sample_value("keywatch_store_wal_bytes") == 0
    assert verdict().warnings == [] and store.count_events() == 50 + 5 * 400
    store.close()
