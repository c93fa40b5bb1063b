"""The access-log tailer: rotation, truncation, partial lines, hostile lines."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.collect.logfile import LogTailer
from monitor.core.clock import ManualClock
from monitor.core.events import Kind
from monitor.store import SQLiteStore

T = 1_785_000_000_000


def line(i: int, **kw: object) -> str:
    d = {"ts": T + i, "method": "POST", "endpoint": "/api/v3/order", "status": 200,
         "ip": "127.66.0.9", "key": "grid-bot", "symbol": "BTCUSDT", "side": "BUY",
         "qty": "0.01", "price": "65000", "signature": "must-not-be-stored", "i": i}
    d.update(kw)
    return json.dumps(d) + "\n"


async def _noop(_events: list) -> None:
    return None


def tailer(tmp_path: Path, store: SQLiteStore | None = None) -> LogTailer:
    store = store or SQLiteStore(tmp_path / "kw.db")
    return LogTailer(str(tmp_path / "bot.jsonl"), "main", ManualClock(T), _noop, store)


def test_tail_partial_rotation_truncation(tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    path.write_text(line(1) + line(2)[:20])
    t = tailer(tmp_path)
    evs = t.poll_once()
    assert [json.loads(e.raw or "{}")["i"] for e in evs] == [1]
    assert "signature" not in (evs[0].raw or "")
    with path.open("a") as fh:
        fh.write(line(2)[20:] + line(3, status=400, code=-2010))
    evs = t.poll_once()
    assert [e.kind for e in evs] == [Kind.REQUEST, Kind.REJECT] and evs[1].code == -2010
    # rotation: a last line lands in the old file after the rename, then a new file appears
    path.rename(tmp_path / "bot.jsonl.1")
    with (tmp_path / "bot.jsonl.1").open("a") as fh:
        fh.write(line(4))
    path.write_text(line(5))
    assert [json.loads(e.raw or "{}")["i"] for e in t.poll_once()] == [4, 5]
    assert t.counters["rotations"] == 1
    # truncation in place
    path.write_text(line(6))
    assert [json.loads(e.raw or "{}")["i"] for e in t.poll_once()] == [6]
    assert t.counters["truncations"] == 1
    t.close()


def test_cursor_resumes_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    path.write_text(line(1))
    store = SQLiteStore(tmp_path / "kw.db")
    t = tailer(tmp_path, store)
    assert len(t.poll_once()) == 1
    t.save_cursor()
    t.close()
    with path.open("a") as fh:
        fh.write(line(2))
    t2 = tailer(tmp_path, store)
    assert [json.loads(e.raw or "{}")["i"] for e in t2.poll_once()] == [2]
    t2.close()
    assert os.path.exists(path)


bad_lines = st.one_of(
    st.text(max_size=200).filter(lambda s: "\n" not in s and "\r" not in s),
    st.builds(lambda n: line(0)[:n], st.integers(1, 60)),
    st.builds(lambda v: json.dumps({"ts": v, "method": "GET", "endpoint": "/x", "status": 200}),
              st.one_of(st.text(max_size=10), st.floats(), st.booleans(), st.none())),
    st.builds(lambda v: json.dumps({"ts": T, "method": "GET", "endpoint": "/x", "status": v}),
              st.one_of(st.integers(-5, 5), st.integers(600, 10**30), st.text(max_size=3))),
    st.just(json.dumps({"ts": T, "method": "GET", "endpoint": "/x", "status": 200,
                        "qty": "-1"})),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(bad_lines, min_size=1, max_size=5))
def test_bad_lines_counted_good_lines_still_read(tmp_path: Path, bad: list[str]) -> None:
    path = tmp_path / "bot.jsonl"
    path.write_text("".join(b.replace("\r", "") + "\n" for b in bad) + line(7))
    store = SQLiteStore(":memory:")
    t = tailer(tmp_path, store)
    evs = t.poll_once()
    t.close()
    good = [e for e in evs if e.kind is not Kind.STREAM_STATUS]
    status = [e for e in evs if e.kind is Kind.STREAM_STATUS]
    assert json.loads(good[-1].raw or "{}")["i"] == 7
    assert t.counters["bad_lines"] + len(good) == t.counters["lines"]
    if t.counters["bad_lines"]:
        assert json.loads(status[0].raw or "{}")["count"] == t.counters["bad_lines"]


def _bad_status_count(events: list) -> int:
    return sum(json.loads(e.raw)["count"] for e in events if e.kind is Kind.STREAM_STATUS)


def test_a_1mb_line_in_two_halves_is_one_bad_line_even_across_a_restart(tmp_path: Path) -> None:
    """Issue 15 item 9: a writer flushing a 1 MB line mid-way used to cost two bad lines (the
    first half cut off at the cap, then the second half read as a line of its own)."""
    path = tmp_path / "bot.jsonl"
    big = line(2, pad="x" * 1_000_000)
    path.write_text(line(1) + big[:500_000])
    store = SQLiteStore(tmp_path / "kw.db")
    t = tailer(tmp_path, store)
    first = t.poll_once()
    assert [json.loads(e.raw or "{}")["i"] for e in first if e.kind is Kind.REQUEST] == [1]
    assert t.counters["bad_lines"] == 1 and _bad_status_count(first) == 1
    with path.open("a") as fh:
        fh.write(big[500_000:700_000])
    assert t.poll_once() == [] and t.counters["bad_lines"] == 1  # still inside the line
    t.save_cursor()
    t.close()
    with path.open("a") as fh:  # the rest arrives after a restart
        fh.write(big[700_000:] + line(3))
    t2 = tailer(tmp_path, store)
    evs = t2.poll_once()
    assert [json.loads(e.raw or "{}")["i"] for e in evs] == [3]  # no second bad line
    assert t2.counters["bad_lines"] == 0
    t2.close()


def test_a_line_under_the_cap_in_two_halves_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    whole = line(1, pad="y" * 30_000)
    path.write_text(whole[:20_000])
    t = tailer(tmp_path)
    assert t.poll_once() == []
    with path.open("a") as fh:
        fh.write(whole[20_000:])
    [ev] = t.poll_once()
    assert json.loads(ev.raw or "{}")["i"] == 1 and t.counters["bad_lines"] == 0
    t.close()
