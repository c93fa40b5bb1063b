"""Table-driven edges for every rule kind: fires exactly at the edge, not just below it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.core.findings import Finding
from monitor.detect.engine import DetectionEngine
from monitor.detect.rules import load_rules
from monitor.features import FeatureContext
from tests.detect.helpers import MIN, T0, ev, make_config, order

DAY = 1440 * MIN


def engine_with(tmp_path: Path, rule_yaml: str, **cfg_kw: object) -> DetectionEngine:
    (tmp_path / "r.yaml").write_text("rules:\n" + rule_yaml)
    cfg = make_config(**cfg_kw)  # type: ignore[arg-type]
    return DetectionEngine(FeatureContext.from_config(cfg), load_rules(tmp_path))


def run(engine: DetectionEngine, events: list) -> list[Finding]:
    events = sorted(events, key=lambda e: e.ts)
    out = engine.process(events)
    return out + engine.tick(events[-1].ts + 10 * MIN)


COMMON = """    title: t
    signal: call_rate_spike
    severity: high
    description: d
    action: a
"""


@pytest.mark.parametrize("op, count, fires", [
    (">=", 9, False), (">=", 10, True), (">", 10, False), (">", 11, True),
])
def test_threshold_edges(tmp_path: Path, op: str, count: int, fires: bool) -> None:
    eng = engine_with(tmp_path, f"""  - id: thr
    kind: threshold
    metric: requests
    op: "{op}"
    value: 10
    scope: key
{COMMON}""")
    events = [ev(ts=T0 + i) for i in range(count)]
    assert bool([f for f in run(eng, events) if f.rule_id == "thr"]) is fires


BASE = """  - id: base
    kind: baseline_ratio
    metric: failures
    ratio: 4
    min_count: 10
    min_history: 5
    baseline_windows: 30
    scope: key
""" + COMMON


def _failures(minute: int, n: int, ok: int = 20) -> list:
    t = T0 + minute * MIN
    return ([ev(ts=t + i, status=401, code=-2015) for i in range(n)]
            + [ev(ts=t + 30_000 + i) for i in range(ok)])


@pytest.mark.parametrize("history, current, fires", [
    (3, 11, False),   # 11 < 4 x baseline 3
    (3, 12, True),    # exactly 4 x baseline
    (0, 9, False),    # quiet key: below min_count, not a "jump"
    (0, 10, True),    # at min_count against the floor
    (5, 19, False),
    (5, 20, True),
])
def test_baseline_ratio_edges(tmp_path: Path, history: int, current: int, fires: bool) -> None:
    eng = engine_with(tmp_path, BASE)
    events = [e for m in range(10) for e in _failures(m, history)] + _failures(10, current)
    hits = [f for f in run(eng, events) if f.rule_id == "base"]
    assert bool(hits) is fires
    if fires:
        assert hits[0].evidence["baseline"] == history
        assert hits[0].ts == T0 + 11 * MIN


def test_baseline_needs_history(tmp_path: Path) -> None:
    eng = engine_with(tmp_path, BASE)
    events = [e for m in range(3) for e in _failures(m, 0)] + _failures(3, 50)
    assert not [f for f in run(eng, events) if f.rule_id == "base"]  # 3 < min_history


NEW_IP = """  - id: newip
    kind: new_value
    field: ip
    learn_minutes: 60
""" + COMMON


@pytest.mark.parametrize("whitelist, ip, at_minute, fires", [
    (["10.0.0.0/24"], "10.0.0.9", 5, False),    # whitelisted: never
    (["10.0.0.0/24"], "10.0.1.9", 5, True),     # outside the whitelist: even while learning
    ([], "10.0.1.9", 59, False),                 # no whitelist, still learning: learned
    ([], "10.0.1.9", 60, True),                  # no whitelist, after learning: new
    ([], "10.0.0.5", 120, False),                # the usual address
])
def test_new_value_edges(tmp_path: Path, whitelist: list[str], ip: str, at_minute: int,
                         fires: bool) -> None:
    eng = engine_with(tmp_path, NEW_IP, whitelist=whitelist)
    events = [ev(ts=T0)] + [ev(ts=T0 + at_minute * MIN + i, ip=ip) for i in range(3)]
    hits = [f for f in run(eng, events) if f.rule_id == "newip"]
    assert len(hits) == (1 if fires else 0)  # one finding per new address, not per call
    if fires:
        assert hits[0].group == {"ip": ip} and hits[0].evidence["ip"] == ip


@pytest.mark.parametrize("whitelist, ip, at_minute, judged, learned", [
    (["10.0.0.0/24"], "10.0.0.9", 5, False, False),  # whitelisted: nothing to learn
    (["10.0.0.0/24"], "10.0.1.9", 5, True, False),   # outside it: judged, not learned
    ([], "10.0.1.9", 59, False, True),                # learning: reported, never absorbed
    ([], "10.0.1.9", 60, True, False),                # after learning: judged
    ([], "10.0.0.5", 120, False, False),              # the usual address (its first call
])                                                    # was reported at T0)
def test_new_value_while_learning_reports_what_the_judge_learns(
        tmp_path: Path, whitelist: list[str], ip: str, at_minute: int, judged: bool,
        learned: bool) -> None:
    """Issue 14: a first sighting is either judged (newip) or, learned silently by it,
    reported by its `while_learning` twin: never neither, never both."""
    twin = NEW_IP.replace("id: newip", "id: learned").replace(
        "learn_minutes: 60\n", "learn_minutes: 60\n    while_learning: true\n")
    eng = engine_with(tmp_path, NEW_IP + twin, whitelist=whitelist)
    events = [ev(ts=T0)] + [ev(ts=T0 + at_minute * MIN + i, ip=ip) for i in range(3)]
    hits = run(eng, events)
    first = [] if whitelist else [("learned", "10.0.0.5")]  # the key's very first address
    want = first + [(r, ip) for r, on in (("newip", judged), ("learned", learned)) if on]
    assert sorted((f.rule_id, f.group["ip"]) for f in hits) == sorted(set(want))
    for f in hits:
        if f.rule_id == "learned":
            assert f"--ip {f.group['ip']}" in f.summary and "ip_whitelist" in f.summary


OVERSIZED = """  - id: big
    kind: event_match
    where:
      is_order_req: true
      fclass: {in: [balance, filter]}
      notional_to_free: {gt: 1.5}
    cooldown_minutes: 0
""" + COMMON


@pytest.mark.parametrize("free, notional, side, fires", [
    (1000.0, 1500.0, "BUY", False),    # exactly 1.5x: not above
    (1000.0, 1500.5, "BUY", True),
    (None, 1500.5, "BUY", False),       # no balance known: no ratio, no claim
    (0.05, 6000.0, "SELL", False),      # sells 6000 of 0.05 BTC x 65000 = 3250: 1.85x..
    (0.05, 4875.0, "SELL", False),      # ..1.5x exactly
    (0.05, 4876.0, "SELL", True),
])
def test_event_match_oversized_edges(tmp_path: Path, free: float | None, notional: float,
                                     side: str, fires: bool) -> None:
    eng = engine_with(tmp_path, OVERSIZED)
    events = []
    if free is not None:
        asset = "USDT" if side == "BUY" else "BTC"
        events.append(ev("balance", source="stream", key="mon", asset=asset, free=free,
                         locked=0.0))
    events.append(order(T0 + 1000, status=400, code=-2010, notional=notional, side=side))
    hits = [f for f in run(eng, events) if f.rule_id == "big"]
    if side == "SELL" and notional == 6000.0:
        fires = True  # 1.85x
    assert bool(hits) is fires
    if fires:
        assert hits[0].evidence["free_value"] > 0 and hits[0].action == "a"


def test_event_match_balance_is_as_of_the_reject(tmp_path: Path) -> None:
    eng = engine_with(tmp_path, OVERSIZED)
    events = [
        ev("balance", ts=T0, source="stream", key="mon", asset="USDT", free=100.0, locked=0.0),
        ev("balance", ts=T0 + 5, source="stream", key="mon", asset="USDT", free=10_000.0,
           locked=0.0),
        order(T0 + 10, status=400, code=-2010, notional=2000.0),
    ]
    assert not [f for f in run(eng, events) if f.rule_id == "big"]  # 0.2x of the latest


def flags(**kw: object) -> str:
    base = {"ipRestrict": True, "createTime": T0 - 10 * DAY, "enableReading": True,
            "enableSpotAndMarginTrading": True, "enableWithdrawals": False,
            "enableFutures": False}
    base.update(kw)
    return json.dumps(base)


def posture_rule(check: str, extra: str = "") -> str:
    return f"""  - id: p
    kind: posture
    check: {check}
{extra}""" + COMMON.replace("call_rate_spike", "posture")


@pytest.mark.parametrize("check, use_case, raw, fires", [
    ("withdrawals_unneeded", "spot-bot", flags(enableWithdrawals=True), True),
    ("withdrawals_unneeded", "withdrawal", flags(enableWithdrawals=True), False),
    ("withdrawals_unneeded", "spot-bot", flags(), False),
    ("futures_unneeded", "spot-bot", flags(enableFutures=True), True),
    ("futures_unneeded", "futures-bot", flags(enableFutures=True), False),
    ("extra_permissions", "monitoring", flags(), True),   # read-only key that can trade
    ("no_ip_restriction", "spot-bot", flags(ipRestrict=False), True),
    ("no_ip_restriction", "spot-bot", flags(), False),
    ("key_age", "spot-bot", flags(createTime=T0 - 90 * DAY), False),  # exactly 90 days
    ("key_age", "spot-bot", flags(createTime=T0 - 91 * DAY), True),
    ("key_age", "tax", flags(createTime=T0 - 300 * DAY), False),
    ("trading_expiry", "spot-bot",
     flags(ipRestrict=False, tradingAuthorityExpirationTime=T0 + 7 * DAY), True),
    ("trading_expiry", "spot-bot",
     flags(ipRestrict=False, tradingAuthorityExpirationTime=T0 + 8 * DAY), False),
    ("trading_expiry", "spot-bot",
     flags(ipRestrict=True, tradingAuthorityExpirationTime=T0 + DAY), False),
])
def test_posture_edges(tmp_path: Path, check: str, use_case: str, raw: str, fires: bool) -> None:
    extra = "    days: 7\n" if check == "trading_expiry" else ""
    eng = engine_with(tmp_path, posture_rule(check, extra), use_case=use_case)
    hits = run(eng, [ev("key_config", source="rest", raw=raw)])
    assert bool(hits) is fires


def test_posture_fires_once_then_resolves(tmp_path: Path) -> None:
    eng = engine_with(tmp_path, posture_rule("no_ip_restriction"))
    polls = [ev("key_config", ts=T0 + i * MIN, source="rest", raw=flags(ipRestrict=i < 3))
             for i in range(6)] + [ev("key_config", ts=T0 + 9 * MIN, source="rest",
                                      raw=flags())]
    states = [f.state for f in run(eng, polls)]
    assert states == ["firing", "resolved"]


def test_too_many_ips_and_egress(tmp_path: Path) -> None:
    many = [f"10.1.0.{i}" for i in range(31)]
    eng = engine_with(tmp_path, posture_rule("too_many_ips", "    max_ips: 30\n"),
                      whitelist=many)
    assert run(eng, [ev("key_config", source="rest", raw=flags())])
    eng = engine_with(tmp_path, posture_rule("egress_not_whitelisted"), egress="198.51.100.7",
                      monitor_whitelist=["198.51.100.8"])
    hit = run(eng, [ev("key_config", source="rest", key="mon", raw=flags())])
    assert hit and hit[0].evidence["egress_ip"] == "198.51.100.7"


def test_drift_reports_each_change(tmp_path: Path) -> None:
    eng = engine_with(tmp_path, posture_rule("drift") + "    cooldown_minutes: 0\n")
    polls = [ev("key_config", ts=T0, source="rest", raw=flags()),
             ev("key_config", ts=T0 + MIN, source="rest", raw=flags()),
             ev("key_config", ts=T0 + 2 * MIN, source="rest", raw=flags(enableWithdrawals=True)),
             ev("key_config", ts=T0 + 3 * MIN, source="rest", raw=flags())]
    hits = run(eng, polls)
    assert [h.evidence["changed"] for h in hits] == [
        {"enableWithdrawals": [False, True]}, {"enableWithdrawals": [True, False]}]


def test_exceptions_hook_and_cooldown(tmp_path: Path) -> None:
    eng = engine_with(tmp_path, NEW_IP.replace("    learn_minutes: 60\n",
                                               "    learn_minutes: 1\n    exceptions:\n"
                                               "      - {ip: 10.9.9.9}\n"))
    events = [ev(ts=T0), ev(ts=T0 + 2 * MIN, ip="10.9.9.9"), ev(ts=T0 + 3 * MIN, ip="10.9.9.8")]
    hits = run(eng, events)
    assert [h.group["ip"] for h in hits] == ["10.9.9.8"]
    (tmp_path / "x").mkdir()
    thr = engine_with(tmp_path / "x", f"""  - id: thr
    kind: threshold
    metric: requests
    value: 1
    cooldown_minutes: 3
{COMMON}""")
    events = [ev(ts=T0 + m * MIN + 5_000) for m in range(7)]
    # a count fires on the event that crosses its line (5 s into each minute), not at the close
    assert [f.ts for f in run(thr, events)] == [T0 + 5_000, T0 + 3 * MIN + 5_000,
                                                T0 + 6 * MIN + 5_000]
