"""The soak's world, built in code: 50 watched keys across 5 accounts, one day of real bots.

Each account has nine bot keys (three grid bots, three DCA bots, three portfolio trackers, one
bot per key, all through the tap from the bots' host) plus Keywatch's own read-only monitor key,
so the service watches 5 x 10 = 50 keys. One leaked-key pump halfway through the day (straight
to the exchange, seen only on the order stream) keeps the alert path busy. The scenario is the
simulator's own format (`monitor.world.sim.scenario.Scenario`), validated by `load_scenario` in the
simulator process from the YAML this module writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.world import HOST_IP, KeySpec
from monitor.world.sim.scenario import Scenario

ACCOUNTS = 5
KINDS = (("grid", "BTCUSDT", "5m"), ("dca", "ETHUSDT", "30m"), ("tracker", "BTCUSDT", "5m"))
PER_KIND = 3
LEAKED = ("acct1", "dca1")  # the key the pump uses; it has no IP whitelist


def scenario(hours: float = 24.0) -> dict[str, Any]:
    accounts: dict[str, Any] = {}
    bots: list[dict[str, Any]] = []
    for a in range(1, ACCOUNTS + 1):
        acct = f"acct{a}"
        keys: dict[str, Any] = {}
        for kind, symbol, every in KINDS:
            for i in range(1, PER_KIND + 1):
                label = f"{kind}{i}"
                perms = ["enableReading"] if kind == "tracker" else [
                    "enableReading", "enableSpotAndMarginTrading"]
                keys[label] = {"permissions": perms,
                               "ip_whitelist": None if (acct, label) == LEAKED else [HOST_IP]}
                bots.append({"kind": kind, "name": f"{acct}-{label}", "account": acct,
                             "key": label, "ip": HOST_IP, "symbol": symbol, "every": every})
        accounts[acct] = {"balances": {"USDT": 200_000, "BTC": 2, "ETH": 30, "DOGE": 0},
                          "keys": keys}
    pump = {"type": "leaked_key_pump", "at": f"{hours / 2:g}h", "duration": "2m",
            "account": LEAKED[0], "key": LEAKED[1], "ip": "127.66.0.9", "symbol": "DOGEUSDT",
            "count": 20, "amount": 150}
    return {"name": "bench_soak", "description": "figure 5: 50 watched keys for a day",
            "duration": f"{hours:g}h", "accounts": accounts, "bots": bots, "attacks": [pump]}


def write(run_dir: Path, hours: float = 24.0) -> tuple[Path, Scenario]:
    """Write the scenario YAML for the simulator process; also return it parsed."""
    data = scenario(hours)
    path = run_dir / "bench_soak.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    sc = Scenario.model_validate(data)
    sc.check()
    return path, sc


def key_specs(sc: Scenario, keys: dict[str, list[str]], monitor: dict[str, list[str]]
              ) -> dict[str, list[KeySpec]]:
    """The service's view of each account: monitor key first (with its secret), then the bot
    keys, read-only ones with their secret (posture polling), trading ones by API key only."""
    out: dict[str, list[KeySpec]] = {}
    prefixes: dict[tuple[str, str], list[str]] = {}
    for bot in sc.bots:
        if bot.kind in ("grid", "dca"):
            prefixes.setdefault((bot.account, bot.key), []).append(f"{bot.name}-")
    for acct, spec in sc.accounts.items():
        mk, ms = monitor[acct]
        specs = [KeySpec("keywatch", mk, ms, "monitoring", [HOST_IP])]
        for label, kspec in spec.keys.items():
            api_key, secret = keys[f"{acct}/{label}"]
            read_only = kspec.permissions == ["enableReading"]
            specs.append(KeySpec(label, api_key, secret if read_only else None,
                                 "monitoring" if read_only else "spot-bot",
                                 list(kspec.ip_whitelist or []),
                                 prefixes.get((acct, label), [])))
        out[acct] = specs
    return out
