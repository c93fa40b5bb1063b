"""One bounded queue into the store: drops counted, re-ingestion a no-op."""

from __future__ import annotations

from monitor.collect.ingest import Ingest
from monitor.store import SQLiteStore
from tests.factories import full_event


async def test_drops_counted_and_duplicates_ignored(tmp_path) -> None:
    seen: list[int] = []
    ing = Ingest(SQLiteStore(tmp_path / "kw.db"), maxsize=3,
                 on_events=lambda evs: seen.append(len(evs)))
    assert ing.offer([full_event(i) for i in range(5)]) == 2
    assert ing.dropped == 2 and ing.received["tap/reject"] == 5
    await ing.flush()
    await ing.put([full_event(0), full_event(1)])  # the same facts again
    await ing.flush()
    # detection is handed only the new facts: the repeats are stored once and seen once
    assert ing.written == 3 and ing.duplicates == 2 and sum(seen) == 3
