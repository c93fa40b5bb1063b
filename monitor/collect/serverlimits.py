"""Limits for every HTTP server Keywatch runs (the tap, `/healthz` + `/metrics`), in one place.

Why (issue 15): 1,100 idle connections under systemd's default file limit (soft 1024) stopped
both the tap and health - every accept failed with EMFILE - and a request whose head never
finished held its connection forever: uvicorn times out idle keep-alive connections but not a
head in progress, and not a fresh connection that sends nothing. So each server here gets:

- the process's soft `RLIMIT_NOFILE` raised to its hard limit (systemd's default hard limit is
  524288; the units also set `LimitNOFILE=`), so idle sockets cannot starve accept;
- `limit_concurrency`: beyond it uvicorn answers 503 at once instead of queueing without bound;
- `timeout_keep_alive`: an idle kept-alive connection is closed after it;
- a request timeout (`RequestTimeoutH11`): a request, head and body, must have arrived whole
  within `request_timeout_s` of the connection opening, or of its first byte after an answer;
  otherwise the server answers 408 (head unfinished) or just closes (body unfinished; the app
  sees a disconnect and forwards nothing). A trickle of one byte a second does not reset it;
- `h11_max_incomplete_event_size`: a head larger than this is refused (400) before it is
  buffered whole.

The request timeout subclasses uvicorn's h11 protocol (the pure-Python one; httptools is not a
dependency), using only its connection, transport and loop attributes and `data_received`.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

FD_TARGET = 65_536  # what the units set (LimitNOFILE=); enough for the largest limit below


@dataclass(frozen=True)
class ServerLimits:
    """What one server tolerates from its clients (see the module docstring for why)."""

    limit_concurrency: int
    timeout_keep_alive_s: float
    request_timeout_s: float
    max_head_bytes: int
    graceful_shutdown_s: float


# The bots' way to Binance: a few bot processes with pooled connections, each idle for a while
# between calls (15 s keeps a bot polling every 10 s on one connection); the head limit admits
# Binance's longest signed query strings (order lists, cancel-replace) with room to spare.
TAP_LIMITS = ServerLimits(limit_concurrency=4096, timeout_keep_alive_s=15.0,
                          request_timeout_s=10.0, max_head_bytes=64 * 1024,
                          graceful_shutdown_s=10.0)
# Prometheus and systemd scrape it now and then: small numbers are plenty.
HEALTH_LIMITS = ServerLimits(limit_concurrency=64, timeout_keep_alive_s=5.0,
                             request_timeout_s=5.0, max_head_bytes=16 * 1024,
                             graceful_shutdown_s=5.0)


def raise_fd_limit(target: int = FD_TARGET) -> tuple[int, int]:
    """Raise the soft open-files limit towards `target` (never above the hard limit, never
    down); returns (before, after). Python leaves the soft limit where the parent set it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = target if hard == resource.RLIM_INFINITY else min(target, hard)
    if soft != resource.RLIM_INFINITY and soft < ceiling:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft,
                        ceiling, exc)
            return soft, soft
        return soft, ceiling
    return soft, soft


class RequestTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol plus a deadline on each request's arrival (`request_timeout_s`)."""

    request_timeout_s = 10.0
    _ARRIVING = (h11.IDLE, h11.SEND_BODY)  # the client's states while a request is incomplete

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state in self._ARRIVING:  # still (or again) arriving
            if self._timer is None:
                self._arm()
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        # the next request is timed from its first byte; until then keep-alive's timer rules
        self._disarm()
        super().on_response_complete()
        if self.conn.their_state is h11.SEND_BODY:  # a pipelined head, its body still coming
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._timer = self.loop.call_later(self.request_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
            self._timer = None

    def _too_slow(self) -> None:
        self._timer = None
        state = self.conn.their_state
        if self.transport.is_closing() or state not in self._ARRIVING:
            return
        if state is h11.IDLE:  # nothing of an answer has started: say why before closing
            self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n"
                                 b"connection: close\r\n\r\n")
        self.transport.close()


def request_timeout_protocol(seconds: float) -> type[RequestTimeoutH11]:
    """A protocol class with its own head deadline (uvicorn builds one instance per socket)."""
    return type("RequestTimeoutH11", (RequestTimeoutH11,), {"request_timeout_s": seconds})


def server_config(app: Any, host: str, port: int, limits: ServerLimits,
                  **options: Any) -> uvicorn.Config:
    """A uvicorn config with `limits` applied, after raising the open-files limit: the one way
    Keywatch builds a server. `options` are passed on (log_level, lifespan, headers...).

    No server of Keywatch speaks WebSocket, so uvicorn's WebSocket support is off (`ws="none"`):
    with it on, an `Upgrade: websocket` request never reached the tap as an HTTP request (uvicorn
    answered 500 itself), so it was neither refused in the tap's words nor recorded."""
    raise_fd_limit()
    options.setdefault("ws", "none")
    return uvicorn.Config(
        app, host=host, port=port, http=request_timeout_protocol(limits.request_timeout_s),
        limit_concurrency=limits.limit_concurrency,
        timeout_keep_alive=int(limits.timeout_keep_alive_s),
        h11_max_incomplete_event_size=limits.max_head_bytes,
        timeout_graceful_shutdown=int(limits.graceful_shutdown_s), **options)
