"""The standalone tap's spool: its records as JSON lines, durable, and never in the bots' way.

`keywatch tap` (mode "process") hands each batch of recorded events to `SpoolWriter.offer`,
which appends one line per event to the spool file with a single write(2) and returns at once.
A line is the documented access-log format (README "Access-log schema") plus what the tap
knows beyond it - `event_id` (the id the tap built: re-reading a line stores nothing twice),
`received_ts`, `kind` and `raw` (the tap's payload: params, the answer's order ids, errors) -
so `keywatch run` rebuilds exactly the event the in-process tap would have stored
(`monitor/collect/logfile.py` reads it with `spool=True`).

Durability: a write that returned is in the kernel's page cache, so a crash or kill -9 of the
tap loses nothing written; a background thread fsyncs at most every `fsync_interval_s`, so a
power cut or kernel crash loses at most that interval's lines. fsync never runs on the event
loop. A failed write (disk full, the file removed with no permission to re-create it) drops
that batch's lines, counts them and logs; the bots' traffic goes on untouched. A write cut off
half-way leaves a torn line: the next write starts on a fresh line, and the reader reports
the torn one as one bad line. When the spool path is renamed away (log rotation), the tap
re-opens the path within one fsync interval; the reader finishes the old file first.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from typing import Any

from monitor.events import Event

log = logging.getLogger(__name__)

# Event field -> access-log field (README "Access-log schema"); the rest are the tap's extras.
LOG_FIELDS: dict[str, str] = {
    "ts": "ts", "method": "method", "endpoint": "endpoint", "status": "status",
    "account": "account", "key": "key", "ip": "ip", "code": "code", "latency_ms": "latency_ms",
    "weight_1m": "weight_1m", "orders_10s": "orders_10s", "orders_1d": "orders_1d",
    "symbol": "symbol", "side": "side", "order_type": "type", "qty": "qty", "price": "price",
    "notional": "notional", "order_id": "order_id", "client_order_id": "client_order_id",
}
EXTRA_FIELDS = ("event_id", "received_ts", "kind", "source")
WARN_EVERY_S = 30.0


def to_line(ev: Event) -> bytes:
    """One event -> one spool line (newline-terminated)."""
    d: dict[str, Any] = {}
    for field, name in LOG_FIELDS.items():
        v = getattr(ev, field)
        if v is not None:
            d[name] = v
    d["event_id"], d["received_ts"] = ev.event_id, ev.received_ts
    d["kind"], d["source"] = ev.kind.value, ev.source.value
    if ev.raw is not None:
        d["raw"] = json.loads(ev.raw)
    left = [f for f in Event.model_fields if getattr(ev, f) is not None
            and f not in LOG_FIELDS and f not in EXTRA_FIELDS and f != "raw"]
    if left:  # the tap never sets these; a line must not silently lose a fact
        raise ValueError(f"event {ev.event_id}: fields {left} have no spool column")
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


class SpoolWriter:
    """Append-only JSON-lines spool with batched fsync in a background thread."""

    def __init__(self, path: str, *, fsync_interval_s: float = 0.2) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self.counters = {"lines": 0, "bytes": 0, "dropped": 0, "write_errors": 0,
                         "fsyncs": 0, "fsync_errors": 0, "reopens": 0}
        self._fd: int | None = None
        self._torn = False  # the last write stopped mid-line
        self._dirty = False
        self._reopen = False
        self._retired: list[int] = []  # fds replaced by a re-open: the thread syncs, closes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._syncer, name="spool-fsync", daemon=True)
        self._last_warn = 0.0

    def start(self) -> None:
        self._open()
        self._thread.start()

    def _open(self) -> bool:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                               0o600)
        except OSError as exc:
            self._warn("cannot open the spool %s: %s", self.path, exc)
            return False
        return True

    def _warn(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warn >= WARN_EVERY_S or self._last_warn == 0.0:
            self._last_warn = now
            log.warning(msg + " (bots are unaffected; records are being dropped: %d so far)",
                        *args, self.counters["dropped"])

    def offer(self, events: Iterable[Event]) -> int:
        """Append the events' lines (one write); return how many were dropped. Never raises."""
        lines = [to_line(ev) for ev in events]
        if not lines:
            return 0
        if self._reopen:
            self._reopen = False
            old = self._fd
            if self._open():
                self.counters["reopens"] += 1
                if old is not None:
                    self._retired.append(old)
                self._torn = False
        if self._fd is None and not self._open():
            self.counters["dropped"] += len(lines)
            return len(lines)
        fd = self._fd
        assert fd is not None
        lead = b"\n" if self._torn else b""
        data = memoryview(lead + b"".join(lines))
        done = 0
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError as exc:
            self.counters["write_errors"] += 1
            self._warn("spool %s: write failed: %s", self.path, exc)
        if done:
            self._dirty = True
            self._torn = data[done - 1] != ord("\n")
        written = bytes(data[:done]).count(b"\n") - (1 if lead and done else 0)
        written = max(0, written)
        dropped = len(lines) - written
        self.counters["lines"] += written
        self.counters["bytes"] += done
        self.counters["dropped"] += dropped
        return dropped

    def _sync(self) -> None:
        while self._retired:
            old = self._retired.pop(0)
            try:
                os.fsync(old)
            except OSError:
                self.counters["fsync_errors"] += 1
            os.close(old)
        fd = self._fd
        if fd is None:
            return
        if self._dirty:
            self._dirty = False
            try:
                os.fsync(fd)
                self.counters["fsyncs"] += 1
            except OSError as exc:
                self.counters["fsync_errors"] += 1
                log.warning("spool %s: fsync failed: %s", self.path, exc)
        try:
            renamed = os.stat(self.path).st_ino != os.fstat(fd).st_ino
        except OSError:
            renamed = True
        if renamed:
            self._reopen = True

    def _syncer(self) -> None:
        while not self._stop.wait(self.fsync_interval_s):
            self._sync()

    def close(self) -> None:
        """Stop the thread, fsync what was written and close the file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
