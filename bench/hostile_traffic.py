"""The hostile soak's clients: a trading bot and a hostile bot through the tap, and a bot that
can only write an access log (valid lines mixed with every bad line issue 15 names).

Each keeps its own tally of what it sent, so the soak can ask the store and the service's
counters for the same numbers: `Tally.valid` (facts that must be stored exactly once) and
`Tally.bad` (bad inputs that must be counted), both by name.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bench.world import HOST_IP
from monitor.collect.logfile import parse_line
from monitor.core.clock import Clock
from monitor.world.sim.client import ActorClient

HEAD_DEADLINE_S = 10.0  # the tap's request-arrival deadline (serverlimits.TAP_LIMITS)
BIG = 2**64 + 7
# each upgrade asked for on its own path, so its stored record (endpoint) says which it was
UPGRADES = {"h2c": "/api/v3/time", "websocket": "/api/v3/ping"}


@dataclass
class Tally:
    valid: Counter[str] = field(default_factory=Counter)
    bad: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # tap calls with a status line


class TradingBot:
    """Places a below-the-market LIMIT order (0.01 BTC at 20,000: inside the price filters)
    through the tap and cancels it by its client id, every `every_s`: two executionReports
    (NEW, CANCELED) on the service's stream and two tap records (key `bot`) per round.
    Cancelling by client id keeps working when the tap's upstream answers the placement with
    every integer inflated past int64."""

    def __init__(self, tap_url: str, key: str, secret: str, clock: Clock, tally: Tally,
                 every_s: float = 0.5) -> None:
        self.client = ActorClient(tap_url, HOST_IP, key, secret, clock)
        self.tally, self.every_s = tally, every_s
        self.statuses: Counter[str] = Counter()  # "POST 200", "DELETE 400 -2011", ...

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        try:
            while not stop.is_set():
                n += 1
                cid = f"bot-{n}"
                calls: tuple[tuple[str, dict[str, object]], ...] = (
                        ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                  "timeInForce": "GTC", "quantity": "0.01", "price": "20000",
                                  "newClientOrderId": cid}),
                        ("DELETE", {"symbol": "BTCUSDT", "origClientOrderId": cid}))
                for method, params in calls:
                    try:
                        r = await self.client.signed(method, "/api/v3/order", params)
                        self.tally.answered["bot"] += 1
                        code = r.json().get("code", "") if r.status_code >= 400 else ""
                        self.statuses[f"{method} {r.status_code} {code}".strip()] += 1
                    except httpx.HTTPError:
                        self.tally.bad["bot call failed"] += 1
                await asyncio.sleep(self.every_s)
        finally:
            await self.client.aclose()


async def _raw(tap_url: str, data: bytes, read: bool = True, timeout_s: float = 10.0) -> int:
    """Send `data` on a fresh connection to the tap; the status code of its answer."""
    u = urlsplit(tap_url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    try:
        writer.write(data)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout_s)
        return int(line.split()[1]) if line else 0
    finally:
        writer.close()


async def _held_until_closed(tap_url: str, head: bytes, drip: bytes, every_s: float,
                             limit_s: float) -> float | None:
    """Send `head`, then `drip` one byte every `every_s`; seconds until the tap closed the
    connection, or None if it was still open after `limit_s`."""
    u = urlsplit(tap_url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    t0 = time.monotonic()
    try:
        writer.write(head)
        await writer.drain()

        async def dripping() -> None:
            for b in drip:
                await asyncio.sleep(every_s)
                writer.write(bytes([b]))
                await writer.drain()

        dripper = asyncio.create_task(dripping())
        try:
            while time.monotonic() - t0 < limit_s:
                try:
                    chunk = await asyncio.wait_for(reader.read(65536), 0.5)
                except TimeoutError:
                    continue
                if not chunk:
                    return time.monotonic() - t0
        except (ConnectionError, OSError):
            return time.monotonic() - t0
        finally:
            dripper.cancel()
            await asyncio.gather(dripper, return_exceptions=True)
        return None
    except (ConnectionError, OSError):
        return time.monotonic() - t0
    finally:
        writer.close()


class HostileBot:
    """Bad requests to the tap itself, one of each kind per `round`, and calls whose answers
    the tap's upstream was told to spoil (see `round`'s `spoil`)."""

    def __init__(self, tap_url: str, key: str, tally: Tally) -> None:
        self.tap_url, self.key, self.tally = tap_url, key, tally
        self.idle: list[asyncio.StreamWriter] = []
        self.statuses: Counter[str] = Counter()  # what the tap answered each raw request

    def _head(self, method: str, target: str, extra: str = "") -> bytes:
        return (f"{method} {target} HTTP/1.1\r\nHost: tap\r\nX-MBX-APIKEY: {self.key}\r\n"
                f"{extra}").encode()

    async def open_idle(self, n: int) -> None:
        """Connections that never send a byte (the tap must keep answering the others)."""
        u = urlsplit(self.tap_url)
        for _ in range(n):
            _, w = await asyncio.open_connection(u.hostname, u.port)
            self.idle.append(w)

    def close_idle(self) -> None:
        for w in self.idle:
            w.close()
        self.idle.clear()

    async def refused(self) -> None:
        """CONNECT and an Upgrade: request: answered by the tap, recorded, never forwarded."""
        status = await _raw(self.tap_url, self._head("CONNECT", "example.com:443", "\r\n"))
        self.tally.answered["hostile"] += status != 0
        self.tally.bad["CONNECT through the tap"] += 1
        for proto, path in UPGRADES.items():
            status = await _raw(self.tap_url, self._head(
                "GET", path, f"Connection: Upgrade\r\nUpgrade: {proto}\r\n"
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
                "\r\n\r\n"))
            # each answered upgrade is a record too (the tap refuses both, 400, since 7ab42fe;
            # before, uvicorn answered a websocket upgrade 500 itself and nothing was stored)
            self.tally.answered["hostile"] += status != 0
            self.tally.bad[f"Upgrade: {proto} through the tap"] += 1
            self.statuses[f"Upgrade: {proto} -> {status}"] += 1

    async def hop_by_hop(self) -> None:
        """A valid call naming a private header in Connection: (stripped, still recorded)."""
        status = await _raw(self.tap_url, self._head(
            "GET", "/api/v3/time", "Connection: keep-alive, X-Bench-Hop\r\n"
            "X-Bench-Hop: not-for-binance\r\n\r\n"))
        self.tally.answered["hostile"] += status != 0

    async def slow_heads(self) -> None:
        """A head trickled a byte a second, and a body that stops short of its length: the
        tap must close both within its deadline and forward neither."""
        slow, short = await asyncio.gather(
            _held_until_closed(self.tap_url, self._head("GET", "/api/v3/time"),
                               b"X-Slow: " + b"a" * 40, 1.0, HEAD_DEADLINE_S + 8),
            _held_until_closed(self.tap_url, self._head(
                "POST", "/api/v3/order", "Content-Length: 1000\r\n\r\n") + b"symbol=BTC",
                b"", 1.0, HEAD_DEADLINE_S + 8))
        self.tally.bad["trickled head"] += 1
        self.tally.bad["unfinished body"] += 1
        self.tally.bad["trickled head closed by the tap"] += slow is not None
        self.tally.bad["unfinished body closed by the tap"] += short is not None

    async def spoiled(self, path: str, timeout_s: float = 60.0) -> None:
        """One call whose answer the tap's upstream spoils: read raw (junk gzip must reach us
        as sent), to the end or until the tap cuts it."""
        async with httpx.AsyncClient(timeout=timeout_s) as http:
            try:
                async with http.stream("GET", f"{self.tap_url}{path}",
                                       headers={"X-MBX-APIKEY": self.key}) as r:
                    async for _ in r.aiter_raw():
                        pass
                self.tally.answered["hostile"] += 1
            except httpx.HTTPError:
                # a cut answer (the upstream dropped) still has a status line: the tap
                # records the call; a call with no status at all is not counted here
                self.tally.answered["hostile"] += 1


class LogBot:
    """Appends JSON access-log lines (the tailer's schema) to `path`: valid ones every
    `every_s`, and, on `bad_round`, one of each bad line. Valid lines' event ids come from
    `parse_line`, the function the tailer uses, so the soak looks up what the tailer builds."""

    def __init__(self, path: Path, account: str, clock: Clock, tally: Tally,
                 every_s: float = 0.1) -> None:
        self.path, self.account, self.clock = path, account, clock
        self.tally, self.every_s = tally, every_s
        self.ids: list[str] = []
        self.n = 0
        self.lock = asyncio.Lock()  # held across a split line: nothing may land inside it
        path.touch()

    def _valid(self, **extra: object) -> bytes:
        self.n += 1
        line = json.dumps({"ts": self.clock.now_ms(), "method": "GET",
                           "endpoint": "/api/v3/account", "status": 200, "key": "logbot",
                           "request_id": f"r{self.n}", **extra})
        self.ids.append(parse_line(line, self.account, self.clock.now_ms()).event_id)
        return line.encode() + b"\n"

    def _append(self, data: bytes) -> None:
        with self.path.open("ab") as fh:
            fh.write(data)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            async with self.lock:
                self._append(self._valid())
            self.tally.valid["log lines"] += 1
            await asyncio.sleep(self.every_s)

    async def bad_round(self, burst: int = 0) -> None:
        t = self.tally
        self._append(b"not json at all\n")
        self._append(b'{"ts": 1, "method": "GET"}\n')  # no endpoint, no status
        self._append(b'{"ts": 1, "method": "GET", "endpoint": "/x", "status": "ok"}\n')
        self._append(b'\xff\xfe{"bad": "utf-8"}\n')
        self._append(b"[" * 100_000 + b"\n")
        t.bad["bad log lines"] += 5
        # a 1 MB line in two writes, a poll apart: one bad line, not two
        async with self.lock:
            self._append(b'{"pad": "' + b"a" * 500_000)
            await asyncio.sleep(0.6)
            self._append(b"a" * 500_000 + b'"}\n')
        t.bad["bad log lines"] += 1
        # a valid line whose order_id does not fit int64: stored, the value nulled, counted
        self._append(self._valid(order_id=BIG))
        t.valid["log lines"] += 1
        t.bad["log order_id past int64"] += 1
        if burst:
            self._append(b"".join(self._valid() for _ in range(burst)))
            t.valid["log lines"] += burst
