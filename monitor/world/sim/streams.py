"""Live WebSocket API connections and their user-data subscriptions.

Events are queued per connection and written by one sender task per socket, so a stalled or
slow client never blocks the engine. Queues are bounded; overflow is counted in `dropped`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUE_MAX = 10_000


@dataclass
class Connection:
    ip: str
    connected_ms: int
    scope: Any = None
    queue: asyncio.Queue[dict[str, object] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX))
    subs: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (account, api_key)
    next_sub: int = 0
    # session.logon (Ed25519 keys only): the logged-on key, since when, and the subscription
    # userDataStream.subscribe made with it (session.logout ends only that one)
    session_key: str | None = None
    authorized_since: int | None = None
    logon_sub: int | None = None
    stalled_until_ms: float = 0.0
    dropped: int = 0
    close_reason: str | None = None

    def push(self, frame: dict[str, object] | None) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.dropped += 1


class StreamHub:
    def __init__(self, now_ms: Callable[[], int]) -> None:
        self.now_ms = now_ms
        self.connections: list[Connection] = []
        self.abort: Callable[[Connection], None] | None = None  # set by the server

    def publish(self, account: str, event: dict[str, object]) -> None:
        for conn in list(self.connections):
            for sub_id, (acct, _key) in list(conn.subs.items()):
                if acct == account:
                    conn.push({"subscriptionId": sub_id, "event": event})

    def terminate(self, conn: Connection, sub_id: int) -> None:
        if conn.subs.pop(sub_id, None) is not None:
            conn.push({"subscriptionId": sub_id,
                       "event": {"e": "eventStreamTerminated", "E": self.now_ms()}})

    # -- faults ---------------------------------------------------------------------
    def expire_all(self) -> None:
        for conn in list(self.connections):
            for sub_id in list(conn.subs):
                self.terminate(conn, sub_id)

    def stall(self, seconds: float | None) -> None:
        until = float("inf") if seconds is None else self.now_ms() + seconds * 1000
        for conn in self.connections:
            conn.stalled_until_ms = until

    def resume(self) -> None:
        for conn in self.connections:
            conn.stalled_until_ms = 0.0

    def close_all(self, reason: str) -> None:
        """Ask each connection's handler to close (the 24-hour rollover)."""
        for conn in list(self.connections):
            conn.close_reason = reason
            conn.push(None)

    def drop_all(self) -> None:
        """Cut every socket at the TCP level: no close frame, no eventStreamTerminated."""
        for conn in list(self.connections):
            conn.close_reason = "dropped"
            if self.abort is not None:
                self.abort(conn)
            conn.push(None)
