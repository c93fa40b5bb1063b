"""Ground truth of a scenario run: which attacks were injected, by whom, when.

The simulator writes it; evaluation and the demo read it. Detectors never see it (they must not
import this module), so a detector cannot be tuned on labels it would not have in production.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class AttackType(StrEnum):
    LEAKED_KEY_PUMP = "leaked_key_pump"  # leaked key used from a foreign address to pump a coin
    PERMISSION_PROBE = "permission_probe"  # repeated -2015/-2014 attempts
    OVERSIZED_ORDERS = "oversized_orders"  # orders beyond the free balance, rejected -2010
    RUNAWAY_BOT = "runaway_bot"  # request flood into 429/418
    IP_RESTRICTION_OFF = "ip_restriction_off"  # the key's IP restriction switched off
    WITHDRAWAL_ENABLED = "withdrawal_enabled"  # withdrawals/futures enabled, then a withdrawal
    HOST_IP_CHANGED = "host_ip_changed"  # the bot's host address changed; whitelist rejects it
    SLOW_MISUSE = "slow_misuse"  # low-rate foreign trading under every threshold


class Episode(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: AttackType
    account: str
    key: str | None
    actor_ip: str | None
    start_ms: int
    end_ms: int
    note: str = ""


class OwnCaller(BaseModel):
    """An address one of the user's own bots calls a key from (what the user would confirm)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account: str
    key: str
    ip: str


class GroundTruth(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    seed: int
    speed: float
    start_ms: int
    end_ms: int
    episodes: list[Episode] = Field(default_factory=list)
    own_callers: list[OwnCaller] = Field(default_factory=list)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2))

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        return cls.model_validate(json.loads(Path(path).read_text()))
