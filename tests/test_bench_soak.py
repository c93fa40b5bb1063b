"""The hostile soak's verdict (bench/soakverdict.py) on tiny hand-made runs, each broken once.

The soak itself takes minutes (`python -m bench.hostile_soak`); what makes it worth running
is that it fails when a fact is lost or doubled, a bad input goes uncounted, RSS reaches
200 MiB or the tap stops answering. These cases show each of those fails the verdict.
"""

from __future__ import annotations

import os

import pytest

from bench.common import proc_rss
from bench.soakverdict import BadCheck, FactCheck, Probe, SoakResult, judge


def _good() -> SoakResult:
    probes = [Probe(i * 0.1, "clean" if i < 10 else "hostile", 2.0) for i in range(40)]
    return SoakResult(
        facts=[FactCheck.by_id("order facts", ["a", "b", "c"], ["c", "b", "a"]),
               FactCheck.by_count("tap calls", 40, 40)],
        bad=[BadCheck("CONNECT through the tap", 3, 3, "tap refused_method"),
             BadCheck("dropped stream", 2, 5, "stream reconnects", at_least=True)],
        rss_mib=[120.0, 130.0], rss_hwm_mib=131.0, probes=probes,
        zero={"component restarts": 0.0})


def test_a_clean_run_passes() -> None:
    assert judge(_good()) == []


@pytest.mark.parametrize("breakage, expected", [
    (lambda r: r.facts.__setitem__(0, FactCheck.by_id("order facts", "abc", "ab")),
     "order facts: 2 stored of 3 sent, 1 missing, 0 extra (e.g. c)"),
    (lambda r: r.facts.__setitem__(0, FactCheck.by_id("order facts", "abc", "abcd")),
     "1 extra"),
    (lambda r: r.facts.__setitem__(1, FactCheck.by_count("tap calls", 40, 41)), "1 extra"),
    (lambda r: r.facts.__setitem__(1, FactCheck.by_count("tap calls", 0, 0)), "none sent"),
    (lambda r: r.bad.__setitem__(0, BadCheck("CONNECT", 3, 2, "tap refused_method")),
     "CONNECT: 3 sent, tap refused_method counted 2"),
    (lambda r: r.bad.__setitem__(1, BadCheck("dropped", 2, 1, "reconnects", at_least=True)),
     "dropped: 2 sent"),
    (lambda r: setattr(r, "rss_hwm_mib", 200.0), "RSS peaked at 200 MiB"),
    (lambda r: setattr(r, "rss_mib", []), "RSS was never sampled"),
    (lambda r: r.probes.__setitem__(20, Probe(2.0, "hostile", None)), "1 of 40 probes"),
    (lambda r: setattr(r, "probes", [p for p in r.probes if not 1.5 < p.at_s < 3.8]),
     "without answering"),
    (lambda r: setattr(r, "probes", [p for p in r.probes if p.phase == "clean"]),
     "no probe in the hostile phase"),
    (lambda r: setattr(r, "bad", []), "no bad inputs were checked"),
    (lambda r: r.zero.__setitem__("component restarts", 2.0), "component restarts is 2"),
])
def test_each_breakage_fails_the_verdict(breakage, expected: str) -> None:  # type: ignore[no-untyped-def]
    r = _good()
    breakage(r)
    failures = judge(r)
    assert any(expected in f for f in failures), failures


def test_p99_per_phase_and_rss_of_a_real_process() -> None:
    r = _good()
    r.probes[-1] = Probe(3.9, "hostile", 50.0)
    assert r.p99("clean") == 2.0
    assert 2.0 < r.p99("hostile") <= 50.0
    rss, hwm = proc_rss(os.getpid())
    assert 5 < rss <= hwm < 2000  # MiB, read from /proc/<pid>/status as the soak reads it
