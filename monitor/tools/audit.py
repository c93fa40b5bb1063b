"""`keywatch audit`: Binance's key-security checklist as a report per key, fit for cron.

The checks are the detection's posture checks (`monitor.detect.posture.CHECKS`, with the shipped
posture rules' severities and parameters), run once against what Binance says of each key now,
plus the config-level checks that need no Binance call: a declared whitelist that is empty where
the use case makes it mandatory, or that contains a catch-all network.

Binance answers a key's permissions only to that key itself (`apiRestrictions`), so a key can be
verified only if Keywatch holds its secret; for the others the report says so instead of
guessing: such a key is "not checked", never "ok". Rotation is due from the key's creation:
`createTime` from `apiRestrictions` when the key could be read, else the config's `created`.
Every problem carries the rule's action text, in the table and in `--json`.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, TypedDict

from monitor.config import USE_CASE_POLICY, Config, KeyConfig
from monitor.core.findings import Severity
from monitor.core.keyrestrictions import KeyConfigPoll, KeyRestrictions
from monitor.core.keys import KeyType
from monitor.core.wirefields import JsonObject
from monitor.detect.posture import CHECKS, DAY_MS, KeyFacts
from monitor.detect.rules import Rule
from monitor.features import FeatureContext

# A network this wide is no restriction at all ("do not use 0.0.0.0/0", says Binance's
# key-security checklist).
CATCH_ALL_PREFIX = {4: 8, 6: 32}


Evidence = dict[str, Any]
"""What a check saw (its own facts, JSON-ready): free-form by design, as a finding's evidence."""


class AuditItemJson(TypedDict):
    account: str
    key: str
    check: str
    severity: str
    message: str
    evidence: Evidence
    action: str


class KeyReportJson(TypedDict):
    """One key in `keywatch audit --json`."""

    account: str
    key: str
    use_case: str
    key_type: str
    advice: str
    verified: bool
    note: str
    fix: str
    created: str | None
    due: str | None
    items: list[AuditItemJson]
    status: str


@dataclass
class AuditItem:
    account: str
    key: str
    check: str
    severity: str
    message: str
    evidence: Evidence = field(default_factory=dict)
    action: str = ""  # what to do, the rule's own text

    def to_dict(self) -> AuditItemJson:
        return AuditItemJson(account=self.account, key=self.key, check=self.check,
                             severity=self.severity, message=self.message,
                             evidence=deepcopy(self.evidence), action=self.action)


@dataclass
class KeyReport:
    account: str
    key: str
    use_case: str
    verified: bool
    key_type: str = "hmac"
    advice: str = ""  # the key type's recommendation (not a finding: it changes no status)
    note: str = ""
    fix: str = ""  # for a key not checked: how to let Keywatch read it
    created: str | None = None  # creation date (UTC, ISO): apiRestrictions createTime
    due: str | None = None  # rotation due date (UTC, ISO), when the creation time is known
    items: list[AuditItem] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'ok', 'not checked' (Binance's answer for this key could not be read) or the worst
        severity found."""
        if self.items:
            return max((Severity(i.severity) for i in self.items), key=lambda s: s.rank).value
        return "ok" if self.verified else "not checked"

    def to_dict(self) -> KeyReportJson:
        return KeyReportJson(account=self.account, key=self.key, use_case=self.use_case,
                             key_type=self.key_type, advice=self.advice,
                             verified=self.verified, note=self.note, fix=self.fix,
                             created=self.created, due=self.due,
                             items=[i.to_dict() for i in self.items], status=self.status)


def _config_checks(account: str, key: KeyConfig) -> list[AuditItem]:
    items: list[AuditItem] = []
    mandatory = USE_CASE_POLICY[key.use_case][2]
    nets = key.whitelist_networks()
    if not nets and mandatory:
        items.append(AuditItem(
            account, key.label, "declared_whitelist_empty", Severity.HIGH.value,
            f"key {key.label} ({key.use_case.value}) declares no IP whitelist; Binance's "
            "key-security checklist makes one mandatory for this use case",
            {"use_case": key.use_case.value},
            "Restrict the key to your server's addresses in API Management and list them in "
            "the key's ip_whitelist in the config."))
    wide = [str(n) for n in nets if n.prefixlen < CATCH_ALL_PREFIX[n.version]]
    if wide:
        items.append(AuditItem(
            account, key.label, "catch_all_whitelist", Severity.CRITICAL.value,
            f"key {key.label}'s whitelist contains {', '.join(wide)}, which lets (almost) any "
            "address call it: list the exact addresses instead",
            {"networks": wide},
            "Replace the wide network with the exact addresses of your servers, in API "
            "Management and in the config."))
    return items


def key_type_advice(key: KeyConfig) -> str:
    """Binance recommends Ed25519 and calls HMAC deprecated: say so for an HMAC key, in the
    seed's rotation terms (the new key is made at the next rotation, not in a hurry)."""
    if key.type is not KeyType.HMAC:
        return ""
    days = USE_CASE_POLICY[key.use_case][1]
    return (f"HMAC key (Binance calls HMAC deprecated): at its next rotation (every {days} days "
            f"for {key.use_case.value}) create the new key as Ed25519, whose private key never "
            "leaves your machine, and set type = \"ed25519\" with private_key_env")


UNIVERSAL_TRANSFER = "universal_transfer_on_trading_key"
TRADING_FLAGS = frozenset({"enableSpotAndMarginTrading", "enableFutures"})


def _universal_transfer(account: str, key: KeyConfig, flags: JsonObject) -> list[AuditItem]:
    """A trading key that may also move funds between wallets: a leaked bot key can then move
    the balance to where the attacker trades it away. High, not just an extra permission."""
    if flags.get("permitsUniversalTransfer") is not True:
        return []
    if not USE_CASE_POLICY[key.use_case][0] & TRADING_FLAGS:
        return []
    return [AuditItem(
        account, key.label, UNIVERSAL_TRANSFER, Severity.HIGH.value,
        f"key {key.label} ({key.use_case.value}) can trade and has permitsUniversalTransfer "
        "on: a leaked copy could move funds between your wallets",
        {"flag": "permitsUniversalTransfer", "use_case": key.use_case.value},
        "Turn off 'Permits Universal Transfer' on the key in API Management; make transfers "
        "by hand.")]


def _created_ms(key: KeyConfig, flags: JsonObject | None) -> int | None:
    """The key's creation: Binance's createTime, else the config's `created` date."""
    created = (flags or {}).get("createTime")
    if isinstance(created, int | float) and not isinstance(created, bool):
        return int(created)
    if key.created:
        import datetime as dt

        day = dt.date.fromisoformat(key.created[:10])
        return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    return None


def audit_key(cfg: Config, account: str, key: KeyConfig, flags: JsonObject | None,
              rules: list[Rule], now_ms: int, unverified_note: str = "") -> KeyReport:
    """Every posture check for one key; `flags` is its apiRestrictions answer, if we have it.

    Without it only the config checks run, plus the rotation check when the config declares
    the key's `created` date; the report says the key was not checked.
    """
    ctx = FeatureContext.from_config(cfg)
    report = KeyReport(account, key.label, key.use_case.value, flags is not None,
                       key_type=key.type.value, advice=key_type_advice(key),
                       note=unverified_note)
    report.items += _config_checks(account, key)
    if flags is None:
        report.fix = (
            "Give Keywatch the key's secret (read-only use), or check the key in API "
            "Management by hand." if key.api_key is None else
            "Add this host's address to the key's IP whitelist in API Management, or remove "
            "the key from the config if it was deleted.")
    created = _created_ms(key, flags)
    if created is not None:
        report.created = _iso_day(created)
        report.due = _iso_day(created + USE_CASE_POLICY[key.use_case][1] * DAY_MS)
    checks: tuple[str, ...]
    facts: KeyRestrictions | None
    if flags is None:  # only the creation date is known: key_age reads nothing else
        facts = KeyRestrictions(True, created) if created is not None else None
        checks = ("key_age",)  # the one check the config alone can answer
    else:
        try:
            facts, checks = KeyRestrictions.from_answer(flags), tuple(CHECKS)
        except ValueError as exc:
            report.verified, report.note = False, f"not checked: Binance's answer: {exc}"
            return report
        report.items += _universal_transfer(account, key, flags)
    if facts is None:
        return report
    for rule in rules:
        check_name = str(rule.params.get("check"))
        if rule.kind != "posture" or check_name == "drift" or check_name not in checks:
            continue
        check = CHECKS.get(check_name)
        if check is None:
            continue
        res = check(KeyFacts(account, key.label, now_ms, KeyConfigPoll(facts), ctx,
                             rule.params))
        if res is not None:
            report.items.append(AuditItem(account, key.label, rule.id, rule.severity.value,
                                          res[0], res[1], " ".join(rule.action.split())))
    return report


def _iso_day(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def worst(reports: list[KeyReport]) -> Severity | None:
    sevs = [Severity(i.severity) for r in reports for i in r.items]
    return max(sevs, key=lambda s: s.rank) if sevs else None

