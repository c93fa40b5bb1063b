"""What one simulated REST endpoint is: its route, weight, security and handler.

Kept apart from `rest.py` (the gate every request passes) so that each group of endpoints
(account and orders, market data, trading extras, wallet SAPI) lives in its own module and
lists its own `Endpoint`s; `rest.py` serves the union.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitor.world.sim.exchange import Exchange
from monitor.world.sim.state import Account, ApiKey

READ, TRADE, WITHDRAW = "enableReading", "enableSpotAndMarginTrading", "enableWithdrawals"
KEY = "KEY"  # security MARKET_DATA / USER_STREAM: the API key header, no signature


@dataclass
class Ctx:
    ex: Exchange
    params: dict[str, str]
    ip: str
    key: ApiKey | None
    headers: dict[str, str]

    @property
    def account(self) -> Account:
        assert self.key is not None
        return self.ex.books.accounts[self.key.account]


Handler = Callable[[Ctx], object]


@dataclass
class Endpoint:
    method: str
    path: str
    weight: Callable[[dict[str, str]], int]
    security: str | None  # None = NONE, "KEY" = api key only, else the permission flag
    handler: Handler
    sapi: str | None = None  # "ip" | "uid" for /sapi weight accounting
    zero_on_success: bool = False  # order place/cancel cost nothing when they succeed


def fixed(n: int) -> Callable[[dict[str, str]], int]:
    return lambda _p: n
