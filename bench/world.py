"""Benchmark plumbing around a real simulator process: start it, drive its control plane, and
write a real TOML config for the service under test (keys go through an env mapping, never a
file literal). Shared by the latency, API-cost and tap figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from monitor.config import Config, load_config
from monitor.core.clock import AcceleratedClock

REPO = Path(__file__).resolve().parents[1]
HOST_IP = "127.0.0.2"  # the bots' host; Keywatch runs there too


class SimProcess:
    """`python -m bench.simproc` sharing `clock`'s anchor; control calls go over HTTP."""

    def __init__(self, clock: AcceleratedClock, seed: int = 0) -> None:
        self.clock, self.seed = clock, seed
        self.rest_url = self.ws_api_url = self.control_url = ""
        self._proc: asyncio.subprocess.Process | None = None
        self._http = httpx.AsyncClient(timeout=60.0)

    async def __aenter__(self) -> SimProcess:
        start_ms, anchor = self.clock.anchor
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.simproc", "--speed", str(self.clock.speed),
            "--start-ms", str(start_ms), "--anchor", repr(anchor), "--seed", str(self.seed),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO)
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"simulator process ended early ({await self._proc.wait()})")
        info = json.loads(line)
        self.rest_url, self.ws_api_url = info["rest_url"], info["ws_api_url"]
        self.control_url = info["control_url"]
        return self

    async def control(self, method: str, /, **kwargs: Any) -> Any:
        r = await self._http.post(f"{self.control_url}/control/{method}", json=kwargs)
        r.raise_for_status()
        return r.json()["result"]

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        if self._proc is None:
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            assert self._proc.stdin is not None
            self._proc.stdin.close()
        try:
            await asyncio.wait_for(self._proc.wait(), 15)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()


@dataclass
class KeySpec:
    label: str
    api_key: str
    secret: str | None = None  # only the monitor key hands its secret to Keywatch
    use_case: str = "spot-bot"
    ip_whitelist: list[str] = field(default_factory=list)
    client_order_prefixes: list[str] = field(default_factory=list)  # the user's own bots' ids


def write_config(run_dir: Path, sim: SimProcess, accounts: dict[str, list[KeySpec]], *,
                 receiver_url: str | None = None, tap_account: str | None = None,
                 extra: str = "", env_out: dict[str, str] | None = None,
                 weight_budget_pct: float | None = None) -> Config:
    """A real TOML file + an env mapping, loaded through `load_config` as a user's would be.

    `env_out` receives the mapping too, for a service started in another process.
    """
    env: dict[str, str] = {}
    lines = [f'store_path = "{run_dir / "keywatch.db"}"', f'rules_dir = "{REPO / "rules"}"',
             f'model_path = "{REPO / "models" / "default.skops"}"', f'egress_ip = "{HOST_IP}"',
             "[binance]", f'rest_url = "{sim.rest_url}"', f'ws_api_url = "{sim.ws_api_url}"',
             f"recv_window_ms = {60000 if sim.clock.speed > 20 else 5000}"]
    if weight_budget_pct is not None:
        lines.append(f"weight_budget_pct = {weight_budget_pct}")
    if tap_account is not None:
        lines += ["[sources.tap]", "enabled = true", 'listen = "127.0.0.1:0"',
                  f'upstream = "{sim.rest_url}"', f'account = "{tap_account}"']
    lines += [extra]
    if receiver_url is not None:
        lines += ["[alerts]", "group_wait_s = 0", "[[alerts.channels]]", 'name = "bench"',
                  f'url = "{receiver_url}"', 'tags = ["critical", "digest"]']
    for account, keys in accounts.items():
        lines += ["[[accounts]]", f'name = "{account}"', f'monitor_key = "{keys[0].label}"']
        for k in keys:
            var = f"KW_BENCH_{account}_{k.label}".upper().replace("-", "_")
            env[f"{var}_KEY"] = k.api_key
            lines += ["[[accounts.keys]]", f'label = "{k.label}"', f'use_case = "{k.use_case}"',
                      f'api_key_env = "{var}_KEY"', f"ip_whitelist = {json.dumps(k.ip_whitelist)}",
                      f"client_order_prefixes = {json.dumps(k.client_order_prefixes)}"]
            if k.secret is not None:
                env[f"{var}_SECRET"] = k.secret
                lines.append(f'api_secret_env = "{var}_SECRET"')
    path = run_dir / "keywatch.toml"
    path.write_text("\n".join(lines) + "\n")
    if env_out is not None:
        env_out.update(env)
    return load_config(path, env=env, env_file=run_dir / "none.env")


async def monitor_key(sim: SimProcess, account: str, balances: dict[str, float] | None = None
                      ) -> KeySpec:
    """Create an account and Keywatch's own read-only key, whitelisted to the host."""
    await sim.control("create_account", name=account,
                      balances=balances or {"USDT": 10_000.0, "BTC": 0.1})
    key, secret = await sim.control("create_key", account=account, label="keywatch",
                                    permissions={"enableReading": True}, ip_whitelist=[HOST_IP])
    return KeySpec("keywatch", key, secret, "monitoring", [HOST_IP])
