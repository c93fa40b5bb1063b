"""Alert messages a person can act on at 3 a.m.: plain functions from findings to text.

Every message says, in this order: how bad, which account and key (by label), what happened in
one sentence, the evidence, what to do now (the seed's emergency actions for that kind of
finding), and the command that opens the incident notebook. Each message carries its alert id,
so a resend after a crash is recognisable as the same alert. Two bodies are rendered: plain text
(JSON hooks, SMS-like channels) and Markdown (Telegram, e-mail as HTML).
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alert.redact import Redactor
from monitor.findings import Finding, Severity, Signal

# The seed's emergency actions, most urgent first.
DELETE_KEY = (
    "Delete key '{key}' in Binance API Management now (deleting is instant; disabling is not "
    "enough)."
)
CHECK_SETTINGS = (
    "Check whether other account settings were changed (withdrawal whitelist, security, "
    "sub-accounts)."
)
SUPPORT = "Open a support ticket with Binance for a security review of this key's activity."
OTHER_KEYS = "Inspect every other active API key on '{account}' for the same signs."
ROTATE = "Create a replacement key with the same least-privilege permissions and IP whitelist."

_LEAK = (DELETE_KEY, CHECK_SETTINGS, SUPPORT, OTHER_KEYS, ROTATE)
ACTIONS: dict[Signal, tuple[str, ...]] = {
    Signal.CALL_RATE: _LEAK,
    Signal.UNKNOWN_IP: _LEAK,
    Signal.FAILURE_RATE: (
        DELETE_KEY + " if the failures are not from your own bots.", OTHER_KEYS, CHECK_SETTINGS,
        SUPPORT,
    ),
    Signal.OVERSIZED_REJECT: _LEAK,
    Signal.FOREIGN_ORDER: _LEAK,
    Signal.WITHDRAWAL: (
        DELETE_KEY, "Check the withdrawal history and the address whitelist now.",
        CHECK_SETTINGS, SUPPORT, OTHER_KEYS,
    ),
    Signal.POSTURE: (
        "Edit key '{key}' in API Management: turn off every permission its use case does not "
        "need and restrict it to trusted IPs.",
        "If the key is past its rotation cycle, create a replacement and delete this one.",
        OTHER_KEYS,
    ),
    Signal.DRIFT: (
        "Confirm that you changed key '{key}' yourself; if not, " + DELETE_KEY[0].lower()
        + DELETE_KEY[1:],
        CHECK_SETTINGS, SUPPORT, OTHER_KEYS,
    ),
    Signal.TRADING_STATUS: (
        "Stop the bots using key '{key}' and review their rejected and cancelled orders before "
        "Binance restricts trading.",
        OTHER_KEYS,
    ),
    Signal.ANOMALY: (
        "Open the notebook and compare this window with the key's usual traffic.",
        DELETE_KEY + " if the activity is not yours.", OTHER_KEYS,
    ),
}

_TS_HINT = ("ts", "_ts", "seen", "time", "first", "last", "since", "until")


@dataclass(frozen=True)
class AlertItem:
    """One fingerprint's part of a message: the latest finding plus how often it recurred."""

    fingerprint: str
    kind: str  # new | update (a new incident) | repeat (the same one) | resolved
    finding: Finding
    count: int
    first_seen: int
    last_seen: int
    previous_alert_id: str | None = None
    incidents: int = 1  # distinct incidents of this fingerprint since it started firing


@dataclass(frozen=True)
class Rendered:
    title: str
    text: str
    markdown: str


def fingerprint(f: Finding) -> str:
    """Same rule, account, key and grouping fields (e.g. the caller IP) -> same fingerprint."""
    group = "|".join(f"{k}={v}" for k, v in sorted(f.group.items()))
    raw = f"{f.rule_id}|{f.account}|{f.key or ''}|{group}"
    return hashlib.sha1(raw.encode()).hexdigest()[:16]


def make_alert_id(*parts: object) -> str:
    """Short, deterministic: re-running a flush after a crash re-derives the same id."""
    return "kw-" + hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:10]


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def key_label(key: str | None) -> str:
    return key if key else "(account-wide)"


def _value(name: str, v: Any, red: Redactor) -> str:
    if isinstance(v, int) and not isinstance(v, bool) and v > 1_420_070_400_000 and any(
        h in name.lower() for h in _TS_HINT
    ):
        return iso(v)
    if isinstance(v, float):
        if v.is_integer() and name.lower().endswith("id"):
            return str(int(v))  # an order id is copied into a search box: no separators
        if v.is_integer():
            return f"{v:,.0f}"
        return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"
    if isinstance(v, list | tuple):
        shown = [red.text(str(x)) for x in list(v)[:10]]
        more = f" (+{len(v) - 10} more)" if len(v) > 10 else ""
        return ", ".join(shown) + more
    if isinstance(v, dict):
        return red.text(json.dumps(red.data(v), default=str, sort_keys=True))[:300]
    return red.text(str(v))[:300]


def evidence_lines(item: AlertItem, red: Redactor) -> list[tuple[str, str]]:
    """(label, value) pairs: the finding's evidence, then how often and when it was seen."""
    ev = red.data(item.finding.evidence)
    out = [(k.replace("_", " "), _value(k, v, red)) for k, v in sorted(ev.items())]
    for k, v in sorted(item.finding.group.items()):
        if k not in ev:
            out.append((k.replace("_", " "), red.text(str(v))))
    if item.incidents > 1:
        out.append(("incidents so far", str(item.incidents)))
    out.append(("occurrences", str(item.count)))
    out.append(("first seen", iso(item.first_seen)))
    out.append(("last seen", iso(item.last_seen)))
    return out


def actions_for(f: Finding, red: Redactor) -> list[str]:
    steps = [a.format(key=key_label(f.key), account=f.account) for a in ACTIONS[f.signal]]
    if f.action and f.action not in steps:
        steps.insert(1 if f.severity.rank >= Severity.HIGH.rank else 0, f.action)
    return [red.text(s) for s in steps]


def _headline(item: AlertItem, red: Redactor) -> str:
    f = item.finding
    if item.kind == "resolved":
        return red.text(f"RESOLVED: {f.title} ({f.rule_id}) has cleared.")
    prefix = {"repeat": "STILL FIRING: ", "update": "NEW INCIDENT: "}.get(item.kind, "")
    if item.kind == "update" and item.previous_alert_id:
        since = f" (#{item.incidents}; earlier ones in {item.previous_alert_id})"
    elif item.previous_alert_id:
        since = f" (first alerted as {item.previous_alert_id})"
    else:
        since = ""
    return red.text(f"{prefix}{f.title}{since}: {f.summary}")


def silence_command(f: Finding, duration: str = "2h") -> str:
    """The `keywatch silence add` that matches exactly this finding's fingerprint: its rule,
    account, key (`-`: account-wide, no key) and caller IP when the rule groups by it."""
    args = ["keywatch", "silence", "add", "--rule", f.rule_id, "--account", f.account,
            "--key", f.key or "-"]
    if f.group.get("ip"):
        args += ["--ip", f.group["ip"]]
    args += ["--for", duration]
    return " ".join(shlex.quote(a) for a in args) + " --reason '...'"


def render_alert(
    alert_id: str, account: str, items: Sequence[AlertItem], red: Redactor
) -> Rendered:
    """One message for one account's group of items, most severe first."""
    items = sorted(items, key=lambda i: (-i.finding.severity.rank, i.kind != "new", i.first_seen))
    top = items[0]
    sev = top.finding.severity.value.upper()
    keys = sorted({key_label(i.finding.key) for i in items})
    resolved_only = all(i.kind == "resolved" for i in items)
    what = f"RESOLVED {top.finding.title}" if resolved_only else top.finding.title
    extra = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    title = red.text(f"[{sev}] {account}/{', '.join(keys)}: {what}{extra} [{alert_id}]")

    text: list[str] = [
        f"Keywatch alert {alert_id}",
        f"Severity: {sev}" + (" (resolved)" if resolved_only else ""),
        f"Account: {account}",
        f"Key: {', '.join(keys)}",
        "",
    ]
    md: list[str] = [
        f"**Keywatch alert `{alert_id}`**",
        "",
        f"- **Severity:** {sev}" + (" (resolved)" if resolved_only else ""),
        f"- **Account:** {account}",
        f"- **Key:** {', '.join(keys)}",
        "",
    ]
    advised: set[tuple[Signal, str | None]] = set()
    for n, item in enumerate(items, 1):
        f = item.finding
        head = _headline(item, red)
        text += [f"{n}. [{f.severity.value.upper()}] {head}", "   Evidence:"]
        md += [f"### {n}. [{f.severity.value.upper()}] {_md(head)}", "", "**Evidence**", ""]
        for label, value in evidence_lines(item, red):
            text.append(f"   - {label}: {value}")
            md.append(f"- {_md(label)}: `{value}`")
        if item.kind != "resolved" and (f.signal, f.key) in advised:
            text.append("   Do this now: as above.")
            md += ["", "**Do this now:** as above."]
        elif item.kind != "resolved":
            advised.add((f.signal, f.key))
            text.append("   Do this now:")
            md += ["", "**Do this now**", ""]
            for i, step in enumerate(actions_for(f, red), 1):
                text.append(f"   {i}. {step}")
                md.append(f"{i}. {_md(step)}")
        text.append(f"   Rule: {f.rule_id} ({f.detector}), fingerprint {item.fingerprint}")
        md += ["", f"_Rule `{f.rule_id}` ({f.detector}), fingerprint `{item.fingerprint}`_", ""]
        text.append("")
    cmd = __import__("monitor.config").config.investigate_command(alert_id)  # + -c, --db
    text.append(f"Investigate: {cmd}")
    md.append(f"**Investigate:** `{cmd}`")
    silences = list(dict.fromkeys(silence_command(i.finding) for i in items))
    for line in silences:
        text.append(red.text(f"Silence: {line}"))
    if silences:
        md += ["", "**Silence:**", ""] + [f"- `{red.text(line)}`" for line in silences]
    return Rendered(title=title, text="\n".join(text), markdown="\n".join(md))


def render_digest(
    alert_id: str, day: str, rows: Sequence[tuple[Finding, int, int, int]], red: Redactor
) -> Rendered:
    """The daily digest: (latest finding, count, first seen, last seen) per fingerprint."""
    ordered = sorted(rows, key=lambda r: (r[0].account, -r[0].severity.rank, -r[1]))
    title = red.text(f"[DIGEST] Keywatch {day}: {len(rows)} lower-severity finding(s) [{alert_id}]")
    text = [f"Keywatch daily digest {alert_id} for {day}", ""]
    md = [f"**Keywatch daily digest `{alert_id}` for {day}**", ""]
    account = None
    for f, count, first, last in ordered:
        if f.account != account:
            account = f.account
            text.append(f"Account {account}:")
            md += ["", f"### Account {_md(account)}", ""]
        line = red.text(
            f"[{f.severity.value.upper()}] {key_label(f.key)}: {f.title} - {f.summary} "
            f"(x{count}, {iso(first)} .. {iso(last)}; rule {f.rule_id})"
        )
        text.append(f"  - {line}")
        md.append(f"- {_md(line)}")
    text += ["", "Investigate one: keywatch alerts --since 24h"]
    md += ["", "**Investigate one:** `keywatch alerts --since 24h`"]
    return Rendered(title=title, text="\n".join(text), markdown="\n".join(md))


def render_test(channel: str, now_ms: int) -> Rendered:
    title = f"[TEST] Keywatch test alert for channel '{channel}'"
    body = (
        f"This is a test from `keywatch test-alert` at {iso(now_ms)}. If you can read it, "
        f"channel '{channel}' will receive Keywatch alerts. No action needed."
    )
    return Rendered(title=title, text=body.replace("`", ""), markdown=body)


def _md(s: str) -> str:
    """Escape the few characters that would turn evidence into Markdown formatting."""
    for ch in ("\\", "*", "_", "`", "[", "]"):
        s = s.replace(ch, "\\" + ch)
    return s
