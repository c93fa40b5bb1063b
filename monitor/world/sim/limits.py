"""Request weight per IP, 429 then 418 bans, /sapi weights and per-account order counters.

Windows are calendar-aligned on the injected clock (a minute starts at :00, ten seconds at
:00, :10 ..., a day at 00:00 UTC), as binance-wire.md section 2.1 says.

Ban policy (a SIMULATOR CHOICE where Binance is vague): the first request that takes an IP
past 6,000 weight in a minute gets 429 with Retry-After until the window ends; an IP that keeps
sending after BAN_AFTER_429 such 429s in the same window is banned with 418, for 2 minutes the
first time and twice as long on each later ban (capped at 3 days).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from monitor.world.sim.errors import ApiError

WEIGHT_LIMIT = 6000
# USD-M and COIN-M futures count IP weight apart from spot, 2400 a minute each
# (binance-wire-2.md 3.2); `charge(pool=...)` keeps one window per pool and IP.
FUTURES_WEIGHT_LIMIT = 2400
FUTURES_ORDERS_1M_LIMIT = 1200
POOL_LIMITS = {"api": WEIGHT_LIMIT, "fapi": FUTURES_WEIGHT_LIMIT, "dapi": FUTURES_WEIGHT_LIMIT}
SAPI_IP_LIMIT = 12000
SAPI_UID_LIMIT = 180000
ORDERS_10S_LIMIT = 50
ORDERS_1D_LIMIT = 160000
BAN_AFTER_429 = 10
FIRST_BAN_MS = 2 * 60_000
MAX_BAN_MS = 3 * 24 * 3600_000
MINUTE_MS = 60_000
DAY_MS = 86_400_000


def window(now_ms: int, size_ms: int) -> int:
    return now_ms // size_ms


def rate_limits_info() -> list[dict[str, object]]:
    return [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": WEIGHT_LIMIT},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
         "limit": ORDERS_10S_LIMIT},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
         "limit": ORDERS_1D_LIMIT},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
         "limit": 300000},
    ]


@dataclass
class _IpState:
    minute: int = -1
    used: int = 0
    hits_429: int = 0
    bans: int = 0
    banned_until: int = 0


@dataclass
class Limits:
    """All counters; every public method takes `now_ms` so the clock stays injected."""

    ips: dict[str, _IpState] = field(default_factory=lambda: defaultdict(_IpState))
    sapi_ip: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    sapi_uid: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    orders_10s: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    orders_1d: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    log: list[tuple[int, str, str, int]] = field(default_factory=list)

    def _ip(self, ip: str, now_ms: int, pool: str = "api") -> _IpState:
        st = self.ips[ip if pool == "api" else f"{pool}:{ip}"]
        minute = window(now_ms, MINUTE_MS)
        if st.minute != minute:
            st.minute, st.used, st.hits_429 = minute, 0, 0
        return st

    def used(self, ip: str, now_ms: int, pool: str = "api") -> int:
        return self._ip(ip, now_ms, pool).used

    def check_ban(self, ip: str, now_ms: int) -> None:
        st = self._ip(ip, now_ms)
        if st.banned_until > now_ms:
            raise self._banned(st, now_ms)

    def charge(self, ip: str, path: str, weight: int, now_ms: int, pool: str = "api") -> None:
        """Count `weight` for `ip`; raise 429/418 when the IP is over the limit or banned."""
        st = self._ip(ip, now_ms, pool)
        limit = POOL_LIMITS[pool]
        if st.banned_until > now_ms:
            raise self._banned(st, now_ms)
        st.used += weight
        self.log.append((now_ms, ip, path, weight))
        if st.used <= limit:
            return
        st.hits_429 += 1
        if st.hits_429 > BAN_AFTER_429:
            st.bans += 1
            st.banned_until = now_ms + min(FIRST_BAN_MS * 2 ** (st.bans - 1), MAX_BAN_MS)
            raise self._banned(st, now_ms)
        retry_s = max(1, -(-((st.minute + 1) * MINUTE_MS - now_ms) // 1000))
        raise ApiError(
            429, -1003,
            f"Too much request weight used; current limit is {limit} request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
            {"Retry-After": str(retry_s)},
        )

    def refund(self, ip: str, path: str, weight: int, now_ms: int) -> None:
        """Successful order place/cancel costs 0 weight (since 2026-04-02): undo its charge."""
        st = self._ip(ip, now_ms)
        st.used = max(0, st.used - weight)
        for i in range(len(self.log) - 1, -1, -1):
            ts, lip, lpath, _ = self.log[i]
            if lip == ip and lpath == path:
                self.log[i] = (ts, lip, lpath, 0)
                break

    def _banned(self, st: _IpState, now_ms: int) -> ApiError:
        retry_s = max(1, -(-(st.banned_until - now_ms) // 1000))
        return ApiError(
            418, -1003,
            f"Way too much request weight used; IP banned until {st.banned_until}. Please use "
            "WebSocket Streams for live updates to avoid bans.",
            {"Retry-After": str(retry_s)},
        )

    def charge_sapi(self, ip: str, uid: int, path: str, weight: int, by_uid: bool,
                    now_ms: int) -> tuple[str, int]:
        """/sapi weight: per IP per endpoint, or per UID; 429 past the limit, never 418."""
        minute = window(now_ms, MINUTE_MS)
        self.log.append((now_ms, ip, path, weight))
        if by_uid:
            self.sapi_uid[(uid, minute)] += weight
            used, limit, header = (self.sapi_uid[(uid, minute)], SAPI_UID_LIMIT,
                                   "X-SAPI-USED-UID-WEIGHT-1M")
        else:
            self.sapi_ip[(ip, path, minute)] += weight
            used, limit, header = (self.sapi_ip[(ip, path, minute)], SAPI_IP_LIMIT,
                                   "X-SAPI-USED-IP-WEIGHT-1M")
        if used > limit:
            retry_s = max(1, -(-((minute + 1) * MINUTE_MS - now_ms) // 1000))
            raise ApiError(
                429, -1003,
                f"Too much request weight used; current limit is {limit} request weight per "
                "1 MINUTE.",
                {"Retry-After": str(retry_s), header: str(used)},
            )
        return header, used

    def order_counts(self, account: str, now_ms: int) -> tuple[int, int]:
        return (self.orders_10s[(account, window(now_ms, 10_000))],
                self.orders_1d[(account, window(now_ms, DAY_MS))])

    def check_orders(self, account: str, now_ms: int) -> None:
        c10, c1d = self.order_counts(account, now_ms)
        if c10 >= ORDERS_10S_LIMIT:
            raise ApiError(429, -1015, f"Too many new orders; current limit is "
                           f"{ORDERS_10S_LIMIT} orders per 10 SECOND.", {"Retry-After": "10"})
        if c1d >= ORDERS_1D_LIMIT:
            raise ApiError(429, -1015, f"Too many new orders; current limit is "
                           f"{ORDERS_1D_LIMIT} orders per DAY.", {"Retry-After": "3600"})

    def count_order(self, account: str, now_ms: int) -> None:
        self.orders_10s[(account, window(now_ms, 10_000))] += 1
        self.orders_1d[(account, window(now_ms, DAY_MS))] += 1

    def order_limits(self, account: str, now_ms: int) -> list[dict[str, object]]:
        c10, c1d = self.order_counts(account, now_ms)
        return [
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": ORDERS_10S_LIMIT, "count": c10},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": ORDERS_1D_LIMIT, "count": c1d},
        ]
