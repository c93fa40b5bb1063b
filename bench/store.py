"""Store figures: batched insert throughput against row-at-a-time commits, and load_events.

Both ways run in the same process on the same disk, so the ratio holds on a noisy machine.
Run: `python -m bench.store [N]` (default 1,000,000 events).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from monitor.core.events import Event, Kind, Source
from monitor.store import SQLiteStore

T0 = 1_785_000_000_000


def make_events(n: int, offset: int = 0) -> list[Event]:
    kinds = (Kind.REQUEST, Kind.ORDER, Kind.FILL, Kind.REJECT)
    return [
        Event.model_construct(
            event_id=f"tap:{offset + i}", ts=T0 + (offset + i) * 3,
            received_ts=T0 + (offset + i) * 3,
            account="main", key=f"k{i % 50}", source=Source.TAP, kind=kinds[i % 4],
            ip="127.0.0.2", method="POST", endpoint="/api/v3/order", status=200, code=None,
            weight_1m=i % 6000, orders_10s=None, orders_1d=None, latency_ms=1.5, symbol="BTCUSDT",
            side="BUY", order_type="LIMIT", qty=0.01, price=65000.0, notional=650.0,
            order_id=offset + i, client_order_id=f"grid1-{i}", exec_type=None, order_status=None,
            reject_reason=None, asset=None, free=None, locked=None, raw=None,
        )
        for i in range(n)
    ]


def measure(n: int = 1_000_000, batch: int = 10_000, baseline_n: int = 5_000) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(Path(tmp) / "bench.db")
        events = make_events(n)
        t = time.perf_counter()
        for i in range(0, n, batch):
            store.insert_events(events[i : i + batch])
        batched = n / (time.perf_counter() - t)
        t = time.perf_counter()
        again = sum(store.insert_events(events[i : i + batch]) for i in range(0, n, batch))
        dup_rate = n / (time.perf_counter() - t)
        assert again == 0 and store.count_events() == n

        single = make_events(baseline_n, offset=n)
        t = time.perf_counter()
        for ev in single:
            store.insert_events([ev])
        one_by_one = baseline_n / (time.perf_counter() - t)

        t = time.perf_counter()
        df = store.load_events(key="k7")
        load_s = time.perf_counter() - t
        store.close()
    return [
        {"figure": "store insert (batches of 10k)", "value": batched, "unit": "events/s",
         "baseline": one_by_one, "baseline_name": "one commit per event"},
        {"figure": "store re-insert of existing ids", "value": dup_rate, "unit": "events/s",
         "baseline": one_by_one, "baseline_name": "one commit per event"},
        {"figure": f"load_events one key ({len(df)} rows)", "value": len(df) / load_s,
         "unit": "rows/s", "baseline": None, "baseline_name": ""},
    ]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    for row in measure(n):
        ratio = f"  x{row['value'] / row['baseline']:.1f} vs {row['baseline_name']}" if row[
            "baseline"] else ""
        print(f"{row['figure']:<45} {row['value']:>12,.0f} {row['unit']}{ratio}")
