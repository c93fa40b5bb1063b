"""Public market-data WebSocket streams on the simulator's own stream address.

Paths as Binance serves them (binance-wire-2.md 2.5, 5.3): `/ws/<stream>[/<stream>...]` raw,
`/stream?streams=a/b` combined (`{"stream", "data"}`), and `/ws`, `/ws/<anything else>`
(ccxt-pro's `/ws/0` slots) or bare `/stream` (binance-connector) that accept the connection
and wait for SUBSCRIBE. Control messages SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS,
SET_PROPERTY and GET_PROPERTY ("combined"), with ids int, string or null, and the documented
error replies (codes 0..3). Limits: 5 incoming messages a second (then disconnected), 1024
streams, 24 h lifetime; protocol pings come from uvicorn (server.py).

Trades and aggTrades are pushed as the tape records them; everything else by one pump that
wakes every 100 ms of clock time, but never more often than MIN_PUMP_WALL_S of wall time,
so a 120x clock does not spin the CPU (at such speeds 1 s streams arrive about every 50 ms
of wall time, each carrying the state at that clock time). Each connection has a bounded
queue; frames that do not fit are dropped and counted in `dropped`.

SIMULATOR CHOICES (Binance is silent): the incoming-message limit counts text frames per
second of wall time (clients' network behaviour does not speed up with the clock; ping and
pong frames are handled inside uvicorn and are not counted); a SUBSCRIBE with an unknown
stream name or beyond 1024 streams is refused with code 2 and subscribes nothing; error
replies carry the request's id when it could be read; invalid names in `?streams=` are
ignored; over-limit connections are closed with code 1008.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from monitor.world.sim.exchange import Exchange
from monitor.world.sim.streamevents import SubState, agg_event, periodic, start_state, trade_event
from monitor.world.sim.streamnames import REALTIME, parse
from monitor.world.sim.tape import TapeTrade

QUEUE_MAX = 5000
MAX_STREAMS = 1024
MAX_MSGS_PER_S = 5
PUMP_CLOCK_S = 0.1
MIN_PUMP_WALL_S = 0.05
MAX_CONNECTION_MS = 24 * 3600 * 1000
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")


@dataclass
class StreamConn:
    ip: str
    connected_ms: int
    combined: bool
    streams: dict[str, SubState] = field(default_factory=dict)
    queue: asyncio.Queue[str | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    received: deque[float] = field(default_factory=deque)
    dropped: int = 0

    def push_text(self, text: str | None) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            self.dropped += 1

    def push(self, name: str, payload: object) -> None:
        body = {"stream": name, "data": payload} if self.combined else payload
        self.push_text(json.dumps(body, separators=(",", ":")))


class PublicStreams:
    """Every open stream connection of one simulator, and the pump that feeds them."""

    def __init__(self, ex: Exchange) -> None:
        self.ex = ex
        self.connections: list[StreamConn] = []
        self.dropped_closed = 0  # frames dropped by connections already gone
        ex.tape.listen(self._on_trade)

    @property
    def dropped(self) -> int:
        return self.dropped_closed + sum(c.dropped for c in self.connections)

    def _on_trade(self, symbol: str, tr: TapeTrade) -> None:
        if not self.connections:
            return
        low = symbol.lower()
        now = self.ex.now_ms()
        for conn in self.connections:
            name = f"{low}@trade"
            if name in conn.streams:
                conn.push(name, trade_event(symbol, tr, now))
            name = f"{low}@aggTrade"
            if name in conn.streams:
                conn.push(name, agg_event(symbol, tr, now))

    def pump_once(self) -> None:
        now = self.ex.now_ms()
        self.ex.tape.advance(now)
        for conn in list(self.connections):
            for name, st in list(conn.streams.items()):
                spec = st.spec
                if spec.period_ms == REALTIME and spec.kind != "bookTicker":
                    continue
                if now < st.next_due:
                    continue
                st.next_due = now + spec.period_ms
                for payload in periodic(self.ex, st, now):
                    conn.push(name, payload)
            if now - conn.connected_ms >= MAX_CONNECTION_MS:
                conn.push_text(None)

    async def pump(self) -> None:
        wall = max(PUMP_CLOCK_S / float(self.ex.clock.speed), MIN_PUMP_WALL_S)
        while True:
            await asyncio.sleep(wall)
            if self.connections:
                self.pump_once()

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.push_text(None)

    # -- control messages ------------------------------------------------------------
    def _subscribe(self, conn: StreamConn, names: list[str]) -> None:
        now = self.ex.now_ms()
        for name in names:
            if name not in conn.streams:
                spec = parse(name)
                assert spec is not None
                conn.streams[name] = start_state(self.ex, spec, now)

    def handle(self, conn: StreamConn, text: str) -> dict[str, object]:
        try:
            msg = json.loads(text)
        except ValueError as exc:
            err = exc if isinstance(exc, json.JSONDecodeError) else None
            line, col = (err.lineno, err.colno) if err else (1, 1)
            return {"code": 3, "msg": f"Invalid JSON: expected value at line {line} column "
                                      f"{col}"}
        if not isinstance(msg, dict):
            return {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}
        req_id = msg.get("id")
        if not _valid_id(req_id):
            return {"code": 2, "msg": "Invalid request: request ID must be an unsigned integer"}
        method = msg.get("method")
        if method is None:
            return {"code": 2, "msg": f"Invalid request: missing field `method` at line 1 "
                                      f"column {len(text)}", "id": req_id}
        if method not in METHODS:
            return {"code": 2, "msg": f"Invalid request: unknown variant `{method}`, expected "
                    "one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, "
                    "`GET_PROPERTY` at line 1 column 28", "id": req_id}
        params = msg.get("params", [])
        if not isinstance(params, list):
            return {"code": 2, "msg": "Invalid request: too many parameters", "id": req_id}
        result: object = None
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            bad = [p for p in params if parse(p) is None]
            if bad:
                return {"code": 2, "msg": f"Invalid request: unknown stream '{bad[0]}'",
                        "id": req_id}
            if method == "SUBSCRIBE":
                if len(set(conn.streams) | set(params)) > MAX_STREAMS:
                    return {"code": 2, "msg": f"Invalid request: too many streams (at most "
                            f"{MAX_STREAMS} per connection)", "id": req_id}
                self._subscribe(conn, params)
            else:
                for name in params:
                    conn.streams.pop(name, None)
        elif method == "LIST_SUBSCRIPTIONS":
            if params:
                return {"code": 2, "msg": "Invalid request: too many parameters", "id": req_id}
            result = list(conn.streams)
        else:
            want = 2 if method == "SET_PROPERTY" else 1
            if len(params) > want:
                return {"code": 2, "msg": "Invalid request: too many parameters", "id": req_id}
            if not params or not isinstance(params[0], str):
                return {"code": 2, "msg": "Invalid request: property name must be a string",
                        "id": req_id}
            if params[0] != "combined":
                return {"code": 0, "msg": "Unknown property", "id": req_id}
            if method == "GET_PROPERTY":
                result = conn.combined
            elif len(params) < 2 or not isinstance(params[1], bool):
                return {"code": 1, "msg": "Invalid value type: expected Boolean", "id": req_id}
            else:
                conn.combined = params[1]
        return {"result": result, "id": req_id}

    # -- one connection --------------------------------------------------------------
    async def serve(self, ws: WebSocket) -> None:
        path = ws.url.path
        combined = path.startswith("/stream")
        if combined:
            names = [n for n in _streams_param(ws.scope.get("query_string", b"")).split("/") if n]
        else:
            names = [n for n in path[len("/ws"):].split("/") if n]
        names = [n for n in names if parse(n) is not None]
        await ws.accept()
        if len(names) > MAX_STREAMS:
            await ws.close(code=1008)
            return
        ip = ws.client.host if ws.client else "0.0.0.0"
        conn = StreamConn(ip, self.ex.now_ms(), combined)
        self._subscribe(conn, names)
        self.connections.append(conn)
        sender = asyncio.create_task(_sender(ws, conn))
        reader = asyncio.create_task(self._reader(ws, conn))
        try:
            await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.connections.remove(conn)
            self.dropped_closed += conn.dropped
            for task in (sender, reader):
                task.cancel()
            for task in (sender, reader):
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await ws.close(code=1008 if reader.done() and not sender.done() else 1000)

    def _wall(self) -> float:
        return self.ex.clock.monotonic() / float(self.ex.clock.speed)

    async def _reader(self, ws: WebSocket, conn: StreamConn) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                text = await ws.receive_text()
                now = self._wall()
                conn.received.append(now)
                while conn.received and conn.received[0] <= now - 1.0:
                    conn.received.popleft()
                if len(conn.received) > MAX_MSGS_PER_S:
                    await ws.close(code=1008)
                    return
                conn.push_text(json.dumps(self.handle(conn, text), separators=(",", ":")))


def _streams_param(query: bytes) -> str:
    """`streams=` percent-decoded without turning '+' into a space (time-zone klines)."""
    for pair in query.decode("latin-1").split("&"):
        key, _, value = pair.partition("=")
        if key == "streams":
            return unquote(value)
    return ""


def _valid_id(req_id: Any) -> bool:
    if req_id is None:
        return True
    if isinstance(req_id, bool):
        return False
    if isinstance(req_id, int):
        return -(2**63) <= req_id < 2**63
    return isinstance(req_id, str) and len(req_id) <= 36 and all(
        c.isascii() and (c.isalnum() or c == "-") for c in req_id)


async def _sender(ws: WebSocket, conn: StreamConn) -> None:
    while True:
        text = await conn.queue.get()
        if text is None:
            return
        await ws.send_text(text)


def stream_app(streams: PublicStreams) -> Starlette:
    async def endpoint(ws: WebSocket) -> None:
        await streams.serve(ws)

    return Starlette(routes=[WebSocketRoute("/ws", endpoint),
                             WebSocketRoute("/ws/{rest:path}", endpoint),
                             WebSocketRoute("/stream", endpoint),
                             WebSocketRoute("/stream/", endpoint)])
