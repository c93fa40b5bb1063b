"""The tap: a pass-through proxy the user's bots use as their Binance base URL.

It forwards each request byte for byte (method, raw path and query, headers, body) to the
upstream and streams the upstream's answer back unchanged, then records one `request` event
(or `reject`, for an order placement Binance refused): caller address, key label, endpoint,
status, Binance code, weight and order-count headers, latency and, for order placements, the
order's symbol, side, quantity, price and notional. For every order endpoint
(`monitor/core/orderpaths.py`: placements, cancels, cancel-replace, order lists, cancel-all) it
keeps the orderId/clientOrderId of each order the ANSWER names in `raw["ids"]`: that is how the
features tie the account's execution reports to the key that caused them (provenance).
The API key is mapped to its label through sha256 fingerprints and never stored; signatures
and secrets never reach the event.
Recording, with `commit` (both the standalone `keywatch tap` and the collector's in-process tap
give one): the event is built when the whole answer is in and handed to `commit` BEFORE the
answer's last byte goes to the bot, so a bot never holds an answer whose record a kill -9 could
still lose (issue 15). Standalone, `commit` fdatasyncs the spool (group-committed: one share of
an fdatasync per call, `bench/tapspool.py`); in-process it writes the spool line and wakes the
collector's spool reader (`Collector._tap_commit`). Without `commit` (tests, embedding), `offer`
gets the event after the request's cycle has ended, and a full queue drops (and counts) it. A
failed record still releases the answer: the tap fails open.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from monitor.binance.parse_rest import usage_facts
from monitor.collect.taprecord import (
    HttpScope,
    OrderFacts,
    TapRaw,
    answer_json,
    order_facts,
    request_params,
)
from monitor.collect.upstream import StaleConnection, Upstream, UpstreamError
from monitor.core.clock import Clock
from monitor.core.events import Event, Kind, Source, make_event_id, raw_json
from monitor.core.orderpaths import PLACEMENT_PATHS, answer_ids, endpoint, rejected_placement
from monitor.core.redaction import key_fingerprint as fingerprint

log = logging.getLogger(__name__)

# Hop-by-hop fields (RFC 9110 7.6.1, plus the proxy-auth pair a proxy consumes): they describe
# one connection, so they never cross the tap in either direction, nor does any field the
# message's own `Connection:` names (`end_to_end`). `host` is the upstream's, set per request.
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                        b"te", b"trailer", b"upgrade", b"proxy-authorization",
                        b"proxy-authenticate"})
NOT_FORWARDED = HOP_BY_HOP | {b"host"}
ORDER_PATHS = frozenset(PLACEMENT_PATHS)  # monitor/core/orderpaths.py declares every order endpoint
PEEK_BYTES = 65_536
SAFE_RETRY_METHODS = frozenset({"GET", "HEAD"})
# What Binance's REST API answers. Anything else - CONNECT above all, which would turn the tap
# into a general tunnel with an upstream that accepts it - is refused before it is forwarded.
FORWARDED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")


def check_upstream(url: str) -> str:
    """Upstream must be https, except plain http to a loopback address (tests, local sim)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "https" or (parts.scheme == "http" and loopback):
        return url.rstrip("/")
    raise ValueError(f"tap upstream {url!r} must be https:// (plain http only on loopback)")


def end_to_end(headers: Iterable[tuple[bytes, bytes]], drop: frozenset[bytes]
               ) -> list[tuple[bytes, bytes]]:
    """The fields a proxy forwards: all but `drop` and those the message's `Connection:` names
    (RFC 9110 7.6.1: `Connection: close, X-Foo` makes X-Foo hop-by-hop for this message)."""
    headers = list(headers)
    named: set[bytes] = set()
    for k, v in headers:
        if k.lower() == b"connection":
            named.update(t.strip().lower() for t in v.split(b","))
    strip = drop | named if named else drop
    return [(k, v) for k, v in headers if k.lower() not in strip]


class Tap:
    """An ASGI app; serve it with uvicorn (see `collector.py`) or call it in tests."""

    def __init__(
        self,
        upstream: str,
        clock: Clock,
        offer: Callable[[list[Event]], int],
        *,
        keys: Mapping[str, tuple[str, str]],  # sha256 fingerprint -> (account, label)
        default_account: str,
        local_address: str | None = None,
        timeout_s: float = 30.0,
        commit: Callable[[list[Event]], Awaitable[int]] | None = None,
    ) -> None:
        self.upstream = check_upstream(upstream)
        self.base_path = urlsplit(self.upstream).path.encode()
        self.clock = clock
        self.offer = offer
        self.commit = commit  # when given, each record is durable before its answer ends
        self.keys = dict(keys)
        self.default_account = default_account
        # the bots' own host address, when given, so their IP whitelist still admits the call
        self.client = Upstream(self.upstream, local_address=local_address, timeout=timeout_s)
        self.counters = {"requests": 0, "upstream_errors": 0, "upstream_retries": 0, "rejects": 0,
                         "record_errors": 0}
        self._pending: list[tuple[Any, ...]] = []
        self._flush_scheduled = False

    async def aclose(self) -> None:
        if self._pending:  # anything answered but not yet recorded is recorded now
            self._flush()
        await self.client.aclose()

    async def __call__(self, scope: HttpScope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks: list[bytes] = []
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return  # the bot went (or was timed out) before its request was whole
            if msg.get("body"):
                chunks.append(msg["body"])
            if not msg.get("more_body"):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        started, ts = self.clock.monotonic(), self.clock.now_ms()
        self.counters["requests"] += 1
        raw_target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            raw_target += b"?" + scope["query_string"]
        refused = _refusal(scope)
        if refused is not None:
            status, error, text, extra = refused
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"text/plain"),
                                    (b"content-length", str(len(text)).encode()), *extra]})
            await self._durable(scope, body, ts, started, status, {}, b"", error)
            await send({"type": "http.response.body", "body": text})
            self._later(scope, body, ts, started, status, {}, b"", error)
            return
        headers = end_to_end(scope["headers"], NOT_FORWARDED)
        target = self.base_path + raw_target
        try:
            try:
                resp = await self.client.send(scope["method"], target, headers, body)
            except StaleConnection:
                # A pooled connection the upstream closed while idle, before any byte of an
                # answer. A read-only request is safe to send once more on a fresh connection;
                # an order placement or cancel is not (its outcome is unknown), so only those
                # get the 502 below.
                if scope["method"] not in SAFE_RETRY_METHODS:
                    raise
                self.counters["upstream_retries"] += 1
                resp = await self.client.send(scope["method"], target, headers, body)
        except UpstreamError as exc:
            self.counters["upstream_errors"] += 1
            log.warning("tap: upstream unreachable for %s %s: %s", scope["method"],
                        scope["path"], exc)
            await send({"type": "http.response.start", "status": 502,
                        "headers": [(b"content-type", b"text/plain")]})
            await self._durable(scope, body, ts, started, 502, {}, b"", "upstream_error")
            await send({"type": "http.response.body", "body": b"tap: upstream unreachable"})
            self._later(scope, body, ts, started, 502, {}, b"", "upstream_error")
            return
        peek = b""
        try:
            out_headers = end_to_end(resp.raw_headers, HOP_BY_HOP)
            await send({"type": "http.response.start", "status": resp.status_code,
                        "headers": out_headers})
            # Hold one chunk back so the last goes out with more_body=False: one send (and
            # one write to the bot's socket) fewer per request; the bytes are unchanged.
            held: bytes | None = None
            async for chunk in resp.aiter_raw():
                if held is not None:
                    await send({"type": "http.response.body", "body": held, "more_body": True})
                if len(peek) < PEEK_BYTES:
                    peek = (peek + chunk)[:PEEK_BYTES] if peek else chunk[:PEEK_BYTES]
                held = chunk
            await self._durable(scope, body, ts, started, resp.status_code, resp.headers,
                                peek, None)
            await send({"type": "http.response.body", "body": held or b""})
        except UpstreamError:
            # The answer broke off after its head went to the bot: the call still happened,
            # so it is recorded (with its status and what came), then the bot's connection is
            # aborted so it cannot take the cut answer for a whole one.
            self.counters["upstream_errors"] += 1
            await self._durable(scope, body, ts, started, resp.status_code, resp.headers,
                                peek, "upstream_cut_answer")
            self._later(scope, body, ts, started, resp.status_code, resp.headers, peek,
                        "upstream_cut_answer")
            raise
        finally:
            await resp.aclose()
        self._later(scope, body, ts, started, resp.status_code, resp.headers, peek, None)

    async def _durable(self, scope: HttpScope, body: bytes, ts: int, started: float,
                       status: int, headers: Mapping[str, str], peek: bytes,
                       error: str | None) -> None:
        """With `commit` (standalone tap): build the record and wait until it is durable; the
        caller sends the answer's last byte after this. Without: a no-op (see `_later`)."""
        if self.commit is None:
            return
        elapsed_ms = (self.clock.monotonic() - started) * 1000
        ev = self._record(scope, body, ts, elapsed_ms, status, headers, peek, error)
        if ev is None:
            return
        try:
            await self.commit([ev])
        except Exception:  # recording must never break the bot's traffic
            self.counters["record_errors"] += 1
            log.exception("tap: could not commit the record of %s %s", scope.get("method"),
                          scope.get("path"))

    def _later(self, scope: HttpScope, body: bytes, ts: int, started: float, status: int,
               headers: Mapping[str, str], peek: bytes, error: str | None) -> None:
        """Without `commit` (in-process tap): queue the recording for after this request's
        ASGI cycle has ended. With `commit`, `_durable` has recorded it: a no-op.

        The bot already has its answer; building the event (parsing, hashing, validation)
        and offering it then runs once the loop has served what is ready, and requests that
        finish together are offered as one batch (one store write instead of one each).
        """
        if self.commit is not None:
            return
        elapsed_ms = (self.clock.monotonic() - started) * 1000
        self._pending.append((scope, body, ts, elapsed_ms, status, headers, peek, error))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        pending, self._pending = self._pending, []
        events = [ev for ev in (self._record(*p) for p in pending) if ev is not None]
        if events:
            try:
                self.offer(events)
            except Exception:  # recording must never break the bot's traffic
                self.counters["record_errors"] += len(events)
                log.exception("tap: could not offer %d event(s)", len(events))

    def _record(self, scope: HttpScope, body: bytes, ts: int, latency_ms: float,
                status: int, headers: Mapping[str, str], peek: bytes, error: str | None
                ) -> Event | None:
        try:
            ev = self.build_event(scope, body, ts, latency_ms, status, headers, peek, error)
        except Exception:  # recording must never break the bot's traffic
            self.counters["record_errors"] += 1
            log.exception("tap: could not record %s %s", scope.get("method"), scope.get("path"))
            return None
        if ev.kind is Kind.REJECT:
            self.counters["rejects"] += 1
        return ev

    def build_event(self, scope: HttpScope, body: bytes, ts: int, latency_ms: float,
                    status: int, headers: Mapping[str, str], peek: bytes, error: str | None
                    ) -> Event:
        method, path = scope["method"], scope["path"]
        hdrs = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        params = request_params(scope.get("query_string", b""), body, hdrs.get("content-type", ""))
        api_key = hdrs.get("x-mbx-apikey")
        account, label = self.default_account, None
        raw = TapRaw(params=params, key_present=api_key is not None, error=error)
        if api_key is not None:
            fp = fingerprint(api_key)
            match = self.keys.get(fp)
            if match is not None:
                account, label = match
            else:
                raw["unknown_key_sha256_12"] = fp[:12]
        resp_body = answer_json(peek)
        code = resp_body.get("code") if isinstance(resp_body, dict) else None
        code = code if isinstance(code, int) and not isinstance(code, bool) and code else None
        order = method == "POST" and path in ORDER_PATHS
        facts = OrderFacts()
        if order:
            facts = order_facts(params, resp_body if isinstance(resp_body, dict) else {})
        rejected = rejected_placement(method, path, status, code)
        client = scope.get("client")
        if endpoint(method, path) is not None:
            # provenance: the orders this call placed or cancelled, as the ANSWER names them
            ids = answer_ids(method, path, params, resp_body)
            raw["ids"] = [list(i) for i in ids]
            if ids and not order:
                _, sym, oid, cid = ids[0]
                facts = OrderFacts(symbol=sym or params.get("symbol") or None, order_id=oid,
                                    client_order_id=cid)
        if isinstance(resp_body, dict) and "msg" in resp_body:
            raw["msg"] = str(resp_body["msg"])[:300]
        return Event(
            event_id=make_event_id(Source.TAP, uuid.uuid4().hex), ts=ts,
            received_ts=self.clock.now_ms(), account=account, key=label, source=Source.TAP,
            kind=Kind.REJECT if rejected else Kind.REQUEST,
            ip=client[0] if client else None, method=method, endpoint=path, status=status,
            code=code, latency_ms=max(0.0, latency_ms), **usage_facts(headers), **facts,
            raw=raw_json(raw),
        )


def _refusal(scope: Mapping[str, Any]
             ) -> tuple[int, str, bytes, list[tuple[bytes, bytes]]] | None:
    """Why the tap answers a request itself instead of forwarding it, or None to forward.

    The tap proxies Binance's REST API, not arbitrary protocols: a CONNECT (or any method the
    API does not use) is 405, a request asking to switch protocols (`Upgrade:`) is 400. Both
    are answered before anything reaches the upstream, and recorded like any call."""
    method = scope["method"]
    if method not in FORWARDED_METHODS:
        allow = ", ".join(FORWARDED_METHODS).encode()
        return (405, "refused_method",
                f"tap: {method} is not forwarded; the tap proxies Binance's REST API "
                f"({allow.decode()})".encode(), [(b"allow", allow)])
    if any(k.lower() == b"upgrade" for k, _ in scope["headers"]):
        return (400, "refused_upgrade",
                b"tap: protocol upgrades are not forwarded; the tap proxies Binance's REST API "
                b"over HTTP/1.1", [])
    return None
