"""Key posture and drift from `apiRestrictions` polls (key_config events) plus the config.

The seed's checklist as checks: permissions beyond what the key's use case needs, no IP
restriction, more than 30 declared IPs, key older than its rotation cycle, trading permission
about to lapse on an unrestricted key, the service's egress address missing from the declared
whitelist, and drift (any flag changed since the previous poll). Posture is a *state*: a check
fires when it becomes true and resolves when it clears, instead of repeating every poll.
Drift is a *change*, not a state: reported at each poll that differs from the one before, and
never resolved (`CHANGES`). One detector serves every posture rule, so each poll is parsed once.
"""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitor.config import USE_CASE_POLICY
from monitor.core.clock import DAY_MS
from monitor.core.keyrestrictions import READ_ONLY_FLAGS, KeyConfigPoll, KeyRestrictions
from monitor.detect.candidate import Candidate, Quiet, Row
from monitor.detect.rules import Rule
from monitor.features import FeatureContext

__all__ = ["CHECKS", "READ_ONLY_FLAGS", "KeyFacts", "PostureDetector"]

# A check returns None when fine, else (one-sentence problem, evidence)
Result = tuple[str, dict[str, Any]] | None


@dataclass
class KeyFacts:
    account: str
    key: str
    ts: int
    poll: KeyConfigPoll  # what the poller built from the answer, read back from the event
    ctx: FeatureContext
    params: dict[str, Any]  # the rule's validated parameters (max_ips, days)
    prev: KeyConfigPoll | None = None  # this key's previous poll (None: the first one)

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


def _drift(k: KeyFacts) -> Result:
    if k.prev is None:
        return None
    was, now = k.prev.restrictions.to_dict(), k.r.to_dict()
    changed = {f: [was.get(f), now.get(f)] for f in sorted(set(was) | set(now))
               if was.get(f) != now.get(f)}
    if not changed:
        return None
    names = ", ".join(f"{f} {a}->{b}" for f, (a, b) in changed.items())
    return f"key {k.key} changed since the last poll: {names}", {"changed": changed}


TIMED = frozenset({"key_age", "trading_expiry"})  # checks that read the poll's time
CHANGES = frozenset({"drift"})  # changes between two polls: each reported, never resolved
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
    "drift": _drift,
}
Poll = tuple[int, str, Any, str, str]  # (ts, account, key, event_id, raw answer text)


class PostureDetector(Quiet):
    """Every posture rule over the key_config polls, in time order. A condition check reports
    when it becomes true (firing) and when it clears (resolved); a change check reports each
    change. An unchanged poll re-runs only the checks that read the time."""

    def __init__(self, rules: Sequence[Rule], ctx: FeatureContext) -> None:
        self.rules = tuple(rules)
        self.ctx = ctx
        self.timed = tuple(r for r in self.rules if r.params["check"] in TIMED)
        self.last: dict[tuple[str, str], KeyConfigPoll] = {}  # (account, key) -> last poll
        self.active: set[tuple[str, str, str]] = set()  # (rule, account, key) that hold

    def on_frame(self, e: pd.DataFrame) -> list[Candidate]:
        rows = np.flatnonzero((e["kind"].eq("key_config") & e["raw"].notna()).to_numpy())
        cols = [e[c].to_numpy()[rows] for c in ("ts", "account", "key", "event_id", "raw")]
        return self.polls(zip(*cols, strict=True))

    def on_rows(self, rows: Sequence[Row]) -> list[Candidate]:
        return self.polls((r["ts"], r["account"], r["key"], r["event_id"], r["raw"])
                          for r in rows if r["kind"] == "key_config" and r["raw"] is not None)

    def polls(self, polls: Iterable[Poll]) -> list[Candidate]:
        out: list[Candidate] = []
        parsed: dict[str, KeyConfigPoll | None] = {}  # polls repeat the same JSON: parse once
        results: dict[tuple[str, str, str, str], Result] = {}
        for ts, acct, key, eid, raw in polls:
            if raw not in parsed:
                parsed[raw] = KeyConfigPoll.from_raw(raw)
            flags = parsed[raw]
            if flags is None:
                continue
            label = key if isinstance(key, str) and key else self.ctx.monitor_keys.get(acct, "")
            prev = self.last.get((acct, label))
            self.last[(acct, label)] = flags
            for rule in self.timed if prev is flags else self.rules:
                check = rule.params["check"]
                facts = KeyFacts(acct, label, int(ts), flags, self.ctx, rule.params, prev)
                if check in TIMED or check in CHANGES:
                    res = CHECKS[check](facts)
                else:  # a pure function of the poll's text, the key and the config: once each
                    ck = (rule.id, acct, label, raw)
                    if ck not in results:
                        results[ck] = CHECKS[check](facts)
                    res = results[ck]
                cand = self._report(rule, check in CHANGES, res, int(ts), acct, label, eid)
                if cand is not None:
                    out.append(cand)
        return out

    def _report(self, rule: Rule, change: bool, res: Result, ts: int, acct: str, label: str,
                eid: str) -> Candidate | None:
        def cand(summary: str, evidence: dict[str, Any], state: str = "firing") -> Candidate:
            return Candidate(rule=rule, ts=ts, account=acct, key=label, anchor=eid,
                             summary=summary, evidence=evidence, state=state)
        if change:
            return None if res is None else cand(res[0], copy.deepcopy(res[1]))
        tag = (rule.id, acct, label)
        if (res is not None) == (tag in self.active):
            return None  # no change of state: nothing to report
        if res is not None:
            self.active.add(tag)
            return cand(res[0], copy.deepcopy(res[1]))
        self.active.discard(tag)
        return cand(f"resolved: {rule.title} no longer holds for key {label}", {},
                    "resolved")
