"""Readers for Binance's documented JSON fields, shared by every parser of a Binance answer.

They live outside `monitor.binance` (the network side) because detectors read stored answers
too (posture reads a key's restrictions back from its `key_config` event) and must not import
the network layer. Each reader raises `Malformed` naming the field, never returns a guess.
"""

from __future__ import annotations

import math
from typing import Any, TypeAlias

__all__ = ["JsonObject", "Malformed", "opt_dec", "req_bool", "req_dec", "req_int", "req_obj",
           "req_str"]

JsonObject: TypeAlias = dict[str, Any]
"""Raw wire JSON: one object exactly as `json.loads` gave it from a Binance answer or frame (or a
bot's request or log line), before a parser reads it into an `Event`. Free-form by nature: the
readers below check each field as it is used. Never the type of a record whose fields we know."""


class Malformed(ValueError):
    """A payload that breaks the documented shape; `str()` says which field and why."""


# -- field readers ------------------------------------------------------------------------------
def req_int(d: JsonObject, k: str) -> int:
    v = d.get(k)
    if isinstance(v, bool) or not isinstance(v, int):
        raise Malformed(f"{k!r} must be an integer, got {type(v).__name__}")
    return v


def req_str(d: JsonObject, k: str) -> str:
    v = d.get(k)
    if not isinstance(v, str):
        raise Malformed(f"{k!r} must be a string, got {type(v).__name__}")
    return v


def req_bool(d: JsonObject, k: str) -> bool:
    v = d.get(k)
    if not isinstance(v, bool):
        raise Malformed(f"{k!r} must be a boolean, got {type(v).__name__}")
    return v


def req_dec(d: JsonObject, k: str, *, signed: bool = False) -> float:
    """A decimal sent as a JSON string (Binance sends quantities and prices as strings)."""
    s = req_str(d, k)
    try:
        v = float(s)
    except ValueError:
        raise Malformed(f"{k!r} is not a decimal: {s[:20]!r}") from None
    if not math.isfinite(v) or (v < 0 and not signed):
        raise Malformed(f"{k!r} out of range: {s[:20]!r}")
    return v


def opt_dec(d: JsonObject, k: str) -> float | None:
    return req_dec(d, k) if d.get(k) is not None else None


def req_obj(v: Any, what: str) -> JsonObject:
    if not isinstance(v, dict):
        raise Malformed(f"{what} must be a JSON object, got {type(v).__name__}")
    return v
