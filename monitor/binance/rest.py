"""The signed REST client the poller and the stream's reconciliation use.

What it guarantees, whatever the exchange does:
- timestamps are the server's time (offset measured from `/api/v3/time`); a -1021 resyncs and
  retries once;
- the monitor never spends more than its weight budget (see `budget.py`), nor sends a call the
  address's shared minute (the tapped bots' weight) has no room for; a 429's `Retry-After`
  pauses that weight pool, a 418's (an IP ban) every call, until it ends;
- a 5xx or a dropped connection is an *unknown outcome*: reads (all the monitor does) are
  retried with jittered backoff, anything else raises `UnknownOutcome`;
- -2014/-2015 on the monitor's own key emits a `monitor_key_rejected` status event and raises
  `MonitorKeyRejected`, so the operator hears the monitor has gone blind;
- every response becomes a `usage` event (weight and order-count headers);
- no answer can stick, swell or crash a caller: the body is read streamed and abandoned past
  `max_body_bytes` (a 512 MiB answer costs at most the cap), the whole exchange has one deadline
  (`deadline_s`; httpx's timeouts are per read, so a body trickled a byte at a time would reset
  them forever), and an answer that is not the JSON its path returns (junk gzip, not JSON, JSON
  nested past the parser's depth, a list where an object belongs) raises `MalformedAnswer`,
  counted by reason (`on_bad_answer`, the service's metric). Each stays a `BinanceError`, the
  one family a caller has to catch.
Secrets never reach a log line, an event or an exception: messages name the path, never the
query (it carries the signature), and the key shows at most its first 4 characters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from monitor.binance import logfilter
from monitor.binance.budget import UID_WEIGHT_PATHS, Budgets, guard_for, pool_for
from monitor.binance.parse import Ctx, status_event
from monitor.binance.parse_rest import usage_facts, usage_headers_raw
from monitor.binance.signing import encode_query, key_hint, sign_rest_query
from monitor.core.clock import Clock, network_timeout
from monitor.core.events import Event, Kind, Source, make_event_id, raw_json
from monitor.core.keys import Signer, as_signer

log = logging.getLogger(__name__)

KEY_REJECTED_CODES = frozenset({-2014, -2015})
BACKOFF_CAP_S = 60.0
MAX_BODY_BYTES = 16 << 20  # the largest answer Keywatch reads (decoded); Binance's are < 1 MiB
DEADLINE_S = 30.0  # clock seconds for one whole exchange: connect, head and body
INT64_MAX = 2 ** 63 - 1
# The JSON type each path Keywatch calls answers with (binance-wire.md); a 2xx of another type
# is a MalformedAnswer. A path not listed is not checked (its caller reads it defensively).
ANSWER_SHAPES: dict[str, tuple[type, ...]] = {
    "/api/v3/time": (dict,),
    "/api/v3/account": (dict,),
    "/api/v3/rateLimit/order": (list,),
    "/api/v3/allOrders": (list,),
    "/api/v3/myTrades": (list,),
    "/api/v3/ticker/price": (list, dict),  # `symbols`: a list; `symbol`: one object
    "/sapi/v1/account/apiRestrictions": (dict,),
    "/sapi/v1/account/apiTradingStatus": (dict,),
    "/sapi/v1/capital/withdraw/history": (list,),
}
# Why an answer could not be used: the `reason` label of keywatch_rest_bad_answers_total.
BAD_ANSWER_REASONS = ("too_large", "deadline", "undecodable", "not_json", "wrong_shape")


class BinanceError(Exception):
    """An answer we cannot use; the text names the call and Binance's code, never the query."""

    def __init__(self, method: str, path: str, status: int | None, code: int | None, msg: str):
        self.method, self.path, self.status, self.code = method, path, status, code
        super().__init__(f"{method} {path}: HTTP {status} code {code}: {msg[:200]}")


class KeyRejected(BinanceError):
    """Binance refused the key (-2014/-2015): wrong key, IP not whitelisted, or permission."""


class MonitorKeyRejected(KeyRejected):
    """Binance refused the monitor's own key: the monitor has gone blind for this account."""


class MonitorKeyRetired(MonitorKeyRejected):
    """Keywatch itself stopped using the monitor key (it gained rights a reader must not have,
    see `BinanceRest.retire`): nothing more is signed or sent with it in this run."""

    def __init__(self, why: str) -> None:
        Exception.__init__(self, why)
        self.method, self.path, self.status, self.code = "", "", None, None


class RateLimited(BinanceError):
    """429/418 persisted past the retries; `retry_after_s` says when to try again."""

    retry_after_s: float = 0.0


class UnknownOutcome(BinanceError):
    """5xx or a lost connection on a call we may not repeat: it may or may not have happened."""


class MalformedAnswer(BinanceError):
    """An answer Keywatch will not use: `reason` is one of `BAD_ANSWER_REASONS` (too large,
    past the deadline, undecodable content encoding, not JSON or too deep, the wrong JSON type
    for its path)."""

    def __init__(self, method: str, path: str, status: int | None, reason: str, msg: str):
        super().__init__(method, path, status, None, f"{reason}: {msg}")
        self.reason = reason


@dataclass(frozen=True)
class RestResult:
    status: int
    headers: httpx.Headers
    body: Any
    ts: int  # server time (ms) when the answer arrived
    latency_ms: float
    sent_ms: int = 0  # local clock when the request left (after any budget wait)


def backoff_s(attempt: int, rng: random.Random, base: float = 0.5, cap: float = BACKOFF_CAP_S
              ) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return rng.uniform(0, min(cap, base * (2 ** attempt)))


class BinanceRest:
    """Signed reads for one account's monitor key, over an injected `httpx.AsyncClient`."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: SecretStr,
        signer: Signer | SecretStr,
        clock: Clock,
        *,
        account: str,
        key_label: str,
        recv_window: int = 5000,
        weight_budget: float = 60.0,
        emit: Callable[[list[Event]], object] | None = None,
        max_retries: int = 4,
        rng: random.Random | None = None,
        monitor_key: bool = True,
        max_body_bytes: int = MAX_BODY_BYTES,
        deadline_s: float = DEADLINE_S,
    ) -> None:
        logfilter.install()
        # False for another key the user let Keywatch read its posture with: a refusal of that
        # key is about that key (often: this host is outside its whitelist), not the monitor
        self.monitor_key = monitor_key
        self._client = client
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._signer = as_signer(signer)  # a bare secret is an HMAC key
        self.clock = clock
        self.account, self.key_label = account, key_label
        self.recv_window = recv_window
        # The guard keeps a request from being charged to one minute and counted by the server
        # in the next: 5 s plus ~150 ms of wall-clock latency at this clock's speed.
        self.budgets = Budgets(weight_budget, guard_ms=guard_for(clock.speed))
        self._emit = emit or (lambda _events: None)
        # (pool, weight) for each charge to the budget: the service's metrics (set by the
        # collector, like `budgets`)
        self.on_spend: Callable[[str, float], None] | None = None
        # reason (BAD_ANSWER_REASONS) for each answer refused: the service's metric
        self.on_bad_answer: Callable[[str], None] | None = None
        self.max_body_bytes, self.deadline_s = max_body_bytes, deadline_s
        self.max_retries = max_retries
        self._rng = rng or random.Random()
        self.offset_ms = 0
        self.synced = False
        self._banned_until_ms = 0
        self.retired = ""  # why Keywatch stopped using this key ("" while it is in use)
        self.counters: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0,
                                         "resyncs": 0, "key_rejected": 0, "bad_answers": 0}

    # -- time ------------------------------------------------------------------------------
    def server_now(self) -> int:
        return self.clock.now_ms() + self.offset_ms

    async def sync_time(self) -> int:
        """Measure the server clock offset from `/api/v3/time` (midpoint of the round trip)."""
        res = await self.request("GET", "/api/v3/time", signed=False, weight=1)
        t0, t1 = res.sent_ms, self.clock.now_ms()
        server = res.body.get("serverTime") if isinstance(res.body, dict) else None
        if isinstance(server, bool) or not isinstance(server, int) or not 0 <= server <= INT64_MAX:
            self._bad_answer("wrong_shape")
            raise MalformedAnswer("GET", "/api/v3/time", res.status, "wrong_shape",
                                  "no serverTime in int64")
        self.offset_ms = server - (t0 + t1) // 2
        self.synced = True
        self.counters["resyncs"] += 1
        log.info("clock offset to Binance: %d ms", self.offset_ms)
        return self.offset_ms

    # -- budget ----------------------------------------------------------------------------
    async def spend(self, weight: float, pool: str = "api", *, priority: bool = False) -> None:
        """Wait until `weight` fits the budget, then charge it (also used by the WS stream).
        Every call and stream subscription passes here: a retired key goes no further."""
        if self.retired:
            raise MonitorKeyRetired(self.retired)
        while True:
            wait_ms = self.budgets.charge(pool, weight, self.server_now(), priority=priority)
            if wait_ms <= 0:
                if self.on_spend is not None:
                    self.on_spend(pool, weight)
                return
            await self.clock.sleep(wait_ms / 1000)

    def retire(self, why: str) -> None:
        """Stop signing with this key for good (this run): every later call raises
        `MonitorKeyRetired` before anything is sent."""
        self.retired = why

    async def _wait_for_ban(self) -> None:
        while (left := self._banned_until_ms - self.server_now()) > 0:
            await self.clock.sleep(left / 1000)

    # -- requests --------------------------------------------------------------------------
    async def get(self, path: str, params: Mapping[str, object] | None = None, *,
                  weight: float, signed: bool = True) -> RestResult:
        return await self.request("GET", path, params, signed=signed, weight=weight)

    async def request(
        self, method: str, path: str, params: Mapping[str, object] | None = None, *,
        signed: bool = True, weight: float = 1, idempotent: bool | None = None,
    ) -> RestResult:
        """One call with the guarantees in the module docstring."""
        idempotent = method == "GET" if idempotent is None else idempotent
        weight = UID_WEIGHT_PATHS.get(path, weight)
        attempt, resynced = 0, False
        while True:
            await self._wait_for_ban()
            await self.spend(weight, pool_for(path))
            url = f"{self.base_url}{path}"
            query = self._query(params, signed)
            headers = {"X-MBX-APIKEY": self._api_key.get_secret_value()}
            started, sent_ms = self.clock.monotonic(), self.clock.now_ms()
            self.counters["requests"] += 1
            try:
                async with asyncio.timeout(network_timeout(self.clock, self.deadline_s)):
                    resp, content = await self._exchange(
                        method, f"{url}?{query}" if query else url, headers, path)
            except (httpx.TransportError, TimeoutError) as exc:
                if not isinstance(exc, httpx.TransportError):  # our deadline, not httpx's
                    self._bad_answer("deadline")
                if idempotent and attempt < self.max_retries:
                    attempt = await self._retry(attempt, f"{type(exc).__name__} on {path}")
                    continue
                raise UnknownOutcome(method, path, None, None, type(exc).__name__) from None
            except httpx.DecodingError as exc:  # junk under Content-Encoding: gzip and the like
                self._bad_answer("undecodable")
                raise MalformedAnswer(method, path, None, "undecodable",
                                      type(exc).__name__) from None
            latency = (self.clock.monotonic() - started) * 1000
            body, code, msg = _decode(content)
            status = resp.status_code
            if status < 400 and code is None:  # a success: its body must be what `path` answers
                if body is _UNREADABLE:
                    self._bad_answer("not_json")
                    raise MalformedAnswer(method, path, status, "not_json", msg)
                shape = ANSWER_SHAPES.get(path)
                if shape is not None and not isinstance(body, shape):
                    self._bad_answer("wrong_shape")
                    raise MalformedAnswer(method, path, status, "wrong_shape",
                                          f"a JSON {type(body).__name__}")
            self._record_usage(method, path, resp, code, latency)
            if status in (429, 418):
                retry_after = _retry_after_s(resp.headers)
                until = self.server_now() + int(retry_after * 1000)
                if status == 418:  # the address is banned: every call waits
                    self._banned_until_ms = until
                else:  # this pool's limit: the other pools go on (budget.py)
                    self.budgets.pause(pool_for(path), until)
                self.counters["rate_limited"] += 1
                log.warning("%s %s -> %d, pausing %s for %.1f s (Retry-After)", method, path,
                            status, "every call" if status == 418 else
                            f"the {pool_for(path)} pool", retry_after)
                if idempotent and attempt < self.max_retries:
                    attempt += 1
                    continue
                err = RateLimited(method, path, status, code, msg)
                err.retry_after_s = retry_after
                raise err
            if status >= 500:
                if idempotent and attempt < self.max_retries:
                    attempt = await self._retry(attempt, f"HTTP {status} on {path}")
                    continue
                raise UnknownOutcome(method, path, status, code, msg)
            if status >= 400 or code is not None:
                if code == -1021 and signed and not resynced:
                    resynced = True
                    await self.sync_time()
                    continue
                if code in KEY_REJECTED_CODES or status == 401:
                    if not self.monitor_key:
                        raise KeyRejected(method, path, status, code, msg)
                    self._key_rejected(method, path, status, code)
                    raise MonitorKeyRejected(method, path, status, code, msg)
                raise BinanceError(method, path, status, code, msg)
            return RestResult(status, resp.headers, body, self.server_now(), latency, sent_ms)

    async def _exchange(self, method: str, url: str, headers: dict[str, str], path: str
                        ) -> tuple[httpx.Response, bytes]:
        """Send and read the answer streamed, never more than `max_body_bytes` (decoded): a
        larger answer is abandoned (the connection closed) and raised as `MalformedAnswer`."""
        cap = self.max_body_bytes
        async with self._client.stream(method, url, headers=headers) as resp:
            declared = resp.headers.get("content-length", "")
            buf = bytearray()
            if not (declared.isdigit() and int(declared) > cap):
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > cap:
                        break
            if len(buf) > cap or (declared.isdigit() and int(declared) > cap):
                self._bad_answer("too_large")
                raise MalformedAnswer(method, path, resp.status_code, "too_large",
                                      f"answer past {cap} bytes, abandoned")
            return resp, bytes(buf)

    def _bad_answer(self, reason: str) -> None:
        self.counters["bad_answers"] += 1
        if self.on_bad_answer is not None:
            self.on_bad_answer(reason)

    def _query(self, params: Mapping[str, object] | None, signed: bool) -> str:
        items = [(k, v) for k, v in (params or {}).items() if v is not None]
        if not signed:
            return encode_query(items)
        items += [("recvWindow", self.recv_window), ("timestamp", self.server_now())]
        return sign_rest_query(self._signer, items)

    async def _retry(self, attempt: int, why: str) -> int:
        delay = backoff_s(attempt, self._rng)
        self.counters["retries"] += 1
        log.warning("%s; retrying in %.2f s", why, delay)
        await self.clock.sleep(delay)
        return attempt + 1

    def _ctx(self) -> Ctx:
        return Ctx(account=self.account, key=self.key_label, received_ts=self.clock.now_ms())

    def _record_usage(self, method: str, path: str, resp: httpx.Response, code: int | None,
                      latency: float) -> None:
        ctx = self._ctx()
        uid = resp.headers.get("x-mbx-uuid") or uuid.uuid4().hex
        ev = Event(
            event_id=make_event_id(Source.REST, "usage", self.account, uid),
            ts=self.server_now(), received_ts=ctx.received_ts, account=self.account,
            key=self.key_label, source=Source.REST, kind=Kind.USAGE, method=method,
            endpoint=path, status=resp.status_code if 100 <= resp.status_code <= 599 else None,
            code=code, latency_ms=max(0.0, latency), **usage_facts(resp.headers),
            raw=raw_json({"headers": usage_headers_raw(resp.headers)}),
        )
        self._emit([ev])

    def _key_rejected(self, method: str, path: str, status: int, code: int | None) -> None:
        self.counters["key_rejected"] += 1
        now = self.server_now()
        log.error("Binance rejected the monitor key %s for %s %s (code %s): check the key, its "
                  "IP whitelist and its permissions", key_hint(self._api_key), method, path, code)
        self._emit([status_event(
            Source.REST, self._ctx(), "monitor_key_rejected", now, (now,), endpoint=path,
            http_status=status, code=code, key_hint=key_hint(self._api_key),
        )])


_UNREADABLE = object()  # `_decode`'s body for an answer that is not JSON (or too deep to parse)


def _decode(content: bytes) -> tuple[Any, int | None, str]:
    """JSON body and, for an error body, its code and message. Never raises."""
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):  # RecursionError: nested past the parser's depth
        return _UNREADABLE, None, f"unreadable body ({len(content)} bytes)"
    if isinstance(body, dict) and isinstance(body.get("code"), int) and "msg" in body:
        code = body["code"]
        if code != 0 and not isinstance(code, bool):
            return body, code, str(body.get("msg"))[:200]
    return body, None, ""


def _retry_after_s(headers: httpx.Headers) -> float:
    try:
        return min(max(float(headers.get("retry-after", "1")), 0.0), 3 * 86400.0)
    except ValueError:
        return 1.0
