"""Real loopback receivers for end-to-end alert tests: an HTTP JSON sink and an SMTP server.

The HTTP sink is a small asyncio server (real TCP, real HTTP/1.1 framing) so Apprise's `json://`
plugin talks to it exactly as it would to a webhook. It can answer 500 for the first N requests
(an outage) or hold a request open (to kill the sender mid-send).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from email import message_from_string
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from monitor.alert.channels import apprise  # noqa: F401  (imghdr warning handled there)
from monitor.world.demo.receiver import read_request_body


@dataclass
class JsonSink:
    fail_first: int = 0  # answer 500 to this many requests
    failing: bool = False  # answer 500 while set (an outage of any length)
    hold_s: float = 0.0  # wait this long before answering (0: at once)
    received: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    got_one: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> JsonSink:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/"

    async def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            body = await read_request_body(reader)
            self.requests += 1
            if self.failing or self.requests <= self.fail_first:
                status = "500 Internal Server Error"
            else:
                self.received.append(json.loads(body))
                self.got_one.set()
                status = "200 OK"
                if self.hold_s:
                    try:
                        await asyncio.wait_for(self._release.wait(), self.hold_s)
                    except TimeoutError:
                        pass
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Length: 2\r\nContent-Type: application/json\r\n"
                "Connection: close\r\n\r\n{}".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


class _MailHandler:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.messages.append(message_from_string(envelope.content.decode("utf-8", "replace")))
        return "250 OK"


class SmtpSink:
    """aiosmtpd on loopback, plain SMTP, no TLS and no auth."""

    def __init__(self) -> None:
        self.handler = _MailHandler()
        self.port = _free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[Message]:
        return self.handler.messages

    @property
    def url(self) -> str:
        # Apprise's mailto: host:port is the SMTP server, mode=insecure means no TLS at all
        return (f"mailto://127.0.0.1:{self.port}?from=keywatch@example.com"
                "&to=oncall@example.com&mode=insecure")

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mail_text(msg: Message) -> str:
    """The text/plain part of a received e-mail, decoded."""
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/plain part")


def mail_html(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text/html part")
