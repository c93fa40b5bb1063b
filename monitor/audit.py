"""`keywatch audit`: the seed's checklist as a report per key, fit for cron.

The checks are the detection's posture checks (`monitor.detect.posture.CHECKS`, with the shipped
posture rules' severities and parameters), run once against what Binance says of each key now,
plus the config-level checks that need no Binance call: a declared whitelist that is empty where
the use case makes it mandatory, or that contains a catch-all network.

Binance answers a key's permissions only to that key itself (`apiRestrictions`), so a key can be
verified only if Keywatch holds its secret; for the others the report says so instead of
guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from monitor.config import USE_CASE_POLICY, Config, KeyConfig
from monitor.detect.posture import CHECKS, DAY_MS, KeyFacts
from monitor.detect.rules import Rule
from monitor.features import FeatureContext
from monitor.findings import Severity

# A network this wide is no restriction at all ("do not use 0.0.0.0/0", the seed says).
CATCH_ALL_PREFIX = {4: 8, 6: 32}


@dataclass
class AuditItem:
    account: str
    key: str
    check: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class KeyReport:
    account: str
    key: str
    use_case: str
    verified: bool
    note: str = ""
    due: str | None = None  # rotation due date (UTC, ISO), when the creation time is known
    items: list[AuditItem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["items"] = [i.to_dict() for i in self.items]
        return d


def _config_checks(account: str, key: KeyConfig) -> list[AuditItem]:
    items: list[AuditItem] = []
    mandatory = USE_CASE_POLICY[key.use_case][2]
    nets = key.whitelist_networks()
    if not nets and mandatory:
        items.append(AuditItem(
            account, key.label, "declared_whitelist_empty", Severity.HIGH.value,
            f"key {key.label} ({key.use_case.value}) declares no IP whitelist; the seed makes "
            "one mandatory for this use case",
            {"use_case": key.use_case.value}))
    wide = [str(n) for n in nets if n.prefixlen < CATCH_ALL_PREFIX[n.version]]
    if wide:
        items.append(AuditItem(
            account, key.label, "catch_all_whitelist", Severity.CRITICAL.value,
            f"key {key.label}'s whitelist contains {', '.join(wide)}, which lets (almost) any "
            "address call it: list the exact addresses instead",
            {"networks": wide}))
    return items


def audit_key(cfg: Config, account: str, key: KeyConfig, flags: dict[str, Any] | None,
              rules: list[Rule], now_ms: int, unverified_note: str = "") -> KeyReport:
    """Every posture check for one key; `flags` is its apiRestrictions answer, if we have it."""
    ctx = FeatureContext.from_config(cfg)
    report = KeyReport(account, key.label, key.use_case.value, flags is not None,
                       note=unverified_note)
    report.items += _config_checks(account, key)
    if flags is None:
        return report
    created = flags.get("createTime")
    if isinstance(created, int | float):
        due_ms = int(created) + USE_CASE_POLICY[key.use_case][1] * DAY_MS
        report.due = _iso_day(due_ms)
    for rule in rules:
        if rule.kind != "posture" or rule.params.get("check") == "drift":
            continue
        check = CHECKS.get(str(rule.params.get("check")))
        if check is None:
            continue
        res = check(KeyFacts(account, key.label, now_ms, flags, ctx, rule.params))
        if res is not None:
            report.items.append(AuditItem(account, key.label, rule.id, rule.severity.value,
                                          res[0], res[1]))
    return report


def _iso_day(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def worst(reports: list[KeyReport]) -> Severity | None:
    sevs = [Severity(i.severity) for r in reports for i in r.items]
    return max(sevs, key=lambda s: s.rank) if sevs else None

