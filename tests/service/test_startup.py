"""The start-up log says where the tap, health and metrics listen and which channels are
configured, by name and service, never with a URL or token."""

from __future__ import annotations

import asyncio
import logging
import textwrap
from pathlib import Path

from monitor.alert.channels import load_channels
from monitor.config import load_config
from monitor.core.clock import SystemClock
from monitor.service.health import HealthServer
from monitor.service.pipeline import Service, build_engine
from monitor.service.startup import startup_line
from monitor.store import SQLiteStore
from tests.alert.conftest import MONITOR_ACCOUNT_TOML
from tests.factories import fake_secret

TG_TOKEN = "123456789:AAbbCCddEEffGGhhIIjj"


def _config(tmp: Path, *, tap: bool = True, channels: bool = True):
    key, secret = fake_secret("key"), fake_secret("secret")
    (tmp / ".env").write_text(f"KW_KEY={key}\nKW_SECRET={secret}\n"
                              f"TG_URL=tgram://{TG_TOKEN}/-100123\n")
    chans = textwrap.dedent("""
        [[alerts.channels]]
        name = "oncall-telegram"
        url_env = "TG_URL"
        [[alerts.channels]]
        name = "hook"
        url = "json://127.0.0.1:9/"
    """) if channels else ""
    tap_toml = textwrap.dedent("""
        [sources.tap]
        enabled = true
        listen = "127.0.0.1:18765"
    """) if tap else ""
    (tmp / "keywatch.toml").write_text(
        f'store_path = "{tmp / "kw.db"}"\nrules_dir = "{Path("rules").resolve()}"\n'
        + tap_toml + chans + MONITOR_ACCOUNT_TOML)
    return load_config(tmp / "keywatch.toml")


def test_startup_line_names_every_listener_and_channel_without_secrets(tmp_path):
    cfg = _config(tmp_path)
    line = startup_line(cfg, HealthServer(None, port=9464),  # type: ignore[arg-type]
                        load_channels(cfg.alerts))
    assert "1 account(s) (main)" in line
    assert "tap listening on http://127.0.0.1:18765" in line
    assert "health and metrics on http://127.0.0.1:9464 (/healthz, /metrics)" in line
    assert "alert channels: oncall-telegram (tgram), hook (json)" in line
    assert TG_TOKEN not in line and "AAbb" not in line and "127.0.0.1:9/" not in line


def test_startup_line_says_what_is_off(tmp_path):
    cfg = _config(tmp_path, tap=False, channels=False)
    line = startup_line(cfg, None, [])
    assert "tap off" in line and "health and metrics off" in line
    assert "alert channels: none configured" in line


async def test_the_service_logs_it_at_start(tmp_path, caplog):
    cfg = _config(tmp_path)
    store = SQLiteStore(cfg.store_path)
    svc = Service(cfg, store, SystemClock(), source_factory=None, engine=build_engine(cfg),
                  health_port=0)
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, logger="keywatch.service")
    task = asyncio.create_task(svc.run(stop))
    try:
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        store.close()
    (line,) = [r.getMessage() for r in caplog.records
               if r.getMessage().startswith("keywatch service started")]
    assert "tap listening on http://127.0.0.1:18765" in line
    assert "health and metrics on http://127.0.0.1" in line
    assert "oncall-telegram (tgram), hook (json)" in line and TG_TOKEN not in caplog.text
