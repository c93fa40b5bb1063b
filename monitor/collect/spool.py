"""The standalone tap's spool: its records as JSON lines, durable before the bot has its answer.

`keywatch tap` (mode "process") hands each recorded event to `SpoolWriter.commit` and awaits it
before the last byte of the call's answer goes to the bot. A line is the documented access-log
format (README "Access-log schema") plus what the tap knows beyond it - `event_id` (the id the
tap built: re-reading a line stores nothing twice), `received_ts`, `kind` and `raw` (the tap's
payload: params, the answer's order ids, errors) - so `keywatch run` rebuilds exactly the event
the in-process tap would have stored (`monitor/collect/logfile.py` reads it with `spool=True`).

Durability, by group commit: records that arrive while a write is under way wait for the next
one; one worker thread appends a whole group with a single write(2) and then fdatasync(2)s it,
and only then are that group's answers released. So every answer a bot received has its record
on disk - a kill -9, a crash or a power cut loses none - while a busy tap pays one fdatasync per
group, not per call (`bench/tapspool.py` measures what it adds). fdatasync, not fsync: the
file's size is data the kernel syncs with it, and its times are not worth a second write.
Nothing of this runs on the event loop.

A failed write (disk full, the file removed with no permission to re-create it) drops that
group's lines, counts them and logs; the answers are released all the same, so the bots'
traffic goes on untouched. A write cut off half-way leaves a torn line: the next write starts on
a fresh line, and the reader reports the torn one as one bad line. When the spool path is
renamed away (log rotation), the tap re-opens the path within `fsync_interval_s` (the background
check); the reader finishes the old file first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from monitor.core.events import Event

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


def inprocess_spool(store_path: str) -> str:
    """Where the in-process tap spools when `[sources.tap] spool` is not set: beside the store
    (`keywatch.db` -> `keywatch.db.tap-spool.jsonl`), created 0600 like it."""
    path = store_path.removeprefix("sqlite:///")
    if path == ":memory:":  # a store with no file: the spool goes to the working folder
        path = "keywatch-memory"
    return f"{path}.tap-spool.jsonl"


def _ends_torn(path: str) -> bool:
    """Whether the file's last byte is not a newline (an empty or missing file is not torn)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) != b"\n"
    except OSError:
        return False


@dataclass
class _Waiting:
    """One `commit` call's lines and the future its caller awaits (how many were dropped)."""

    lines: list[bytes]
    done: asyncio.Future[int]


class SpoolWriter:
    """Append-only JSON-lines spool: group-committed writes, a background rotation check."""

    def __init__(self, path: str, *, fsync_interval_s: float = 0.2) -> None:
        self.path = path
        self.fsync_interval_s = fsync_interval_s
        self.counters = {"lines": 0, "bytes": 0, "dropped": 0, "write_errors": 0,
                         "fsyncs": 0, "fsync_errors": 0, "reopens": 0, "groups": 0}
        self._fd: int | None = None
        self._torn = False  # the last write stopped mid-line
        self._dirty = False
        self._reopen = False
        self._retired: list[int] = []  # fds replaced by a re-open: the thread syncs, closes
        self._lock = threading.Lock()  # one writer at a time: the group worker or `offer`
        self._group: list[_Waiting] = []
        self._draining: asyncio.Task[None] | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-commit")
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
        # a process killed mid-write (kill -9) left a torn last line: the first line this one
        # writes must start afresh, or it would be glued to the fragment and lost with it
        self._torn = _ends_torn(self.path)
        return True

    def _warn(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warn >= WARN_EVERY_S or self._last_warn == 0.0:
            self._last_warn = now
            log.warning(msg + " (bots are unaffected; records are being dropped: %d so far)",
                        *args, self.counters["dropped"])

    async def commit(self, events: Iterable[Event]) -> int:
        """Return once the events' lines are written and fdatasync'd (or counted as dropped).

        Returns how many were dropped; never raises. Calls that arrive while a group is being
        written form the next group: under load one write and one fdatasync serve many calls.
        """
        lines = [to_line(ev) for ev in events]
        if not lines:
            return 0
        waiting = _Waiting(lines, asyncio.get_running_loop().create_future())
        self._group.append(waiting)
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain(), name="spool-commit")
        # shielded: a caller that goes away must not cancel the write other calls wait on
        return await asyncio.shield(waiting.done)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._group:
                group, self._group = self._group, []
                lines = [line for w in group for line in w.lines]
                try:
                    dropped = await loop.run_in_executor(self._worker, self._write_synced,
                                                         lines)
                except Exception:  # never leave a bot's answer waiting
                    log.exception("spool %s: group commit failed", self.path)
                    dropped = len(lines)
                # the lines went out in order: the first `written` lines of the group are in
                written = len(lines) - dropped
                for w in group:
                    ok = min(written, len(w.lines))
                    written -= ok
                    if not w.done.done():
                        w.done.set_result(len(w.lines) - ok)
        finally:
            self._draining = None

    def _write_synced(self, lines: list[bytes]) -> int:
        """Write one group and fdatasync it (on the worker thread); return lines dropped."""
        with self._lock:
            dropped = self._write(lines)
            fd = self._fd
            if fd is not None and dropped < len(lines):
                self.counters["groups"] += 1
                try:
                    os.fdatasync(fd)
                    self.counters["fsyncs"] += 1
                    self._dirty = False
                except OSError as exc:
                    self.counters["fsync_errors"] += 1
                    log.warning("spool %s: fdatasync failed: %s", self.path, exc)
            return dropped

    def offer(self, events: Iterable[Event]) -> int:
        """Append the events' lines with one write, no sync (the background thread syncs);
        return how many were dropped. Never raises. For callers that cannot await `commit`."""
        lines = [to_line(ev) for ev in events]
        if not lines:
            return 0
        with self._lock:
            return self._write(lines)

    def _write(self, lines: list[bytes]) -> int:
        if self._reopen:
            self._reopen = False
            old = self._fd
            if self._open():
                self.counters["reopens"] += 1
                if old is not None:
                    self._retired.append(old)
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
        with self._lock:
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
            if self._dirty:  # lines `offer` wrote without a sync
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
        """Stop the threads, write any group still waiting, fsync and close the file."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self._worker.shutdown(wait=True)
        left = [line for w in self._group for line in w.lines]
        if left:  # only when the loop stopped before the group was handed to the worker
            with self._lock:
                self._write(left)
        self._sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
