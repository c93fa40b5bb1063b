"""The standalone tap's spool: a line is the tap's event again, failures never reach the bot."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from monitor.collect.logfile import LogTailer, parse_line
from monitor.collect.spool import SpoolWriter, to_line
from monitor.collect.tap import Tap, fingerprint
from monitor.config import ConfigError, TapMode, load_tap_settings
from monitor.core.clock import ManualClock
from monitor.core.events import Event, Kind, Source
from monitor.store import SQLiteStore

T = 1_785_000_000_000
BOT_KEY = "bot-api-key-value"


def tap_events() -> list[Event]:
    """Events the tap's own `build_event` makes: orders, a reject, a cancel, keyless calls."""
    tap = Tap("http://127.0.0.1:1", ManualClock(T), lambda evs: 0,
              keys={fingerprint(BOT_KEY): ("main", "bot")}, default_account="main")

    def ev(method: str, path: str, query: str, status: int, answer: Any, *,
           key: str | None = BOT_KEY, error: str | None = None) -> Event:
        headers = [(b"x-mbx-apikey", key.encode())] if key else []
        scope = {"method": method, "path": path, "query_string": query.encode(),
                 "headers": headers, "client": ("127.0.0.5", 40000)}
        usage = {"x-mbx-used-weight-1m": "12", "x-mbx-order-count-10s": "1",
                 "x-mbx-order-count-1d": "7"}
        return tap.build_event(scope, b"", T, 3.25, status, usage,
                               json.dumps(answer).encode(), error)

    return [
        ev("POST", "/api/v3/order", "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01"
           "&price=20000.5&newClientOrderId=bot1-1&signature=x", 200,
           {"orderId": 11, "clientOrderId": "bot1-1", "symbol": "BTCUSDT"}),
        ev("POST", "/api/v3/order", "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=9", 400,
           {"code": -2010, "msg": "Account has insufficient balance."}),
        ev("DELETE", "/api/v3/order", "symbol=BTCUSDT&orderId=11", 200,
           {"orderId": 11, "origClientOrderId": "bot1-1", "symbol": "BTCUSDT"}),
        ev("DELETE", "/api/v3/openOrders", "symbol=BTCUSDT", 200,
           [{"orderId": 12, "origClientOrderId": "a", "symbol": "BTCUSDT"},
            {"orderId": 13, "origClientOrderId": "b", "symbol": "BTCUSDT"}]),
        ev("GET", "/api/v3/time", "", 200, {"serverTime": T}, key=None),
        ev("GET", "/api/v3/account", "timestamp=1", 200, {}, key="someone-else"),
        ev("GET", "/api/v3/account", "", 502, None, error="upstream_error"),
    ]


def test_a_spool_line_is_the_event_the_tap_built() -> None:
    for ev in tap_events():
        line = to_line(ev)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        d = json.loads(line)
        # the documented access-log fields, readable by any tool that reads those logs
        assert {"ts", "method", "endpoint", "status"} <= d.keys()
        assert BOT_KEY not in line.decode() and "signature" not in d["raw"]["params"]
        assert parse_line(line.decode(), "other", T + 99, spool=True) == ev


def test_only_the_spool_is_trusted_with_the_taps_ids() -> None:
    ev = tap_events()[0]
    as_log = parse_line(to_line(ev).decode(), "main", T + 5)  # a bot's access log
    assert as_log.source is Source.LOG and as_log.event_id.startswith("log:")
    assert as_log.event_id != ev.event_id


def test_disk_full_drops_the_records_not_the_call() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    w = SpoolWriter("/dev/full", fsync_interval_s=0.05)
    w.start()
    try:
        evs = tap_events()
        assert w.offer(evs) == len(evs)  # ENOSPC: counted, never raised
        assert w.counters["dropped"] == len(evs) and w.counters["write_errors"] == 1
    finally:
        w.close()


def test_a_torn_write_costs_one_line_and_the_next_batch_starts_clean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "spool.jsonl"
    w = SpoolWriter(str(path))
    w.start()
    evs = tap_events()
    real_write = os.write
    calls = {"n": 0}

    def half_then_full(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            n = real_write(fd, bytes(data[: len(data) // 2]))
            return n
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("monitor.collect.spool.os.write", half_then_full)
    dropped = w.offer(evs[:4])
    monkeypatch.setattr("monitor.collect.spool.os.write", real_write)
    assert 0 < dropped < 4
    assert w.offer(evs[4:]) == 0
    w.close()
    store = SQLiteStore(tmp_path / "kw.db")
    t = LogTailer(str(path), "main", ManualClock(T), _noop, store, spool=True)
    got = t.poll_once()
    ids = [e.event_id for e in got if e.kind is not Kind.STREAM_STATUS]
    assert ids == [e.event_id for e in evs[: 4 - dropped]] + [e.event_id for e in evs[4:]]
    assert t.counters["bad_lines"] == 1  # the torn one, reported, not stored


async def _noop(_events: list[Event]) -> None:
    return None


def test_rotation_renamed_away_is_followed_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    path = tmp_path / "spool.jsonl"
    w = SpoolWriter(str(path), fsync_interval_s=0.02)
    w.start()
    store = SQLiteStore(tmp_path / "kw.db")
    t = LogTailer(str(path), "main", ManualClock(T), _noop, store, spool=True)
    evs = tap_events()
    seen: list[str] = []
    try:
        w.offer(evs[:3])
        seen += [e.event_id for e in t.poll_once()]
        w.offer(evs[3:5])  # not yet read when the file is renamed away
        os.rename(path, tmp_path / "spool.jsonl.1")
        time.sleep(0.2)  # the writer notices within one fsync interval
        w.offer(evs[5:])  # goes to a new spool.jsonl
        assert path.exists() and w.counters["reopens"] == 1
        for _ in range(3):
            seen += [e.event_id for e in t.poll_once()]
    finally:
        w.close()
    assert seen == [e.event_id for e in evs]
    assert t.counters["rotations"] == 1


def test_the_tap_reads_only_its_section_and_a_missing_key_is_a_warning(tmp_path: Path) -> None:
    cfg = tmp_path / "keywatch.toml"
    cfg.write_text("""
store_path = 42            # wrong type: the service refuses, the tap does not care
[sources.tap]
enabled = true
mode = "process"
spool = "/tmp/spool.jsonl"
listen = "127.0.0.1:9999"
upstream = "http://127.0.0.1:8000"
[[alerts.channels]]
name = "typo"
url = "jsno://nowhere"
[[accounts]]
name = "main"
monitor_key = "nope"
  [[accounts.keys]]
  label = "bot"
  use_case = "spot-bot"
  api_key_env = "KW_BOT_KEY"
  [[accounts.keys]]
  label = "gone"
  use_case = "spot-bot"
  api_key_env = "KW_UNSET"
  [[accounts.keys]]
  label = "hashed"
  use_case = "spot-bot"
  api_key_sha256 = "ABC123"
""")
    s = load_tap_settings(cfg, env={"KW_BOT_KEY": BOT_KEY})
    assert s.tap.mode is TapMode.PROCESS and s.default_account == "main"
    assert s.keys == {fingerprint(BOT_KEY): ("main", "bot"), "abc123": ("main", "hashed")}
    assert len(s.warnings) == 1 and "KW_UNSET" in s.warnings[0]
    cfg.write_text('[sources.tap]\nmode = "process"\n')
    with pytest.raises(ConfigError, match="spool"):
        load_tap_settings(cfg, env={})


async def test_commit_returns_once_its_group_is_written_and_synced(tmp_path: Path) -> None:
    """Group commit: 40 calls at once share a few write+fdatasync rounds, and each call's line
    is in the file (synced) by the time its `commit` returns."""
    path = tmp_path / "spool.jsonl"
    w = SpoolWriter(str(path), fsync_interval_s=30)
    w.start()
    evs = tap_events()
    seen: list[bool] = []

    async def one(ev: Event) -> None:
        assert await w.commit([ev]) == 0
        seen.append(ev.event_id in path.read_text())

    try:
        await asyncio.gather(*(one(ev) for ev in evs * 6))
    finally:
        w.close()
    assert seen == [True] * len(evs) * 6
    assert w.counters["lines"] == len(evs) * 6
    # calls that arrive together (or while a group is being written) share one round
    assert 1 <= w.counters["groups"] < len(evs) * 6 / 2
    assert w.counters["fsyncs"] >= w.counters["groups"]


async def test_commit_on_a_full_disk_counts_the_drop_and_releases_the_call() -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    w = SpoolWriter("/dev/full")
    w.start()
    try:
        evs = tap_events()
        assert await w.commit(evs[:2]) == 2
        assert await w.commit(evs[2:3]) == 1
    finally:
        w.close()
    assert w.counters["dropped"] == 3 and w.counters["write_errors"] == 2


def test_a_torn_last_line_left_by_a_killed_tap_does_not_swallow_the_next_record(
        tmp_path: Path) -> None:
    """kill -9 mid-write leaves a fragment with no newline; the next tap process's first line
    used to be appended to it, so the reader saw one bad line and lost a real record (found by
    the kill -9 test in CI). A new writer starts on a fresh line."""
    first, ev = tap_events()[:2]
    path = tmp_path / "tap-spool.jsonl"
    path.write_bytes(to_line(first)[:40])
    w = SpoolWriter(str(path))
    w.start()
    try:
        assert w.offer([ev]) == 0
    finally:
        w.close()
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 3 and lines[2] == b""  # fragment, the record, the final newline
    assert parse_line(lines[1].decode(), "main", 0, spool=True).event_id == ev.event_id
