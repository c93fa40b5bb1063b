"""Tail JSON-lines access logs written by bots that cannot use the tap.

Schema (one JSON object per line; README "Access-log schema"):
  required  ts (ms epoch int, or ISO-8601 text), method, endpoint (or path), status (HTTP int)
  optional  account, key (label) or api_key_sha256, ip (caller address), code (Binance code),
            latency_ms, weight_1m, orders_10s, orders_1d, symbol, side, type, qty, price,
            notional, order_id, client_order_id, request_id
  provenance: for a cancel (DELETE /api/v3/order ...) `order_id` / `client_order_id` name the
            cancelled order (its original clientOrderId); for calls that touch several orders
            (cancel-replace, order lists, DELETE /api/v3/openOrders) put Binance's answer in
            `response` (or the ids as `ids: [[action, symbol, orderId, clientOrderId], ...]`)
Other fields are kept in `raw`; secret-bearing fields (signature, apiKey, secret ...) are
dropped. An order placement (POST /api/v3/order...) answered with an error becomes `reject`.

The tailer survives rotation (the path now names another file: the old one is read to its end
first) and truncation (the file shrank: start again at 0), keeps a partial last line until its
newline arrives (a line that passes MAX_LINE first is one bad line, reported once, and its rest
is skipped up to its newline, across polls and restarts), and resumes from the cursor
`log:<path>` after a restart (saved with the lines it covers, in their transaction). Ids are a
hash of the line, so re-reading a line never duplicates it. Bad lines are counted and reported
as one `stream_status` event per read, never stored verbatim (a bot may have logged a secret).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any, BinaryIO, TypedDict

from pydantic import ValidationError

from monitor.collect.ingest import Put
from monitor.core.bounded import OUT_OF_RANGE
from monitor.core.clock import Clock
from monitor.core.events import INT_COLUMNS, Event, Kind, Source, make_event_id, raw_json
from monitor.core.orderpaths import answer_ids, endpoint, rejected_placement
from monitor.core.wirefields import JsonObject
from monitor.store import Store

log = logging.getLogger(__name__)
MAX_LINE = 65_536
KNOWN = ("ts", "method", "endpoint", "path", "status", "account", "key", "api_key_sha256", "ip",
         "code", "latency_ms", "weight_1m", "orders_10s", "orders_1d", "symbol", "side", "type",
         "qty", "price", "notional", "order_id", "client_order_id", "request_id")


class BadLine(ValueError):
    pass


def _ts(v: Any) -> int:
    if isinstance(v, bool):
        raise BadLine("ts must be ms epoch or ISO-8601 text")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise BadLine("ts is not ISO-8601") from None
        if dt.tzinfo is None:
            raise BadLine("ts text needs a timezone (e.g. Z)")
        return int(dt.timestamp() * 1000)
    raise BadLine("ts must be ms epoch or ISO-8601 text")


def _opt_num(d: Mapping[str, Any], k: str, cast: type = float) -> Any:
    v = d.get(k)
    if v is None:
        return None
    if isinstance(v, bool):
        raise BadLine(f"{k} must be a number")
    try:
        out = cast(v) if cast is float else int(v)
    except (TypeError, ValueError):
        raise BadLine(f"{k} must be a number") from None
    return out


def parse_line(line: str, account: str, received_ts: int,
               keys: Mapping[str, tuple[str, str]] | None = None, *, spool: bool = False
               ) -> Event:
    """One log line -> one event. Raises `BadLine` (or pydantic's ValidationError).

    `spool=True` reads the standalone tap's spool (`monitor/collect/spool.py`): a line that
    carries the tap's `event_id` becomes the very event the tap built (its id, kind,
    received_ts and raw payload, source `tap`), so it is stored once however often it is read.
    Only the spool is trusted with ids: a bot's access log cannot claim to be the tap.
    """
    try:
        d = json.loads(line)
    except (ValueError, RecursionError):
        raise BadLine("not JSON") from None
    if not isinstance(d, dict):
        raise BadLine("not a JSON object")
    method, endpoint = d.get("method"), d.get("endpoint", d.get("path"))
    status = d.get("status")
    if not isinstance(method, str) or not isinstance(endpoint, str):
        raise BadLine("method and endpoint must be text")
    if isinstance(status, bool) or not isinstance(status, int):
        raise BadLine("status must be an HTTP status integer")
    acct, label = d.get("account") or account, d.get("key")
    fp = d.get("api_key_sha256")
    if label is None and isinstance(fp, str) and keys and fp.lower() in keys:
        acct, label = keys[fp.lower()]
    code = _opt_num(d, "code", int)
    rejected = rejected_placement(method, endpoint, status, code)
    ident = hashlib.sha256(f"{acct}\n{line.strip()}".encode()).hexdigest()[:24]
    texts = {k: d.get(k) for k in ("ip", "symbol", "side", "client_order_id")}
    for k, v in texts.items():
        if v is not None and not isinstance(v, str):
            raise BadLine(f"{k} must be text")
    otype = d.get("type")
    if spool and isinstance(d.get("event_id"), str):
        return _spooled(d, method, endpoint, status, str(acct), label, code, texts)
    return Event(
        event_id=make_event_id(Source.LOG, ident), ts=_ts(d.get("ts")), received_ts=received_ts,
        account=str(acct), key=str(label) if label is not None else None, source=Source.LOG,
        kind=Kind.REJECT if rejected else Kind.REQUEST, ip=texts["ip"], method=method,
        endpoint=endpoint.split("?")[0], status=status, code=code or None,
        latency_ms=_opt_num(d, "latency_ms"), weight_1m=_opt_num(d, "weight_1m", int),
        orders_10s=_opt_num(d, "orders_10s", int), orders_1d=_opt_num(d, "orders_1d", int),
        symbol=texts["symbol"], side=texts["side"],
        order_type=otype if isinstance(otype, str) else None, qty=_opt_num(d, "qty"),
        price=_opt_num(d, "price"), notional=_opt_num(d, "notional"),
        order_id=_opt_num(d, "order_id", int), client_order_id=texts["client_order_id"],
        raw=raw_json(_with_ids(d, method, endpoint.split("?")[0])),
    )


def _spooled(d: JsonObject, method: str, endpoint: str, status: int, account: str,
             label: Any, code: int | None, texts: Mapping[str, Any]) -> Event:
    """A tap spool line -> the tap's own event (see `parse_line`)."""
    rts, kind, raw = d.get("received_ts"), d.get("kind"), d.get("raw")
    if isinstance(rts, bool) or not isinstance(rts, int):
        raise BadLine("received_ts must be ms epoch")
    try:
        k = Kind(str(kind))
    except ValueError:
        raise BadLine("kind is not an event kind") from None
    otype = d.get("type")
    ev = Event(
        event_id=str(d["event_id"]), ts=_ts(d.get("ts")), received_ts=rts, account=account,
        key=str(label) if label is not None else None, source=Source.TAP, kind=k,
        ip=texts["ip"], method=method, endpoint=endpoint, status=status, code=code,
        latency_ms=_opt_num(d, "latency_ms"), weight_1m=_opt_num(d, "weight_1m", int),
        orders_10s=_opt_num(d, "orders_10s", int), orders_1d=_opt_num(d, "orders_1d", int),
        symbol=texts["symbol"], side=texts["side"],
        order_type=otype if isinstance(otype, str) else None, qty=_opt_num(d, "qty"),
        price=_opt_num(d, "price"), notional=_opt_num(d, "notional"),
        order_id=_opt_num(d, "order_id", int), client_order_id=texts["client_order_id"],
        raw=raw_json(raw) if raw is not None else None,
    )
    # the tap nulled integers past int64 when it built the event; the spool line carries them
    # only as text in raw, so the rebuilt event must say so again (they are counted at ingest)
    refused = raw.get(OUT_OF_RANGE) if isinstance(raw, dict) else None
    if isinstance(refused, dict) and not ev.out_of_range:
        ev._out_of_range = tuple(sorted(k for k in refused if k in INT_COLUMNS))
    return ev


def _with_ids(d: JsonObject, method: str, path: str) -> JsonObject:
    """An order endpoint's line with a `response` (Binance's answer) gets the answer's order
    ids as `ids`, as the tap records them (provenance for cancels, replaces, order lists)."""
    if "ids" in d or endpoint(method, path) is None or "response" not in d:
        return d
    params = {"symbol": d.get("symbol")} if isinstance(d.get("symbol"), str) else {}
    return {**d, "ids": [list(i) for i in answer_ids(method, path, params, d["response"])]}


class _Cursor(TypedDict, total=False):
    """A tailer's saved position (JSON in the store's cursors)."""

    ino: int | None
    offset: int
    skip: bool  # inside an overlong line: skip to its newline first


class LogTailer:
    def __init__(
        self,
        path: str,
        account: str,
        clock: Clock,
        put: Put,
        store: Store,
        *,
        keys: Mapping[str, tuple[str, str]] | None = None,
        poll_s: float = 1.0,
        max_bytes_per_poll: int = 256 << 10,
        max_lines_per_poll: int = 1_000,
        spool: bool = False,
    ) -> None:
        self.path, self.account, self.clock, self.put, self.store = (
            path, account, clock, put, store)
        self.keys = keys or {}
        self.spool = spool  # the standalone tap's spool: its lines carry the tap's event ids
        # One poll's read is bounded in bytes (at least 2 lines of MAX_LINE, so an overlong
        # line is always seen as one) and in lines: every line parsed is an Event (~3.5 KB) held
        # until ingest takes it, so a 20,000-line burst read at once held all 20,000 (issue 15).
        # A backlog is read in as many polls as it needs, without pausing between them.
        if max_bytes_per_poll < 2 * MAX_LINE or max_lines_per_poll < 1:
            raise ValueError("a poll must read at least 2*MAX_LINE bytes and one line")
        self.poll_s, self.max_bytes = poll_s, max_bytes_per_poll
        self.max_lines = max_lines_per_poll
        self.cursor_name = f"log:{os.path.abspath(path)}"
        saved = store.get_cursor(self.cursor_name)
        state = json.loads(saved) if saved else {}
        self.ino: int | None = state.get("ino")
        self.offset: int = int(state.get("offset", 0))
        # inside a line already reported as too long: skip to its newline, count it no more
        self.skipping: bool = bool(state.get("skip", False))
        self._too_long = 0  # overlong partial lines cut off by `_drain` since the last poll
        self._saved = saved
        self.counters = {"lines": 0, "bad_lines": 0, "rotations": 0, "truncations": 0}
        self._fh: BinaryIO | None = None
        self._mtime_ns = 0
        self._eof = True
        self._stop = asyncio.Event()
        self._nudge = asyncio.Event()  # `wake`: a writer in this process appended lines

    def _open(self) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - held open across polls on purpose
        except FileNotFoundError:
            return False
        ino = os.fstat(fh.fileno()).st_ino
        if ino != self.ino:  # a new file (or a restart after rotation): read it from the top
            self.ino, self.offset, self.skipping = ino, 0, False
        self._fh = fh
        return True

    def _drain(self) -> list[bytes]:
        """Complete lines from the open file at the offset; a partial last line waits."""
        assert self._fh is not None
        st = os.fstat(self._fh.fileno())
        rewritten = (st.st_size == self.offset and self._mtime_ns != 0
                     and st.st_mtime_ns != self._mtime_ns)
        if st.st_size < self.offset or (rewritten and self.offset > 0):
            # truncated (copytruncate); a same-size rewrite shows only as a new mtime. A rewrite
            # that ends up longer than the old offset cannot be told from an append.
            self.counters["truncations"] += 1
            self.offset, self.skipping = 0, False
        self._mtime_ns = st.st_mtime_ns
        self._fh.seek(self.offset)
        data = self._fh.read(self.max_bytes)
        self._eof = len(data) < self.max_bytes  # read to the end: only a partial line is left
        while self.skipping:  # the rest of an overlong line, however many reads it arrives in
            nl = data.find(b"\n")
            self.offset += len(data) if nl < 0 else nl + 1
            if nl >= 0:
                self.skipping = False
                data = data[nl + 1:]
            elif self._eof:
                return []
            else:  # skipped bytes are not kept: read on within this poll
                data = self._fh.read(self.max_bytes)
                self._eof = len(data) < self.max_bytes
        end = data.rfind(b"\n")
        if data.count(b"\n", 0, end + 1) > self.max_lines:  # the rest waits for the next poll
            end = -1
            for _ in range(self.max_lines):
                end = data.find(b"\n", end + 1)
            self._eof = False
            self.offset += end + 1
            return data[: end + 1].splitlines()
        self.offset += end + 1
        if len(data) - (end + 1) >= MAX_LINE:  # over the cap before its newline: one bad line
            self.offset += len(data) - (end + 1)
            self.skipping = True
            self._too_long += 1
        return data[: end + 1].splitlines()

    def _rotated(self) -> bool:
        try:
            return os.stat(self.path).st_ino != self.ino
        except FileNotFoundError:
            return False

    def poll_once(self) -> list[Event]:
        """Read what is new; return its events (plus one status event if any line was bad)."""
        if self._fh is None and not self._open():
            return []
        start = self.offset
        lines = self._drain()
        if self._rotated():
            # what was appended before the new file appeared, then, once the old file is read
            # to its end (a backlog bigger than one poll waits), continue with the new one
            lines += self._drain()
        if self._eof and self._rotated():
            self.counters["rotations"] += 1
            assert self._fh is not None
            self._fh.close()
            self._fh = None
            if self._open():
                lines += self._drain()
        now = self.clock.now_ms()
        events: list[Event] = []
        bad: list[str] = ["line too long"] * self._too_long
        self.counters["lines"] += self._too_long
        self._too_long = 0
        for raw in lines:
            if not raw.strip():
                continue
            self.counters["lines"] += 1
            if len(raw) > MAX_LINE:
                bad.append("line too long")
                continue
            try:
                events.append(parse_line(raw.decode("utf-8"), self.account, now, self.keys,
                                         spool=self.spool))
            except (BadLine, UnicodeDecodeError, ValidationError) as exc:
                bad.append(_reason(exc))
        if bad:
            self.counters["bad_lines"] += len(bad)
            log.warning("%s: %d bad line(s), e.g. %s", self.path, len(bad), bad[0])
            digest = hashlib.sha256(self.cursor_name.encode()).hexdigest()[:12]
            events.append(Event(
                event_id=make_event_id(Source.LOG, "status", self.account, "bad_lines", digest,
                                       self.ino, start),
                ts=now, received_ts=now, account=self.account, source=Source.LOG,
                kind=Kind.STREAM_STATUS,
                raw=raw_json({"status": "bad_lines", "path": self.path, "count": len(bad),
                              "reasons": sorted(set(bad))[:5]}),
            ))
        return events

    def cursor(self) -> str:
        state = _Cursor(ino=self.ino, offset=self.offset)
        if self.skipping:
            state["skip"] = True
        return json.dumps(state)

    def save_cursor(self) -> None:
        self.store.set_cursor(self.cursor_name, self.cursor())

    async def run(self) -> None:
        """Poll, and hand each poll's events to ingest WITH the offset past them: the store
        saves both in one transaction, so the cursor is never ahead of a stored line."""
        while True:
            final = self._stop.is_set()  # one last read after stop: what was written before it
            self._nudge.clear()
            events = await asyncio.to_thread(self.poll_once)
            cursor = self.cursor()
            if events or cursor != self._saved:
                await self.put(events, {self.cursor_name: cursor})
                self._saved = cursor
            if final:
                break
            if self._eof:
                await self._pause(self.poll_s / self.clock.speed)
        self.close()

    async def _pause(self, seconds: float) -> None:
        """Until the next poll: `seconds`, or sooner when woken or stopped."""
        stop = asyncio.ensure_future(self._stop.wait())
        nudge = asyncio.ensure_future(self._nudge.wait())
        try:
            await asyncio.wait([stop, nudge], timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (stop, nudge):
                f.cancel()

    def wake(self) -> None:
        """Read now instead of at the next poll (the in-process tap calls it per record)."""
        self._nudge.set()

    async def stop(self) -> None:
        self._stop.set()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errs = exc.errors()
        return f"invalid {errs[0]['loc'][0] if errs and errs[0]['loc'] else 'field'}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8"
    return str(exc)[:80]
