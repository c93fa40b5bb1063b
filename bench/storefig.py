"""Figure 6: the store. `bench.store.measure` (batched inserts vs one commit per event, re-insert
of existing ids), plus `load_events` for one key-month of generated traffic (one bot key, 30
days: its tapped requests, orders and the stream's reports), against a full-table load.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench import store as store_bench
from bench.common import Row
from monitor.store import SQLiteStore, events_from_frame
from monitor.world.evaluate.generator import generate


def key_month() -> tuple[float, int, float, int]:
    syn = generate(keys=1, days=30, seed=3)
    events = events_from_frame(syn.events)
    label = syn.bots[0].label
    with tempfile.TemporaryDirectory() as tmp:
        st = SQLiteStore(Path(tmp) / "month.db")
        for i in range(0, len(events), 10_000):
            st.insert_events(events[i:i + 10_000])
        t = time.perf_counter()
        df = st.load_events(key=label)
        one = time.perf_counter() - t
        t = time.perf_counter()
        full = st.load_events()
        every = time.perf_counter() - t
        st.close()
    return len(df) / one, len(df), len(full) / every, len(full)


def run(n: int = 200_000, say: Callable[[str], None] = print) -> list[Row]:
    rows = [Row(**r, goal="", met=None, note=f"{n:,} synthetic events")
            for r in store_bench.measure(n)]
    rate, k, full_rate, total = key_month()
    say(f"store: key-month load {k:,} rows at {rate:,.0f} rows/s")
    rows.append(Row(f"load_events one key-month ({k:,} rows)", rate, "rows/s", full_rate,
                    "load of the whole db", "", None,
                    f"1 generated key x 30 days; the db holds {total:,} events (its stream and "
                    f"poll events are under the monitor key)"))
    return rows


if __name__ == "__main__":
    from bench.common import show
    show(run())
