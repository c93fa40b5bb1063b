"""The shipped evaluation suite and the default model's recipe, shared by the CLI and tests.

Training uses one seed family (bots the model has seen); evaluation uses other seeds, so the
forest is judged on clients it never saw. `make model` -> `keywatch train --default` ->
`train_default()`: same seed, same data, same model file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.detect.engine import DetectionEngine
from monitor.detect.forest import ForestModel
from monitor.detect.rules import load_rules
from monitor.features import MINUTE_MS, FeatureContext, windows
from monitor.world.evaluate import rhythms as R
from monitor.world.evaluate.generator import generate
from monitor.world.evaluate.rhythms import RhythmTraffic
from monitor.world.evaluate.score import compare, evaluate_modes
from monitor.world.groundtruth import AttackType, Episode, GroundTruth

DEFAULT_MODEL = Path("models/default.skops")
TRAIN_RECIPE = {"keys": 8, "days": 3.0, "seed": 100}
MODEL_SEED = 7


def train_default(out: str | Path = DEFAULT_MODEL) -> ForestModel:
    """Rebuild the shipped model from simulated normal traffic, reproducibly."""
    syn = generate(**TRAIN_RECIPE)  # type: ignore[arg-type]
    w = windows(syn.events, FeatureContext.from_config(syn.config))
    model = ForestModel.fit(w, seed=MODEL_SEED, source=f"synthetic normal traffic {TRAIN_RECIPE}")
    model.save(out)
    return model


def factories(cfg: Any, rules_dir: str | Path, forest: ForestModel | None
              ) -> dict[str, Callable[[], DetectionEngine]]:
    ctx = FeatureContext.from_config(cfg)
    rules = load_rules(rules_dir)
    out: dict[str, Callable[[], DetectionEngine]] = {
        "rules": lambda: DetectionEngine(ctx, rules)}
    if forest is not None:
        out["forest"] = lambda: DetectionEngine(ctx, rules, forest, use_rules=False)
        out["both"] = lambda: DetectionEngine(ctx, rules, forest)
    return out


def modes(events: Any, truth: Any, cfg: Any, rules_dir: str | Path,
          forest: ForestModel | None) -> dict[str, dict[str, Any]]:
    """Rules / forest / both for one labelled run (one replay when there is a forest)."""
    fac = factories(cfg, rules_dir, forest)
    if forest is None:
        return compare(events, truth, fac)
    return evaluate_modes(events, truth, fac["both"])


def rhythm_truth(tr: RhythmTraffic, seed: int) -> GroundTruth:
    """A rhythm run's marked intervals (a sustained rise, a burst on a quiet key) as episodes:
    call-rate misuse, scored as a runaway bot's (the attack type with that signal)."""
    end = int(tr.events["ts"].max()) + MINUTE_MS if len(tr.events) else tr.start_ms
    return GroundTruth(
        scenario="rhythms", seed=seed, speed=0.0, start_ms=tr.start_ms, end_ms=end,
        episodes=[Episode(type=AttackType.RUNAWAY_BOT, account="acct0", key=key, actor_ip=None,
                          start_ms=t0, end_ms=t1, note=what)
                  for key, t0, t1, what in tr.marked_ms()])


def rhythm_runs(seed: int) -> dict[str, tuple[RhythmTraffic, GroundTruth]]:
    """A week of keys with a rhythm of their own (an hourly 200-call burst, a daily and weekly
    cycle, ~3 calls an hour, bot restarts): none may page; and the same kinds of key with a
    3x sustained rise or 30 calls in 10 minutes on the quiet key: each must be caught."""
    normal = R.rhythm_traffic([R.hourly_burst(), R.weekly_cycle(), R.quiet(), R.restart()],
                              seed=seed)
    rises = R.rhythm_traffic([R.sustained_rise(R.hourly_burst()),
                              R.sustained_rise(R.weekly_cycle()), R.quiet_then_burst()],
                             seed=seed + 1)
    return {"rhythms": (normal, rhythm_truth(normal, seed)),
            "rhythm_rises": (rises, rhythm_truth(rises, seed + 1))}


def run_suite(rules_dir: str | Path, forest: ForestModel | None, *, keys: int = 6,
              days: float = 3.0, normal_days: float = 2.0, seed: int = 1) -> dict[str, Any]:
    """A normal-only run (false findings), a run with one episode of every attack type, and
    the rhythm runs (`rhythm_runs`: keys with daily and weekly habits, with and without a
    rise)."""
    normal = generate(keys=keys, days=normal_days, seed=seed)
    attacks = generate(keys=keys, days=days, seed=seed + 1, attacks=list(AttackType))
    runs = {
        "normal": modes(normal.events, normal.truth, normal.config, rules_dir, forest),
        "attacks": modes(attacks.events, attacks.truth, attacks.config, rules_dir, forest),
    }
    for name, (tr, truth) in rhythm_runs(seed).items():
        runs[name] = modes(tr.events, truth, tr.config, rules_dir, forest)
    return {
        "params": {"keys": keys, "days": days, "normal_days": normal_days, "seed": seed,
                   "model": forest.card.get("training") if forest else None},
        "runs": runs,
    }
