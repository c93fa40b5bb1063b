"""The scorer's verdicts: a learned-caller prompt on the user's own bot address is counted
apart (neither a catch nor a false alarm); the same prompt for any other address is judged."""

from __future__ import annotations

from monitor.core.findings import Finding, Severity, Signal
from monitor.world.evaluate.score import score
from monitor.world.groundtruth import AttackType, Episode, GroundTruth, OwnCaller

T0 = 1_790_000_000_000
TRUTH = GroundTruth(
    scenario="t", seed=1, speed=1.0, start_ms=T0, end_ms=T0 + 3_600_000,
    episodes=[Episode(type=AttackType.LEAKED_KEY_PUMP, account="main", key="dca",
                      actor_ip="127.66.0.9", start_ms=T0 + 480_000, end_ms=T0 + 720_000)],
    own_callers=[OwnCaller(account="main", key="dca", ip="127.0.0.2")])


def learned(ip: str, ts: int, severity: Severity = Severity.WARNING) -> Finding:
    return Finding(finding_id=f"f-{ip}-{ts}", ts=ts, rule_id="unknown_ip.learned_caller",
                   signal=Signal.UNKNOWN_IP, severity=severity, account="main", key="dca",
                   title="learned", summary="learned", evidence={"ip": ip}, group={"ip": ip})


def test_own_address_prompt_is_a_confirmation_not_a_catch_nor_false() -> None:
    # inside the pump's episode: before, it was credited to the pump it has nothing to do with
    r = score([learned("127.0.0.2", T0 + 500_000)], TRUTH, 1.0)
    assert r["confirmations"] == 1 and r["false_findings"] == 0
    assert r["per_attack"]["leaked_key_pump"]["caught"] == 0


def test_a_foreign_address_is_still_judged() -> None:
    r = score([learned("127.66.0.9", T0 + 500_000), learned("127.0.0.7", T0 + 60_000)],
              TRUTH, 1.0)
    assert r["confirmations"] == 0 and r["false_findings"] == 1
    assert r["per_attack"]["leaked_key_pump"]["caught"] == 1


def test_a_page_on_the_own_address_is_not_a_prompt() -> None:
    r = score([learned("127.0.0.2", T0 + 60_000, Severity.HIGH)], TRUTH, 1.0)
    assert r["confirmations"] == 0 and r["false_findings"] == 1


def test_per_detector_episodes_delays_and_the_delay_table() -> None:
    start = TRUTH.episodes[0].start_ms
    pump = Finding(finding_id="p", ts=start + 90_000, rule_id="foreign.order",
                   signal=Signal.FOREIGN_ORDER, severity=Severity.HIGH, account="main",
                   key="dca", title="t", summary="s", evidence={}, group={})
    late = pump.model_copy(update={"finding_id": "p2", "ts": start + 200_000})
    r = score([pump, late, learned("127.0.0.7", T0 + 60_000)], TRUTH, 7.0)
    d = r["per_detector"]["foreign.order"]
    assert d["episodes"] == 1 and d["delay_median_s"] == 90.0 and d["false_per_key_week"] == 0
    assert r["per_detector"]["unknown_ip.learned_caller"]["false_per_key_week"] == 1.0
    table = {row["within_s"]: row for row in r["by_delay"]}
    assert table[60]["recall"] == 0 and table[60]["precision"] == 0  # only the false one yet
    assert table[300]["recall"] == 1 and table[300]["precision"] == round(2 / 3, 3)
