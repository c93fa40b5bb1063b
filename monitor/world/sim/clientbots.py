"""Scenario bots that are real client libraries: a user's script in its own process.

A `client` bot runs one of `monitor/world/sim/clients/*.py` (ccxt, python-binance,
binance-connector) unmodified, with its key, base URL (the tap, or the exchange) and host address in
its environment. The libraries sign with the host's clock, so at an accelerated scenario clock the
process gets the same accelerated clock from libfaketime (Debian package `faketime`): started at the
scenario clock's whole second with the same speed, its `time.time()`, `monotonic()` and sleeps
follow the simulator's, without a line of the library changed. At speed 1 on the wall clock no fake
time is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import sys
import time
from pathlib import Path

from monitor.core.clock import Clock
from monitor.world.sim.bots import Bot, RunCtx
from monitor.world.sim.scenario import BotSpec

SCRIPTS = frozenset(p.stem for p in (Path(__file__).parent / "clients").glob("*.py")
                    if p.stem not in ("__init__", "common"))
# The child starts its fake clock when libfaketime loads (at exec); spawning this much wall
# time before the whole second keeps it within a few simulated ms of the simulator's.
SPAWN_LEAD_S = 0.003
STOP_GRACE_S = 10.0


class ClientClockError(RuntimeError):
    """A real-client scenario at an accelerated clock without libfaketime installed."""


def find_libfaketime() -> str | None:
    for pattern in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                    "/usr/local/lib/faketime/libfaketime.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def needs_fake_time(clock: Clock) -> bool:
    """False only when the scenario clock is the wall clock (speed 1, no offset)."""
    return float(clock.speed) != 1.0 or abs(clock.now_ms() - time.time_ns() // 1_000_000) > 50


async def fake_time_env(clock: Clock) -> dict[str, str]:
    """Environment that gives a child the scenario's clock; returns just before it should be
    spawned (at the clock's next whole second, less the spawn lead)."""
    if not needs_fake_time(clock):
        return {}
    lib = find_libfaketime()
    if lib is None:
        raise ClientClockError(
            f"real-client bots at {clock.speed:g}x need libfaketime so their own clocks keep "
            "the simulator's time: install the Debian package 'faketime' (apt-get install "
            "faketime), or run the scenario at --speed 1")
    speed = float(clock.speed)
    target = (clock.now_ms() // 1000 + 1) * 1000
    if (target - clock.now_ms()) / speed / 1000 < SPAWN_LEAD_S * 2:
        target += 1000
    await clock.sleep(max(0.0, (target - clock.now_ms()) / 1000 - SPAWN_LEAD_S * speed))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(target / 1000))
    return {"LD_PRELOAD": lib, "FAKETIME": f"@{stamp} x{speed:g}", "TZ": "UTC",
            "FAKETIME_DONT_RESET": "1"}


class ClientBot(Bot):
    """One client-library script as a child process for the scenario's length."""

    def __init__(self, spec: BotSpec, ctx: RunCtx) -> None:
        super().__init__(spec, ctx)
        if spec.script not in SCRIPTS:
            raise ValueError(f"bot {spec.name}: unknown client script {spec.script!r}; "
                             f"known: {sorted(SCRIPTS)}")
        self.errors: list[str] = []
        self._moved = asyncio.Event()

    async def move_host(self, ip: str) -> None:
        """The host's address changed: the script restarts from `ip` (as after a reboot)."""
        await self.client.rebind(ip)
        self._moved.set()

    async def run(self) -> None:
        try:
            while self.ctx.left_s() > 0:
                self._moved.clear()
                await self._run_once()
        finally:
            await self.client.aclose()

    async def _run_once(self) -> None:
        """The script from now until the scenario ends or the host moves."""
        key, secret = self.ctx.keys[(self.spec.account, self.spec.key)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KW_")}
        env.update({"KW_BASE_URL": self.ctx.base_url(self.spec.via_tap), "KW_API_KEY": key,
                    "KW_API_SECRET": secret, "KW_SYMBOL": self.spec.symbol,
                    "KW_EVERY_S": str(self.spec.every), "KW_SOURCE_IP": self.host_ip,
                    "KW_SEED": str(self.ctx.seed), "PYTHONUNBUFFERED": "1"})
        env.update(await fake_time_env(self.ctx.clock))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"monitor.world.sim.clients.{self.spec.script}", env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE)
        reader = asyncio.create_task(self._read(proc))
        moved = asyncio.create_task(self._moved.wait())
        try:
            ended = asyncio.create_task(self.ctx.clock.sleep(max(0.0, self.ctx.left_s())))
            await asyncio.wait({moved, ended}, return_when=asyncio.FIRST_COMPLETED)
            ended.cancel()
        finally:
            moved.cancel()
            await _stop(proc)
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if ": round " in line and " failed:" in line:
                self.ctx.stats[f"{self.spec.name}:error"] = (
                    self.ctx.stats.get(f"{self.spec.name}:error", 0) + 1)
                if len(self.errors) < 50:
                    self.errors.append(line)
            if "rounds ok=" in line or len(self.errors) <= 3:
                self.ctx.progress(line)

    async def tick(self) -> None:  # the child process does the work
        return None


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), STOP_GRACE_S)
        except TimeoutError:
            proc.kill()
            await proc.wait()
