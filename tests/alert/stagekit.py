"""Building alert-state records for the stage tests through the production builder."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from monitor.alert.render import fingerprint
from monitor.alert.stages import group
from monitor.core.findings import Finding, incident_id
from monitor.store import AlertState
from tests.alert.conftest import T0


def opened(f: Finding, now: int = T0, **changes: Any) -> AlertState:
    """The record `group.open_state` makes for `f`, with `changes` applied."""
    st = group.open_state(f, fingerprint(f), incident_id(f.signal, f.evidence), now, None)
    return replace(st, **changes)
