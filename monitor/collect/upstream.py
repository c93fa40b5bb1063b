"""The tap's way to the exchange: pooled HTTP/1.1 connections over asyncio streams, framed by h11.

Why not httpx here, when the REST poller uses it: the tap sits in the path of every call the
user's bots make, so its own cost is added to each of them. Measured against the simulator on
loopback, one GET through `httpx.AsyncClient` took a median 1.17 ms and the same request over a
kept-alive connection framed by h11 (the parser httpx itself uses, underneath httpcore) 0.52 ms:
the difference is httpx's and httpcore's request, pool and stream objects, not the wire. The
tap needs none of them: it forwards one request as it came and streams one answer back.

What this keeps from a full client: TLS with certificate and host checks (`https://` upstreams),
the source address to bind (the bots' whitelisted host), a timeout on connect and on every read,
keep-alive with a small idle pool, and a distinct `StaleConnection` when a pooled connection
turns out to be closed before any byte of an answer came back, so the tap can tell "safe to send
again" (a read) from "outcome unknown" (an order).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import h11

READ_BYTES = 65_536


class UpstreamError(Exception):
    """The upstream could not be reached or broke the protocol."""


class StaleConnection(UpstreamError):
    """A reused connection was closed by the upstream before it sent any byte of an answer."""


class _Conn:
    __slots__ = ("reader", "writer", "h11")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h11 = h11.Connection(h11.CLIENT)

    def usable(self) -> bool:
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        self.writer.close()


class Response:
    """Status and headers at once; the body as it arrives (`aiter_raw`); then `aclose`."""

    def __init__(self, pool: Upstream, conn: _Conn, head: h11.Response) -> None:
        self._pool, self._conn = pool, conn
        self.status_code = head.status_code
        self.raw_headers = [(bytes(k), bytes(v)) for k, v in head.headers.raw_items()]
        self.headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in self.raw_headers}
        self._done = False
        self.switched = False  # the upstream left HTTP/1.1 after this head (CONNECT, Upgrade)

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body's bytes. Every h11 outcome ends or raises: PAUSED (the upstream accepted a
        CONNECT or switched protocols, so no more HTTP follows) ends the exchange and the
        connection is closed, never pooled; looping on it would spin the event loop forever."""
        while not self._done:
            ev = await self._pool._next_event(self._conn)
            if isinstance(ev, h11.Data):
                yield bytes(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                self._done = True
            elif ev is h11.PAUSED:
                self._done, self.switched = True, True
            elif isinstance(ev, h11.ConnectionClosed):
                raise UpstreamError("the upstream closed the connection mid-body")
            else:
                raise UpstreamError(f"unexpected HTTP event in a body: {type(ev).__name__}")

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None  # type: ignore[assignment]
        if conn is None:
            return
        self._pool._release(conn, reusable=self._done)


class Upstream:
    """One upstream origin (scheme, host, port); `send` one request, get its `Response`."""

    def __init__(self, base_url: str, *, local_address: str | None = None,
                 timeout: float = 30.0, max_idle: int = 32,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream {base_url!r}: expected http(s)://host[:port]")
        self.host = parts.hostname
        self.tls = parts.scheme == "https"
        self.port = parts.port or (443 if self.tls else 80)
        default_port = self.port == (443 if self.tls else 80)
        self.host_header = (parts.netloc.rsplit("@", 1)[-1] if not default_port
                            else self.host).encode("ascii")
        self.local_address = local_address
        self.timeout = timeout
        self.max_idle = max_idle
        self._ssl = (ssl_context or ssl.create_default_context()) if self.tls else None
        self._idle: list[_Conn] = []
        self.counters = {"connects": 0, "reused": 0}

    async def _connect(self) -> _Conn:
        try:
            async with asyncio.timeout(self.timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                    local_addr=(self.local_address, 0) if self.local_address else None,
                    limit=READ_BYTES * 4)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise UpstreamError(f"connect to {self.host}:{self.port} failed: "
                                f"{type(exc).__name__}: {exc}") from exc
        self.counters["connects"] += 1
        return _Conn(reader, writer)

    async def send(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]],
                   body: bytes = b"") -> Response:
        """Send the request as given (plus Host and the body's length) and read the answer's
        head. Raises `StaleConnection` when a reused connection was dead, else `UpstreamError`.
        """
        conn, reused = None, False
        while self._idle:
            c = self._idle.pop()
            if c.usable():
                conn, reused = c, True
                self.counters["reused"] += 1
                break
            c.close()
        if conn is None:
            conn = await self._connect()
        sent_length = False
        out = [(b"host", self.host_header)]
        for k, v in headers:
            if k.lower() == b"content-length":
                sent_length = True  # replaced below by the length of the body we forward
                continue
            out.append((k, v))
        if body or sent_length:
            out.append((b"content-length", str(len(body)).encode()))
        try:
            data = conn.h11.send(h11.Request(method=method, target=target, headers=out))
            if body:
                data += conn.h11.send(h11.Data(data=body))
            data += conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            self._release(conn, reusable=False)
            raise UpstreamError(f"request cannot be framed: {exc}") from exc
        try:
            conn.writer.write(data or b"")
            while True:
                ev = await self._next_event(conn, first=reused)
                reused = False
                if isinstance(ev, h11.Response):
                    return Response(self, conn, ev)
                if isinstance(ev, h11.ConnectionClosed):
                    raise UpstreamError("the upstream closed the connection mid-answer")
                if ev is h11.PAUSED:  # a 101 Switching Protocols: no HTTP answer will follow
                    raise UpstreamError("the upstream switched protocols instead of answering")
                if not isinstance(ev, h11.InformationalResponse):
                    raise UpstreamError(f"unexpected HTTP event before the answer: "
                                        f"{type(ev).__name__}")
                # 1xx informational answers carry nothing the bot needs: wait for the real one
        except BaseException:
            self._release(conn, reusable=False)
            raise

    async def _next_event(self, conn: _Conn, first: bool = False) -> h11.Event:
        """The next h11 event, reading as needed; `first` marks "nothing received yet" on a
        reused connection, where EOF or a reset means the pool held a dead connection."""
        while True:
            try:
                ev = conn.h11.next_event()
            except h11.RemoteProtocolError as exc:
                raise UpstreamError(f"upstream broke HTTP/1.1: {exc}") from exc
            if ev is not h11.NEED_DATA:
                return ev  # type: ignore[return-value]
            try:
                async with asyncio.timeout(self.timeout):
                    chunk = await conn.reader.read(READ_BYTES)
            except TimeoutError as exc:
                raise UpstreamError(f"no answer within {self.timeout:g} s") from exc
            except OSError as exc:
                if first:
                    raise StaleConnection(f"{type(exc).__name__}: {exc}") from exc
                raise UpstreamError(f"read failed: {type(exc).__name__}: {exc}") from exc
            if not chunk and first:
                raise StaleConnection("the upstream closed the connection before answering")
            first = False
            conn.h11.receive_data(chunk)  # b"" tells h11 the peer closed

    def _release(self, conn: _Conn, *, reusable: bool) -> None:
        if reusable and conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE:
            try:
                conn.h11.start_next_cycle()
            except h11.LocalProtocolError:
                reusable = False
        else:
            reusable = False
        if reusable and conn.usable() and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for c in idle:
            c.close()
        for c in idle:
            try:
                await c.writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass
