"""A hostile Binance upstream on 127.0.0.1: the real simulator, with chosen bad answers mixed in.

Why: issue 15's red-team found the collector crash-looping, sticking and swelling on answers a
real server (or anything in between) can send. This fixture makes each of those answers on
demand, over real HTTP and WebSocket, so tests and the soak bench feed the collector exactly
what production would meet. Valid answers come from the real `Simulator` (its exchange served
in-process on our own uvicorn, so the client's address, the signatures and the weight limits
are the simulator's own); a bad answer replaces one REST answer, or is pushed as extra frames
on live user-data subscriptions.

    async with Simulator(clock=clock) as sim, HostileUpstream(sim) as up:
        up.inject(RestFault.DEEP, path="/api/v3/rateLimit/order")   # the next matching call
        up.rest_mix = {RestFault.JUNK_GZIP: 0.1, RestFault.DROP: 0.05}  # or at random
        ... point the collector at up.rest_url / up.ws_url ...
        await up.subscribed()
        await up.send_frames(WsFault.VALID, n=20_000, per_s=20_000)  # a flood of real facts
        await up.send_frames(WsFault.MALFORMED, n=10)
        assert every id in up.sent_valid_ids("main") is stored once

Counters: `rest_sent[fault]` (REST answers by fault, VALID included), `ws_sent[fault]` (frames
by fault), `sent_orders` (the (symbol, orderId) of every valid fact pushed; `sent_valid_ids`
turns them into the event ids the collector stores). Nothing here holds a large body in
memory: the 512 MiB answer is one reused 1 MiB chunk written until the client hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import uvicorn
from starlette.websockets import WebSocket

from monitor.binance.parse import order_fact_id
from monitor.world.sim.rest import rest_app
from monitor.world.sim.server import Simulator
from monitor.world.sim.wsapi import ws_api

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MIB = 1 << 20
BIG_INT = 2 ** 64  # past int64: SQLite's OverflowError before issue 15 item 1
RATE_429_MSG = ("Too much request weight used; current limit is 6000 request weight per "
                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
BAN_418_MSG = ("Way too much request weight used; IP banned until {until}. Please use WebSocket "
               "Streams for live updates to avoid bans.")
WS_PATH = "/ws-api/v3"
FACT_ORDER_ID0 = 7_000_000_000  # far from the simulator's own order ids


class RestFault(StrEnum):
    VALID = "valid"            # the simulator's own answer
    HUGE = "huge"              # 200, chunked, `huge_bytes` of JSON-looking junk, never ending early
    TRICKLE = "trickle"        # the valid answer, one byte every `trickle_s` wall seconds
    DEEP = "deep"              # 200, a JSON array nested `depth` deep
    JUNK_GZIP = "junk_gzip"    # 200, Content-Encoding: gzip over garbage
    LIST = "list"              # 200, non-object JSON: [1, 2, 3]
    NUMBER = "number"          # 200, 42
    STRING = "string"          # 200, "ok"
    BIGINT = "bigint"          # the valid answer with every integer (and the weight header) 2^64+
    RATE_429 = "429"           # 429 -1003 with Retry-After
    BAN_418 = "418"            # 418 -1003 with Retry-After
    DROP = "drop"              # the TCP connection cut before any answer
    RAW = "raw"                # exactly the status, headers and body given to `inject_raw`


class WsFault(StrEnum):
    VALID = "valid"            # a documented executionReport (NEW) for a fresh order id
    MALFORMED = "malformed"    # not JSON, a wrong envelope, a deep nest, a bad field type
    OVERSIZED = "oversized"    # one text frame of `oversized_bytes` (past the client's max_size)
    DROP = "drop"              # the TCP connection cut: no close frame


MALFORMED_FRAMES: tuple[str, ...] = (
    "not json at all",
    "[1, 2, 3]",
    '{"subscriptionId": 0, "event": 5}',
    '{"subscriptionId": 0, "event": {"e": "executionReport", "E": "soon"}}',
    "[" * 200_000 + "]" * 200_000,
    '{"id": null, "status": "x"',
)


@dataclass
class Injection:
    fault: RestFault
    path: str | None = None  # None: the next REST call, whatever its path
    times: int = 1
    raw: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None  # RestFault.RAW's answer


@dataclass
class _WsConn:
    scope: Scope
    send: Send
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    sub_id: int | None = None


class HostileUpstream:
    """Binance's REST paths and WS API on its own port, answering badly when told to.

    Sizes are parameters so a test can keep them small; the defaults are the red-team's.
    """

    def __init__(self, sim: Simulator, *, host: str = "127.0.0.1", seed: int = 0,
                 huge_bytes: int = 512 * MIB, trickle_s: float = 5.0, depth: int = 200_000,
                 retry_after_s: int = 1, oversized_bytes: int = 2 * MIB) -> None:
        self.sim, self.host = sim, host
        self.huge_bytes, self.trickle_s, self.depth = huge_bytes, trickle_s, depth
        self.retry_after_s, self.oversized_bytes = retry_after_s, oversized_bytes
        self.rng = random.Random(seed)
        self.rest_mix: dict[RestFault, float] = {}  # fault -> probability per REST call
        self.injections: list[Injection] = []
        self.rest_sent: Counter[RestFault] = Counter()
        self.ws_sent: Counter[WsFault] = Counter()
        self.sent_orders: list[tuple[str, int]] = []
        self.rest_url = self.ws_url = ""
        self._rest = rest_app(sim.exchange)
        self._ws_conns: list[_WsConn] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._next_order = FACT_ORDER_ID0
        self._subscribed = asyncio.Event()
        # while True, requests arriving on the WS API go unanswered (a server gone deaf with
        # the socket still up: the client's pending request waits, its watchdog decides)
        self.ws_ignore_requests = False

    # -- choosing --------------------------------------------------------------------------
    def inject(self, fault: RestFault, path: str | None = None, times: int = 1) -> None:
        """Answer the next `times` REST calls to `path` (any path if None) with `fault`."""
        self.injections.append(Injection(fault, path, times))

    def inject_raw(self, body: bytes, status: int = 200,
                   headers: list[tuple[bytes, bytes]] | None = None,
                   path: str | None = None) -> None:
        """Answer the next REST call (to `path`) with exactly this (property tests)."""
        self.injections.append(Injection(RestFault.RAW, path, 1, (status, body, headers or [])))

    def _choose(self, path: str) -> Injection:
        for inj in self.injections:
            if inj.path is None or inj.path == path:
                inj.times -= 1
                if inj.times <= 0:
                    self.injections.remove(inj)
                return inj
        roll = self.rng.random()
        for fault, p in self.rest_mix.items():
            if roll < p:
                return Injection(fault)
            roll -= p
        return Injection(RestFault.VALID)

    # -- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "http":
            inj = self._choose(scope["path"])
            self.rest_sent[inj.fault] += 1
            if inj.raw is not None:
                status, body, headers = inj.raw
                await _answer(send, status, body, headers)
            else:
                await _REST_ANSWERS[inj.fault](self, scope, receive, send)

    async def _valid(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._rest(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive
                     ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The simulator's answer, captured (small: a REST answer of the simulator)."""
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(msg: Message) -> None:
            if msg["type"] == "http.response.start":
                start.update(msg)
            elif msg["type"] == "http.response.body":
                body.extend(msg.get("body", b""))

        await self._rest(scope, receive, capture)
        return start.get("status", 500), list(start.get("headers", [])), bytes(body)

    async def _bigint(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self._inner(scope, receive)
        try:
            text = json.dumps(_inflate(json.loads(body))).encode()
        except ValueError:
            text = body
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length",)]
        headers = [(k, str(BIG_INT).encode() if k.lower().startswith(b"x-mbx-used-weight")
                    else v) for k, v in headers]
        await _answer(send, status, text, headers)

    async def _trickle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self._inner(scope, receive)

        async def drip() -> None:
            for i in range(len(body)):
                await send({"type": "http.response.body", "body": body[i:i + 1],
                            "more_body": True})
                await asyncio.sleep(self.trickle_s)
            await send({"type": "http.response.body", "body": b""})

        await send({"type": "http.response.start", "status": status, "headers": headers})
        await _until_disconnect(receive, drip())

    async def _huge(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunk = b'{"pad":"' + b"a" * (MIB - 8)

        async def pour() -> None:
            sent = 0
            while sent < self.huge_bytes:
                left = self.huge_bytes - sent
                piece = chunk if left >= len(chunk) else chunk[:left]  # no 1 MiB copy each time
                await send({"type": "http.response.body", "body": piece, "more_body": True})
                sent += len(piece)
            await send({"type": "http.response.body", "body": b""})

        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await _until_disconnect(receive, pour())

    async def _fixed(self, send: Send, status: int, body: bytes,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await _answer(send, status, body, [(b"content-type", b"application/json"),
                                           *(headers or [])])

    async def _drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._abort(scope)

    def _abort(self, scope: Scope) -> None:
        """Cut the TCP connection serving `scope` (as `Simulator._abort` does)."""
        assert self._server is not None
        for proto in list(self._server.server_state.connections):
            if getattr(proto, "scope", None) is scope:
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.abort()

    # -- WebSocket -------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        conn = _WsConn(scope, send)

        async def locked_send(msg: Message) -> None:
            async with conn.lock:
                await send(msg)
            text = msg.get("text") if msg["type"] == "websocket.send" else None
            if conn.sub_id is None and text and '"subscriptionId"' in text[:200]:
                with contextlib.suppress(ValueError, AttributeError, TypeError):
                    sub = json.loads(text)["result"]["subscriptionId"]
                    if isinstance(sub, int):
                        conn.sub_id = sub
                        self._subscribed.set()

        async def deaf_receive() -> Message:
            while True:
                msg = await receive()
                if not (self.ws_ignore_requests and msg["type"] == "websocket.receive"):
                    return msg

        conn.send = locked_send
        self._ws_conns.append(conn)
        try:
            if scope["path"] != WS_PATH:
                await send({"type": "websocket.close", "code": 1008})
                return
            await ws_api(WebSocket(scope, deaf_receive, locked_send), self.sim.exchange)
        finally:
            self._ws_conns.remove(conn)
            if not any(c.sub_id is not None for c in self._ws_conns):
                self._subscribed.clear()

    async def subscribed(self, timeout_s: float = 10.0) -> None:
        """Wait until some connection holds a live user-data subscription."""
        await asyncio.wait_for(self._subscribed.wait(), timeout_s)

    async def send_frames(self, fault: WsFault, n: int = 1, per_s: float | None = None) -> int:
        """Push `n` frames of `fault` on every subscribed connection, at most `per_s` a second
        (None: as fast as the socket takes them; a slow reader slows us, as TCP would).
        Returns the frames sent on each connection (fewer if its socket went away)."""
        conns = [c for c in self._ws_conns if c.sub_id is not None]
        if fault is WsFault.DROP:
            for c in conns:
                self._abort(c.scope)
            self.ws_sent[fault] += len(conns)
            return len(conns)
        loop = asyncio.get_running_loop()
        started, sent = loop.time(), 0
        try:
            for i in range(n):
                for c in conns:
                    await c.send({"type": "websocket.send", "text": self._frame(fault, c, i)})
                self.ws_sent[fault] += 1
                sent += 1
                if per_s and (ahead := started + sent / per_s - loop.time()) > 0.005:
                    await asyncio.sleep(ahead)
        except (OSError, RuntimeError):  # the client went away (uvicorn raises on a closed ws)
            pass
        return sent

    def _frame(self, fault: WsFault, conn: _WsConn, i: int) -> str:
        if fault is WsFault.MALFORMED:
            return MALFORMED_FRAMES[i % len(MALFORMED_FRAMES)]
        if fault is WsFault.OVERSIZED:
            pad = "x" * self.oversized_bytes
            return json.dumps({"subscriptionId": conn.sub_id,
                               "event": {"e": "outboundAccountPosition", "pad": pad}})
        order_id, self._next_order = self._next_order, self._next_order + 1
        self.sent_orders.append(("BTCUSDT", order_id))
        now = self.sim.exchange.now_ms()
        event = {"e": "executionReport", "E": now, "s": "BTCUSDT", "c": f"hostile-{order_id}",
                 "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.01000000",
                 "p": "1000.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1,
                 "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": order_id,
                 "l": "0.00000000", "z": "0.00000000", "L": "0.00000000", "n": "0",
                 "N": None, "T": now, "t": -1, "I": order_id, "w": True, "m": False,
                 "M": False, "O": now, "Z": "0.00000000", "Y": "0.00000000",
                 "Q": "0.00000000", "W": now, "V": "EXPIRE_MAKER"}
        return json.dumps({"subscriptionId": conn.sub_id, "event": event})

    def sent_valid_ids(self, account: str) -> list[str]:
        """The event ids the collector (configured with `account`) stores for the valid
        facts pushed so far: each must be in the store exactly once."""
        return [order_fact_id(account, s, oid, "NEW") for s, oid in self.sent_orders]

    # -- lifetime --------------------------------------------------------------------------
    async def start(self) -> None:
        config = uvicorn.Config(self, host=self.host, port=0, lifespan="off",
                                log_level="critical", timeout_graceful_shutdown=1,
                                ws_max_size=16 * MIB)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the hostile upstream stopped before it started")
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.rest_url = f"http://{self.host}:{port}"
        self.ws_url = f"ws://{self.host}:{port}{WS_PATH}"

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        for conn in list(self._server.server_state.connections):
            transport = getattr(conn, "transport", None)
            if transport is not None:
                transport.abort()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = None

    async def __aenter__(self) -> HostileUpstream:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def _answer(send: Send, status: int, body: bytes,
                  headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _until_disconnect(receive: Receive, writer: Awaitable[None]) -> None:
    """Run `writer` until it ends or the client hangs up (then stop writing)."""

    async def hangup() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks = [asyncio.ensure_future(writer), asyncio.ensure_future(hangup())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _inflate(value: Any) -> Any:
    """Every integer (not bool) past int64, keeping the shape."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return BIG_INT + value
    if isinstance(value, list):
        return [_inflate(v) for v in value]
    if isinstance(value, dict):
        return {k: _inflate(v) for k, v in value.items()}
    return value


def _deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


Answer = Callable[[HostileUpstream, Scope, Receive, Send], Awaitable[None]]
_REST_ANSWERS: dict[RestFault, Answer] = {
    RestFault.VALID: HostileUpstream._valid,
    RestFault.HUGE: HostileUpstream._huge,
    RestFault.TRICKLE: HostileUpstream._trickle,
    RestFault.DEEP: lambda up, _s, _r, send: up._fixed(send, 200, _deep(up.depth)),
    RestFault.JUNK_GZIP: lambda up, _s, _r, send: up._fixed(
        send, 200, b"\x1f\x8b\x08\x00" + bytes(up.rng.randrange(256) for _ in range(512)),
        [(b"content-encoding", b"gzip")]),
    RestFault.LIST: lambda up, _s, _r, send: up._fixed(send, 200, b"[1, 2, 3]"),
    RestFault.NUMBER: lambda up, _s, _r, send: up._fixed(send, 200, b"42"),
    RestFault.STRING: lambda up, _s, _r, send: up._fixed(send, 200, b'"ok"'),
    RestFault.BIGINT: HostileUpstream._bigint,
    RestFault.RATE_429: lambda up, _s, _r, send: up._fixed(
        send, 429, json.dumps({"code": -1003, "msg": RATE_429_MSG}).encode(),
        [(b"retry-after", str(up.retry_after_s).encode())]),
    RestFault.BAN_418: lambda up, _s, _r, send: up._fixed(
        send, 418, json.dumps({"code": -1003, "msg": BAN_418_MSG.format(
            until=up.sim.exchange.now_ms() + 1000 * up.retry_after_s)}).encode(),
        [(b"retry-after", str(up.retry_after_s).encode())]),
    RestFault.DROP: HostileUpstream._drop,
    RestFault.RAW: HostileUpstream._valid,  # only inject_raw gives a RAW answer its content
}
