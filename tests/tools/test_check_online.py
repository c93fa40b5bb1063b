"""`keywatch check-config --online` against the real simulator on 127.0.0.1: each key with a
secret makes one signed read-only call (ok, or refused with Binance's code named), a key
without its secret is "not checked", and the clock skew is reported (refused when the server
time cannot be Binance's)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from monitor.core.clock import SystemClock
from monitor.world.sim import Simulator

CONFIG = """
store_path = "{tmp}/kw.db"
[binance]
rest_url = "{rest}"
ws_api_url = "{ws}"
[[accounts]]
name = "main"
monitor_key = "monitor"
  [[accounts.keys]]
  label = "monitor"
  use_case = "monitoring"
  api_key_env = "KW_MON_KEY"
  api_secret_env = "KW_MON_SECRET"
  [[accounts.keys]]
  label = "grid-bot"
  use_case = "spot-bot"
  api_key_env = "KW_BOT_KEY"
  api_secret_env = "KW_BOT_SECRET"
  [[accounts.keys]]
  label = "far-bot"
  use_case = "spot-bot"
  api_key_env = "KW_FAR_KEY"
  api_secret_env = "KW_FAR_SECRET"
  [[accounts.keys]]
  label = "tax"
  use_case = "tax"
  api_key_env = "KW_TAX_KEY"
"""
TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}


async def check_online(tmp: Path, sim: Simulator, env: dict[str, str]) -> tuple[int, str]:
    cfg = tmp / "keywatch.toml"
    cfg.write_text(CONFIG.format(tmp=tmp, rest=sim.rest_url, ws=sim.ws_api_url))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor.cli", "check-config", "--online", "-c", str(cfg),
        env={**os.environ, **env}, cwd=tmp, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def keys(sim: Simulator) -> dict[str, str]:
    sim.control.create_account("main", {"USDT": 1000})
    mk, ms = sim.control.create_key("main", "monitor")
    bk, _bs = sim.control.create_key("main", "grid-bot", permissions=TRADER)
    fk, fs = sim.control.create_key("main", "far-bot", permissions=TRADER,
                                    ip_whitelist=["203.0.113.10"])
    tk, _ts = sim.control.create_key("main", "tax")
    # the bot's secret in the .env is the monitor's: a rotated or mistyped secret
    return {"KW_MON_KEY": mk, "KW_MON_SECRET": ms, "KW_BOT_KEY": bk, "KW_BOT_SECRET": ms,
            "KW_FAR_KEY": fk, "KW_FAR_SECRET": fs, "KW_TAX_KEY": tk}


async def test_each_key_is_checked_and_a_wrong_secret_is_named(tmp_path: Path) -> None:
    async with Simulator(clock=SystemClock(), seed=3) as sim:
        env = await keys(sim)
        code, out = await check_online(tmp_path, sim, env)
    assert code == 1, out
    assert "key main/monitor: ok (enableReading; no IP restriction)" in out
    assert "key main/grid-bot: refused (code -1022: signature not valid" in out
    assert "key main/far-bot: refused (code -2015" in out
    assert "key main/tax: not checked (no secret given" in out
    assert "clock: account main: " in out and "within recvWindow" in out
    for value in env.values():
        assert value not in out


async def test_a_skewed_clock_is_a_warning_and_an_impossible_one_refuses(tmp_path: Path) -> None:
    async with Simulator(clock=SystemClock(), seed=4) as sim:
        env = await keys(sim)
        env = {k: v for k, v in env.items() if not k.startswith(("KW_BOT", "KW_FAR"))}
        env |= {"KW_BOT_KEY": env["KW_MON_KEY"], "KW_BOT_SECRET": env["KW_MON_SECRET"],
                "KW_FAR_KEY": env["KW_MON_KEY"], "KW_FAR_SECRET": env["KW_MON_SECRET"]}
        sim.control.shift_clock(-90_000)
        code, out = await check_online(tmp_path, sim, env)
        assert code == 0, out
        assert "warning: clock: account main: Binance's clock is 90." in out
        assert "s behind this host's, more than recvWindow (5000 ms)" in out
        assert "key main/monitor: ok" in out
        sim.control.shift_clock(-sim.control.server_time_ms())  # a server time of 0
        code, out = await check_online(tmp_path, sim, env)
    assert code == 1, out
    assert "rest_url does not answer like Binance, or this host's clock is wrong" in out
    assert "key main/monitor: not checked (Binance's clock could not be trusted" in out
    assert "Traceback" not in out


async def test_run_refuses_an_impossible_server_time_in_one_line(tmp_path: Path) -> None:
    async with Simulator(clock=SystemClock(), seed=5) as sim:
        env = await keys(sim)
        cfg = tmp_path / "keywatch.toml"
        cfg.write_text(CONFIG.format(tmp=tmp_path, rest=sim.rest_url, ws=sim.ws_api_url))
        sim.control.shift_clock(-sim.control.server_time_ms())  # a server time of 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor.cli", "run", "-c", str(cfg),
            env={**os.environ, **env}, cwd=tmp_path, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 3, text
    assert "Traceback" not in text and "ValidationError" not in text
    (line,) = [ln for ln in text.splitlines() if ln.startswith("refusing to start: ")]
    assert "Binance's clock is " in line and "enable NTP" in line
