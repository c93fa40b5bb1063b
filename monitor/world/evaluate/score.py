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
    firsts: list[float] = []  # per episode: delay of its first finding (inf: missed)
    true_delays: list[float] = []  # per true finding: its delay after its episode's start
    by_rule: dict[str, list[float]] = {}  # rule -> its first delay in each episode it caught
    for t in AttackType:
        eps = [e for e in truth.episodes if e.type is t]
        if not eps:
            continue
        delays, caught, by = [], 0, set()
        for ep in eps:
            hits = [f for f in findings if matches(f, ep, grace_ms)]
            matched.update(f.finding_id for f in hits)
            first_by_rule: dict[str, float] = {}
            for f in hits:
                by.add(f.rule_id)
                per_signal.setdefault(f.signal.value, set()).add(t.value)
                delay = max(0.0, (f.ts - ep.start_ms) / 1000)
                true_delays.append(delay)
                first_by_rule[f.rule_id] = min(delay, first_by_rule.get(f.rule_id, delay))
            for rid, delay in first_by_rule.items():
                by_rule.setdefault(rid, []).append(delay)
            if hits:
                caught += 1
                delays.append(min(first_by_rule.values()))
            firsts.append(min(first_by_rule.values()) if hits else float("inf"))
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
    weeks = kd / 7
    for rid, d in per_detector.items():
        caught_by = by_rule.get(rid, [])
        d["episodes"] = len(caught_by)
        d["delay_median_s"] = round(median(caught_by), 1) if caught_by else None
        d["false_per_key_week"] = round(d["false"] / weeks, 3) if weeks else None
    false = sum(d["false"] for d in per_detector.values())
    return {
        "key_days": round(kd, 2), "findings": len(findings), "false_findings": false,
        "confirmations": len(firing) - len(findings),
        "false_per_key_day": round(false / kd, 3) if kd else None,
        "false_per_key_week": round(false / weeks, 3) if weeks else None,
        "per_attack": per_attack,
        "per_detector": {k: {**v, "attacks": sorted(v["attacks"])}
                         for k, v in sorted(per_detector.items())},
        "per_signal": {k: sorted(v) for k, v in sorted(per_signal.items())},
        "by_delay": by_delay(firsts, true_delays, false),
    }


DELAY_BOUNDS_S = (10, 60, 300, 900, 3600)


def by_delay(firsts: list[float], true_delays: list[float], false: int) -> list[dict[str, Any]]:
    """Precision and recall when an alert counts only if it came within `within_s` of its
    episode's start: recall = episodes caught that soon / all episodes; precision = findings
    that soon / (those + every false finding). A true finding later than the bound is neither
    (it is not yet the alert the user needed)."""
    out = []
    for b in DELAY_BOUNDS_S:
        tp = sum(1 for d in true_delays if d <= b)
        out.append({"within_s": b,
                    "recall": round(sum(1 for d in firsts if d <= b) / len(firsts), 3)
                    if firsts else None,
                    "precision": round(tp / (tp + false), 3) if tp + false else None})
    return out


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
        lines.append("per detector (last set-up): findings / false / false per key-week / "
                     "episodes caught / median delay / attacks caught")
        for rid, d in both["per_detector"].items():
            delay = "-" if d.get("delay_median_s") is None else f"{d['delay_median_s']}s"
            lines.append(f"  {rid:<36} {d['findings']:>5} {d['false']:>5} "
                         f"{d.get('false_per_key_week', '-')!s:>7} {d.get('episodes', 0):>4} "
                         f"{delay:>8}  {', '.join(d['attacks']) or '-'}")
        if both.get("by_delay"):
            lines.append("precision / recall when the alert must come within: " + "; ".join(
                f"{r['within_s']}s {r['precision']}/{r['recall']}" for r in both["by_delay"]))
        lines.append("per signal (last set-up): " + "; ".join(
            f"{s}: {', '.join(v)}" for s, v in both["per_signal"].items()))
        lines.append("")
    return "\n".join(lines)
