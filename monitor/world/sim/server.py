"""Run the simulated exchange on loopback: `Simulator` in the current loop, or in a thread.

uvicorn serves one Starlette app holding the REST routes and the WebSocket API; the public
market-data streams get their own uvicorn on their own port (`stream_url`, as Binance serves
them from stream.binance.com, apart from the API); the control plane, when asked for over
HTTP, gets a third. A background ticker fills resting orders as the price path moves and keeps
the public trade tape current.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from monitor.core.clock import Clock, SystemClock
from monitor.world.sim.control import Control, control_app
from monitor.world.sim.exchange import Exchange
from monitor.world.sim.pubstreams import PublicStreams, stream_app
from monitor.world.sim.rest import build_rest_routes
from monitor.world.sim.streams import Connection
from monitor.world.sim.wsapi import ws_api

T = TypeVar("T")
PING_S = 20.0
PONG_TIMEOUT_S = 60.0
# Floors on wall-clock ping timing: at 1440x, 20 s of clock time is 14 ms, too tight for
# a loaded 2-core box. Below these floors pings are less frequent than 20 s of clock time.
MIN_PING_WALL_S = 0.5
MIN_PONG_WALL_S = 5.0


def _bound_port(server: uvicorn.Server) -> int:
    return int(server.servers[0].sockets[0].getsockname()[1])


async def _serve(app: Any, host: str, port: int, speed: float) -> tuple[uvicorn.Server,
                                                                         asyncio.Task]:
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="off", log_level="warning",
        ws_ping_interval=max(PING_S / speed, MIN_PING_WALL_S),
        ws_ping_timeout=max(PONG_TIMEOUT_S / speed, MIN_PONG_WALL_S),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # re-raise a bind error
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    return server, task


class Simulator:
    """A Binance look-alike on 127.0.0.1; see monitor/world/sim/__init__.py for the contract."""

    def __init__(self, clock: Clock | None = None, host: str = "127.0.0.1", port: int = 0,
                 seed: int = 0, control_port: int | None = None, stream_port: int = 0) -> None:
        self.clock: Clock = clock or SystemClock()
        self.host, self.port, self.seed, self.stream_port = host, port, seed, stream_port
        self._control_port = control_port
        self.exchange = Exchange(self.clock, seed)
        self.control = Control(self.exchange)
        self.rest_url = ""
        self.ws_api_url = ""
        self.control_url: str | None = None
        self.stream_url = ""  # ws://host:port; raw /ws/<stream>, combined /stream?streams=
        self.streams = PublicStreams(self.exchange)
        self._servers: list[tuple[uvicorn.Server, asyncio.Task]] = []
        self._ticker: asyncio.Task | None = None
        self._pump: asyncio.Task | None = None

    def _app(self) -> Starlette:
        ex = self.exchange

        async def ws_endpoint(ws: WebSocket) -> None:
            await ws_api(ws, ex)

        return Starlette(routes=[*build_rest_routes(ex),
                                 WebSocketRoute("/ws-api/v3", ws_endpoint)])

    async def start(self) -> None:
        speed = float(self.clock.speed)
        main = await _serve(self._app(), self.host, self.port, speed)
        self._servers.append(main)
        self.port = _bound_port(main[0])
        self.rest_url = f"http://{self.host}:{self.port}"
        self.ws_api_url = f"ws://{self.host}:{self.port}/ws-api/v3"
        self.exchange.hub.abort = lambda conn: self._abort(main[0], conn)
        pub = await _serve(stream_app(self.streams), self.host, self.stream_port, speed)
        self._servers.append(pub)
        self.stream_url = f"ws://{self.host}:{_bound_port(pub[0])}"
        self._pump = asyncio.create_task(self.streams.pump())
        if self._control_port is not None:
            ctl = await _serve(control_app(self.control), self.host, self._control_port, speed)
            self._servers.append(ctl)
            self.control_url = f"http://{self.host}:{_bound_port(ctl[0])}"
        self._ticker = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            self.exchange.engine.match()
            self.exchange.tape.advance(self.exchange.now_ms())

    @staticmethod
    def _abort(server: uvicorn.Server, conn: Connection) -> None:
        for proto in list(server.server_state.connections):
            if getattr(proto, "scope", None) is conn.scope:
                transport = getattr(proto, "transport", None)
                if transport is not None:
                    transport.abort()

    async def stop(self) -> None:
        for task in (self._ticker, self._pump):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.exchange.hub.close_all("shutdown")
        self.streams.close_all()
        for server, _task in self._servers:
            server.should_exit = True
        for _server, task in self._servers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._servers.clear()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class SimulatorThread:
    """The simulator on its own loop in a background thread, for synchronous clients."""

    def __init__(self, **simulator_kwargs: Any) -> None:
        self._kwargs = simulator_kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.sim: Simulator | None = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self.sim = Simulator(**self._kwargs)
            loop.run_until_complete(self.sim.start())
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.sim.stop())
        loop.close()

    def __enter__(self) -> Simulator:
        self._thread = threading.Thread(target=self._run, name="keywatch-sim", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self.sim is not None
        return self.sim

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn` (e.g. a Control method) on the simulator's own loop thread and return."""
        assert self._loop is not None

        async def run() -> T:
            return fn(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
