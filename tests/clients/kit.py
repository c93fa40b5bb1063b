"""A simulator, a tap in front of it, and the stock clients pointed at one or the other.

Keys are made by the simulator at run time (random each run) and only ever handed to the
clients; nothing here prints or records them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from monitor.collect.tap import Tap, fingerprint
from monitor.core.clock import SystemClock
from monitor.core.events import Event, Kind
from monitor.world.sim import SimulatorThread
from tests.collect.test_tap import TapThread

TRADER = {"enableReading": True, "enableSpotAndMarginTrading": True}
BALANCES = {"USDT": 100_000, "BTC": 1, "ETH": 10}
CLIENT_IP = "127.0.0.1"

# ccxt's binance `urls['api']` entries by the host they default to. The spot ones all live on
# api.binance.com, the host the tap forwards to; the others are separate hosts, so pointed at
# a tap in production they would reach api.binance.com and 404: they stay on their own hosts
# and bypass the tap (or are switched off with options['fetchMarkets']).
CCXT_SPOT_ENTRIES = {"public": "/api/v3", "private": "/api/v3", "v1": "/api/v1",
                     "sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3",
                     "sapiV4": "/sapi/v4"}
CCXT_OTHER_HOST_ENTRIES = {
    "fapiPublic": "/fapi/v1", "fapiPublicV2": "/fapi/v2", "fapiPublicV3": "/fapi/v3",
    "fapiPrivate": "/fapi/v1", "fapiPrivateV2": "/fapi/v2", "fapiPrivateV3": "/fapi/v3",
    "fapiData": "/futures/data", "dapiPublic": "/dapi/v1", "dapiPrivate": "/dapi/v1",
    "dapiPrivateV2": "/dapi/v2", "dapiData": "/futures/data", "eapiPublic": "/eapi/v1",
    "eapiPrivate": "/eapi/v1", "papi": "/papi/v1", "papiV2": "/papi/v2"}


def ccxt_urls(spot_base: str, other_base: str) -> dict[str, str]:
    """Every ccxt binance API entry: spot/SAPI ones on `spot_base`, the rest on `other_base`."""
    urls = {k: spot_base + p for k, p in CCXT_SPOT_ENTRIES.items()}
    urls.update({k: other_base + p for k, p in CCXT_OTHER_HOST_ENTRIES.items()})
    return urls


def host_of(url: str) -> str:
    return urlsplit(url).netloc


class Recorder:
    """The tap's `offer`: keeps every event, lets a test wait for the next n."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def offer(self, events: list[Event]) -> int:
        with self._cond:
            self.events.extend(events)
            self._cond.notify_all()
        return 0

    def mark(self) -> int:
        with self._cond:
            return len(self.events)

    def since(self, mark: int, n: int, timeout_s: float = 5.0) -> list[Event]:
        """The events after `mark`, once at least n of them arrived (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.events) < mark + n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            return list(self.events[mark:])


@dataclass
class World:
    runner: SimulatorThread
    rest_url: str
    tap_url: str
    recorder: Recorder
    # account -> (key, secret); kept out of repr so a failing test never prints them
    keys: dict[str, tuple[str, str]] = field(default_factory=dict, repr=False)

    def base(self, mode: str) -> str:
        return self.tap_url if mode == "tap" else self.rest_url

    def price(self, symbol: str = "BTCUSDT") -> float:
        return self.runner.call(self.runner.sim.control.price, symbol)  # type: ignore[union-attr]

    def expect(self, mode: str, account: str, mark: int, calls: list[tuple[str, str]],
               what: str) -> None:
        """Through the tap, the calls since `mark` were each recorded once, in order."""
        if mode != "tap":
            return
        got = self.recorder.since(mark, len(calls))
        assert [(e.method, e.endpoint) for e in got] == calls, what
        for e in got:
            assert e.ip == CLIENT_IP, what
            assert e.kind is Kind.REQUEST and e.status == 200, (what, e.endpoint, e.raw)
            if e.key is None:  # a public call the client sent without its API key (ccxt does)
                assert json.loads(e.raw or "{}")["key_present"] is False, (what, e.endpoint)
            else:
                assert (e.account, e.key) == (account, account), (what, e.endpoint)


@dataclass
class Step:
    what: str
    through_tap: list[tuple[str, str]]  # (method, path) the tap must record for this step


def world(accounts: list[str], seed: int = 0) -> Iterator[World]:
    """One simulator (system clock, speed 1) and one tap; an account and key per name, the key
    labelled like its account and whitelisted for 127.0.0.1."""
    runner = SimulatorThread(clock=SystemClock(), seed=seed)
    with runner as sim:
        keys: dict[str, tuple[str, str]] = {}
        for name in accounts:
            runner.call(sim.control.create_account, name, BALANCES)
            keys[name] = runner.call(sim.control.create_key, name, name, permissions=TRADER,
                                     ip_whitelist=[CLIENT_IP])
        rec = Recorder()
        tap = Tap(sim.rest_url, SystemClock(), rec.offer,
                  keys={fingerprint(k): (name, name) for name, (k, _s) in keys.items()},
                  default_account=accounts[0])
        with TapThread(tap) as tap_url:
            yield World(runner, sim.rest_url, tap_url, rec, keys)
