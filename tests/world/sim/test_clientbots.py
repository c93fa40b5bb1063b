"""Real client libraries as scenario bots: their own processes, on the scenario's clock.

The stock library signs with the host clock, so an accelerated scenario works only if the child
process sees the simulator's time: these tests prove it does (no -1021), with libfaketime.
"""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from monitor.core.clock import AcceleratedClock, SystemClock
from monitor.world.sim import Simulator
from monitor.world.sim.clientbots import SCRIPTS, fake_time_env, find_libfaketime
from monitor.world.sim.runner import run_scenario
from monitor.world.sim.scenario import Scenario

needs_faketime = pytest.mark.skipif(
    find_libfaketime() is None,
    reason="libfaketime is not installed (Debian package 'faketime'; `make test` installs it "
           "when run as root): accelerated real-client runs cannot keep the bots' clocks")


def _scenario(script: str, duration: str, **bot: object) -> Scenario:
    return Scenario.model_validate({
        "name": "t", "duration": duration,
        "accounts": {"main": {"balances": {"USDT": 5000, "BTC": 0.1}, "keys": {"bot": {
            "permissions": ["enableReading", "enableSpotAndMarginTrading"],
            "ip_whitelist": ["127.0.0.2"]}}}},
        "bots": [{"kind": "client", "name": "c", "account": "main", "key": "bot",
                  "ip": "127.0.0.2", "script": script, "via_tap": False, **bot}]})


def test_shipped_scripts_and_validation() -> None:
    assert {"ccxt_grid", "connector_dca", "pybinance_tracker"} <= SCRIPTS
    with pytest.raises(ValueError, match="'script' is for kind 'client'"):
        Scenario.model_validate({
            "name": "t", "duration": "1m", "accounts": {"main": {"balances": {}, "keys": {
                "bot": {}}}},
            "bots": [{"kind": "client", "name": "c", "account": "main", "key": "bot",
                      "ip": "127.0.0.2"}]}).check()


async def test_no_fake_time_on_the_wall_clock() -> None:
    assert await fake_time_env(SystemClock()) == {}


@needs_faketime
async def test_a_child_process_reads_the_accelerated_clock() -> None:
    clock = AcceleratedClock(300, start_ms=1_800_000_000_000)  # 2027, far from the wall clock
    env = {**os.environ, **await fake_time_env(clock)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import time; print(int(time.time() * 1000), flush=True)",
        env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    child_ms = int((await proc.stdout.readline()).decode())
    ours = clock.now_ms()
    await proc.wait()
    # the child printed before we read it, so it may only be behind (by the pipe's latency)
    assert -1000 <= ours - child_ms <= 5000 and child_ms < ours + 1000


@needs_faketime
async def test_connector_bot_trades_at_600x_without_a_timestamp_error() -> None:
    said: list[str] = []
    async with Simulator(clock=AcceleratedClock(600), seed=1) as sim:
        await run_scenario(sim, _scenario("connector_dca", "30m", symbol="BTCUSDT",
                                          every="1m"), on_progress=said.append)
        events = sim.control.order_events("main")
        paths = [path for _ts, _ip, path, _w in sim.control.weight_log()]
    ids = {e["c"] for e in events}
    assert len(ids) >= 15 and all(i.startswith("dca-") for i in ids)  # ~30 rounds, jittered
    assert paths.count("/api/v3/account") >= 15
    assert all(e["X"] == "FILLED" for e in events if e["x"] == "TRADE")
    assert [line for line in said if "failed:" in line] == []  # no -1021, no error at all
    assert any("rounds ok=" in line and "failed=0" in line for line in said)


@needs_faketime
async def test_a_client_bot_whose_host_moves_calls_from_the_new_address() -> None:
    # 40 simulated minutes at 400x: the new host's process has ~4 real seconds after the move
    # to start Python and the connector and call, enough on a loaded 2-core runner
    sc = _scenario("connector_dca", "40m", symbol="BTCUSDT", every="1m").model_copy(update={
        "attacks": Scenario.model_validate({
            "name": "x", "duration": "40m", "accounts": {},
            "attacks": [{"type": "host_ip_changed", "at": "10m", "account": "main",
                         "key": "bot", "bot": "c", "ip": "127.0.0.9"}]}).attacks})
    said: list[str] = []
    async with Simulator(clock=AcceleratedClock(400), seed=1) as sim:
        truth = await run_scenario(sim, sc, on_progress=said.append)
        log = sim.control.weight_log()
    moved_at = truth.episodes[0].start_ms
    old = [ts for ts, ip, _p, _w in log if ip == "127.0.0.2"]
    new = [ts for ts, ip, _p, _w in log if ip == "127.0.0.9"]
    assert {ip for _ts, ip, _p, _w in log} == {"127.0.0.2", "127.0.0.9"}
    # the old process ends before the new one starts: no call from both hosts at once
    assert min(old) < moved_at < min(new) and max(old) < min(new)
    assert any("failed:" in line for line in said)  # the whitelist refuses the new address
