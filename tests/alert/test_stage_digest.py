"""The digest stage: the day's lower findings once, none twice, silenced ones left out."""

from __future__ import annotations

from collections import defaultdict

from monitor.alert.redact import Redactor
from monitor.alert.stages.digest import DAY_MS, DIGEST_CURSOR, Digest
from monitor.alert.stages.silence import Silence
from monitor.core.findings import Severity
from tests.alert.conftest import T0, alerts_cfg, finding

HOUR = 3_600_000


def _digest(store) -> tuple[Digest, dict[str, int]]:
    counters: dict[str, int] = defaultdict(int)
    silence = Silence(store, counters, lambda _f: None)
    return Digest(store, alerts_cfg(digest_hour_utc=8), [], Redactor(), silence), counters


def test_cut_is_the_last_digest_hour_at_or_before_now(store) -> None:
    digest, _ = _digest(store)
    day = T0 - T0 % DAY_MS
    assert digest.cut(day + 8 * HOUR) == day + 8 * HOUR
    assert digest.cut(day + 8 * HOUR - 1) == day + 8 * HOUR - DAY_MS


def test_one_digest_per_day_of_the_warning_findings(store) -> None:
    digest, counters = _digest(store)
    cut = digest.cut(T0)
    warn = [finding(sev=Severity.WARNING, ts=cut - HOUR + i) for i in range(3)]
    page = finding(sev=Severity.CRITICAL, ts=cut - HOUR)
    quiet = finding(sev=Severity.WARNING, key="dca-bot", ts=cut - HOUR)
    store.insert_findings([*warn, page, quiet])
    store.add_silence(None, None, "dca-bot", cut - 2 * HOUR, cut, "known noisy")
    alert_id = digest.run(T0)
    alert = store.load_alert(alert_id or "")
    assert alert is not None and alert.kind == "digest" and "x3" in alert.body
    assert len(alert.payload.fingerprints) == 1 and alert.payload.day is not None
    assert counters["silenced"] == 1  # the silenced one is counted, not shown
    assert store.get_cursor(DIGEST_CURSOR) == str(cut)
    assert digest.run(T0 + 1) is None  # the same day again: nothing


def test_an_empty_day_writes_no_digest_but_moves_the_cut(store) -> None:
    digest, _ = _digest(store)
    assert digest.run(T0) is None and store.get_cursor(DIGEST_CURSOR) == str(digest.cut(T0))
    assert store.load_alerts() == []
