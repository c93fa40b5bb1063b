"""What every detector hands the engine: one typed `Candidate`, and the `Detector` contract.

A detector (a rule of any kind, posture, drift, the forest) sees the stream in three ways and
answers each with candidates; the engine loops over its detectors and never asks which kind one
is. Event-level detectors see enriched events twice, as a frame in replay (`on_frame`,
vectorised) and as rows live (`on_rows`, one plain-Python test per row): the two forms of one
predicate, proven equal by tests/detect/test_live_replay.py. Window detectors see closed
one-minute windows the same way in both paths (`on_windows`): a frame of the new windows after
`history` earlier windows per key, which live keeps and replay has in full.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from monitor.detect.rules import Rule
from monitor.features import FEATURES, MINUTE_MS
from monitor.features.live import OpenWindow

Row = dict[str, Any]  # one enriched event, live (the frame's columns as keys)
Evidence = dict[str, Any]  # a finding's evidence: JSON-ready, free-form by design


@dataclass(frozen=True, slots=True)
class Candidate:
    """A detector's hit before the engine's exceptions and cooldown decide it is a Finding."""

    rule: Rule
    ts: int
    account: str
    key: str  # "" when account-wide
    anchor: str | int  # the event id or the window start: names the finding
    summary: str
    evidence: Evidence
    group: Mapping[str, str] = field(default_factory=dict)
    state: str = "firing"  # or "resolved" (a condition that cleared)


class Windows:
    """Closed one-minute windows as the window detectors read them: the frame sorted by
    (account, key, minute) with each key's kept history before its new windows, `new` (the
    windows this pass closed), `key_start` (the row where each row's key begins) and its
    columns as NumPy arrays, converted once per pass however many detectors read them (a live
    close is a few hundred rows: pandas' per-call overhead, not the data, is the cost)."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._cols: dict[str, np.ndarray] = {}
        n = len(frame)
        self.new = (frame["_new"].to_numpy(dtype=bool) if "_new" in frame
                    else np.ones(n, dtype=bool))
        acct, key = self.col("account"), self.col("key")
        change = np.flatnonzero((acct[1:] != acct[:-1]) | (key[1:] != key[:-1])) + 1
        start = np.zeros(n, dtype=np.int64)
        start[change] = change
        self.key_start = np.maximum.accumulate(start) if n else start

    def col(self, name: str) -> np.ndarray:
        if name not in self._cols:
            self._cols[name] = self.frame[name].to_numpy()
        return self._cols[name]

    def num(self, name: str) -> np.ndarray:
        """The column as floats (converted once, like `col`)."""
        key = f"{name}:float"
        if key not in self._cols:
            self._cols[key] = self.col(name).astype(float, copy=False)
        return self._cols[key]

    def last_of_key(self, n: int) -> np.ndarray:
        """Rows among the last `n` of their key (what the next close keeps as history)."""
        rows = np.arange(len(self))
        starts = np.flatnonzero(self.key_start == rows)
        ends = np.append(starts[1:], len(self)) - 1  # each key's last row
        return (ends[np.searchsorted(starts, rows, "right") - 1] - rows) < n

    def row(self, i: int) -> pd.Series:
        return self.frame.iloc[i]

    def new_frame(self) -> pd.DataFrame:
        return self.frame[self.new]

    def __len__(self) -> int:
        return len(self.frame)


class Detector(Protocol):
    """The contract. `rules`: the rules it can report (ids, severities, cooldowns); `history`:
    earlier windows per key its window test reads (0: none); `crossing`: it reports a window
    on the event that crosses its line, not at the close: live, `on_count` after each row is
    folded into its open window; replay, `on_frame` finds the same rows."""

    rules: tuple[Rule, ...]
    history: int
    crossing: bool

    def on_frame(self, e: pd.DataFrame) -> list[Candidate]: ...
    def on_rows(self, rows: Sequence[Row]) -> list[Candidate]: ...
    def on_count(self, r: Row, w: OpenWindow) -> Candidate | None: ...
    def on_windows(self, w: Windows) -> list[Candidate]: ...


class Quiet:
    """Defaults for what a detector does not look at: nothing there is a hit."""

    rules: tuple[Rule, ...] = ()
    history = 0
    crossing = False

    def on_frame(self, e: pd.DataFrame) -> list[Candidate]:
        return []

    def on_rows(self, rows: Sequence[Row]) -> list[Candidate]:
        return []

    def on_count(self, r: Row, w: OpenWindow) -> Candidate | None:
        return None

    def on_windows(self, w: Windows) -> list[Candidate]:
        return []


def as_float(v: Any) -> float:
    x = float(v)
    return x if np.isfinite(x) else 1e9


def clean(v: Any) -> Any:
    """A frame or row value as JSON-ready evidence (numpy scalars out, floats rounded)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return round(as_float(v), 6)
    return v


def present(v: Any) -> bool:
    return v is not None and v is not pd.NA and not (isinstance(v, float) and v != v)


def window_candidate(rule: Rule, row: Any, extra: Evidence, summary: str) -> Candidate:
    """One window hit (row: a windows-frame row) -> its candidate, with the window's features."""
    minute = int(row["minute"])
    ev = {"window_start_ms": minute, "window_end_ms": minute + MINUTE_MS, **extra,
          "features": {f: clean(row[f]) for f in FEATURES if row[f]}}
    return Candidate(rule=rule, ts=minute + MINUTE_MS, account=row["account"], key=row["key"],
                     anchor=minute, summary=summary, evidence=ev)


