"""One WebSocket API connection carrying one signed user-data subscription.

The listen key was retired on 2026-02-20 (binance-wire.md section 4.1). With an HMAC or RSA
monitor key the subscription is `userDataStream.subscribe.signature`; with an Ed25519 key it is
`session.logon` then `userDataStream.subscribe` (the logon is Ed25519-only, binance-wire-2.md
1.4-1.5), and the liveness probe asks `session.status`, so a session the server dropped (the key
revoked, the logon lost) ends the socket and the collector reconnects and logs on again.

Requests and events share the socket, so one reader task routes each frame: responses resolve
the waiting request, everything else is parsed into events and handed to `on_frame`. The
connection also remembers when it last heard anything, which is what the collector's data-
liveness watchdog looks at: protocol pings are answered by the library and prove nothing about
the data path.

Bounded: a frame is at most `MAX_FRAME_BYTES` (a larger one closes the socket, 1009), and
`on_frame` may return an awaitable that the reader awaits before reading on, so a consumer whose
queue is full stops the reading; websockets then holds at most `MAX_QUEUE` frames and stops
reading the TCP socket, and a flood waits in the server's send buffer instead of our memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from monitor.binance import logfilter
from monitor.binance.parse import Ctx, Frame, ws_frame
from monitor.binance.rest import KEY_REJECTED_CODES, BinanceError, MonitorKeyRejected
from monitor.binance.signing import sign_ws_params
from monitor.core.clock import Clock, network_timeout
from monitor.core.keys import KeyType, Signer, as_signer
from monitor.core.wirefields import JsonObject

log = logging.getLogger(__name__)
CONNECT_WEIGHT = 2
METHOD_WEIGHT = {"time": 1, "userDataStream.subscribe.signature": 2, "session.status": 2,
                 "session.logon": 2, "userDataStream.subscribe": 2}


def uses_logon(signer: Signer) -> bool:
    """Ed25519 keys subscribe through a session logon (the only type that may log on)."""
    return signer.key_type is KeyType.ED25519


def open_weight(signer: Signer) -> int:
    """Request weight of opening a socket and subscribing with this key."""
    if uses_logon(signer):
        return (CONNECT_WEIGHT + METHOD_WEIGHT["session.logon"]
                + METHOD_WEIGHT["userDataStream.subscribe"])
    return CONNECT_WEIGHT + METHOD_WEIGHT["userDataStream.subscribe.signature"]
MAX_FRAME_BYTES = 1 << 20
MAX_QUEUE = 16  # frames websockets buffers before it stops reading the socket


class StreamClosed(Exception):
    """The socket is gone (dropped, closed by the server, or declared dead by us)."""


class UserDataSocket:
    """Open with `open()`; frames go to `on_frame(frame)`; `closed` resolves when it ends."""

    def __init__(
        self,
        url: str,
        api_key: SecretStr,
        signer: Signer | SecretStr,
        clock: Clock,
        *,
        server_now: Callable[[], int],
        ctx: Callable[[], Ctx],
        on_frame: Callable[[Frame], Awaitable[None] | None],
        recv_window: int = 5000,
        local_host: str | None = None,
        request_timeout_s: float = 10.0,
    ) -> None:
        logfilter.install()
        self.url = url
        self._api_key, self._signer = api_key, as_signer(signer)  # a bare secret: HMAC
        self.logged_on = False
        self.clock = clock
        self._server_now, self._ctx, self._on_frame = server_now, ctx, on_frame
        self.recv_window = recv_window
        self.local_host = local_host
        self.request_timeout_s = request_timeout_s
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[JsonObject]] = {}
        self._ids = itertools.count(1)
        self.subscription_id: int | None = None
        self.opened_mono = clock.monotonic()
        self.last_frame_mono = clock.monotonic()
        self.close_reason: str | None = None
        self.done = asyncio.Event()

    async def open(self) -> int:
        """Connect and subscribe; return the subscription id. Raises on any failure."""
        local_addr = (self.local_host, 0) if self.local_host is not None else None
        timeout = network_timeout(self.clock, self.request_timeout_s)
        self._ws = await connect(
            self.url, ping_interval=None, open_timeout=max(timeout, 1.0),
            close_timeout=1.0, max_size=MAX_FRAME_BYTES, max_queue=MAX_QUEUE, local_addr=local_addr,
        )
        self.opened_mono = self.last_frame_mono = self.clock.monotonic()
        self._reader = asyncio.create_task(self._read())
        params = sign_ws_params(self._signer, {
            "apiKey": self._api_key.get_secret_value(),
            "recvWindow": self.recv_window,
            "timestamp": self._server_now(),
        })
        if uses_logon(self._signer):
            session = await self.request("session.logon", params)
            if not isinstance(session, dict) or session.get("apiKey") is None:
                raise BinanceError("WS", "session.logon", 200, None, "not logged on")
            self.logged_on = True
            method = "userDataStream.subscribe"
            result = await self.request(method)
        else:
            method = "userDataStream.subscribe.signature"
            result = await self.request(method, params)
        sub = result.get("subscriptionId") if isinstance(result, dict) else None
        if isinstance(sub, bool) or not isinstance(sub, int):
            raise BinanceError("WS", method, 200, None, "no subscriptionId in the answer")
        self.subscription_id = sub
        return sub

    @property
    def probe_method(self) -> str:
        """What the liveness probe asks: the session's status when logged on, else the time."""
        return "session.status" if self.logged_on else "time"

    async def probe(self) -> None:
        """One liveness request. A logged-on socket whose session is gone (apiKey null in
        session.status) is closed, so the collector reconnects and logs on again."""
        result = await self.request(self.probe_method)
        if self.logged_on and isinstance(result, dict) and result.get("apiKey") is None:
            self.close_reason = "session_lost"
            await self.close("session_lost")

    async def request(self, method: str, params: dict[str, object] | None = None) -> Any:
        """Send one WS API request and wait (clock time) for its answer's `result`."""
        if self._ws is None:
            raise StreamClosed("not connected")
        req_id = f"kw-{next(self._ids)}"
        fut: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = fut
        frame = {"id": req_id, "method": method, "params": params or {}}
        try:
            await self._ws.send(json.dumps(frame))
            resp = await asyncio.wait_for(fut, network_timeout(self.clock, self.request_timeout_s))
        except (ConnectionClosed, OSError) as exc:
            raise StreamClosed(type(exc).__name__) from None
        finally:
            self._pending.pop(req_id, None)
            # The reader fails every pending future when the socket ends; if the send failed
            # first, nobody awaits this one: retrieve its exception, or asyncio reports
            # "Future exception was never retrieved" on every reconnect (issue 15 item 9).
            if fut.done() and not fut.cancelled():
                fut.exception()
        status = resp.get("status")
        if status == 200:
            return resp.get("result")
        err: JsonObject = resp["error"] if isinstance(resp.get("error"), dict) else {}
        code = err.get("code") if isinstance(err.get("code"), int) else None
        msg = str(err.get("msg", ""))[:200]
        cls = MonitorKeyRejected if code in KEY_REJECTED_CODES else BinanceError
        error = cls("WS", method, status if isinstance(status, int) else None, code, msg)
        data = err.get("data")
        if isinstance(data, dict) and isinstance(data.get("retryAfter"), int):
            error.retry_after_ms = data["retryAfter"]  # type: ignore[attr-defined]
        raise error

    async def _read(self) -> None:
        assert self._ws is not None
        try:
            async for message in self._ws:
                self.last_frame_mono = self.clock.monotonic()
                frame = ws_frame(message, self._ctx())
                resp = frame.response
                if resp is not None:
                    fut = self._pending.get(str(resp.get("id")))
                    if fut is not None and not fut.done():
                        fut.set_result(resp)
                    elif resp.get("id") is None and _is_key_revoked(resp):
                        self.close_reason = "key_revoked"
                        break
                    continue
                handed = self._on_frame(frame)
                if inspect.isawaitable(handed):
                    await handed  # backpressure: no more reading until the consumer has room
            if self.close_reason is None:
                self.close_reason = "closed_by_server"
        except ConnectionClosed:
            self.close_reason = self.close_reason or "dropped"
        except Exception as exc:  # a consumer's bug must end this socket, not leave it deaf
            log.error("user-data reader failed: %s", type(exc).__name__)
            self.close_reason = self.close_reason or "reader_failed"
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(StreamClosed(self.close_reason or "closed"))
            self.done.set()

    def idle_s(self) -> float:
        return self.clock.monotonic() - self.last_frame_mono

    def age_s(self) -> float:
        return self.clock.monotonic() - self.opened_mono

    async def close(self, reason: str) -> None:
        self.close_reason = self.close_reason or reason
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._ws.close(), 2.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        self.done.set()


def _is_key_revoked(resp: JsonObject) -> bool:
    err = resp.get("error")
    return isinstance(err, dict) and err.get("code") in KEY_REJECTED_CODES
