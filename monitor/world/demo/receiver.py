"""A local webhook that Apprise's `json://` plugin posts to: the demo's alert inbox.

It is a real HTTP server on loopback, so each alert travels the same path it would to a
Telegram bot or a mail relay: outbox -> Apprise -> network -> receiver. Every alert received is
kept (with the clock time it arrived) and handed to `on_alert`, which prints it to the console.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.core.clock import Clock

ALERT_ID = re.compile(r"\bkw-[0-9a-f]{10}\b")


async def read_request_body(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request (head + Content-Length body) and return its body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return await reader.readexactly(length) if length else b""


@dataclass
class Received:
    at_ms: int
    title: str
    body: str
    type: str

    @property
    def alert_ids(self) -> list[str]:
        return sorted(set(ALERT_ID.findall(self.title + "\n" + self.body)))


@dataclass
class AlertReceiver:
    clock: Clock
    on_alert: Callable[[Received], None] | None = None
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: asyncio.AbstractServer | None = None

    async def start(self) -> AlertReceiver:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)  # 0: free
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"json://{self.host}:{self.port}/"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            body = await read_request_body(reader)
            payload: dict[str, Any] = json.loads(body or b"{}")
            item = Received(self.clock.now_ms(), str(payload.get("title", "")),
                            str(payload.get("message", "")), str(payload.get("type", "")))
            self.received.append(item)
            if self.on_alert is not None:
                self.on_alert(item)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
            await writer.drain()
        except (asyncio.IncompleteReadError, ValueError, ConnectionError):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        finally:
            writer.close()
