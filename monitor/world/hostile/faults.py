"""What the hostile upstream can send: the REST and WebSocket faults, their fixed bodies, and
the one valid user-data fact it pushes (a documented executionReport for a fresh order id)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

MIB = 1 << 20
BIG_INT = 2 ** 64  # past int64: SQLite's OverflowError before issue 15 item 1
RATE_429_MSG = ("Too much request weight used; current limit is 6000 request weight per "
                "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.")
BAN_418_MSG = ("Way too much request weight used; IP banned until {until}. Please use WebSocket "
               "Streams for live updates to avoid bans.")
WS_PATH = "/ws-api/v3"
FACT_ORDER_ID0 = 7_000_000_000  # far from the simulator's own order ids


class RestFault(StrEnum):
    VALID = "valid"            # the simulator's own answer
    HUGE = "huge"              # 200, chunked, `huge_bytes` of JSON-looking junk, never ending early
    TRICKLE = "trickle"        # the valid answer, one byte every `trickle_s` wall seconds
    DEEP = "deep"              # 200, a JSON array nested `depth` deep
    JUNK_GZIP = "junk_gzip"    # 200, Content-Encoding: gzip over garbage
    LIST = "list"              # 200, non-object JSON: [1, 2, 3]
    NUMBER = "number"          # 200, 42
    STRING = "string"          # 200, "ok"
    BIGINT = "bigint"          # the valid answer with every integer (and the weight header) 2^64+
    RATE_429 = "429"           # 429 -1003 with Retry-After
    BAN_418 = "418"            # 418 -1003 with Retry-After
    DROP = "drop"              # the TCP connection cut before any answer
    RAW = "raw"                # exactly the status, headers and body given to `inject_raw`


class WsFault(StrEnum):
    VALID = "valid"            # a documented executionReport (NEW) for a fresh order id
    MALFORMED = "malformed"    # not JSON, a wrong envelope, a deep nest, a bad field type
    OVERSIZED = "oversized"    # one text frame of `oversized_bytes` (past the client's max_size)
    DROP = "drop"              # the TCP connection cut: no close frame


MALFORMED_FRAMES: tuple[str, ...] = (
    "not json at all",
    "[1, 2, 3]",
    '{"subscriptionId": 0, "event": 5}',
    '{"subscriptionId": 0, "event": {"e": "executionReport", "E": "soon"}}',
    "[" * 200_000 + "]" * 200_000,
    '{"id": null, "status": "x"',
)


@dataclass
class Injection:
    fault: RestFault
    path: str | None = None  # None: the next REST call, whatever its path
    times: int = 1
    raw: tuple[int, bytes, list[tuple[bytes, bytes]]] | None = None  # RestFault.RAW's answer


def inflate(value: Any) -> Any:
    """Every integer (not bool) past int64, keeping the shape."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return BIG_INT + value
    if isinstance(value, list):
        return [inflate(v) for v in value]
    if isinstance(value, dict):
        return {k: inflate(v) for k, v in value.items()}
    return value


def deep(n: int) -> bytes:
    return b"[" * n + b"]" * n


def execution_report(order_id: int, now_ms: int) -> dict[str, Any]:
    """A documented executionReport (NEW, LIMIT BUY 0.01 BTCUSDT at 1000) for `order_id`."""
    return {"e": "executionReport", "E": now_ms, "s": "BTCUSDT", "c": f"hostile-{order_id}",
            "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "0.01000000",
            "p": "1000.00000000", "P": "0.00000000", "F": "0.00000000", "g": -1,
            "C": "", "x": "NEW", "X": "NEW", "r": "NONE", "i": order_id,
            "l": "0.00000000", "z": "0.00000000", "L": "0.00000000", "n": "0",
            "N": None, "T": now_ms, "t": -1, "I": order_id, "w": True, "m": False,
            "M": False, "O": now_ms, "Z": "0.00000000", "Y": "0.00000000",
            "Q": "0.00000000", "W": now_ms, "V": "EXPIRE_MAKER"}
