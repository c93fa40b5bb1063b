"""Investigate alerts in pandas: what the incident and baseline notebooks call.

The notebooks stay short and read like a report; the logic lives here, where it is typed,
linted and tested. `incident` loads an alert and its events, `tables` answers the questions,
`plots` draws them (static PNG, UTC axes), `baseline` describes a key's normal behaviour and
replays the rules over it, `synthetic` builds a small real database for tests and examples, and
`run` executes a notebook with parameters and renders it to HTML.
"""

from __future__ import annotations

from monitor.tools.investigate.incident import (
    Incident,
    InvestigateError,
    load_incident,
    load_window,
    read_config,
)
from monitor.tools.investigate.plots import (
    Chart,
    plot_callers,
    plot_failures,
    plot_forest,
    plot_rejects,
    plot_timeline,
)
from monitor.tools.investigate.tables import (
    callers,
    drift,
    failure_codes,
    forest_reasons,
    forest_scores,
    header,
    key_posture,
    overview,
    rejected_orders,
    timeline,
    what_to_do,
    what_to_do_now,
)

__all__ = [
    "Chart", "Incident", "InvestigateError", "callers", "drift", "failure_codes",
    "forest_reasons", "forest_scores", "header", "key_posture", "load_incident", "load_window",
    "overview", "plot_callers", "plot_failures", "plot_forest", "plot_rejects", "plot_timeline",
    "read_config", "rejected_orders", "timeline", "what_to_do", "what_to_do_now",
]
