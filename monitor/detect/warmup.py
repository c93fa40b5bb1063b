"""What each detector needs to have seen of a key before it judges it: warm-up, made explicit.

A new key (or a fresh install) is not watched equally from its first minute: a whitelist or a
threshold judges the first event, a baseline needs some windows of the key, the call-rate memory
an hour for spikes and a day for sustained rises, an unwhitelisted key's callers a learning day.
Each rule kind says its stages here, once, from its own parameters (`WARM_UP`, one entry per
kind, tests/detect/test_warmup.py checks every kind has one); `plan` groups a rule set's stages
("from the first event", "after an hour", "after a day") and `key_progress` says, for a key seen
for so many minutes, which rules are still learning it. `keywatch audit` prints the plan and
`/healthz` the plan and each key's progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict

from monitor.detect.rules import Rule


@dataclass(frozen=True, slots=True)
class Stage:
    """A rule judges `what` once it has seen a key for `minutes` (0: from its first event);
    `whitelisted_at_once`: a key with a declared IP whitelist skips this wait."""

    minutes: int
    what: str
    whitelisted_at_once: bool = False


Stages = tuple[Stage, ...]


def _at_once(what: str) -> Callable[[Mapping[str, Any]], Stages]:
    return lambda p: (Stage(0, what),)


def _new_value(p: Mapping[str, Any]) -> Stages:
    if p.get("while_learning"):
        return (Stage(0, "reports each caller a key learns without a whitelist"),)
    return (Stage(int(p.get("learn_minutes", 1440)), "unfamiliar callers (a key's callers "
                  "are learned first; with a declared whitelist, at once)",
                  whitelisted_at_once=True),)


def _rate_memory(p: Mapping[str, Any]) -> Stages:
    return (Stage(120, "call-rate spikes against the key's hour of day (from its second clock "
                       "hour)"),
            Stage(1440, "sustained call-rate rises (from the key's second day; on its first "
                        "weekend, from the second weekend day)"))


WARM_UP: dict[str, Callable[[Mapping[str, Any]], Stages]] = {
    "threshold": _at_once("a line on one minute's count, on the event that crosses it"),
    "event_match": _at_once("each matching event"),
    "posture": _at_once("each key's permissions, on the first poll"),
    "rate_shift": _at_once("a rise over the key's long-run rate (a prior until it has one)"),
    "new_value": _new_value,
    "baseline_ratio": lambda p: (Stage(int(p.get("min_history", 10)), "jumps over the median "
                                       "of the key's recent minutes"),),
    "rate_memory": _rate_memory,
    "forest": lambda p: (Stage(10, "unusual minutes, scaled to the key's own level and "
                                   "peak (its first 10 windows read as usual)"),),
}


def stages(rule: Rule) -> Stages:
    return WARM_UP[rule.kind](rule.params)


class PlanStep(TypedDict):
    after_minutes: int
    when: str
    rules: list[str]


class Learning(TypedDict):
    rule: str
    ready_in_minutes: int


class KeyWarmUp(TypedDict):
    account: str
    key: str
    seen_minutes: int
    learning: list[Learning]


class WarmUpReport(TypedDict):
    plan: list[PlanStep]
    keys: list[KeyWarmUp]


def _when(minutes: int) -> str:
    if minutes == 0:
        return "from the first event"
    if minutes < 60:
        return f"after {minutes} minutes"
    if minutes < 1440:
        return "after an hour" if minutes <= 60 else f"after {minutes / 60:g} hours"
    return "after a day" if minutes <= 1440 else f"after {minutes / 1440:g} days"


def plan(rules: Sequence[Rule]) -> list[PlanStep]:
    """The rules' stages grouped by how long a key must have been seen, soonest first."""
    by: dict[int, list[str]] = {}
    for r in rules:
        for s in stages(r):
            label = f"{r.id}: {s.what}"
            by.setdefault(s.minutes, []).append(label)
    return [PlanStep(after_minutes=m, when=_when(m), rules=by[m]) for m in sorted(by)]


def key_progress(rules: Sequence[Rule], account: str, key: str, seen_minutes: int,
                 whitelisted: bool) -> KeyWarmUp:
    """For a key seen for `seen_minutes`: the rules (stages) that do not judge it yet."""
    learning = [Learning(rule=f"{r.id}: {s.what}", ready_in_minutes=s.minutes - seen_minutes)
                for r in rules for s in stages(r)
                if s.minutes > seen_minutes and not (s.whitelisted_at_once and whitelisted)]
    return KeyWarmUp(account=account, key=key, seen_minutes=seen_minutes, learning=learning)
