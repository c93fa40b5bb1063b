"""Score detectors against ground truth: catches, delays, false findings per key-day.

`evaluate` takes any events frame (synthetic, or a real simulator run loaded from the store),
its `GroundTruth` and a factory for a fresh `DetectionEngine`, replays the events and matches
each firing finding to an episode: same account, same key (or an account-level finding), time
within [start, end + grace], and a signal that names that kind of attack (`EXPECTED`: a
withdrawal seen during a slow misuse does not catch the misuse). Findings that match no episode
are false. `compare` runs several engine set-ups (rules alone, forest alone, both) side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import median
from typing import Any

import pandas as pd

from monitor.core.clock import DAY_MS
from monitor.core.findings import Finding, Severity, Signal
from monitor.detect.engine import DetectionEngine
from monitor.world.groundtruth import AttackType, Episode, GroundTruth

GRACE_MS = 10 * 60_000

# Which signals count as catching an attack type: a finding is judged by what it says, not
# merely by when it fired. The forest's anomaly names no cause, so it counts for any attack that
# changes a key's traffic, never for a control-plane change (restriction off, flags).
_TRAFFIC = {Signal.ANOMALY}
EXPECTED: dict[AttackType, set[Signal]] = {
    AttackType.LEAKED_KEY_PUMP: {Signal.FOREIGN_ORDER, Signal.CALL_RATE, Signal.UNKNOWN_IP,
                                 *_TRAFFIC},
    AttackType.PERMISSION_PROBE: {Signal.UNKNOWN_IP, Signal.FAILURE_RATE, Signal.CALL_RATE,
                                  *_TRAFFIC},
    # sent from a compromised host: on a key without a whitelist, that host is a new caller
    AttackType.OVERSIZED_ORDERS: {Signal.OVERSIZED_REJECT, Signal.FAILURE_RATE, Signal.UNKNOWN_IP,
                                  *_TRAFFIC},
    AttackType.RUNAWAY_BOT: {Signal.CALL_RATE, Signal.FAILURE_RATE, *_TRAFFIC},
    AttackType.IP_RESTRICTION_OFF: {Signal.UNKNOWN_IP, Signal.POSTURE, Signal.DRIFT},
    AttackType.WITHDRAWAL_ENABLED: {Signal.WITHDRAWAL, Signal.POSTURE, Signal.DRIFT,
                                    Signal.UNKNOWN_IP},
    # The moved bot's own orders and cancels now come through the tap from an address its key
    # never declared: without an expected address they have no provenance (issue 14), so
    # foreign.order / foreign.cancel name them; that is this episode's traffic, not a false alarm.
    AttackType.HOST_IP_CHANGED: {Signal.UNKNOWN_IP, Signal.FAILURE_RATE, Signal.FOREIGN_ORDER,
                                 *_TRAFFIC},
    AttackType.SLOW_MISUSE: {Signal.ANOMALY, Signal.FOREIGN_ORDER},
}


def confirmation(f: Finding, truth: GroundTruth) -> bool:
    """A notice (below high) that a key without a whitelist learned a caller, naming one of the
    user's own bots' addresses for that key: the prompt Keywatch shows by design so that
    learning never absorbs a caller unseen (rules/signals.yaml unknown_ip.learned_caller). The
    user answers it once by confirming the address; it is neither a catch nor a false alarm,
    and it is counted on its own (`confirmations`)."""
    if f.signal is not Signal.UNKNOWN_IP or f.severity in (Severity.HIGH, Severity.CRITICAL):
        return False
    ip = f.group.get("ip") or f.evidence.get("ip")
    return any(c.account == f.account and c.key == f.key and c.ip == ip
               for c in truth.own_callers)


def matches(f: Finding, ep: Episode, grace_ms: int) -> bool:
    if f.account != ep.account or f.signal not in EXPECTED[ep.type]:
        return False
    if f.key is not None and ep.key is not None and f.key != ep.key:
        return False
    return ep.start_ms <= f.ts <= ep.end_ms + grace_ms


def key_days(events: pd.DataFrame, truth: GroundTruth) -> float:
    """Distinct keys seen at the tap/log or owning orders, times the run's length in days."""
    src = events["source"].astype(str)
    keys = events.loc[src.isin(["tap", "log"]), ["account", "key"]].dropna().drop_duplicates()
    return max(len(keys), 1) * (truth.end_ms - truth.start_ms) / DAY_MS


def evaluate(events: pd.DataFrame, truth: GroundTruth,
             engine_factory: Callable[[], DetectionEngine], *, grace_ms: int = GRACE_MS,
             kd: float | None = None) -> dict[str, Any]:
    """Replay `events` through a fresh engine and score its findings against `truth`."""
    findings = engine_factory().replay(events)
    return score(findings, truth, kd if kd is not None else key_days(events, truth), grace_ms)


def evaluate_modes(events: pd.DataFrame, truth: GroundTruth,
                   engine_factory: Callable[[], DetectionEngine], *, grace_ms: int = GRACE_MS
                   ) -> dict[str, dict[str, Any]]:
    """Rules alone, forest alone and both from one replay of an engine that has both.

    Valid because detectors share no state (each rule and the forest keep their own cooldown),
    so the forest's findings are the same with or without the rules; a test checks this.
    """
    findings = engine_factory().replay(events)
    kd = key_days(events, truth)
    return {
        "rules": score([f for f in findings if f.detector == "rule"], truth, kd, grace_ms),
        "forest": score([f for f in findings if f.detector == "forest"], truth, kd, grace_ms),
        "both": score(findings, truth, kd, grace_ms),
    }


def score(findings: list[Finding], truth: GroundTruth, kd: float,
          grace_ms: int = GRACE_MS) -> dict[str, Any]:
    """Catches, delays and false findings of a list of findings against ground truth."""
    firing = [f for f in findings if f.state == "firing"]
    findings = [f for f in firing if not confirmation(f, truth)]
    per_attack: dict[str, dict[str, Any]] = {}
    per_detector: dict[str, dict[str, Any]] = {}
    per_signal: dict[str, set[str]] = {}
    matched: set[str] = set()
    for t in AttackType:
        eps = [e for e in truth.episodes if e.type is t]
        if not eps:
            continue
        delays, caught, by = [], 0, set()
        for ep in eps:
            hits = [f for f in findings if matches(f, ep, grace_ms)]
            matched.update(f.finding_id for f in hits)
            for f in hits:
                by.add(f.rule_id)
                per_signal.setdefault(f.signal.value, set()).add(t.value)
            if hits:
                caught += 1
                delays.append(max(0.0, (min(f.ts for f in hits) - ep.start_ms) / 1000))
        per_attack[t.value] = {
            "caught": caught, "total": len(eps),
            "delay_median_s": round(median(delays), 1) if delays else None,
            "delay_worst_s": round(max(delays), 1) if delays else None,
            "detectors": sorted(by),
        }
    for f in findings:
        d = per_detector.setdefault(f.rule_id, {"findings": 0, "false": 0, "attacks": set()})
        d["findings"] += 1
        if f.finding_id not in matched:
            d["false"] += 1
    for name, row in per_attack.items():
        for rid in row["detectors"]:
            per_detector[rid]["attacks"].add(name)
    false = sum(d["false"] for d in per_detector.values())
    return {
        "key_days": round(kd, 2), "findings": len(findings), "false_findings": false,
        "confirmations": len(firing) - len(findings),
        "false_per_key_day": round(false / kd, 3) if kd else None,
        "per_attack": per_attack,
        "per_detector": {k: {**v, "attacks": sorted(v["attacks"])}
                         for k, v in sorted(per_detector.items())},
        "per_signal": {k: sorted(v) for k, v in sorted(per_signal.items())},
    }


def compare(events: pd.DataFrame, truth: GroundTruth,
            factories: dict[str, Callable[[], DetectionEngine]], **kw: Any
            ) -> dict[str, dict[str, Any]]:
    """The same events through several engine set-ups (e.g. rules / forest / both)."""
    return {name: evaluate(events, truth, fac, **kw) for name, fac in factories.items()}


def render(report: dict[str, Any]) -> str:
    """Plain-text tables of a `keywatch eval` report (the JSON holds the same numbers)."""
    lines = []
    for run, modes in report["runs"].items():
        names = list(modes)
        lines.append(f"== {run} ==")
        lines.append(f"{'':<22}" + "".join(f" {n:>28}" for n in names))
        kd = modes[names[0]]["key_days"]
        lines.append(f"{'key-days':<22}" + "".join(f" {kd:>28}" for _ in names))
        lines.append(f"{'false findings/key-day':<22}" + "".join(
            f" {modes[n]['false_per_key_day']:>28}" for n in names))
        attacks = sorted({a for n in names for a in modes[n]["per_attack"]})
        for a in attacks:
            cells = []
            for n in names:
                r = modes[n]["per_attack"].get(a)
                if r is None:
                    cells.append("-")
                elif not r["caught"]:
                    cells.append(f"0/{r['total']}")
                else:
                    cells.append(f"{r['caught']}/{r['total']} med {r['delay_median_s']}s "
                                 f"max {r['delay_worst_s']}s")
            lines.append(f"{a:<22}" + "".join(f" {c:>28}" for c in cells))
        both = modes[names[-1]]
        lines.append("per detector (last set-up): findings / false / attacks caught")
        for rid, d in both["per_detector"].items():
            lines.append(f"  {rid:<36} {d['findings']:>5} {d['false']:>5}  "
                         f"{', '.join(d['attacks']) or '-'}")
        lines.append("per signal (last set-up): " + "; ".join(
            f"{s}: {', '.join(v)}" for s, v in both["per_signal"].items()))
        lines.append("")
    return "\n".join(lines)
