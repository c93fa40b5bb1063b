"""The silence stage: the one check, logged, counted and reported for every silenced finding."""

from __future__ import annotations

import logging
from collections import defaultdict

from monitor.alert.stages.silence import Silence
from monitor.core.findings import Finding
from tests.alert.conftest import T0, finding


def _stage(store) -> tuple[Silence, dict[str, int], list[Finding]]:
    counters: dict[str, int] = defaultdict(int)
    seen: list[Finding] = []
    return Silence(store, counters, seen.append), counters, seen


def test_a_matching_silence_drops_the_finding_and_says_so(store, caplog) -> None:
    stage, counters, seen = _stage(store)
    store.add_silence("unknown-ip", "main", "grid-bot", T0 - 1, T0 + 60_000, "deploy")
    hit, miss = finding(), finding(key="dca-bot")
    with caplog.at_level(logging.INFO, logger="monitor.alert.manager"):
        assert stage.run([hit, miss], T0) == [miss]
    assert seen == [hit] and counters["silenced"] == 1
    assert "silenced by silence 1" in caplog.text and "deploy" in caplog.text


def test_intake_uses_the_silences_active_now(store) -> None:
    stage, counters, _ = _stage(store)
    store.add_silence("unknown-ip", None, None, T0 - 10_000, T0 - 1, "over")
    f = finding()
    assert stage.run([f], T0) == [f] and counters["silenced"] == 0


def test_keep_matches_each_finding_at_the_time_given(store, caplog) -> None:
    stage, counters, _ = _stage(store)
    store.add_silence(None, "main", None, T0, T0 + 1_000, "window")
    f = finding(ts=T0 + 500)
    silences = store.silences()
    assert stage.keep([f], silences, T0 + 2_000) == [f]  # the silence is over by then
    with caplog.at_level(logging.INFO, logger="monitor.alert.manager"):
        assert stage.keep([f], silences, T0 + 500, waited=True) == []
    assert "silenced while its group waited" in caplog.text and counters["silenced"] == 1


def test_an_ip_silence_matches_the_caller_only(store) -> None:
    stage, _, _ = _stage(store)
    store.add_silence(None, None, None, T0 - 1, T0 + 1_000, "our vpn", ip="127.66.0.9")
    mine, other = finding(ip="127.66.0.9"), finding(ip="127.66.0.10")
    assert stage.run([mine, other], T0) == [other]
