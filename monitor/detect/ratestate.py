"""`rate_memory`'s learned state as rows the store keeps (the `baselines` table), and back.

The service saves every key's state every few minutes and at stop and restores it at start
(monitor/service/startup.py), so a restart keeps a week of rhythm. A row is one part of one key's
state; a key whose parts do not fit this version's layout is left to re-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from monitor.detect.ratememory import RateMemory


@dataclass(frozen=True, slots=True)
class MemoryRow:
    """One part of one key's learned state, as the store keeps it."""

    rule_id: str
    account: str
    key: str
    part: str
    values: tuple[float, ...]


def snapshot(det: RateMemory) -> list[MemoryRow]:
    """Every key's state, one row per part."""
    rows = []
    for (acct, key), k in det.keys.items():
        meta = (k.born, k.last, k.hour, k.ref, k.rise, k.run_start, k.run_n)
        for part, vals in (("meta", meta), ("level_sum", k.level_sum),
                           ("level_w", k.level_w), ("seen", k.seen.ravel()),
                           ("hour_x", k.hour_x), ("recent_m", k.recent_m),
                           ("recent_x", k.recent_x), ("recent_b", k.recent_b.ravel())):
            rows.append(MemoryRow(det.rule.id, acct, key, part,
                                  tuple(float(v) for v in vals)))
    return rows


def restore(det: RateMemory, rows: list[MemoryRow]) -> int:
    """Replace the state of every key the rows hold (this rule's rows only, complete
    keys only); returns the keys restored."""
    from monitor.detect.ratememory import BINS, KeyMemory  # the module that imports this one

    parts: dict[tuple[str, str], dict[str, tuple[float, ...]]] = {}
    for r in rows:
        if r.rule_id == det.rule.id:
            parts.setdefault((r.account, r.key), {})[r.part] = r.values
    n = 0
    shape = (len(det.p.windows), BINS)
    for name, p in parts.items():
        meta = p.get("meta", ())
        recent = len(p.get("recent_m", ()))
        if (len(meta) != 7 or len(p.get("seen", ())) != shape[0] * shape[1]
                or len(p.get("recent_b", ())) != shape[0] * recent):
            continue  # another version's layout: re-learn this key
        born, last, hour, ref, rise, run_start, run_n = meta
        det.keys[name] = KeyMemory(
            born=int(born), last=int(last), hour=int(hour), ref=int(ref),
            level_sum=np.array(p["level_sum"]), level_w=np.array(p["level_w"]),
            seen=np.array(p["seen"]).reshape(shape), hour_x=list(p.get("hour_x", ())),
            recent_m=np.array(p.get("recent_m", ()), dtype=np.int64),
            recent_x=np.array(p.get("recent_x", ()), dtype=float),
            recent_b=np.array(p.get("recent_b", ()), dtype=np.int64).reshape(shape[0], recent),
            rise=rise,
            run_start=int(run_start), run_n=run_n)
        n += 1
    return n
