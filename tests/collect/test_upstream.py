"""The tap's upstream connections against real loopback servers: plain, TLS, keep-alive, faults."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from monitor.collect.upstream import StaleConnection, Upstream, UpstreamError


class Origin:
    """A raw HTTP/1.1 origin on 127.0.0.1: answers each request with its head echoed as JSON-ish
    text; `mode` bends it: "chunked" answers in chunks, "cut" stops mid-body, "close" closes
    without answering."""

    def __init__(self, mode: str = "ok", tls: ssl.SSLContext | None = None) -> None:
        self.mode, self.tls = mode, tls
        self.heads: list[bytes] = []
        self.connections = 0
        self.peers: list[str] = []
        self.port = 0

    async def start(self) -> Origin:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = 0
                for h in head.split(b"\r\n")[1:]:
                    if h.lower().startswith(b"content-length:"):
                        length = int(h.split(b":", 1)[1])
                got = await reader.readexactly(length) if length else b""
                if self.mode == "close":
                    writer.close()
                    return
                body = b'{"echo":"' + got + b'"}'
                if self.mode == "chunked":
                    half = len(body) // 2
                    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                 b"X-MBX-USED-WEIGHT-1M: 7\r\n\r\n"
                                 + f"{half:x}\r\n".encode() + body[:half] + b"\r\n"
                                 + f"{len(body) - half:x}\r\n".encode() + body[half:]
                                 + b"\r\n0\r\n\r\n")
                elif self.mode == "cut":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"par")
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode()
                                 + b"\r\nX-MBX-USED-WEIGHT-1M: 7\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


async def _body(up: Upstream, method: str = "GET", body: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, bytes, dict]:
    resp = await up.send(method, b"/api/v3/time?x=1", headers or [], body)
    try:
        data = b"".join([c async for c in resp.aiter_raw()])
    finally:
        await resp.aclose()
    return resp.status_code, data, resp.headers


async def test_keep_alive_reuses_one_connection_and_sets_host_and_length() -> None:
    origin = await Origin().start()
    up = Upstream(f"http://127.0.0.1:{origin.port}", local_address="127.0.0.2")
    try:
        for _ in range(3):
            status, data, headers = await _body(up)
            assert status == 200 and data == b'{"echo":""}'
            assert headers["x-mbx-used-weight-1m"] == "7"
        # a stale Content-Length from the caller is replaced by the forwarded body's own
        status, data, _ = await _body(up, "POST", b"symbol=BTCUSDT",
                                      [(b"Content-Length", b"999")])
        assert data == b'{"echo":"symbol=BTCUSDT"}'
    finally:
        await up.aclose()
        await origin.stop()
    assert origin.connections == 1 and up.counters == {"connects": 1, "reused": 3}
    assert origin.peers == ["127.0.0.2"]  # from the bots' host address, as their whitelist wants
    assert all(h.split(b"\r\n")[1] == f"host: 127.0.0.1:{origin.port}".encode()
               for h in origin.heads)
    assert b"content-length: 14" in origin.heads[-1].lower()
    assert b"999" not in origin.heads[-1]


async def test_chunked_answer_arrives_whole() -> None:
    origin = await Origin("chunked").start()
    up = Upstream(f"http://127.0.0.1:{origin.port}")
    try:
        status, data, _ = await _body(up, "POST", b"abc")
        assert (status, data) == (200, b'{"echo":"abc"}')
        assert (await _body(up))[1] == b'{"echo":""}'  # and the connection is reused after it
    finally:
        await up.aclose()
        await origin.stop()
    assert origin.connections == 1


async def test_faults_are_named() -> None:
    origin = await Origin("cut").start()
    up = Upstream(f"http://127.0.0.1:{origin.port}", timeout=5)
    try:
        with pytest.raises(UpstreamError, match="mid-body|broke"):
            await _body(up)
    finally:
        await up.aclose()
        await origin.stop()
    # a fresh connection closed unanswered is an error, not "stale" (nothing was reused)
    closing = await Origin("close").start()
    up = Upstream(f"http://127.0.0.1:{closing.port}", timeout=5)
    try:
        with pytest.raises(UpstreamError) as info:
            await _body(up)
        assert not isinstance(info.value, StaleConnection)
    finally:
        await up.aclose()
        await closing.stop()
    port = closing.port  # now closed: nothing listens
    with pytest.raises(UpstreamError, match="connect to 127.0.0.1"):
        await Upstream(f"http://127.0.0.1:{port}", timeout=5).send("GET", b"/", [])


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    key, cert = tmp / "key.pem", tmp / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)
    return key, cert


async def test_tls_checks_the_certificate_and_the_host(tmp_path: Path) -> None:
    key, cert = _self_signed(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    origin = await Origin(tls=server_ctx).start()
    trusting = ssl.create_default_context(cafile=str(cert))
    try:
        up = Upstream(f"https://localhost:{origin.port}", ssl_context=trusting)
        assert (await _body(up))[1] == b'{"echo":""}'
        await up.aclose()
        # the default trust store does not know this certificate: refused, with the reason
        with pytest.raises(UpstreamError, match="CERTIFICATE_VERIFY_FAILED|certificate"):
            await _body(Upstream(f"https://localhost:{origin.port}", timeout=5))
        # a trusted certificate for another name: refused too
        with pytest.raises(UpstreamError, match="match|mismatch|certificate"):
            await _body(Upstream(f"https://127.0.0.1:{origin.port}", ssl_context=trusting,
                                 timeout=5))
    finally:
        await origin.stop()


class SwitchingOrigin:
    """An origin that leaves HTTP after one head: `200 Connection established` to a CONNECT, or
    `101 Switching Protocols` to anything; then it holds the connection open, sending nothing."""

    def __init__(self, head: bytes) -> None:
        self.head = head
        self.requests: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.requests.append((await reader.readuntil(b"\r\n\r\n")).split(b"\r\n")[0])
        writer.write(self.head)
        await writer.drain()
        await reader.read()  # until the client goes away
        writer.close()


def _in_own_loop(coro_fn: Callable[[], Coroutine[Any, Any, Any]], limit_s: float = 10.0) -> Any:
    """Run a coroutine in a thread with its own event loop and give up after `limit_s`: a spin
    that never yields blocks its loop, so only another thread can notice it."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = asyncio.run(coro_fn())
        except BaseException as exc:  # handed to the test's thread
            out["error"] = exc

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(limit_s)
    assert not th.is_alive(), "the upstream client never came back: spinning on h11.PAUSED"
    if "error" in out:
        raise out["error"]
    return out["result"]


def test_an_accepted_connect_ends_the_exchange_instead_of_spinning() -> None:
    """h11 answers PAUSED forever once a CONNECT was accepted: the body loop must end there,
    and the connection (no longer HTTP) must be closed, never pooled."""
    origin = SwitchingOrigin(b"HTTP/1.1 200 Connection established\r\n\r\n")

    async def go() -> tuple[int, bytes, bool, int]:
        srv = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
        up = Upstream(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", timeout=5)
        try:
            resp = await up.send("CONNECT", b"api.binance.com:443", [])
            data = b"".join([c async for c in resp.aiter_raw()])
            await resp.aclose()
            return resp.status_code, data, resp.switched, len(up._idle)
        finally:
            await up.aclose()
            srv.close()

    assert _in_own_loop(go) == (200, b"", True, 0)
    assert origin.requests == [b"CONNECT api.binance.com:443 HTTP/1.1"]


def test_a_101_switch_is_an_upstream_error_not_a_spin() -> None:
    origin = SwitchingOrigin(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                             b"Connection: Upgrade\r\n\r\n")

    async def go() -> str:
        srv = await asyncio.start_server(origin.handle, "127.0.0.1", 0)
        up = Upstream(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}", timeout=5)
        try:
            with pytest.raises(UpstreamError) as info:
                await up.send("GET", b"/api/v3/time",
                              [(b"connection", b"upgrade"), (b"upgrade", b"h2c")])
            return str(info.value)
        finally:
            await up.aclose()
            srv.close()

    assert "switched protocols" in _in_own_loop(go)
