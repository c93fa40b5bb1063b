"""Key posture and drift from `apiRestrictions` polls (key_config events) plus the config.

The seed's checklist as checks: permissions beyond what the key's use case needs, no IP
restriction, more than 30 declared IPs, key older than its rotation cycle, trading permission
about to lapse on an unrestricted key, the service's egress address missing from the declared
whitelist, and drift (any flag changed since the previous poll). Posture is a *state*: a check
fires when it becomes true and resolves when it clears, instead of repeating every poll.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import USE_CASE_POLICY
from monitor.core.clock import DAY_MS
from monitor.core.keyrestrictions import READ_ONLY_FLAGS, KeyConfigPoll, KeyRestrictions
from monitor.features import FeatureContext

__all__ = ["CHECKS", "READ_ONLY_FLAGS", "KeyFacts", "PostureState", "evaluate", "evaluate_polls"]

# A check returns None when fine, else (one-sentence problem, evidence)
Result = tuple[str, dict[str, Any]] | None


@dataclass
class KeyFacts:
    account: str
    key: str
    ts: int
    poll: KeyConfigPoll  # what the poller built from the answer, read back from the event
    ctx: FeatureContext
    params: dict[str, Any]

    @property
    def r(self) -> KeyRestrictions:
        return self.poll.restrictions

    @property
    def needed(self) -> frozenset[str]:
        uc = self.ctx.use_cases.get((self.account, self.key))
        return USE_CASE_POLICY[uc][0] if uc else frozenset({"enableReading"})

    @property
    def use_case(self) -> str:
        uc = self.ctx.use_cases.get((self.account, self.key))
        return uc.value if uc else "unknown (not in the config)"


def _flag_unneeded(flag: str) -> Callable[[KeyFacts], Result]:
    def check(k: KeyFacts) -> Result:
        if k.r.enabled(flag) and flag not in k.needed:
            return (f"key {k.key} has {flag} on, which its use case ({k.use_case}) does not need",
                    {"flag": flag, "use_case": k.use_case, "needed": sorted(k.needed)})
        return None
    return check


def _extra_permissions(k: KeyFacts) -> Result:
    extra = sorted(f for f, v in k.r.flags.items()
                   if f.startswith(("enable", "permits")) and v is True
                   and f not in k.needed | READ_ONLY_FLAGS
                   and f not in ("enableWithdrawals", "enableFutures"))
    if extra:
        return (f"key {k.key} has permissions its use case ({k.use_case}) does not need: "
                f"{', '.join(extra)}", {"extra": extra, "use_case": k.use_case})
    return None


def _no_ip_restriction(k: KeyFacts) -> Result:
    if not k.r.ip_restrict:
        uc = k.ctx.use_cases.get((k.account, k.key))
        mandatory = USE_CASE_POLICY[uc][2] if uc else True
        return (f"key {k.key} has no IP restriction: anyone holding it can call from anywhere",
                {"ipRestrict": False, "restriction_mandatory_for_use_case": mandatory})
    return None


def _too_many_ips(k: KeyFacts) -> Result:
    nets = k.ctx.whitelists.get((k.account, k.key)) or []
    limit = int(k.params.get("max_ips", 30))
    if len(nets) > limit:
        return (f"key {k.key} declares {len(nets)} whitelisted IPs (more than {limit})",
                {"declared_ips": len(nets), "limit": limit})
    return None


def _key_age(k: KeyFacts) -> Result:
    created = k.r.create_time
    uc = k.ctx.use_cases.get((k.account, k.key))
    if uc is None:
        return None
    days = USE_CASE_POLICY[uc][1]
    age = (k.ts - created) / DAY_MS
    if age > days:
        return (f"key {k.key} is {age:.0f} days old, past its {days}-day rotation cycle "
                f"({uc.value})", {"age_days": round(age, 1), "rotation_days": days})
    return None


def _trading_expiry(k: KeyFacts) -> Result:
    exp = k.r.trading_expiry
    if exp is None or k.r.ip_restrict:
        return None
    left = (exp - k.ts) / DAY_MS
    if left <= float(k.params.get("days", 7)):
        return (f"key {k.key} is unrestricted and its trading permission lapses in "
                f"{max(left, 0):.1f} days", {"expires_ms": int(exp), "days_left": round(left, 1)})
    return None


def _egress_not_whitelisted(k: KeyFacts) -> Result:
    nets = k.ctx.whitelists.get((k.account, k.key)) or []
    egress = k.ctx.egress_ip
    if not egress or not nets or k.ctx.monitor_keys.get(k.account) != k.key:
        return None
    if not any(ipaddress.ip_address(egress) in n for n in nets):
        return (f"the service's egress address {egress} is not in key {k.key}'s declared "
                "whitelist; its calls will be refused (-2015) if the address changed",
                {"egress_ip": egress, "whitelist": [str(n) for n in nets]})
    return None


def _monitor_key_retired(k: KeyFacts) -> Result:
    """The poller's own decision, read from the poll: it stopped using the monitor key."""
    if not k.poll.retired_for:
        return None
    gained = list(k.poll.retired_for)
    return (f"the monitor key {k.key} gained {', '.join(gained)} while Keywatch was running; "
            "a read-only monitor key must never trade or withdraw, so Keywatch stopped signing "
            f"with it: account {k.account} is no longer polled or subscribed until you fix it",
            {"gained": gained, "stopped": ["polling", "stream subscriptions"]})


TIMED = frozenset({"key_age", "trading_expiry"})  # checks that read the poll's time
CHECKS: dict[str, Callable[[KeyFacts], Result]] = {
    "withdrawals_unneeded": _flag_unneeded("enableWithdrawals"),
    "futures_unneeded": _flag_unneeded("enableFutures"),
    "extra_permissions": _extra_permissions,
    "no_ip_restriction": _no_ip_restriction,
    "too_many_ips": _too_many_ips,
    "key_age": _key_age,
    "trading_expiry": _trading_expiry,
    "egress_not_whitelisted": _egress_not_whitelisted,
    "monitor_key_retired": _monitor_key_retired,
    "drift": lambda k: None,  # handled with the previous poll in `evaluate`
}


@dataclass
class PostureState:
    last_flags: dict[tuple[str, str], KeyConfigPoll] = field(default_factory=dict)
    active: set[tuple[str, str, str]] = field(default_factory=set)


def evaluate(rules: list[Any], events: pd.DataFrame, ctx: FeatureContext,
             states: dict[str, PostureState]) -> list[dict[str, Any]]:
    """key_config events (in time order) -> candidate findings (with their rule) for the
    posture rules; each rule keeps its own state in `states[rule.id]`. Each poll is parsed once.
    """
    if not rules:
        return []
    rows = np.flatnonzero((events["kind"].eq("key_config") & events["raw"].notna()).to_numpy())
    cols = [events[c].to_numpy()[rows] for c in ("ts", "account", "key", "event_id", "raw")]
    return evaluate_polls(rules, zip(*cols, strict=True), ctx, states)


def evaluate_polls(rules: list[Any], polls: Iterable[tuple[int, str, Any, str, str]],
                   ctx: FeatureContext, states: dict[str, PostureState]) -> list[dict[str, Any]]:
    """`evaluate` over (ts, account, key, event_id, raw) of key_config polls in time order;
    the live engine calls this per event, without a frame."""
    out: list[dict[str, Any]] = []
    parsed: dict[str, KeyConfigPoll | None] = {}  # polls repeat the same JSON: parse once
    results: dict[tuple[str, str, str, str], Result] = {}
    timed = [r for r in rules if r.params["check"] in TIMED]
    if not rules:
        return out
    for ts, acct, key, eid, raw in polls:
        if raw not in parsed:
            parsed[raw] = KeyConfigPoll.from_raw(raw)
        flags = parsed[raw]
        if flags is None:
            continue
        label = key if isinstance(key, str) and key else ctx.monitor_keys.get(acct, "")
        first = states.setdefault(rules[0].id, PostureState())
        # the same text as this key's last poll: only the checks that read the time can change
        for rule in timed if first.last_flags.get((acct, label)) is flags else rules:
            st = states.setdefault(rule.id, PostureState())
            prev = st.last_flags.get((acct, label))
            check = rule.params["check"]
            st.last_flags[(acct, label)] = flags
            if check == "drift":
                if prev is None:
                    continue
                base = {"rule": rule, "ts": int(ts), "account": acct, "key": label,
                        "group": {}, "anchor": eid}
                was, now = prev.restrictions.to_dict(), flags.restrictions.to_dict()
                changed = {f: [was.get(f), now.get(f)] for f in sorted(set(was) | set(now))
                           if was.get(f) != now.get(f)}
                if changed:
                    names = ", ".join(f"{f} {a}->{b}" for f, (a, b) in changed.items())
                    out.append({**base, "summary": f"key {label} changed since the last poll: "
                                f"{names}", "evidence": {"changed": changed}})
                continue
            if check in TIMED:
                res = CHECKS[check](KeyFacts(acct, label, int(ts), flags, ctx, rule.params))
            else:  # a pure function of the poll's text, the key and the config: once each
                ck = (rule.id, acct, label, raw)
                if ck not in results:
                    results[ck] = CHECKS[check](KeyFacts(acct, label, int(ts), flags, ctx,
                                                         rule.params))
                res = results[ck]
            tag = (rule.id, acct, label)
            if (res is not None) == (tag in st.active):
                continue  # no change of state: nothing to report
            base = {"rule": rule, "ts": int(ts), "account": acct, "key": label, "group": {},
                    "anchor": eid}
            if res is not None and tag not in st.active:
                st.active.add(tag)
                out.append({**base, "summary": res[0], "evidence": copy.deepcopy(res[1])})
            elif res is None and tag in st.active:
                st.active.discard(tag)
                out.append({**base, "summary": f"resolved: {rule.title} no longer holds for "
                            f"key {label}", "evidence": {}, "state": "resolved"})
    return out
