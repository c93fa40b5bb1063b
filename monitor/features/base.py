"""What every feature module shares: the time grid, the failure classes, the config the features
read (`FeatureContext`), the history they carry (`FeatureState`) and the shape of a declaration.

A derived fact is a `Fact` (a column every enriched event gets); facts come from `Step`s, run in
the order `catalog.ENRICH` lists them, each in two forms over the same state: `replay(df)`
vectorised over a whole frame, `row(r, verdict)` for one live event. Row-local facts are plain
expressions (`expr`) and need no step code at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import pandas as pd

from monitor.config import Config, UseCase
from monitor.core.clock import MINUTE_MS as MINUTE_MS  # re-exported: the window length
from monitor.core.orderpaths import PLACEMENT_PATHS
from monitor.features.provenance import GRACE_MS, ProvenanceState, Verdict

if TYPE_CHECKING:
    from monitor.features.expr import Expr

ACCOUNT_ROW = ""  # window key for account-level facts (counters, foreign orders, withdrawals)
CONTEXT_MINUTES = 60  # `untapped_1h` looks back this far: live keeps at least this history
FAIL_CLASSES = ("auth", "timestamp", "rate", "balance", "filter", "other")
CODE_CLASS = {-2014: "auth", -2015: "auth", -1022: "auth", -1021: "timestamp", -1003: "rate",
              -2010: "balance", -1013: "filter"}
STATUS_CLASS = {429: "rate", 418: "rate"}
ORDER_ENDPOINTS = PLACEMENT_PATHS  # placements (monitor/core/orderpaths.py declares every endpoint)
NEW_VALUE_FIELDS = ("ip", "symbol", "endpoint")

Row = dict[str, Any]  # one enriched live event (the same columns as a replay frame row)
# one closed window: account, key (str), minute (int ms), then every feature (float)
WindowRow = dict[str, str | int | float]


@dataclass(frozen=True)
class Fact:
    """One derived column. `public`: rules may test it (`where:`, `group_by:`)."""

    name: str
    doc: str
    public: bool = False
    expr: Expr | None = None  # row-local: computed from this expression in both paths


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
    """History that outlives a batch; carried by the live engine, fresh for a replay.
    Each field names the step (`history`, `attribution`) that owns it."""

    seen: dict[str, set[tuple[str, str, str]]] = field(  # FirstSeen
        default_factory=lambda: {f: set() for f in NEW_VALUE_FIELDS})
    key_first_ts: dict[str, int] = field(default_factory=dict)  # FirstSeen: "account\x1fkey"
    balance: dict[tuple[str, str], float] = field(default_factory=dict)  # RejectVsBalance
    own_sum: dict[str, float] = field(default_factory=dict)  # OrderSizes
    own_cnt: dict[str, float] = field(default_factory=dict)  # OrderSizes
    bot_orders: dict[str, int] = field(default_factory=dict)  # CounterGrowth: tapped orders
    last_usage: dict[str, tuple[int, int]] = field(default_factory=dict)  # CounterGrowth
    last_price: dict[str, float] = field(default_factory=dict)  # PriceOrders: symbol -> price
    provenance: ProvenanceState = field(default_factory=ProvenanceState)  # Attribution


class Step(Protocol):
    """One stage of enrichment: the facts it adds, in both forms (see the module docstring)."""

    facts: ClassVar[tuple[Fact, ...]]

    def __init__(self, ctx: FeatureContext, state: FeatureState) -> None:
        ...

    def replay(self, df: pd.DataFrame) -> pd.DataFrame:
        """Add this step's columns to a time-ordered frame (it may reorder rows); advance state."""
        ...

    def row(self, r: Row, verdict: Verdict | None) -> None:
        """Add this step's columns to one live row; advance state."""
        ...
