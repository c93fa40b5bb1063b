"""Shipped scenarios through the real path, scored: what `keywatch eval --scenario` runs.

The simulator plays the scenario in its own process, on its own loopback addresses; the real
service watches it exactly as in the demo (collector over signed REST, the user-data stream and
the tap; detection; alerts through Apprise to a local webhook). Nothing is synthetic after the
simulator's bots and attackers. Then three views of the same run are scored against the
simulator's ground truth:

- `alerts`: the alerts the webhook received, judged by what they say (as the demo judges);
- `live`: the findings the running service raised;
- `rules` / `forest` / `both`: the events the collector stored, replayed through a fresh engine.

Live and replay differ only where timing does (a window that closed late, a restart), so the
table also shows whether the replay numbers are the ones a user would have lived.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.config import load_config
from monitor.core.findings import Finding
from monitor.detect.forest import ForestModel
from monitor.store import SQLiteStore
from monitor.world.demo.receiver import Received
from monitor.world.demo.run import DemoResult, run_demo
from monitor.world.evaluate.score import GRACE_MS, key_days, matches, score
from monitor.world.evaluate.suite import modes
from monitor.world.groundtruth import AttackType, GroundTruth


async def run_scenario(name: str, *, rules_dir: str | Path, forest: ForestModel | None,
                       speed: float = 120.0, seed: int = 7, out: Path = Path("runs"),
                       say: Callable[[str], None] = lambda _m: None) -> dict[str, Any]:
    """Run one shipped scenario against the real service; score alerts, live and replay."""
    result = await run_demo(scenario=name, speed=speed, seed=seed, out=out, say=say)
    return score_run(result, rules_dir=rules_dir, forest=forest, speed=speed)


def score_run(result: DemoResult, *, rules_dir: str | Path, forest: ForestModel | None,
              speed: float) -> dict[str, Any]:
    """Set-up name -> score, plus `run` (where the run's files are, how many events)."""
    cfg = load_config(result.config_path)
    store = SQLiteStore(result.db_path)
    try:
        events = store.load_events()
        findings = store.load_findings()
        kd = key_days(events, result.truth)
        alerts = _alerts_view(result, store, findings, kd)
    finally:
        store.close()
    report: dict[str, Any] = {
        "alerts": alerts,
        "live": score(findings, result.truth, kd),
        **modes(events, result.truth, cfg, rules_dir, forest),
    }
    report["run"] = {"run_dir": str(result.run_dir), "events": int(len(events)),
                     "speed": speed, "scenario": result.truth.scenario,
                     "seed": result.truth.seed}
    return report


def _alerts_view(result: DemoResult, store: SQLiteStore, findings: list[Finding],
                 kd: float) -> dict[str, Any]:
    """Catches and delays as alerts naming the attack; false = alerts matching no episode."""
    truth = result.truth
    per_attack: dict[str, dict[str, Any]] = {}
    for t in AttackType:
        catches = [c for c in result.catches if c.episode.type is t]
        if not catches:
            continue
        delays = sorted(c.delay_ms / 1000 for c in catches if c.delay_ms is not None)
        per_attack[t.value] = {
            "caught": len(delays), "total": len(catches),
            "delay_median_s": round(delays[len(delays) // 2], 1) if delays else None,
            "delay_worst_s": round(delays[-1], 1) if delays else None,
            "detectors": sorted({c.rule_id for c in catches if c.rule_id}),
        }
    by_id = {f.finding_id: f for f in findings}
    verdicts = [_explained(rec, store, by_id, truth) for rec in result.received]
    false = sum(1 for v in verdicts if v is False)
    return {
        "key_days": round(kd, 2), "findings": sum(v is not None for v in verdicts),
        "false_findings": false,
        "false_per_key_day": round(false / kd, 3) if kd else None,
        "per_attack": per_attack, "per_detector": {}, "per_signal": {},
    }


def _explained(rec: Received, store: SQLiteStore, by_id: dict[str, Finding],
               truth: GroundTruth) -> bool | None:
    """True when one of the alert's firing findings falls in an episode; None for an alert
    with no firing finding (a resolved notice, an empty digest), which is no alarm at all."""
    firing = False
    for alert_id in rec.alert_ids:
        alert = store.load_alert(alert_id)
        if alert is None:
            continue
        for item in alert.payload.items:
            f = by_id.get(item.finding_id)
            if f is None or f.state != "firing":
                continue
            firing = True
            if any(matches(f, ep, GRACE_MS) for ep in truth.episodes):
                return True
    return False if firing else None
