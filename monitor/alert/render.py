"""Alert messages a person can act on at 3 a.m.: plain functions from findings to text.

Every message says, in this order: how bad, which account and key (by label), what happened in
one sentence (titled by the codes really seen), the evidence (no detector bookkeeping, times as
UTC text, a new address beside the declared whitelist and the known ones), what to do now (the
triage question, then Binance's emergency actions for that kind of finding, each step once),
and the command that opens the incident notebook. Each message carries its alert id, so a
resend after a crash is recognisable as the same alert. Two bodies are rendered: plain text
(JSON hooks, SMS-like channels) and Markdown (Telegram, e-mail as HTML); `fit.py` shortens
either to a channel's limit at send time. How one finding reads (its title, its evidence lines,
the key's context) is `wording.py`.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.alert.redact import Redactor
from monitor.alert.wording import (
    KeyContext,
    codes_seen,
    evidence_pairs,
    iso,
    key_label,
    metric_words,
    title_for,
)
from monitor.alert.wording import key_contexts as key_contexts  # callers import it from here
from monitor.core.findings import Finding, Severity, Signal

# Binance's emergency actions, most urgent first. The first one asks the triage question before
# it says "delete": at 3 a.m. the likeliest cause of a strange call is one's own bot.
TRIAGE = "Was this you or one of your bots (a new server, a deploy, a changed secret)? If not: "
DELETE_KEY = (
    TRIAGE + "delete key '{key}' in Binance API Management now (deleting is instant; disabling "
    "is not enough)."
)
# An account-wide finding has no key to name: say how to find it instead.
DELETE_UNKNOWN = (
    TRIAGE + "in Binance API Management find the key whose recent activity shows this and "
    "delete it now; if none can be ruled out, delete every key of '{account}' that can trade "
    "(deleting is instant; disabling is not enough)."
)
CHECK_SETTINGS = (
    "Check whether other account settings were changed (withdrawal whitelist, security, "
    "sub-accounts)."
)
SUPPORT = "Open a support ticket with Binance for a security review of this key's activity."
OTHER_KEYS = "Inspect every other active API key on '{account}' for the same signs."
ROTATE = "Create a replacement key with the same least-privilege permissions and IP whitelist."
# -1022 is a signature the server could not verify: most often one's own bot after a secret change
BAD_SIGNATURE = (
    "Bad signatures (-1022) usually come from your own bot still signing with an old secret "
    "after the key's secret changed: update that bot's secret. "
)

_LEAK = (DELETE_KEY, CHECK_SETTINGS, SUPPORT, OTHER_KEYS, ROTATE)
ACTIONS: dict[Signal, tuple[str, ...]] = {
    Signal.CALL_RATE: _LEAK,
    Signal.UNKNOWN_IP: _LEAK,
    Signal.FAILURE_RATE: (DELETE_KEY, OTHER_KEYS, CHECK_SETTINGS, SUPPORT),
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
        "Did you change key '{key}' yourself (or one of your tools)? If not: delete it in "
        "Binance API Management now (deleting is instant; disabling is not enough).",
        CHECK_SETTINGS, SUPPORT, OTHER_KEYS,
    ),
    Signal.TRADING_STATUS: (
        "Stop the bots using key '{key}' and review their rejected and cancelled orders before "
        "Binance restricts trading.",
        OTHER_KEYS,
    ),
    Signal.ANOMALY: (
        "Open the notebook and compare this window with the key's usual traffic.",
        DELETE_KEY, OTHER_KEYS,
    ),
}
# What a step is about, by the words it uses: a rule's own action text is shown only for the
# sentences that add something the generic steps above do not already say.
_TOPICS = {
    "delete": ("delete", "revoke"),
    "settings": ("account settings",),
    "support": ("support ticket",),
    "other_keys": ("other api key", "other keys", "other active api key"),
    "rotate": ("replacement key", "rotate:"),
}

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


def evidence_lines(item: AlertItem, red: Redactor,
                   context: KeyContext | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs: the finding's evidence (`wording.evidence_pairs`), then how often
    and when it was seen."""
    out = evidence_pairs(item.finding, red, context)
    if item.incidents > 1:
        out.append(("incidents so far", str(item.incidents)))
    out.append(("occurrences", str(item.count)))
    out.append(("first seen", iso(item.first_seen)))
    out.append(("last seen", iso(item.last_seen)))
    return out


def _topics(s: str) -> set[str]:
    low = s.lower()
    return {t for t, words in _TOPICS.items() if any(w in low for w in words)}


def _new_sentences(action: str, covered: set[str]) -> str:
    """The sentences of a rule's action that say something the generic steps do not."""
    parts = re.split(r"(?<=[.;])\s+", action.strip())
    keep = [p for p in parts if not p or not (_topics(p) and _topics(p) <= covered)]
    text = " ".join(p for p in keep if p).strip().rstrip(";,")
    if text and not text.endswith((".", "!", "?")):
        text += "."
    return text[0].upper() + text[1:] if text else ""


def actions_for(f: Finding, red: Redactor) -> list[str]:
    """What to do now: the triage question, then Binance's emergency actions for this kind of
    finding, with the rule's own advice where it adds something; no step said twice."""
    steps = []
    for a in ACTIONS[f.signal]:
        if a == DELETE_KEY and not f.key:
            a = DELETE_UNKNOWN
        if a in (DELETE_KEY, DELETE_UNKNOWN) and -1022 in codes_seen(f):
            a = BAD_SIGNATURE + a
        steps.append(a.format(key=key_label(f.key), account=f.account))
    covered = set().union(*(_topics(s) for s in steps))
    extra = _new_sentences(f.action, covered) if f.action else ""
    if extra and extra not in steps:
        steps.insert(1 if f.severity.rank >= Severity.HIGH.rank else 0, extra)
    return [red.text(s) for s in dict.fromkeys(steps)]


def _headline(item: AlertItem, red: Redactor) -> str:
    f = item.finding
    if item.kind == "resolved":
        return red.text(f"RESOLVED: {title_for(f)} ({f.rule_id}) has cleared.")
    prefix = {"repeat": "STILL FIRING: ", "update": "NEW INCIDENT: "}.get(item.kind, "")
    if item.kind == "update" and item.previous_alert_id:
        since = f" (#{item.incidents}; earlier ones in {item.previous_alert_id})"
    elif item.previous_alert_id:
        since = f" (first alerted as {item.previous_alert_id})"
    else:
        since = ""
    title, summary = title_for(f), metric_words(f.summary)
    if f.summary.startswith(f.title):  # "Order placed by no registered bot on ...": say it once
        if title == f.title:
            return red.text(f"{prefix}{summary}{since}")
        summary = summary[len(f.title):].strip()  # retitled: the rest says where and when
    return red.text(f"{prefix}{title}{since}: {summary}")


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
    alert_id: str, account: str, items: Sequence[AlertItem], red: Redactor,
    context: Mapping[tuple[str, str], KeyContext] | None = None,
) -> Rendered:
    """One message for one account's group of items, most severe first.

    `context` holds, per (account, key label), the declared whitelist and the addresses the
    key was seen from, shown beside a new caller address. A step already listed for an earlier
    item is referred to, not repeated. The Markdown body uses hard line breaks rather than
    lists, so the plain-text part Apprise derives from its HTML (e-mail) reads like the text.
    """
    context = context or {}
    items = sorted(items, key=lambda i: (-i.finding.severity.rank, i.kind != "new", i.first_seen))
    top = items[0]
    sev = top.finding.severity.value.upper()
    keys = sorted({key_label(i.finding.key) for i in items})
    resolved_only = all(i.kind == "resolved" for i in items)
    what = f"RESOLVED {title_for(top.finding)}" if resolved_only else title_for(top.finding)
    extra = f" (+{len(items) - 1} more)" if len(items) > 1 else ""
    title = red.text(f"[{sev}] {account}/{', '.join(keys)}: {what}{extra} [{alert_id}]")
    head = [("Severity", sev + (" (resolved)" if resolved_only else "")),
            ("Account", account), ("Key", ", ".join(keys))]
    text: list[str] = [f"Keywatch alert {alert_id}"] + [f"{k}: {v}" for k, v in head] + [""]
    md: list[str] = [f"**Keywatch alert {alert_id}**", "",
                     _br([f"**{k}:** {_md(v)}" for k, v in head]), ""]
    listed: dict[str, tuple[int, int]] = {}  # step -> (item, step number) where first listed
    for n, item in enumerate(items, 1):
        f = item.finding
        head_line = f"{n}. [{f.severity.value.upper()}] {_headline(item, red)}"
        kc = context.get((f.account, f.key)) if f.key else None
        ev = evidence_lines(item, red, kc)
        text += [head_line, "   Evidence:"] + [f"   - {k}: {v}" for k, v in ev]
        # "- " or "1. " would start a Markdown list: bullets and escaped numbers keep one block
        md += [f"**{_md(head_line)}**", "",
               _br(["Evidence:"] + [f"• {_md(k)}: {_md(v)}" for k, v in ev]), ""]
        if item.kind != "resolved":
            new, seen = [], []
            for step in actions_for(f, red):
                if step in listed:
                    seen.append(listed[step])
                else:
                    new.append(step)
                    listed[step] = (n, len(new))
            also = [("Also " + _refs(seen) if new else _refs(seen).capitalize()) + " above."
                    ] if seen else []
            text += ["   Do this now:"] + [f"   {i}. {s}" for i, s in enumerate(new, 1)]
            text += [f"   {a}" for a in also]
            md += [_br(["**Do this now:**"] + [f"{i}\\. {_md(s)}" for i, s in enumerate(new, 1)]
                       + [_md(a) for a in also]), ""]
        text += [f"   Rule: {f.rule_id}, fingerprint {item.fingerprint}", ""]
        md += [f"_Rule {_md(f.rule_id)}, fingerprint {item.fingerprint}_", ""]
    cmd = __import__("monitor.config").config.investigate_command(alert_id)  # + -c, --db
    silences = [red.text(s) for s in dict.fromkeys(silence_command(i.finding) for i in items)]
    text += [f"Investigate: {cmd}"] + [f"Silence: {line}" for line in silences]
    # commands stay code spans: copied from any client, raw or rendered, they run as printed
    md.append(_br([f"**Investigate:** `{cmd}`"] + [f"**Silence:** `{line}`" for line in silences]))
    return Rendered(title=title, text="\n".join(text), markdown="\n".join(md))


def _refs(seen: list[tuple[int, int]]) -> str:
    """[(1, 2), (1, 3), (2, 1)] -> 'steps 2, 3 of item 1 and step 1 of item 2'."""
    by_item: dict[int, list[int]] = {}
    for item, step in seen:
        by_item.setdefault(item, []).append(step)
    parts = [f"step{'s' if len(st) > 1 else ''} {', '.join(map(str, st))} of item {it}"
             for it, st in by_item.items()]
    return " and ".join(parts)


def _br(lines: list[str]) -> str:
    """Markdown lines joined by hard breaks: one paragraph, one line each."""
    return "  \n".join(lines)


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
            f"[{f.severity.value.upper()}] {key_label(f.key)}: {title_for(f)} - {f.summary} "
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
