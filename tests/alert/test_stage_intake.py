"""Intake stages: Page (what pages), Scrub (secrets), Record (persisted), Enrich (store facts)."""

from __future__ import annotations

from collections import defaultdict

import pytest

from monitor.alert.redact import Redactor
from monitor.alert.stages.intake import Enrich, Page, Record, Scrub
from monitor.core.findings import Severity
from tests.alert.conftest import T0, finding

SECRET = "Zq8vN2pLr5Tx9Wb3Yc7Hd1Kf6Mg4Js0A"


@pytest.mark.parametrize(("sev", "pages"), [
    (Severity.INFO, False), (Severity.WARNING, False), (Severity.HIGH, True),
    (Severity.CRITICAL, True),
])
def test_page_keeps_high_and_critical_only(sev: Severity, pages: bool) -> None:
    f = finding(sev=sev)
    assert Page().run([f], T0) == ([f] if pages else [])


def test_scrub_redacts_a_secret_and_counts_it() -> None:
    counters: dict[str, int] = defaultdict(int)
    scrub = Scrub(Redactor([SECRET]), counters)
    dirty = finding(evidence={"ip": "127.66.0.9", "url": f"/x?signature={SECRET}"})
    clean = finding()
    out = scrub.run([dirty, clean], T0)
    assert SECRET not in out[0].model_dump_json() and out[0].finding_id == dirty.finding_id
    assert out[1] is clean  # nothing to scrub: the same object goes on
    assert counters["redacted_findings"] == 1


def test_record_persists_every_finding_paging_or_not(store) -> None:
    counters: dict[str, int] = defaultdict(int)
    fs = [finding(sev=Severity.WARNING), finding()]
    assert Record(store, counters).run(fs, T0) == fs
    assert [f.finding_id for f in store.load_findings()] == [f.finding_id for f in fs]
    assert counters["findings"] == 2


def test_enrich_leaves_a_finding_the_store_knows_nothing_about(store) -> None:
    f = finding()
    assert Enrich(store).run([f], T0) == [f]
