"""The inhibit stage inhibits nothing today (its docstring says why), and where it runs."""

from __future__ import annotations

from monitor.alert.manager import AlertManager
from monitor.alert.stages.inhibit import Inhibit
from monitor.core.findings import Severity
from tests.alert.conftest import T0, alerts_cfg, finding


def test_inhibit_passes_every_finding_through_in_order() -> None:
    fs = [finding(sev=Severity.CRITICAL), finding(sev=Severity.HIGH, ip="127.66.0.10"),
          finding(sev=Severity.HIGH, key="dca-bot")]
    assert Inhibit().run(fs, T0) == fs


def test_the_manager_lists_its_intake_stages_top_to_bottom(store, clock) -> None:
    mgr = AlertManager(store, clock, alerts_cfg(), channels=[])
    assert [type(s).__name__ for s in mgr.intake] == [
        "Enrich", "Scrub", "Record", "Page", "Silence", "Inhibit",
    ]
    assert mgr.intake[4] is mgr.silence is mgr.digest.silence  # one silence check for all
