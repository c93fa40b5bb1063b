"""The tap is invisible to a real Binance client library, and records each call once.

binance-connector (sync) talks to the simulator on its own thread, once directly and once
through the tap; statuses, bodies and headers must match (volatile values aside), and the
tap's events must match the calls one for one. The simulator's signature check proves the
request reached it unaltered: a changed byte would be answered -1022.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from binance.error import ClientError
from binance.spot import Spot

from monitor.collect.serverlimits import TAP_LIMITS, server_config
from monitor.collect.tap import HOP_BY_HOP, Tap, check_upstream, end_to_end, fingerprint
from monitor.core.clock import SystemClock
from monitor.core.events import Event, Kind
from monitor.world.sim import SimulatorThread

VOLATILE_HEADERS = {"date", "x-mbx-used-weight", "x-mbx-used-weight-1m", "x-mbx-order-count-10s",
                    "x-mbx-order-count-1d", "content-length", "x-mbx-uuid"}


class TapThread:
    def __init__(self, tap: Tap) -> None:
        self.tap = tap
        # the production server config (limits, head timeout, no WebSocket upgrades)
        self.server = uvicorn.Server(server_config(
            tap, "127.0.0.1", 0, TAP_LIMITS, log_level="warning", server_header=False,
            date_header=False, lifespan="off"))
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()),
                                       daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _call(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
        return 200, out["data"], {k.lower(): v for k, v in out["header"].items()}
    except ClientError as err:
        return err.status_code, (err.error_code, err.error_message), {
            k.lower(): v for k, v in err.header.items()}


def _stable(body):
    if isinstance(body, dict):
        return {k: _stable(v) for k, v in body.items()
                if k not in ("serverTime", "orderId", "transactTime", "clientOrderId", "time",
                             "updateTime", "workingTime", "updateTime", "uid")}
    if isinstance(body, list):
        return [_stable(v) for v in body]
    return body


def test_connector_through_tap_matches_direct_and_is_recorded_once() -> None:
    events: list[Event] = []
    lock = threading.Lock()

    def offer(evs: list[Event]) -> int:
        with lock:
            events.extend(evs)
        return 0

    st = SimulatorThread(seed=0)
    with st as sim:
        c = sim.control  # called on the simulator's own thread via st.call
        st.call(c.create_account, "main", {"USDT": 1000, "BTC": 0.5})
        key, secret = st.call(c.create_key, "main", "grid-bot", permissions={
            "enableReading": True, "enableSpotAndMarginTrading": True})
        tap = Tap(sim.rest_url, SystemClock(), offer, keys={fingerprint(key): ("main", "grid-bot")},
                  default_account="main")
        with TapThread(tap) as tap_url:
            direct = Spot(key, secret, base_url=sim.rest_url, show_header=True)
            tapped = Spot(key, secret, base_url=tap_url, show_header=True)
            price = st.call(c.price, "BTCUSDT")
            calls = [
                ("GET", "/api/v3/time", lambda s: _call(s.time)),
                ("GET", "/api/v3/account", lambda s: _call(s.account)),
                ("POST", "/api/v3/order", lambda s: _call(
                    s.new_order, symbol="BTCUSDT", side="BUY", type="LIMIT",
                    timeInForce="GTC", quantity="0.01", price=f"{price * 0.5:.2f}")),
                ("POST", "/api/v3/order", lambda s: _call(  # oversized: -2010
                    s.new_order, symbol="BTCUSDT", side="BUY", type="LIMIT",
                    timeInForce="GTC", quantity="100", price=f"{price * 0.9:.2f}")),
                ("POST", "/api/v3/order", lambda s: _call(  # filter failure: -1013
                    s.new_order, symbol="BTCUSDT", side="BUY", type="LIMIT",
                    timeInForce="GTC", quantity="0.000001", price=f"{price * 0.5:.2f}")),
                ("GET", "/api/v3/openOrders", lambda s: _call(s.get_open_orders, "BTCUSDT")),
            ]
            for _method, path, fn in calls:
                d_status, d_body, d_head = fn(direct)
                t_status, t_body, t_head = fn(tapped)
                assert t_status == d_status, path
                assert list(t_head) == list(d_head), path  # same headers, same order
                for h in d_head:
                    if h not in VOLATILE_HEADERS:
                        assert t_head[h] == d_head[h], (path, h)
                assert _stable(t_body) == _stable(d_body), path
    with lock:
        got = list(events)
    assert [(e.method, e.endpoint) for e in got] == [(m, p) for m, p, _ in calls]
    assert all(e.key == "grid-bot" and e.account == "main" and e.ip == "127.0.0.1" for e in got)
    assert [e.status for e in got] == [200, 200, 200, 400, 400, 200]
    oversized, filtered = got[3], got[4]
    assert oversized.kind is Kind.REJECT and oversized.code == -2010
    assert oversized.notional == pytest.approx(100 * float(f"{price * 0.9:.2f}"))
    assert filtered.kind is Kind.REJECT and filtered.code == -1013
    assert got[2].kind is Kind.REQUEST and got[2].order_id is not None
    assert all(e.weight_1m is not None for e in got)
    for e in got:  # neither the key, the secret nor a signature is ever recorded
        text = e.model_dump_json()
        assert key not in text and secret not in text and "signature" not in text


@pytest.mark.parametrize("url", ["http://api.binance.com", "ftp://127.0.0.1", "http://10.0.0.1"])
def test_upstream_must_be_https_unless_loopback(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        check_upstream(url)
    assert check_upstream("http://127.0.0.1:9/") == "http://127.0.0.1:9"
    assert check_upstream("https://api.binance.com") == "https://api.binance.com"


@contextlib.contextmanager
def raw_origin(handle: Any) -> Iterator[int]:
    """An asyncio TCP server on 127.0.0.1 in its own thread, with `handle` per connection: an
    upstream that misbehaves exactly as a test needs. Yields its port."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, int] = {}

    async def start() -> None:
        srv = await asyncio.start_server(handle, "127.0.0.1", 0)
        holder["port"] = srv.sockets[0].getsockname()[1]
        ready.set()

    th = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()),
                          daemon=True)
    th.start()
    assert ready.wait(5)
    try:
        yield holder["port"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        th.join(5)


class ClosingUpstream:
    """A raw HTTP/1.1 server on loopback that answers the first request of each connection and
    drops the connection, unanswered, when a second request arrives on it: what a server does
    when its keep-alive timer fires as the client reuses the connection."""

    def __init__(self) -> None:
        self.answered: list[str] = []
        self.dropped: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = 0
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode()
            length = 0
            for h in head.split(b"\r\n")[1:]:
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            if served:
                self.dropped.append(line)
                writer.close()
                return
            served += 1
            self.answered.append(line)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: 2\r\n\r\n{}")
            await writer.drain()


def test_stale_pooled_connection_retries_reads_but_never_orders() -> None:
    """A GET on a connection the upstream dropped is sent once more on a fresh one; an order
    is not (its outcome is unknown): the bot gets a 502 and the event says so."""
    events: list[Event] = []
    up = ClosingUpstream()
    with raw_origin(up.handle) as port:
        tap = Tap(f"http://127.0.0.1:{port}", SystemClock(),
                  lambda evs: events.extend(evs) or 0, keys={}, default_account="main")
        with TapThread(tap) as base, httpx.Client(base_url=base) as bot:
            assert bot.get("/api/v3/time").status_code == 200
            # every later request finds its pooled connection dropped by the upstream
            assert bot.get("/api/v3/account").status_code == 200  # retried on a fresh one
            assert bot.get("/api/v3/time").status_code == 200  # retried again
            assert bot.post("/api/v3/order", content=b"symbol=BTCUSDT").status_code == 502
    assert tap.counters["upstream_retries"] == 2
    assert tap.counters["upstream_errors"] == 1
    assert up.dropped == ["GET /api/v3/account HTTP/1.1", "GET /api/v3/time HTTP/1.1",
                          "POST /api/v3/order HTTP/1.1"]
    assert up.answered == ["GET /api/v3/time HTTP/1.1", "GET /api/v3/account HTTP/1.1",
                           "GET /api/v3/time HTTP/1.1"]  # the order was never sent twice
    statuses = [(e.endpoint, e.status) for e in sorted(events, key=lambda e: e.ts)]
    assert statuses == [("/api/v3/time", 200), ("/api/v3/account", 200),
                        ("/api/v3/time", 200), ("/api/v3/order", 502)]


def test_an_answer_cut_mid_body_is_recorded_and_the_bot_sees_a_broken_answer() -> None:
    """The upstream sends a head and part of the body, then closes: the bot must not get a
    short body as if it were whole, and the call is still recorded, marked as cut."""
    events: list[Event] = []

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: 100\r\nx-mbx-used-weight-1m: 21\r\n\r\n{\"bal")
        await writer.drain()
        writer.close()

    with raw_origin(cut) as port:
        tap = Tap(f"http://127.0.0.1:{port}", SystemClock(),
                  lambda evs: events.extend(evs) or 0, keys={}, default_account="main")
        with TapThread(tap) as base, httpx.Client(base_url=base) as bot:
            with pytest.raises(httpx.HTTPError):
                bot.get("/api/v3/account").read()
            deadline = time.monotonic() + 5
            while not events and time.monotonic() < deadline:
                time.sleep(0.02)
    (ev,) = events
    assert (ev.endpoint, ev.status, ev.weight_1m) == ("/api/v3/account", 200, 21)
    assert json.loads(ev.raw)["error"] == "upstream_cut_answer"
    assert tap.counters["upstream_errors"] == 1


def _raw_exchange(base: str, request: bytes) -> bytes:
    """Send raw bytes to the tap and read its whole answer (it closes or says its length)."""
    import socket

    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(body) < length:
            body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def test_connect_and_upgrades_are_refused_before_the_upstream_sees_them() -> None:
    """An upstream that accepts CONNECT (answers 2xx) used to freeze the tap's loop at full
    CPU: the tap answers CONNECT 405 and an `Upgrade:` request 400 itself, records both, and
    goes on forwarding."""
    events: list[Event] = []
    seen: list[bytes] = []

    async def accepting(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = (await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0]
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            seen.append(line)
            if line.startswith(b"CONNECT"):
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()

    with raw_origin(accepting) as port:
        tap = Tap(f"http://127.0.0.1:{port}", SystemClock(),
                  lambda evs: events.extend(evs) or 0, keys={}, default_account="main")
        with TapThread(tap) as base:
            connect = _raw_exchange(base, b"CONNECT api.binance.com:443 HTTP/1.1\r\n"
                                          b"Host: api.binance.com:443\r\n\r\n")
            upgrade = _raw_exchange(base, b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n"
                                          b"Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            websocket = _raw_exchange(base, b"GET /ws-api/v3 HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                                            b"Sec-WebSocket-Version: 13\r\n"
                                            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            with httpx.Client(base_url=base, timeout=10) as bot:
                assert bot.get("/api/v3/time").status_code == 200  # the tap is alive
            deadline = time.monotonic() + 5
            while len(events) < 4 and time.monotonic() < deadline:
                time.sleep(0.02)
    assert connect.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nallow: GET, HEAD, POST, PUT, DELETE\r\n" in connect
    assert b"tap: CONNECT is not forwarded" in connect
    assert upgrade.startswith(b"HTTP/1.1 400 ") and b"upgrades are not forwarded" in upgrade
    # uvicorn used to answer a WebSocket upgrade 500 itself, before the tap saw it
    assert websocket.startswith(b"HTTP/1.1 400 ") and b"upgrades are not forwarded" in websocket
    assert seen == [b"GET /api/v3/time HTTP/1.1"]  # only the plain call reached the upstream
    got = sorted((e.method, e.status, json.loads(e.raw)["error"]) for e in events)
    assert got == [("CONNECT", 405, "refused_method"), ("GET", 200, None),
                   ("GET", 400, "refused_upgrade"), ("GET", 400, "refused_upgrade")]


def test_hop_by_hop_fields_and_those_connection_names_stop_at_the_tap() -> None:
    """RFC 9110 7.6.1, both ways: `Connection: keep-alive, X-Bot-Hop` makes X-Bot-Hop this
    connection's business only, so the upstream must not get it; the upstream's own
    `Connection: X-Up-Hop` and `Keep-Alive` must not reach the bot. End-to-end fields pass."""
    heads: list[bytes] = []

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"connection: x-up-hop\r\nkeep-alive: timeout=5\r\nx-up-hop: up-secret\r\n"
                     b"x-mbx-used-weight-1m: 3\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    with raw_origin(echo) as port:
        tap = Tap(f"http://127.0.0.1:{port}", SystemClock(), lambda evs: 0, keys={},
                  default_account="main")
        with TapThread(tap) as base:
            answer = _raw_exchange(base, b"GET /api/v3/time HTTP/1.1\r\nHost: x\r\n"
                                         b"Connection: keep-alive, X-Bot-Hop\r\n"
                                         b"X-Bot-Hop: bot-secret\r\nX-MBX-APIKEY: fake-key\r\n"
                                         b"TE: trailers\r\nProxy-Authorization: Basic Zm9v\r\n"
                                         b"\r\n")
    (head,) = heads
    sent = {line.split(b":")[0].lower() for line in head.split(b"\r\n")[1:] if line}
    assert b"x-bot-hop" not in sent and b"bot-secret" not in head
    assert not sent & {b"connection", b"te", b"proxy-authorization"}
    assert b"x-mbx-apikey" in sent  # end-to-end: forwarded as it came
    got = {line.split(b":")[0].lower() for line in answer.split(b"\r\n\r\n")[0].split(b"\r\n")}
    assert b"x-up-hop" not in got and b"keep-alive" not in got and b"up-secret" not in answer
    assert b"x-mbx-used-weight-1m" in got


@pytest.mark.parametrize(("headers", "kept"), [
    ([(b"Connection", b"close"), (b"X-A", b"1")], [b"X-A"]),
    ([(b"Connection", b" X-A ,x-b"), (b"x-a", b"1"), (b"X-B", b"2"), (b"X-C", b"3")], [b"X-C"]),
    ([(b"connection", b"x-a"), (b"Connection", b"x-b"), (b"X-A", b"1"), (b"X-B", b"2")], []),
    ([(b"Keep-Alive", b"5"), (b"Transfer-Encoding", b"chunked"), (b"Upgrade", b"h2c")], []),
])
def test_end_to_end_drops_the_standard_set_and_every_named_field(
        headers: list[tuple[bytes, bytes]], kept: list[bytes]) -> None:
    assert [k for k, _ in end_to_end(headers, HOP_BY_HOP)] == kept
