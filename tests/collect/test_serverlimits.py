"""Server limits (issue 15): idle sockets cannot starve the tap, unfinished requests time out.

Real sockets on 127.0.0.1: a uvicorn server built by `server_config` with a short request
timeout, in front of the real `Tap` and a raw upstream that logs what reaches it; and a real
`keywatch tap` process started under a low open-files limit, with hundreds of idle connections.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn

from monitor.collect.serverlimits import HEALTH_LIMITS, ServerLimits, server_config
from monitor.collect.tap import Tap
from monitor.core.clock import SystemClock
from monitor.service.health import HealthServer, build_app
from monitor.service.metrics import Metrics
from monitor.world.sim import Simulator
from tests.collect.test_tap import raw_origin
from tests.collect.test_tap_process import BAD_CHANNEL, env, setup_sim, stop, wait_listening
from tests.collect.test_tap_process import write_config as tap_config
from tests.service.test_service import BOT_IP, free_port

QUICK = ServerLimits(limit_concurrency=64, timeout_keep_alive_s=5, request_timeout_s=0.5,
                     max_head_bytes=16 * 1024, graceful_shutdown_s=1)


@contextmanager
def served(app: object, limits: ServerLimits) -> Iterator[int]:
    server = uvicorn.Server(server_config(app, "127.0.0.1", 0, limits, log_level="warning",
                                          lifespan="off"))
    th = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        th.join(10)


def closed_after(port: int, chunks: list[bytes], gap_s: float) -> tuple[float, bytes]:
    """Send `chunks` `gap_s` apart (stopping if the server closes); (seconds to EOF, bytes)."""
    t0 = time.monotonic()
    got = b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for c in chunks:
            try:
                s.sendall(c)
            except OSError:
                break
            s.settimeout(gap_s)
            try:
                data = s.recv(4096)
                got += data
                if not data:
                    return time.monotonic() - t0, got
            except TimeoutError:
                continue
        s.settimeout(5)
        while data := s.recv(4096):
            got += data
    return time.monotonic() - t0, got


def test_unfinished_requests_are_closed_after_the_timeout_and_never_forwarded() -> None:
    seen: list[bytes] = []

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(65536))
        writer.close()

    with raw_origin(upstream) as up_port:
        tap = Tap(f"http://127.0.0.1:{up_port}", SystemClock(), lambda evs: 0, keys={},
                  default_account="main")
        with served(tap, QUICK) as port:
            # a head that never ends: 408, then closed
            took, got = closed_after(port, [b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n"], 3)
            assert got.startswith(b"HTTP/1.1 408 ") and 0.4 < took < 2.5, (took, got)
            # a head trickled a byte at a time: the deadline is not reset by each byte
            trickle = [bytes([b]) for b in b"GET /api/v3/time HTTP/1.1\r\nX-Slow: " + b"a" * 60]
            took, got = closed_after(port, trickle, 0.05)
            assert got.startswith(b"HTTP/1.1 408 ") and took < 2.5, (took, got)
            # a body that never ends: closed, and the partial order never reaches Binance
            took, got = closed_after(port, [b"POST /api/v3/order HTTP/1.1\r\nHost: x\r\n"
                                            b"Content-Length: 40\r\n\r\nsymbol=BTC"], 3)
            assert got == b"" and 0.4 < took < 2.5, (took, got)
            # a connection that says nothing at all is closed too
            took, got = closed_after(port, [b""], 3)
            assert got.startswith(b"HTTP/1.1 408 ") and took < 2.5
    assert seen == []


def test_the_health_server_is_built_with_its_limits() -> None:
    server = HealthServer(build_app(Metrics(), lambda: {"ok": True}))._server
    assert server.config.limit_concurrency == HEALTH_LIMITS.limit_concurrency
    assert server.config.timeout_keep_alive == HEALTH_LIMITS.timeout_keep_alive_s
    assert server.config.h11_max_incomplete_event_size == HEALTH_LIMITS.max_head_bytes


def _low_fd_limit() -> None:  # in the child, before exec: what systemd's default gives
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))


async def test_hundreds_of_idle_connections_do_not_stop_a_real_call(tmp_path: Path) -> None:
    """`keywatch tap` started with a soft limit of 256 open files; 400 idle connections
    (more than the limit) sit on it while a bot's call must still be forwarded and answered."""
    clock = SystemClock()
    async with Simulator(clock=clock) as sim:
        keys = setup_sim(sim)
        port = free_port()
        cfg = tap_config(tmp_path, sim, keys, port, BAD_CHANNEL)
        with open(tmp_path / "tap.log", "a") as out:
            tap = subprocess.Popen(
                [sys.executable, "-m", "monitor.cli", "tap", "-c", str(cfg)], cwd=tmp_path,
                env=env(), stdout=out, stderr=subprocess.STDOUT, text=True,
                preexec_fn=_low_fd_limit)
        idle: list[asyncio.StreamWriter] = []
        try:
            await wait_listening(port, tap, tmp_path, "tap.log")
            for _ in range(400):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                idle.append(w)
            await asyncio.sleep(0.3)  # let the tap accept what it can
            async with httpx.AsyncClient(timeout=5,
                                         transport=httpx.AsyncHTTPTransport(
                                             local_address=BOT_IP)) as bot:
                r = await bot.get(f"http://127.0.0.1:{port}/api/v3/time")
            assert r.status_code == 200 and "serverTime" in r.json()
        finally:
            for w in idle:
                w.close()
            if tap.poll() is None:
                assert await stop(tap) == 0, (tmp_path / "tap.log").read_text()
        assert "Too many open files" not in (tmp_path / "tap.log").read_text()
