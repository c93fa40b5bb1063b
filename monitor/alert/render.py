"""Alert messages a person can act on at 3 a.m.: plain functions from findings to text.

Every message says, in this order: how bad, which account and key (by label), what happened in
one sentence (titled by the codes really seen), the evidence (no detector bookkeeping, times as
UTC text, a new address beside the declared whitelist and the known ones), what to do now (the
triage question, then Binance's emergency actions for that kind of finding, each step once),
and the command that opens the incident notebook. Each message carries its alert id, so a
resend after a crash is recognisable as the same alert. Two bodies are rendered: plain text
(JSON hooks, SMS-like channels) and Markdown (Telegram, e-mail as HTML); `fit.py` shortens
either to a channel's limit at send time.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alert.redact import Redactor
from monitor.config import AccountConfig
from monitor.errorcodes import CODES, code_name
from monitor.findings import Finding, Severity, Signal

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

# Binance codes a title may name, and what each means for the person reading it.
CODE_TITLES = {c: e.title for c, e in CODES.items() if e.title}  # monitor/errorcodes.py
AUTH_UNKNOWN = ("Burst of refused calls (bad key -2014, bad signature -1022, or IP/permission "
                "-2015)")
_CODE_IN_TITLE = re.compile(r"-(?:10|20)\d\d\b")

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


def iso(ms: int | float) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def key_label(key: str | None) -> str:
    return key if key else "(account-wide)"


@dataclass(frozen=True)
class KeyContext:
    """What the config and the key's history say of a key, shown beside a new address."""

    whitelist: tuple[str, ...] = ()  # declared networks; () = none declared
    known_ips: tuple[str, ...] | None = None  # addresses the key was seen from; None = unknown


def key_contexts(
    accounts: Iterable[AccountConfig], seen_ips: Iterable[tuple[str, str, str]] = ()
) -> dict[tuple[str, str], KeyContext]:
    """Per (account, key label): the declared whitelist from the config and the addresses the
    key was seen calling from (the detector's (account, key, ip) history), sorted."""
    known: dict[tuple[str, str], set[str]] = {}
    for account, key, ip in seen_ips:
        known.setdefault((account, key), set()).add(ip)
    return {(a.name, k.label): KeyContext(tuple(_host(n) for n in k.ip_whitelist),
                                          tuple(sorted(known.get((a.name, k.label), ()))))
            for a in accounts for k in a.keys}


def _host(network: str) -> str:
    """'10.0.0.5/32' -> '10.0.0.5': a one-address network reads as the address."""
    addr, _, bits = network.partition("/")
    return addr if bits in ("32", "128") and (bits == "32") == ("." in addr) else network


# Evidence fields that are the detector's bookkeeping, not something a person acts on.
HIDDEN = frozenset({"fclass", "event_id", "features", "anchor", "kind", "wkey", "tapped",
                    "is_order_req", "accepted_order", "foreign", "foreign_cancel"})
LABELS = {
    "ip": "caller IP", "free_value": "free balance", "free_balance": "free balance",
    "usual_notional": "usual order size", "notional_to_free": "order / free balance",
    "notional_to_usual": "order / usual size", "placed_by": "suspected key",
    "provenance": "attributed by", "window_start_ms": "minute from",
    "window_end_ms": "minute until", "expires_ms": "trading permission lapses",
    "baseline": "usual level", "fail_auth": "refused calls (key, signature, IP or permission)",
    "exec_type": "execution", "source": "seen on", "whitelist": "declared whitelist",
    "known_ips": "addresses seen before", "codes": "answers",
}
# Feature names a detector's summary may use ("fail_auth reached 7"), in words.
METRIC_LABELS = {
    "fail_auth": "refused calls", "fail_timestamp": "calls with a bad timestamp",
    "fail_rate": "rate-limited calls", "fail_balance": "calls refused for balance",
    "fail_filter": "calls refused by a filter", "fail_other": "other failed calls",
    "failure_ratio": "failure ratio", "weight_max": "request weight",
    "order_requests": "order requests", "stream_orders": "orders on the stream",
    "untapped_orders": "orders no tap saw", "distinct_ips": "caller addresses",
    "foreign_orders": "orders placed by no registered bot", "orders_10s_max": "orders in 10 s",
    "unexplained_orders": "unexplained orders", "max_reject_notional": "largest rejected order",
}
_METRIC_WORD = re.compile(r"\b(?:" + "|".join(METRIC_LABELS) + r")\b")
_TS_HINT = ("ts", "_ms", "seen", "time", "first", "last", "since", "until", "expires")
_MIN_MS, _MAX_MS = 1_420_070_400_000, 4_102_444_800_000  # 2015 .. 2100


def _is_time(name: str, v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool) and _MIN_MS <= v < _MAX_MS
            and any(h in name.lower() for h in _TS_HINT))


def label_of(name: str) -> str:
    if name in LABELS or name in METRIC_LABELS:
        return LABELS.get(name) or METRIC_LABELS[name]
    for suffix in ("_ms", "_ts"):
        if name.endswith(suffix) and len(name) > len(suffix):
            name = name[: -len(suffix)]
    return name.replace("_", " ")


def _value(name: str, v: Any, red: Redactor) -> str:
    if _is_time(name, v):
        return iso(v)
    if isinstance(v, bool) or v is None:
        return {True: "on", False: "off", None: "-"}[v]
    if isinstance(v, int | float) and name.lower().replace("_", "").endswith("id"):
        return str(int(v)) if float(v).is_integer() else str(v)  # an id: no separators
    if isinstance(v, float):
        if v.is_integer():
            return f"{v:,.0f}"
        return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    if isinstance(v, list | tuple):
        if len(v) == 2 and not isinstance(v[0], list | tuple | dict) and name == "":
            return f"{_value('', v[0], red)} -> {_value('', v[1], red)}"  # a change: old -> new
        shown = [_value(name, x, red) for x in list(v)[:10]]
        more = f" (+{len(v) - 10} more)" if len(v) > 10 else ""
        return (", ".join(shown) + more) or "none"
    if name == "codes" and isinstance(v, dict):  # {code: count}: "-1022 bad signature x7"
        return ", ".join(f"{code_name(int(c))} x{n}" for c, n in v.items())
    if isinstance(v, dict):  # e.g. drift's {flag: [old, new]}: "flag old -> new; ..."
        parts = [f"{k} {_value('', x, red)}" for k, x in sorted(red.data(v).items())
                 if k not in HIDDEN]
        return red.text("; ".join(parts))[:300]
    return red.text(str(v))[:300]


def evidence_lines(item: AlertItem, red: Redactor,
                   context: KeyContext | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs: the finding's evidence, then how often and when it was seen.

    Bookkeeping fields are left out and times are UTC text. A new address is shown beside the
    key's declared whitelist and the addresses it was seen from, when known.
    """
    f = item.finding
    ev = red.data(f.evidence)
    out = sorted((label_of(k), _value(k, v, red)) for k, v in ev.items()
                 if k not in HIDDEN and v is not None and v != "")
    for k, v in sorted(f.group.items()):
        if k not in ev:
            out.append((label_of(k), red.text(str(v))))
    if f.signal is Signal.UNKNOWN_IP and context is not None and "whitelist" not in ev:
        out.append(("declared whitelist", ", ".join(context.whitelist) or "none declared"))
    if f.signal is Signal.UNKNOWN_IP and context is not None and context.known_ips is not None \
            and "known_ips" not in ev:
        caller = str(f.evidence.get("ip") or f.group.get("ip") or "")
        known = [ip for ip in context.known_ips if ip != caller]  # the new one is not "before"
        out.append(("addresses seen before", _value("known_ips", known, red)))
    if item.incidents > 1:
        out.append(("incidents so far", str(item.incidents)))
    out.append(("occurrences", str(item.count)))
    out.append(("first seen", iso(item.first_seen)))
    out.append(("last seen", iso(item.last_seen)))
    return out


def codes_seen(f: Finding) -> list[int]:
    """The Binance error codes a finding's evidence names (`code`, or `codes` as a list or a
    {code: count} map)."""
    found: list[Any] = [f.evidence.get("code")]
    codes = f.evidence.get("codes")
    found += list(codes) if isinstance(codes, list | tuple | dict) else [codes]
    out = set()
    for c in found:
        try:
            out.add(int(c))
        except (TypeError, ValueError):
            continue
    return sorted(out)


def title_for(f: Finding) -> str:
    """The title for the codes really seen, for a finding that counts refused calls (a failure
    count in its evidence, or a title naming codes): a burst of -1022 answers is a bad
    signature, not the -2015/-2014 a probe gets. A finding about something else that merely
    carries its call's code (a new caller refused -2015) keeps its own title. An unexplained
    order with a caller address names the key's unexpected address (a moved bot, or a thief
    through the tap)."""
    if f.signal is Signal.FOREIGN_ORDER and f.evidence.get("ip") and f.key:
        verb = "cancelled" if f.evidence.get("exec_type") == "CANCELED" else "placed"
        return (f"Order {verb} with key {f.key} from {f.evidence['ip']}, an address it is not "
                "expected at (a moved bot, or someone else holding the key)")
    counts = any(k.startswith("fail_") for k in f.evidence) or "codes" in f.evidence
    if not counts and not _CODE_IN_TITLE.search(f.title):
        return f.title
    codes = [c for c in codes_seen(f) if c in CODE_TITLES]
    if codes and len(codes) == 1:
        return CODE_TITLES[codes[0]]
    if codes:
        return "Calls refused (" + ", ".join(map(str, codes)) + "): " + "; ".join(
            CODE_TITLES[c].split(": ", 1)[-1] for c in codes)
    if "fail_auth" in f.evidence:
        return AUTH_UNKNOWN  # the count mixes -2014, -2015 and -1022: claim none of them
    return f.title


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
    title, summary = title_for(f), _METRIC_WORD.sub(lambda m: METRIC_LABELS[m[0]], f.summary)
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
