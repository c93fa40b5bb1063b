"""Scenario files: accounts, keys, normal bots and a timeline of labelled attacks, in YAML.

Validated with pydantic on load so a typo fails with the file and field named, before any
traffic starts. Durations are strings like "90s", "15m", "2h", "1d" in simulated time.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from monitor.world.groundtruth import AttackType

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str | int | float) -> float:
    """'15m' -> 900.0 seconds of simulated time."""
    if isinstance(text, int | float):
        return float(text)
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*", text)
    if not m:
        raise ValueError(f"bad duration {text!r}; use e.g. '30s', '15m', '2h', '1d'")
    return float(m.group(1)) * _UNITS[m.group(2)]


Seconds = float


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KeySpec(_Model):
    permissions: list[str] = Field(default_factory=lambda: ["enableReading"])
    ip_whitelist: list[str] | None = None


class AccountSpec(_Model):
    balances: dict[str, float]
    keys: dict[str, KeySpec]


class BotSpec(_Model):
    kind: Literal["grid", "dca", "tracker", "client"]
    name: str
    account: str
    key: str
    ip: str
    symbol: str = "BTCUSDT"
    every: Seconds = 60.0
    via_tap: bool = True
    stale_rate: float = 0.0  # share of calls sent with a deliberately stale timestamp (-1021)
    flood_every: Seconds | None = None  # tracker: a rare heavy burst that can hit 429
    script: str | None = None  # client: which monitor/world/sim/clients/<script>.py to run
    order_prefixes: list[str] | None = None  # what its owner lists in client_order_prefixes

    @field_validator("every", "flood_every", mode="before")
    @classmethod
    def _dur(cls, v: object) -> object:
        return parse_duration(v) if isinstance(v, str) else v  # type: ignore[arg-type]


class AttackSpec(_Model):
    type: AttackType
    at: Seconds
    duration: Seconds = 600.0
    account: str
    key: str | None = None
    ip: str | None = None
    via_tap: bool = False
    symbol: str = "DOGEUSDT"
    count: int = 10
    parallel: int = 1  # requests in flight at once (an attacker's script with workers)
    bot: str | None = None  # host_ip_changed: the bot that moved; slow_misuse: the bot copied
    address: str = "0x5f1c0ffee00000000000000000000000000bad01"  # withdrawal destination
    amount: float = 500.0
    note: str = ""

    @field_validator("at", "duration", mode="before")
    @classmethod
    def _dur(cls, v: object) -> object:
        return parse_duration(v) if isinstance(v, str) else v  # type: ignore[arg-type]


class Scenario(_Model):
    name: str
    description: str = ""
    duration: Seconds
    accounts: dict[str, AccountSpec]
    bots: list[BotSpec] = Field(default_factory=list)
    attacks: list[AttackSpec] = Field(default_factory=list)

    @field_validator("duration", mode="before")
    @classmethod
    def _dur(cls, v: object) -> object:
        return parse_duration(v) if isinstance(v, str) else v  # type: ignore[arg-type]

    def check(self) -> None:
        """Cross-references pydantic cannot see: every bot/attack names a real account/key."""
        problems = []
        everyone: list[BotSpec | AttackSpec] = [*self.bots, *self.attacks]
        for who in everyone:
            name = getattr(who, "name", None) or getattr(who, "type", "?")
            acct = self.accounts.get(who.account)
            if acct is None:
                problems.append(f"{name}: unknown account {who.account!r}")
            elif who.key is not None and who.key not in acct.keys and not (
                    isinstance(who, AttackSpec) and who.type == AttackType.PERMISSION_PROBE):
                problems.append(f"{name}: unknown key {who.key!r} on {who.account!r}")
        for bot in self.bots:
            if (bot.kind == "client") != (bot.script is not None):
                problems.append(f"{bot.name}: 'script' is for kind 'client' bots, and they "
                                "need one")
        bots = {b.name for b in self.bots}
        for atk in self.attacks:
            if atk.type == AttackType.HOST_IP_CHANGED and atk.bot not in bots:
                problems.append(f"{atk.type}: 'bot' must name one of {sorted(bots)}")
            if atk.at > self.duration:
                problems.append(f"{atk.type}: starts at {atk.at}s, after the scenario ends")
        if problems:
            raise ValueError("; ".join(problems))


def _dir() -> Path:
    return Path(str(resources.files("monitor.world.sim") / "scenarios"))


def list_scenarios() -> list[str]:
    return sorted(p.stem for p in _dir().glob("*.yaml"))


def load_scenario(name: str | Path) -> Scenario:
    """Load a shipped scenario by name, or any YAML file by path."""
    path = Path(name) if str(name).endswith((".yaml", ".yml")) else _dir() / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no scenario {str(name)!r}; shipped: {list_scenarios()}")
    try:
        scenario = Scenario.model_validate(yaml.safe_load(path.read_text()))
        scenario.check()
    except (ValidationError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return scenario
