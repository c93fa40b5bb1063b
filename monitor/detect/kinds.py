"""The registry of rule kinds: each declares its parameters, validates them, and builds its
detector.

Window kinds (threshold, baseline_ratio: `windowrules.py`; rate_shift, with memory beyond the
hour: `rateshift.py`; rate_memory, a count against the key's daily and weekly rhythm:
`ratememory.py`) read the closed one-minute windows;
event kinds (new_value, event_match: `eventrules.py`) read enriched events and fire at once;
posture (`posture.py`) reads key_config polls. The engine only sees `Detector`s
(`candidate.py`): adding a kind is one entry here plus its module, never an engine change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from monitor.detect.candidate import Detector
from monitor.detect.eventrules import EventMatch, NewValue
from monitor.detect.ratememory import RateMemory
from monitor.detect.rateshift import RateShift
from monitor.detect.rules import Rule
from monitor.detect.where import EVENT_FIELDS, Errors, _num, validate_where
from monitor.detect.windowrules import BaselineRatio, Threshold
from monitor.features import FEATURES, NEW_VALUE_FIELDS, FeatureContext

SCOPES = ("key", "account", "any")
Params = dict[str, Any]  # a rule's validated parameters, as the YAML gave them
Lists = dict[str, list[Any]]


def _check_metric(p: Params, errs: Errors) -> None:
    m = p.get("metric")
    if m not in FEATURES:
        errs.append(("metric", f"unknown metric {m!r}; known: {', '.join(FEATURES)}"))


def _check_scope(p: Params, errs: Errors) -> None:
    p.setdefault("scope", "any")
    if p["scope"] not in SCOPES:
        errs.append(("scope", f"scope {p['scope']!r} is not one of {', '.join(SCOPES)}"))


def _validate_threshold(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    _check_metric(p, errs)
    _check_scope(p, errs)
    p.setdefault("op", ">=")
    if p["op"] not in (">=", ">"):
        errs.append(("op", "op must be '>=' or '>'"))
    if not _num(p.get("value")):
        errs.append(("value", "threshold needs `value: <number>`"))
    return p, errs


def _validate_baseline(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    _check_metric(p, errs)
    _check_scope(p, errs)
    p.setdefault("baseline_windows", 60)
    p.setdefault("min_history", 10)
    p.setdefault("floor", 1.0)
    if not _num(p.get("ratio")) or p.get("ratio", 0) <= 1:
        errs.append(("ratio", "baseline_ratio needs `ratio: <number > 1>`"))
    if not _num(p.get("min_count")) or p.get("min_count", 0) <= 0:
        errs.append(("min_count", "baseline_ratio needs `min_count: <number > 0>` so one "
                                  "event in a quiet hour is not a jump"))
    for k in ("baseline_windows", "min_history"):
        if not isinstance(p[k], int) or p[k] < 1:
            errs.append((k, f"{k} must be an integer >= 1"))
    if not _num(p["floor"]) or p["floor"] <= 0:
        errs.append(("floor", "floor must be a number > 0"))
    return p, errs


def _validate_rate_shift(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    _check_metric(p, errs)
    _check_scope(p, errs)
    for k, default, low in (("ratio", 10.0, 1.0), ("threshold", 15.0, 0.0),
                            ("floor_per_hour", 1.0, 0.0), ("horizon_days", 7.0, 0.0)):
        p.setdefault(k, default)
        if not _num(p[k]) or p[k] <= low:
            errs.append((k, f"{k} must be a number > {low:g}"))
    return p, errs


def _validate_rate_memory(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    _check_metric(p, errs)
    p.setdefault("scope", "key")
    _check_scope(p, errs)
    for k, default, low in (("ratio", 4.0, 1.0), ("min_excess", 24.0, 0.0),
                            ("floor_per_hour", 6.0, 0.0), ("horizon_days", 7.0, 0.0),
                            ("rise_ratio", 1.75, 1.0), ("rise_threshold", 10.0, 0.0),
                            ("rise_floor_per_minute", 1.0, 0.0), ("clip", 3.0, 1.0)):
        p.setdefault(k, default)
        if not _num(p[k]) or p[k] <= low:
            errs.append((k, f"{k} must be a number > {low:g}"))
    p.setdefault("windows", [1, 10])
    ws = p["windows"]
    if (not isinstance(ws, list) or not ws or len(ws) > 4
            or any(not isinstance(w, int) or isinstance(w, bool) or not 1 <= w <= 60
                   for w in ws)):
        errs.append(("windows", "windows must list 1 to 4 window lengths in minutes (1..60)"))
    elif _num(p["clip"]) and _num(p["rise_ratio"]) and p["clip"] <= p["rise_ratio"]:
        errs.append(("clip", "clip must be above rise_ratio, or no minute adds to the rise"))
    return p, errs


def _validate_new_value(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    if p.get("field") not in NEW_VALUE_FIELDS:
        errs.append(("field", f"new_value field must be one of {', '.join(NEW_VALUE_FIELDS)}"))
    p.setdefault("learn_minutes", 1440)
    if not _num(p["learn_minutes"]) or p["learn_minutes"] < 0:
        errs.append(("learn_minutes", "learn_minutes must be a number >= 0"))
    p.setdefault("while_learning", False)
    if not isinstance(p["while_learning"], bool):
        errs.append(("while_learning", "while_learning must be true or false"))
    if "where" in p:
        p["where"] = validate_where(p["where"], lists, errs)
    return p, errs


def _validate_event_match(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    p, errs = dict(raw), cast(Errors, [])
    p["where"] = validate_where(p.get("where"), lists, errs)
    gb = p.setdefault("group_by", [])
    if not isinstance(gb, list) or any(g not in EVENT_FIELDS for g in gb):
        errs.append(("group_by", f"group_by must list event fields; known: "
                                 f"{', '.join(EVENT_FIELDS)}"))
    return p, errs


def _validate_posture(raw: Params, lists: Lists) -> tuple[Params, Errors]:
    from monitor.detect.posture import CHECKS

    p, errs = dict(raw), cast(Errors, [])
    if p.get("check") not in CHECKS:
        errs.append(("check", f"unknown posture check {p.get('check')!r}; known: "
                              f"{', '.join(sorted(CHECKS))}"))
    for k, v in p.items():
        if k != "check" and not _num(v):
            errs.append((k, f"{k} must be a number"))
    return p, errs


Build = Callable[[Sequence[Rule], FeatureContext], list[Detector]]


def _per_rule(cls: Callable[[Rule], Detector]) -> Build:
    return lambda rules, ctx: [cls(r) for r in rules]


def _posture_detectors(rules: Sequence[Rule], ctx: FeatureContext) -> list[Detector]:
    from monitor.detect.posture import PostureDetector

    return [PostureDetector(rules, ctx)]


@dataclass(frozen=True)
class Kind:
    """A rule kind: its parameter names (the loader refuses others), how to validate them, and
    how its rules become detectors (one per rule, or one for all of the kind's rules)."""

    name: str
    params: tuple[str, ...]
    validate: Callable[[Params, Lists], tuple[Params, Errors]]
    detectors: Build


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("threshold", ("metric", "op", "value", "scope"), _validate_threshold,
         _per_rule(Threshold)),
    Kind("baseline_ratio",
         ("metric", "ratio", "min_count", "baseline_windows", "min_history", "floor", "scope"),
         _validate_baseline, _per_rule(BaselineRatio)),
    Kind("rate_shift",
         ("metric", "ratio", "threshold", "floor_per_hour", "horizon_days", "scope"),
         _validate_rate_shift, _per_rule(RateShift)),
    Kind("rate_memory",
         ("metric", "windows", "ratio", "min_excess", "floor_per_hour", "horizon_days",
          "rise_ratio", "rise_threshold", "rise_floor_per_minute", "clip", "scope"),
         _validate_rate_memory, _per_rule(RateMemory)),
    Kind("new_value", ("field", "learn_minutes", "while_learning", "where"),
         _validate_new_value, _per_rule(NewValue)),
    Kind("event_match", ("where", "group_by"), _validate_event_match, _per_rule(EventMatch)),
    Kind("posture", ("check", "days", "max_ips"), _validate_posture, _posture_detectors),
)}


def build_detectors(rules: Sequence[Rule], ctx: FeatureContext) -> list[Detector]:
    """Every rule's detector, kinds in registry order, rules in file order within a kind."""
    out: list[Detector] = []
    for kind in KINDS.values():
        mine = [r for r in rules if r.kind == kind.name]
        if mine:
            out.extend(kind.detectors(mine, ctx))
    return out
