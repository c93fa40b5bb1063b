"""The hostile upstream itself: one uvicorn server answering Binance's REST paths and WS API,
the simulator's answers with the chosen faults mixed in (see the package docstring)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.websockets import WebSocket

from monitor.binance.parse import order_fact_id
from monitor.world.hostile.asgi import Message, Receive, Scope, Send, answer, until_disconnect
from monitor.world.hostile.faults import (
    BAN_418_MSG,
    BIG_INT,
    FACT_ORDER_ID0,
    MALFORMED_FRAMES,
    MIB,
    RATE_429_MSG,
    WS_PATH,
    Injection,
    RestFault,
    WsFault,
    deep,
    execution_report,
    inflate,
)
from monitor.world.sim.rest import rest_app
from monitor.world.sim.server import Simulator
from monitor.world.sim.wsapi import ws_api


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
                await answer(send, status, body, headers)
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
            text = json.dumps(inflate(json.loads(body))).encode()
        except ValueError:
            text = body
        headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length",)]
        headers = [(k, str(BIG_INT).encode() if k.lower().startswith(b"x-mbx-used-weight")
                    else v) for k, v in headers]
        await answer(send, status, text, headers)

    async def _trickle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status, headers, body = await self._inner(scope, receive)

        async def drip() -> None:
            for i in range(len(body)):
                await send({"type": "http.response.body", "body": body[i:i + 1],
                            "more_body": True})
                await asyncio.sleep(self.trickle_s)
            await send({"type": "http.response.body", "body": b""})

        await send({"type": "http.response.start", "status": status, "headers": headers})
        await until_disconnect(receive, drip())

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
        await until_disconnect(receive, pour())

    async def _fixed(self, send: Send, status: int, body: bytes,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
        await answer(send, status, body, [(b"content-type", b"application/json"),
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
        event = execution_report(order_id, self.sim.exchange.now_ms())
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


Answer = Callable[[HostileUpstream, Scope, Receive, Send], Awaitable[None]]
_REST_ANSWERS: dict[RestFault, Answer] = {
    RestFault.VALID: HostileUpstream._valid,
    RestFault.HUGE: HostileUpstream._huge,
    RestFault.TRICKLE: HostileUpstream._trickle,
    RestFault.DEEP: lambda up, _s, _r, send: up._fixed(send, 200, deep(up.depth)),
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
