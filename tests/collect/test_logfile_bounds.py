"""Issue 15: one log poll hands over at most `max_lines_per_poll` events (each ~3.9 KB until
ingest takes it; a 20,000-line burst read at once held them all), and a backlog is read in as
many polls as it needs, each line once, in order, without waiting `poll_s` between them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from monitor.collect.logfile import MAX_LINE, LogTailer
from monitor.core.clock import ManualClock
from monitor.core.events import Event, Kind
from monitor.store import SQLiteStore
from tests.collect.test_logfile import T, line


def _ids(events: list[Event]) -> list[int]:
    return [json.loads(e.raw or "{}")["i"] for e in events if e.kind is Kind.REQUEST]


def test_a_burst_is_read_in_polls_of_at_most_max_lines_and_resumes_mid_burst(
        tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    path.write_text("".join(line(i) for i in range(2_500)))
    store = SQLiteStore(tmp_path / "kw.db")

    async def put(_e: list[Event], _c: Mapping[str, str] | None = None) -> None:
        return None

    t = LogTailer(str(path), "main", ManualClock(T), put, store, max_lines_per_poll=1_000)
    first = t.poll_once()
    assert _ids(first) == list(range(1_000))
    assert _ids(t.poll_once()) == list(range(1_000, 2_000))
    t.save_cursor()  # a restart mid-burst resumes at the first line not handed over
    t.close()
    t2 = LogTailer(str(path), "main", ManualClock(T), put, store, max_lines_per_poll=1_000)
    assert _ids(t2.poll_once()) == list(range(2_000, 2_500))
    assert t2.poll_once() == [] and t2.counters["bad_lines"] == 0
    t2.close()
    store.close()


def test_the_default_poll_is_bounded_and_a_backlog_does_not_wait_for_poll_s(
        tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    path.write_text("".join(line(i) for i in range(5_000)))
    store = SQLiteStore(tmp_path / "kw.db")
    sizes: list[int] = []
    seen: list[int] = []

    async def put(events: list[Event], _c: Mapping[str, str] | None = None) -> None:
        sizes.append(len(events))
        seen.extend(_ids(events))

    t = LogTailer(str(path), "main", ManualClock(T), put, store, poll_s=60.0)

    async def go() -> None:
        task = asyncio.create_task(t.run())
        while len(seen) < 5_000:  # a 60 s pause between polls would time this out
            await asyncio.sleep(0.01)
        await t.stop()
        await asyncio.wait_for(task, 5)

    asyncio.run(asyncio.wait_for(go(), 10))
    assert seen == list(range(5_000))
    assert max(sizes) <= t.max_lines < 5_000
    store.close()


def test_an_overlong_line_is_skipped_within_one_poll_however_small_the_reads(
        tmp_path: Path) -> None:
    """The rest of an overlong line is discarded read by read, so the byte bound never makes
    the line cost a second bad line or a poll of its own."""
    path = tmp_path / "bot.jsonl"
    path.write_text(line(1) + line(2, pad="z" * (6 * MAX_LINE)) + line(3))
    store = SQLiteStore(tmp_path / "kw.db")

    async def put(_e: list[Event], _c: Mapping[str, str] | None = None) -> None:
        return None

    t = LogTailer(str(path), "main", ManualClock(T), put, store,
                  max_bytes_per_poll=2 * MAX_LINE)
    got = t.poll_once() + t.poll_once()
    assert _ids(got) == [1, 3] and t.counters["bad_lines"] == 1
    t.close()
    store.close()


def test_a_poll_too_small_for_one_overlong_line_is_refused(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "kw.db")
    with pytest.raises(ValueError):
        LogTailer(str(tmp_path / "x"), "main", ManualClock(T), None,  # type: ignore[arg-type]
                  store, max_bytes_per_poll=MAX_LINE)
    store.close()
