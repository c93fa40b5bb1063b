"""The one record every source produces and every consumer reads.

A poll answer, a stream frame, a tapped request and a log line all become an `Event`; the
store's table, the feature windows and the notebooks' DataFrame share these columns. Keeping a
single definition is what lets live detection, replay and investigation agree with each other.

Units are fixed here so nobody has to guess later: times are integer milliseconds since the
epoch (UTC), money is a float in the quote asset, weights and counters are plain counts.
"""

from __future__ import annotations

import ipaddress
import json
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

from monitor.core import redaction
from monitor.core.bounded import mark_out_of_range, out_of_range

# 2015-01-01 and 2100-01-01 in ms: anything outside is a unit mistake (seconds or microseconds).
MIN_TS_MS = 1_420_070_400_000
MAX_TS_MS = 4_102_444_800_000

# Names that must never reach the store, whatever the source sends: the well-known ones; any
# name *containing* a secret word is caught too (`redaction.is_secret_name`).
SECRET_FIELDS = frozenset(
    {"signature", "apikey", "api_key", "secret", "secretkey", "api_secret", "x-mbx-apikey"}
)


class Source(StrEnum):
    REST = "rest"
    STREAM = "stream"
    TAP = "tap"
    LOG = "log"


class Kind(StrEnum):
    REQUEST = "request"
    ORDER = "order"
    FILL = "fill"
    REJECT = "reject"
    BALANCE = "balance"
    KEY_CONFIG = "key_config"
    USAGE = "usage"
    WITHDRAWAL = "withdrawal"
    STREAM_STATUS = "stream_status"
    PRICE = "price"  # a symbol's last market price (the poller's ticker): symbol, price


# The integer columns: each must fit SQLite's signed 64-bit INTEGER (monitor/core/bounded.py).
INT_COLUMNS = ("status", "code", "weight_1m", "orders_10s", "orders_1d", "order_id")


class Event(BaseModel):
    """One observed fact about an account or key.

    `event_id` is deterministic for the fact (not for the moment we saw it), so re-ingesting
    the same order update from the stream and from a REST backfill stores it once. It always
    starts with the source name: `stream:...`, `rest:...`, `tap:...`, `log:...`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    # identity
    event_id: str
    ts: int
    received_ts: int
    account: str
    key: str | None = None
    source: Source
    kind: Kind
    # request facts
    ip: str | None = None
    method: str | None = None
    endpoint: str | None = None
    status: int | None = None
    code: int | None = None
    weight_1m: int | None = None
    orders_10s: int | None = None
    orders_1d: int | None = None
    latency_ms: float | None = None
    # order facts
    symbol: str | None = None
    side: str | None = None
    order_type: str | None = None
    qty: float | None = None
    price: float | None = None
    notional: float | None = None
    order_id: int | None = None
    client_order_id: str | None = None
    exec_type: str | None = None
    order_status: str | None = None
    reject_reason: str | None = None
    # balance facts (one event per asset)
    asset: str | None = None
    free: float | None = None
    locked: float | None = None
    # the source payload, secrets removed
    raw: str | None = None
    # integer fields refused as out of the int64 range (their text is in `raw`), see below
    _out_of_range: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _bounded_ints(cls, data: Any, handler: ModelWrapValidatorHandler[Event]) -> Event:
        """An integer SQLite cannot store becomes None, its text kept in `raw` (bounded.py).

        Checked after pydantic's own coercion (a float like 1e30 or a digit string counts
        too), so every source and every parser is covered by this one definition.
        """
        ev = handler(data)
        refused = out_of_range(ev.__dict__, INT_COLUMNS)
        if refused:
            fixed = {**ev.__dict__, **dict.fromkeys(refused),
                     "raw": mark_out_of_range(ev.raw, refused)}
            ev = handler(fixed)
            ev._out_of_range = tuple(sorted(refused))
        # pydantic's set of the names passed in is ~2.3 KB of an Event's ~3.9 (parsers pass
        # every field), held by every queued or held event; nothing reads it (issue 15, RSS)
        object.__setattr__(ev, "__pydantic_fields_set__", set())
        return ev

    @property
    def out_of_range(self) -> tuple[str, ...]:
        """The fields whose source value did not fit an int64 (now None; see `raw`)."""
        return self._out_of_range

    @field_validator("ts", "received_ts")
    @classmethod
    def _ms_epoch(cls, v: int) -> int:
        if not MIN_TS_MS <= v < MAX_TS_MS:
            raise ValueError(
                f"{v} is not a millisecond epoch time (expected between {MIN_TS_MS} and "
                f"{MAX_TS_MS}; seconds or microseconds must be converted first)"
            )
        return v

    @field_validator("event_id", "account")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v or not v.strip():
            raise ValueError("must not be empty")
        return v

    @field_validator("ip")
    @classmethod
    def _ip(cls, v: str | None) -> str | None:
        if v is None:
            return v
        return str(ipaddress.ip_address(v))

    @field_validator("method", "side", "order_type", "exec_type", "order_status")
    @classmethod
    def _upper(cls, v: str | None) -> str | None:
        return v.upper() if v is not None else v

    @field_validator("status")
    @classmethod
    def _http_status(cls, v: int | None) -> int | None:
        if v is not None and not 100 <= v <= 599:
            raise ValueError(f"{v} is not an HTTP status")
        return v

    @field_validator(
        "weight_1m", "orders_10s", "orders_1d", "latency_ms", "qty", "price", "notional",
        "free", "locked",
    )
    @classmethod
    def _non_negative(cls, v: float | None) -> float | None:
        if v is not None and v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("raw")
    @classmethod
    def _raw_is_clean_json(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            payload = json.loads(v)
        except ValueError as exc:
            raise ValueError(f"raw must be JSON text: {exc}") from None
        leaked = _secret_paths(payload)
        if leaked:
            raise ValueError(f"raw carries secret fields {leaked}; pass it through redact() first")
        return v

    @model_validator(mode="after")
    def _id_matches_source(self) -> Event:
        if not self.event_id.startswith(f"{self.source.value}:"):
            raise ValueError(
                f"event_id {self.event_id!r} must start with '{self.source.value}:' "
                "(the source that observed it)"
            )
        return self


EVENT_COLUMNS: tuple[str, ...] = tuple(Event.model_fields)
FLOAT_COLUMNS = ("latency_ms", "qty", "price", "notional", "free", "locked")
TIME_COLUMNS = ("ts", "received_ts")


def make_event_id(source: Source | str, *parts: object) -> str:
    """Build a deterministic id: `<source>:<part>:<part>...` (see DESIGN.md section 3)."""
    src = Source(source).value
    if not parts:
        raise ValueError("an event id needs at least one part after the source")
    return ":".join([src, *(str(p) for p in parts)])


def redact(payload: Any) -> Any:
    """A copy of a JSON-like payload without secrets: secret-named fields dropped and secret
    values inside strings (a query string's `apiSecret=...`) replaced, by pattern, not by
    exact name (`monitor/core/redaction.py`, the one definition alerts and logs use too)."""
    return redaction.redact(payload)


def raw_json(payload: Any) -> str:
    """Serialise a source payload for `Event.raw`, secrets removed, compact and stable."""
    return json.dumps(redact(payload), separators=(",", ":"), sort_keys=True, default=str)


def _secret_paths(payload: Any, prefix: str = "") -> list[str]:
    return redaction.secret_paths(payload, prefix)
