"""The integer range an event field may hold: SQLite's INTEGER, a signed 64-bit value.

Binance's ids and counters are documented as 64-bit (orderId is a Java long), so a value
outside [-2^63, 2^63-1] can only be hostile or corrupt input. Python's ints are unbounded and
pydantic accepts them, but SQLite refuses to bind one (OverflowError), and one such value used
to wedge the whole ingest batch. The bound is therefore enforced where events are built
(`monitor.core.events.Event`), once, for every source: the field becomes None and the original value
is kept as text in `raw` under `out_of_range` (see `mark_out_of_range`), so the fact is stored,
the evidence survives, and the event is counted (`keywatch_events_out_of_range`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from monitor.core.wirefields import JsonObject

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
OUT_OF_RANGE = "out_of_range"  # the key in `Event.raw` that holds the refused values as text


def fits_int64(v: object) -> bool:
    """True for anything that is not an integer, or an integer SQLite can store."""
    if isinstance(v, bool) or not isinstance(v, int):
        return True
    return INT64_MIN <= v <= INT64_MAX


def out_of_range(values: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, str]:
    """The named fields whose (already coerced) value does not fit, as text."""
    return {f: str(values[f]) for f in fields if not fits_int64(values.get(f))}


def mark_out_of_range(raw: str | None, refused: Mapping[str, str]) -> str:
    """`raw` with the refused values added under `out_of_range` (as text, never as numbers).

    A JSON object gains the key; any other payload (a list, a scalar, nothing) is wrapped as
    `{"payload": ..., "out_of_range": ...}`, so the original is kept whole either way.
    """
    payload: Any = None if raw is None else json.loads(raw)
    marked: JsonObject = dict(payload) if isinstance(payload, dict) else (
        {} if payload is None else {"payload": payload})
    marked[OUT_OF_RANGE] = dict(sorted(refused.items()))
    return json.dumps(marked, separators=(",", ":"), sort_keys=True, default=str)
