"""Issue 15 item 1: one integer beyond int64 in any field must not wedge ingest.

Each hostile value is built by the production parser that meets it (the tap's `build_event`,
the stream's `execution_report`, the poller's `order_counts`, the log tailer's `parse_line`),
then written through `Ingest` into a real SQLite store next to good events. Before the fix the
store's OverflowError made the writer retry the batch forever (the `wait_for` below times out)
and nothing after it was stored.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.binance.parse import Ctx, execution_report
from monitor.binance.parse_rest import order_counts
from monitor.collect.ingest import Ingest
from monitor.collect.logfile import LogTailer, parse_line
from monitor.collect.tap import Tap, fingerprint
from monitor.core.clock import ManualClock
from monitor.core.events import Event, Kind, Source
from monitor.service.metrics import Metrics
from monitor.store import SQLiteStore
from tests.factories import full_event

T = 1_785_000_000_000
HUGE = 2**64  # a uint64 that a hostile upstream or a broken bot may send
BOT_KEY = "fake-bot-key-for-tests"


def _tap(method: str, path: str, query: str, status: int, answer: object,
         headers: dict[str, str] | None = None) -> Event:
    tap = Tap("http://127.0.0.1:1", ManualClock(T), lambda evs: 0,
              keys={fingerprint(BOT_KEY): ("main", "bot")}, default_account="main")
    scope = {"method": method, "path": path, "query_string": query.encode(),
             "headers": [(b"x-mbx-apikey", BOT_KEY.encode())], "client": ("127.0.0.5", 40000)}
    return tap.build_event(scope, b"", T, 2.0, status, headers or {},
                           json.dumps(answer).encode(), None)


def tap_order_id() -> Event:
    return _tap("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1"
                "&price=10", 200, {"orderId": HUGE, "symbol": "BTCUSDT"})


def tap_code() -> Event:
    return _tap("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=MARKET&quantity=1",
                400, {"code": -HUGE, "msg": "hostile"})


def tap_weight_header() -> Event:
    return _tap("GET", "/api/v3/account", "", 200, {},
                {"x-mbx-used-weight-1m": str(HUGE), "x-mbx-order-count-10s": "1"})


def rate_limit_count() -> Event:
    body = [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": 50, "count": HUGE},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": 160000, "count": 3}]
    return order_counts(body, Ctx("main", T + 5, "monitor"), T)


def execution_report_i() -> Event:
    ev = {"e": "executionReport", "E": T, "s": "BTCUSDT", "c": "bot-1", "S": "BUY",
          "o": "LIMIT", "q": "1.0", "p": "10.0", "x": "NEW", "X": "NEW", "i": HUGE, "T": T,
          "l": "0", "L": "0", "C": ""}
    return execution_report(ev, Ctx("main", T + 5, "monitor"))


def log_order_id() -> Event:
    line = json.dumps({"ts": T, "method": "POST", "endpoint": "/api/v3/order", "status": 200,
                       "symbol": "BTCUSDT", "order_id": HUGE})
    return parse_line(line, "main", T + 5)


CASES: dict[str, tuple[Callable[[], Event], str]] = {
    "tap orderId": (tap_order_id, "order_id"),
    "tap code": (tap_code, "code"),
    "X-MBX-USED-WEIGHT-1M": (tap_weight_header, "weight_1m"),
    "rateLimit/order count": (rate_limit_count, "orders_10s"),
    "executionReport i": (execution_report_i, "order_id"),
    "log order_id": (log_order_id, "order_id"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_an_out_of_range_integer_is_stored_as_null_counted_and_kept_as_text(
        tmp_path: Path, case: str) -> None:
    build, field = CASES[case]
    bad = build()
    assert getattr(bad, field) is None and bad.out_of_range == (field,)
    assert json.loads(bad.raw or "{}")["out_of_range"][field] == str(
        -HUGE if field == "code" else HUGE)
    metrics = Metrics()
    store = SQLiteStore(tmp_path / "kw.db")
    ing = Ingest(store, metrics=metrics)
    good = [full_event(i) for i in range(3)]
    await ing.put([good[0], bad, good[1]])
    await ing.put([good[2]])
    await asyncio.wait_for(ing.flush(), 5)
    assert store.event_ids() == {e.event_id for e in [*good, bad]}
    assert ing.write_errors == 0 and ing.out_of_range == 1
    src = bad.source.value
    assert metrics.registry.get_sample_value(
        "keywatch_events_out_of_range_total", {"source": src}) == 1
    row = store.load_events()
    assert row.loc[row.event_id == bad.event_id, field].isna().all()


def _unstorable(i: int) -> Event:
    """A row that bypassed validation (as a future parser bug could): the store's safety net."""
    ok = full_event(100 + i)
    return Event.model_construct(**{**ok.__dict__, "order_id": HUGE})


async def test_a_poison_row_is_quarantined_the_rest_of_its_batch_stored_and_counted(
        tmp_path: Path) -> None:
    metrics = Metrics()
    store = SQLiteStore(tmp_path / "kw.db")
    seen: list[str] = []
    ing = Ingest(store, metrics=metrics, on_events=lambda evs: seen.extend(
        e.event_id for e in evs))
    good = [full_event(i) for i in range(4)]
    poison = _unstorable(0)
    await ing.put([good[0], poison, good[1]], {"log:x": "after-batch-1"})
    await ing.put(good[2:], {"log:x": "after-batch-2"})
    await asyncio.wait_for(ing.flush(), 5)
    assert store.event_ids() == {e.event_id for e in good}
    assert seen == [e.event_id for e in good]  # detection sees the good ones, once
    [q] = store.quarantined()
    assert q.event_id == poison.event_id and q.source == "tap" and "OverflowError" in q.reason
    assert json.loads(q.record)["order_id"] == HUGE  # the value survives as text
    assert store.get_cursor("log:x") == "after-batch-2"
    assert ing.quarantined == 1 and ing.write_errors == 0
    assert metrics.registry.get_sample_value(
        "keywatch_events_quarantined_total", {"source": "tap"}) == 1
    # the same poison again (a re-read after restart) is not stored or counted twice
    await ing.put([poison])
    await asyncio.wait_for(ing.flush(), 5)
    assert len(store.quarantined()) == 1 and ing.quarantined == 1


def _line(i: int, **kw: object) -> str:
    d = {"ts": T + i, "method": "GET", "endpoint": "/api/v3/account", "status": 200, "i": i}
    d.update(kw)
    return json.dumps(d) + "\n"


async def _tail_once(path: Path, store: SQLiteStore, ing: Ingest) -> None:
    """One poll of a real tailer through the ingest queue, as `LogTailer.run` does it."""
    t = LogTailer(str(path), "main", ManualClock(T), ing.put, store, poll_s=0.01)
    task = asyncio.create_task(t.run())
    await asyncio.sleep(0.2)
    await t.stop()
    await asyncio.wait_for(task, 5)
    await asyncio.wait_for(ing.flush(), 5)


async def test_log_cursor_is_saved_with_the_lines_it_covers(tmp_path: Path) -> None:
    """A poison line among good ones: after a 'restart' every good line is stored. Before the
    fix the tailer saved its cursor past lines the wedged writer never stored: lost for good."""
    path = tmp_path / "bot.jsonl"
    path.write_text(_line(1) + _line(2, order_id=HUGE) + _line(3))
    store = SQLiteStore(tmp_path / "kw.db")
    await _tail_once(path, store, Ingest(store))
    with path.open("a") as fh:
        fh.write(_line(4))
    await _tail_once(path, store, Ingest(store))  # the restarted tailer resumes at its cursor
    df = store.load_events()
    assert sorted(json.loads(r)["i"] for r in df.raw) == [1, 2, 3, 4]
    cursor = json.loads(store.get_cursor(f"log:{path}") or "{}")
    assert cursor["offset"] == path.stat().st_size


async def test_no_cursor_moves_while_the_store_rejects_writes(tmp_path: Path) -> None:
    """A real lock held by another connection makes every write fail: the tailer's cursor
    stays where it was (nothing is lost), the errors are counted, and once the lock is gone
    the lines and their cursor are stored together."""
    path = tmp_path / "bot.jsonl"
    path.write_text(_line(1) + _line(2))
    store = SQLiteStore(tmp_path / "kw.db", busy_timeout_ms=20)
    metrics = Metrics()
    ing = Ingest(store, metrics=metrics)
    writer = asyncio.create_task(ing.run())
    blocker = sqlite3.connect(tmp_path / "kw.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    t = LogTailer(str(path), "main", ManualClock(T), ing.put, store, poll_s=0.01)
    task = asyncio.create_task(t.run())
    try:
        for _ in range(200):
            await asyncio.sleep(0.01)
            if ing.write_errors >= 2:
                break
        assert ing.write_errors >= 2 and ing.failing_since_ms is not None
        assert store.get_cursor(t.cursor_name) is None and store.count_events() == 0
        assert metrics.registry.get_sample_value("keywatch_store_write_errors_total") >= 2
        blocker.execute("ROLLBACK")
        for _ in range(300):
            await asyncio.sleep(0.01)
            if store.count_events() == 2:
                break
        assert store.count_events() == 2 and ing.failing_since_ms is None
        assert json.loads(store.get_cursor(t.cursor_name) or "{}")["offset"] == (
            path.stat().st_size)
    finally:
        blocker.close()
        await t.stop()
        await asyncio.wait_for(task, 5)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)


def test_kinds_in_the_cases_are_what_production_builds() -> None:
    """Guard: the cases really are a tapped order/reject, a usage poll, a stream order, a log
    request (a changed parser must not turn them into something the test does not mean)."""
    kinds = {name: (b().source, b().kind) for name, (b, _) in CASES.items()}
    assert kinds["tap orderId"] == (Source.TAP, Kind.REQUEST)
    assert kinds["tap code"] == (Source.TAP, Kind.REJECT)
    assert kinds["rateLimit/order count"] == (Source.REST, Kind.USAGE)
    assert kinds["executionReport i"] == (Source.STREAM, Kind.ORDER)
    assert kinds["log order_id"] == (Source.LOG, Kind.REQUEST)


@pytest.mark.parametrize("build", [tap_order_id, tap_code, tap_weight_header])
def test_a_tap_record_past_int64_read_back_from_the_spool_is_still_counted(build) -> None:
    """Both tap modes record through the spool: the line carries the refused value only as
    text in raw, so the event read back must still say which field was refused (the hostile
    soak counted 0 of 5 such records before)."""
    from monitor.collect.spool import to_line

    bad = build()
    back = parse_line(to_line(bad).decode(), "main", T, spool=True)
    assert back.event_id == bad.event_id and back.out_of_range == bad.out_of_range != ()
    # a plain access log cannot claim it: only the tap's spool is trusted with the mark
    plain = parse_line(to_line(bad).decode(), "main", T)
    assert plain.out_of_range == ()
