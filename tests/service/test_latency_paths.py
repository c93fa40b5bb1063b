"""The service's latency paths: a page leaves at once, windows close on the minute, none split.

Each test is built so the old behaviour fails it: a flush only on a (here hour-long) tick, a
notifier that only polls (here hourly), a free-running close tick, or a close that leaves
queued stragglers behind and so splits their minute in two windows.
"""

from __future__ import annotations

import asyncio
import itertools
import textwrap
import time
from pathlib import Path
from typing import Any

from monitor.alert.manager import AlertManager
from monitor.alert.notify import Notifier
from monitor.config import Config, load_config
from monitor.core.clock import AcceleratedClock, ManualClock, SystemClock
from monitor.core.events import Event, Kind, Source, make_event_id
from monitor.core.findings import Finding, Severity, Signal
from monitor.detect.engine import DetectionEngine
from monitor.service.pipeline import Service
from monitor.store import SQLiteStore
from monitor.world.demo.receiver import AlertReceiver
from tests.factories import fake_secret

ROOT = Path(__file__).resolve().parents[2]
MINUTE = 60_000
BOT_IP = "127.0.0.5"
_seq = itertools.count()


def make_config(tmp: Path, receiver_url: str, group_wait_s: float = 0) -> Config:
    path = tmp / "keywatch.toml"
    path.write_text(textwrap.dedent(f"""
        store_path = "{tmp / 'kw.db'}"
        rules_dir = "{ROOT / 'rules'}"
        [alerts]
        group_wait_s = {group_wait_s}
        [[alerts.channels]]
        name = "hook"
        url = "{receiver_url}"
        [[accounts]]
        name = "main"
        monitor_key = "monitor"
          [[accounts.keys]]
          label = "monitor"
          use_case = "monitoring"
          api_key_env = "KW_KEY"
          api_secret_env = "KW_SECRET"
          [[accounts.keys]]
          label = "bot"
          use_case = "spot-bot"
          api_key_env = "KW_BOT_KEY"
          ip_whitelist = ["{BOT_IP}"]
    """))
    env = {"KW_KEY": fake_secret("key"), "KW_SECRET": fake_secret("secret"),
           "KW_BOT_KEY": fake_secret("bot")}
    return load_config(path, env=env, env_file=tmp / "none.env")


def refused_call(ts: int) -> Event:
    """A tapped call by the bot key answered -2015 (counts towards `unknown_ip.auth_burst`)."""
    return Event(
        event_id=make_event_id(Source.TAP, f"call-{next(_seq)}"), ts=ts, received_ts=ts,
        account="main", key="bot", source=Source.TAP, kind=Kind.REQUEST, ip=BOT_IP,
        method="GET", endpoint="/api/v3/openOrders", status=401, code=-2015,
    )


class PagingEngine:
    """A plain stand-in engine: every event becomes a critical finding; records its calls."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.calls: list[tuple[str, float, Any]] = []  # (what, wall time, events | watermark)

    def process(self, events: list[Event]) -> list[Finding]:
        self.calls.append(("process", time.monotonic(), [e.ts for e in events]))
        return [Finding(
            finding_id=f"page:{e.event_id}", ts=e.ts, rule_id="unknown_ip.new_caller",
            signal=Signal.UNKNOWN_IP, severity=Severity.CRITICAL, account="main", key="bot",
            title="Key called from an unfamiliar IP address", summary=f"{e.ip} called the key",
            evidence={"ip": e.ip}, group={"ip": e.ip or ""},
        ) for e in events if e.ip != BOT_IP]

    def tick(self, now_ms: int) -> list[Finding]:
        self.calls.append(("tick", time.monotonic(), now_ms))
        return []


async def _until(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_page_is_sent_without_waiting_for_the_tick_or_the_poll(tmp_path):
    clock = SystemClock()
    receiver = await AlertReceiver(clock).start()
    cfg = make_config(tmp_path, receiver.url)
    store = SQLiteStore(cfg.store_path)
    # an hour-long flush tick and notifier poll: only the immediate path can deliver in time
    engine = PagingEngine(clock)
    svc = Service(cfg, store, clock, source_factory=None, engine=engine,  # type: ignore[arg-type]
                  tick_s=3600)
    svc.notifier.poll_s = 3600
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.sleep(0.3)  # first flush and first (empty) notifier pass are done
        # a minute close flushes too: keep the page well away from one (it flaked when the
        # test happened to run across a minute boundary)
        into = clock.now_ms() % 60_000
        if into > 50_000:
            await asyncio.sleep((62_000 - into) / 1000)
        ev = refused_call(clock.now_ms()).model_copy(update={"ip": "127.66.0.9"})
        sent = time.monotonic()
        svc._on_events([ev])
        await _until(lambda: receiver.received, timeout=10)
        delivered = time.monotonic()
        # no window close between the page and its delivery: the immediate path did it
        assert not [c for c in engine.calls if c[0] == "tick" and sent <= c[1] <= delivered]
        (alert,) = store.load_alerts()
        assert alert.payload.items[0].finding_id == f"page:{ev.event_id}"
        assert alert.alert_id in receiver.received[0].title
        # the receiver holds the body before Apprise has its answer; "sent" follows the answer
        await _until(lambda: {d.state for d in store.deliveries()} == {"sent"}, timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await receiver.stop()
        store.close()


async def test_group_wait_still_holds_a_page_back(tmp_path):
    clock = AcceleratedClock(20)  # group_wait 40 s of clock = 2 s of wall
    receiver = await AlertReceiver(clock).start()
    cfg = make_config(tmp_path, receiver.url, group_wait_s=40)
    store = SQLiteStore(cfg.store_path)
    svc = Service(cfg, store, clock, source_factory=None,
                  engine=PagingEngine(clock))  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.sleep(0.2)
        submitted = clock.now_ms()
        svc._on_events([refused_call(submitted).model_copy(update={"ip": "127.66.0.9"})])
        await _until(lambda: receiver.received, timeout=20)
        waited = receiver.received[0].at_ms - submitted
        assert waited >= 40_000, waited  # not before the group wait is over
        assert waited < 40_000 + 60_000, waited  # and then without waiting for anything else
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await receiver.stop()
        store.close()


async def test_notifier_wake_starts_a_pass_at_once_from_any_thread(tmp_path):
    clock = SystemClock()
    receiver = await AlertReceiver(clock).start()
    cfg = make_config(tmp_path, receiver.url)
    store = SQLiteStore(cfg.store_path)
    mgr = AlertManager(store, clock, cfg.alerts)
    sender = Notifier(store, clock, cfg.alerts, poll_s=3600)
    sender.wake()  # before run: nothing to wake, no error
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        await asyncio.sleep(0.2)  # the first pass found an empty outbox; now it idles an hour
        for i, wake in enumerate((sender.wake, lambda: asyncio.to_thread(sender.wake))):
            mgr.submit([Finding(
                finding_id=f"f{i}", ts=clock.now_ms(), rule_id="unknown_ip.new_caller",
                signal=Signal.UNKNOWN_IP, severity=Severity.HIGH, account="main", key="bot",
                title="t", summary="s", evidence={}, group={"ip": f"127.66.0.{i + 1}"})])
            assert mgr.flush()
            result = wake()
            if asyncio.iscoroutine(result):
                await result
            await _until(lambda n=i + 1: len(receiver.received) == n, timeout=10)
        # "sent" is written after Apprise has the receiver's answer, a moment after its read
        await _until(lambda: [d.state for d in store.deliveries()] == ["sent", "sent"],
                     timeout=10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await receiver.stop()
        store.close()


async def test_windows_close_on_the_minute_and_a_straggler_is_not_held_by_batching(tmp_path):
    clock = AcceleratedClock(20)  # a minute is 3 s of wall; lateness 0.5 s wall = 10 s clock
    receiver = await AlertReceiver(clock).start()
    cfg = make_config(tmp_path, receiver.url)
    store = SQLiteStore(cfg.store_path)
    engine = PagingEngine(clock)
    # a long batch wait: gathering past the close would hold the close back by seconds
    svc = Service(cfg, store, clock, source_factory=None, engine=engine,  # type: ignore[arg-type]
                  batch_wait_s=5.0)
    late_ms = svc.lateness_ms()
    assert late_ms == 10_000
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    try:
        now = clock.now_ms()
        end = (now // MINUTE + 1) * MINUTE  # the end of the current minute
        await clock.sleep((end + 2_000 - now) / 1000)
        # a call from the last second of the minute reaches Keywatch 2 s (clock) after its end
        svc._on_events([refused_call(end - 1_000)])
        await _until(lambda: any(c[0] == "tick" and c[2] >= end for c in engine.calls), 10)
        ticks = [c for c in engine.calls if c[0] == "tick"]
        closing = next(c for c in ticks if c[2] >= end)
        fed = next(c for c in engine.calls if c[0] == "process" and end - 1_000 in c[2])
        assert fed[1] <= closing[1]  # the straggler was detected before its minute closed
        assert closing[2] - end < 15_000  # on time (0.75 s wall), not after the 5 s batch wait
        await clock.sleep(MINUTE / 1000)
        ticks = [c for c in engine.calls if c[0] == "tick"]
        # aligned closes, once a minute, not a free-running tick every clock second
        assert 1 <= len([c for c in ticks if c[2] >= end]) <= 2
        assert all(c[2] % MINUTE < 15_000 for c in ticks if c[2] >= end)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await receiver.stop()
        store.close()


async def test_queued_stragglers_join_their_minute_at_the_close(tmp_path):
    """Real engine and rule: 3 + 3 refused calls in one minute are one burst, not two halves."""
    clock = ManualClock((1_785_000_000_000 // MINUTE) * MINUTE)
    receiver = await AlertReceiver(clock).start()
    cfg = make_config(tmp_path, receiver.url)
    store = SQLiteStore(cfg.store_path)
    engine = DetectionEngine.from_config(cfg, cfg.rules_dir, None)
    svc = Service(cfg, store, clock, source_factory=None, engine=engine)
    try:
        start = clock.now_ms()
        end = start + MINUTE
        await svc._detect([refused_call(start + 10_000 + i) for i in range(3)])
        # three more from the minute's last second, still queued when the close comes
        svc._on_events([refused_call(end - 900 + i) for i in range(3)])
        clock.advance(MINUTE + svc.lateness_ms())
        await svc._close_windows(clock.now_ms())
        assert svc.queue.empty()
        windows = engine.last_windows
        assert len(windows) == 1 and int(windows["minute"].iloc[0]) == start
        assert int(windows["fail_auth"].iloc[0]) == 6
        assert svc.counters.findings_by_rule.get("unknown_ip.auth_burst") == 1
        # the page went straight to the outbox
        (alert,) = store.load_alerts()
        assert alert.payload.items[0].rule_id == "unknown_ip.auth_burst"
    finally:
        await receiver.stop()
        store.close()
