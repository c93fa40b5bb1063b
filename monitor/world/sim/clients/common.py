"""What every client-bot script shares: its settings from the environment, the host address
it calls from, and a loop that survives the errors a real bot meets (it logs and goes on).

Settings (environment):
  KW_BASE_URL     where the bot sends REST calls (the tap, or the exchange itself)
  KW_API_KEY      the bot's API key; KW_API_SECRET its secret (simulator keys only)
  KW_SYMBOL       the pair it trades, e.g. BTCUSDT
  KW_EVERY_S      seconds between its rounds (its own clock, which may be accelerated)
  KW_SOURCE_IP    the host address its sockets leave from (a multi-homed host's choice)
  KW_SEED         seed for its jitter
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from requests import Session
from requests.adapters import HTTPAdapter


@dataclass(frozen=True)
class Settings:
    base_url: str
    api_key: str
    api_secret: str
    symbol: str
    every_s: float
    source_ip: str
    seed: int

    def __repr__(self) -> str:  # never print the secret
        return f"Settings(base_url={self.base_url!r}, symbol={self.symbol!r})"


def settings() -> Settings:
    env = os.environ
    return Settings(env["KW_BASE_URL"].rstrip("/"), env["KW_API_KEY"], env["KW_API_SECRET"],
                    env.get("KW_SYMBOL", "BTCUSDT"), float(env.get("KW_EVERY_S", "60")),
                    env.get("KW_SOURCE_IP", ""), int(env.get("KW_SEED", "0")))


class SourceAddressAdapter(HTTPAdapter):
    """requests' documented adapter hook, used to leave from one of the host's addresses."""

    def __init__(self, ip: str) -> None:
        self._ip = ip
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._ip, 0)
        super().init_poolmanager(*args, **kwargs)


def bind(session: Session, ip: str) -> None:
    """Every call of this requests session leaves from `ip` (no-op when empty)."""
    if ip:
        for prefix in ("http://", "https://"):
            session.mount(prefix, SourceAddressAdapter(ip))


def log(msg: str) -> None:
    sys.stderr.write(f"{msg}\n")
    sys.stderr.flush()


def run_rounds(step: Callable[[int], None], s: Settings, name: str) -> int:
    """Call `step(n)` every `every_s` (+-20 % jitter) until SIGTERM; errors are logged, as a
    bot's own logs would, and counted; the summary line goes to stderr at the end."""
    stop = False

    def _term(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _term)
    rng = random.Random(f"{s.seed}:{name}")
    ok = failed = 0
    n = 0
    while not stop:
        n += 1
        try:
            step(n)
            ok += 1
        except Exception as exc:  # a bot keeps running through an exchange error
            failed += 1
            log(f"{name}: round {n} failed: {type(exc).__name__}: {str(exc)[:200]}")
        deadline = time.monotonic() + s.every_s * rng.uniform(0.8, 1.2)
        while not stop and time.monotonic() < deadline:
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    log(f"{name}: rounds ok={ok} failed={failed}")
    return 0
