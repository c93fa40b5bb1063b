"""Kill the sender process mid-send: every alert still arrives, each recorded sent once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from monitor.alert.manager import AlertManager
from monitor.config import load_config
from monitor.core.clock import SystemClock
from monitor.store import open_store
from tests.alert.conftest import MONITOR_ACCOUNT_TOML, finding
from tests.alert.receivers import JsonSink
from tests.factories import fake_secret

ROOT = Path(__file__).resolve().parents[2]


async def _start(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.alert.sender_proc", str(config), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )


async def test_sigkill_mid_send_then_restart_delivers_at_least_once(tmp_path):
    sink = await JsonSink(hold_s=10.0).start()  # the first answer is slow: we kill before it
    env = {**os.environ, "KW_KEY": fake_secret("key"), "KW_SECRET": fake_secret("secret")}
    config = tmp_path / "keywatch.toml"
    config.write_text(textwrap.dedent(f"""
        store_path = "{tmp_path / 'kw.db'}"
        [alerts]
        group_wait_s = 0
        [[alerts.channels]]
        name = "hook"
        url = "{sink.url}"
    """) + MONITOR_ACCOUNT_TOML)
    cfg = load_config(config, env=env)
    store = open_store(cfg.store_path)
    clock = SystemClock()
    mgr = AlertManager(store, clock, cfg.alerts)
    mgr.submit([finding(account=f"acct-{i}", ts=clock.now_ms()) for i in range(3)])
    ids = mgr.flush()
    assert len(ids) == 3
    try:
        first = await _start(config, env)
        await asyncio.wait_for(sink.got_one.wait(), timeout=20)
        first.send_signal(signal.SIGKILL)  # the receiver has the alert; the sender dies
        assert await first.wait() == -signal.SIGKILL
        held = sink.received[0]["title"]
        assert all(d.state == "pending" for d in store.deliveries())  # nothing recorded sent

        sink.hold_s = 0
        second = await _start(config, env)
        _, err = await asyncio.wait_for(second.communicate(), timeout=40)
        assert second.returncode == 0, err.decode()[-2000:]
    finally:
        await sink.stop()

    titles = [r["title"] for r in sink.received]
    assert titles.count(held) == 2  # resent after the crash, recognisable by its alert id
    for alert_id in ids:
        assert sum(alert_id in t for t in titles) >= 1
        (delivery,) = store.deliveries(alert_id)
        assert delivery.state == "sent" and delivery.sent_ts is not None
    assert len(sink.received) == 4
    store.close()
