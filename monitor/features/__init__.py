"""Per (account, key) one-minute windows: the fixed, named feature set every detector reads.

Declared once in `catalog` (the per-event derived facts and the window features), computed two
ways from those declarations: `replay` (vectorised over a whole frame) and `live` (one event
at a time, for the service); `context` fills the features over a key's earlier windows
(`add_context`, for replay and for each live close). `attribution` + `provenance` decide whose
window an order counts in; `history` holds the kinds of facts with history (first sightings,
running means, the last value before, ...), each in both forms once; `expr` and `arith` the
row expressions; `frame` is the column layout.
"""

from __future__ import annotations

from monitor.features.base import (
    ACCOUNT_ROW,
    CODE_CLASS,
    CONTEXT_MINUTES,
    FAIL_CLASSES,
    MINUTE_MS,
    NEW_VALUE_FIELDS,
    ORDER_ENDPOINTS,
    Fact,
    FeatureContext,
    FeatureState,
)
from monitor.features.catalog import DERIVED_FIELDS, ENRICH, FACTS, FEATURES, WINDOWS, Window
from monitor.features.context import add_context
from monitor.features.frame import CAT_COLS, NUM_COLS, events_to_frame, normalise, to_row
from monitor.features.live import LiveFeatures
from monitor.features.provenance import GRACE_MS, Provenance, ProvenanceState, Verdict
from monitor.features.replay import aggregate, enrich, windows

__all__ = [
    "ACCOUNT_ROW", "CAT_COLS", "CODE_CLASS", "CONTEXT_MINUTES",
    "DERIVED_FIELDS", "ENRICH", "FACTS", "FAIL_CLASSES", "FEATURES", "GRACE_MS", "MINUTE_MS",
    "NEW_VALUE_FIELDS", "NUM_COLS", "ORDER_ENDPOINTS", "WINDOWS", "Fact", "FeatureContext",
    "FeatureState", "LiveFeatures", "Provenance", "ProvenanceState", "Verdict",
    "Window", "add_context", "aggregate", "enrich", "events_to_frame", "normalise", "to_row",
    "windows",
]
