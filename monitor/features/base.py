"""What every feature module shares: the time grid, the failure classes, the config the features
read (`FeatureContext`), the history they carry (`FeatureState`) and the shape of a declaration.

A derived fact is a `Fact` (a column every enriched event gets); facts come from `Step`s, run in
the order `catalog.ENRICH` lists them, each in two forms over the same state: `replay(df)`
vectorised over a whole frame, `row(r, verdict)` for one live event. Declared facts (an `expr`
or a `history.How`) need no step code at all: `history.Facts` generates both forms.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import pandas as pd

from monitor.config import Config, UseCase
from monitor.core.clock import MINUTE_MS as MINUTE_MS  # re-exported: the window length
from monitor.core.orderpaths import PLACEMENT_PATHS
from monitor.features.provenance import GRACE_MS, ProvenanceState, Verdict

if TYPE_CHECKING:
    from monitor.features.expr import Expr
    from monitor.features.history import How

ACCOUNT_ROW = ""  # window key for account-level facts (counters, foreign orders, withdrawals)
CONTEXT_MINUTES = 60  # `untapped_1h` looks back this far: live keeps at least this history
FAIL_CLASSES = ("auth", "timestamp", "rate", "balance", "filter", "other")
CODE_CLASS = {-2014: "auth", -2015: "auth", -1022: "auth", -1021: "timestamp", -1003: "rate",
              -2010: "balance", -1013: "filter"}
STATUS_CLASS = {429: "rate", 418: "rate"}
ORDER_ENDPOINTS = PLACEMENT_PATHS  # placements (monitor/core/orderpaths.py declares every endpoint)
NEW_VALUE_FIELDS = ("ip", "symbol", "endpoint")

# One enriched live event: the event's columns then every declared fact (a replay frame row's
# columns). Its keys come from the declarations (a TypedDict would declare every fact twice)
# and generated code reads it, so its values stay untyped (the one such alias in features).
Row = dict[str, Any]
# one closed window: account, key (str), minute (int ms), then every feature (float)
WindowRow = dict[str, str | int | float]


@dataclass(frozen=True)
class Fact:
    """One derived column, declared once. `public`: rules may test it (`where:`, `group_by:`).
    Computed by `expr` (from its row, earlier facts included) or by `how` (with history, see
    `history`). A `_name` is scratch (dropped at its step's end); `rewrite` replaces an event
    column (a MARKET order's notional); neither is listed in `catalog.FACTS`."""

    name: str
    doc: str
    public: bool = False
    expr: Expr | None = None
    how: How | None = None
    rewrite: bool = False

    @property
    def scratch(self) -> bool:
        return self.name.startswith("_")

    @property
    def listed(self) -> bool:
        return not (self.scratch or self.rewrite)


@dataclass(frozen=True)
class FeatureContext:
    """What the config declares that features need: prefixes, whitelists, use cases."""

    prefixes: dict[str, list[tuple[str, str]]]  # account -> [(prefix, key label)]
    whitelists: dict[tuple[str, str], list[Any]]  # (account, key) -> networks
    use_cases: dict[tuple[str, str], UseCase]
    monitor_keys: dict[str, str]
    egress_ip: str | None = None
    # how long (event time) a report waits for the tap/log record that explains it
    provenance_grace_ms: int = GRACE_MS

    @classmethod
    def from_config(cls, cfg: Config) -> FeatureContext:
        prefixes, wl, uc, mk = {}, {}, {}, {}
        for a in cfg.accounts:
            mk[a.name] = a.monitor_key
            prefixes[a.name] = sorted(
                ((p, k.label) for k in a.keys for p in k.client_order_prefixes),
                key=lambda t: -len(t[0]),  # longest prefix wins
            )
            for k in a.keys:
                wl[(a.name, k.label)] = k.whitelist_networks()
                uc[(a.name, k.label)] = k.use_case
        return cls(prefixes, wl, uc, mk, cfg.egress_ip)

    def whitelisted(self, account: str, key: str, ip: str) -> bool | None:
        """True/False against the declared whitelist; None when none is declared."""
        nets = self.whitelists.get((account, key))
        if not nets:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in n for n in nets)


@dataclass
class FeatureState:
    """History that outlives a batch; carried by the live engine, fresh for a replay."""

    # each declared fact's history, under its name (made by its `how` on first use)
    facts: dict[str, object] = field(default_factory=dict)
    provenance: ProvenanceState = field(default_factory=ProvenanceState)  # Attribution

    @property
    def seen(self) -> dict[str, set[tuple[str, str, str]]]:
        """Per NEW_VALUE_FIELDS, every (account, key, value) sighted: the `first_*` facts'
        state (the engine reads the callers' addresses here)."""
        return {f: cast(set[tuple[str, str, str]], self.facts.setdefault(f"first_{f}", set()))
                for f in NEW_VALUE_FIELDS}


class Step(Protocol):
    """One stage of enrichment over one context and state, in both forms (module docstring)."""

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add this step's columns to a time-ordered frame (it may reorder rows); advance state."""
        ...

    def row(self, r: Row, verdict: Verdict | None) -> None:
        """Add this step's columns to one live row; advance state."""
        ...


class StepMaker(Protocol):
    """What `catalog.ENRICH` lists: the facts a step adds and how to make it (`Step(ctx, state)`):
    a `history.Facts` declaration, or a step class (`attribution.Attribution`)."""

    @property
    def facts(self) -> tuple[Fact, ...]:
        ...

    def __call__(self, ctx: FeatureContext, state: FeatureState) -> Step:
        ...
