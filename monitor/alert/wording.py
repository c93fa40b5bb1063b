"""How a finding reads: its title for the Binance codes really seen, its evidence as
labelled lines (no detector bookkeeping, times as UTC text, ids without separators), and the
key's context beside a new address. Plain functions; `render.py` composes them into messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alert.redact import Redactor
from monitor.config import AccountConfig
from monitor.core.errorcodes import CODES, code_name
from monitor.core.findings import Finding, Signal

# Binance codes a title may name, and what each means for the person reading it.
CODE_TITLES = {c: e.title for c, e in CODES.items() if e.title}  # monitor/core/errorcodes.py
AUTH_UNKNOWN = ("Burst of refused calls (bad key -2014, bad signature -1022, or IP/permission "
                "-2015)")
_CODE_IN_TITLE = re.compile(r"-(?:10|20)\d\d\b")


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
    accounts: Iterable[AccountConfig], seen_ips: Iterable[tuple[str, str, str]] | None = ()
) -> dict[tuple[str, str], KeyContext]:
    """Per (account, key label): the declared whitelist from the config and the addresses the
    key was seen calling from (the detector's (account, key, ip) history), sorted; None: no
    history to tell (the known addresses are then not claimed to be none)."""
    known: dict[tuple[str, str], set[str]] = {}
    for account, key, ip in seen_ips or ():
        known.setdefault((account, key), set()).add(ip)
    return {(a.name, k.label): KeyContext(
                tuple(_host(n) for n in k.ip_whitelist),
                None if seen_ips is None else tuple(sorted(known.get((a.name, k.label), ()))))
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


def metric_words(text: str) -> str:
    """A detector's summary with its feature names in words ("fail_auth" -> "refused calls")."""
    return _METRIC_WORD.sub(lambda m: METRIC_LABELS[m[0]], text)


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


def value_text(name: str, v: Any, red: Redactor) -> str:
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
            # a change: old -> new
            return f"{value_text('', v[0], red)} -> {value_text('', v[1], red)}"
        shown = [value_text(name, x, red) for x in list(v)[:10]]
        more = f" (+{len(v) - 10} more)" if len(v) > 10 else ""
        return (", ".join(shown) + more) or "none"
    if name == "codes" and isinstance(v, dict):  # {code: count}: "-1022 bad signature x7"
        return ", ".join(f"{code_name(int(c))} x{n}" for c, n in v.items())
    if isinstance(v, dict):  # e.g. drift's {flag: [old, new]}: "flag old -> new; ..."
        parts = [f"{k} {value_text('', x, red)}" for k, x in sorted(red.data(v).items())
                 if k not in HIDDEN]
        return red.text("; ".join(parts))[:300]
    return red.text(str(v))[:300]


def evidence_pairs(f: Finding, red: Redactor,
                   context: KeyContext | None = None) -> list[tuple[str, str]]:
    """(label, value) pairs of the finding's evidence and grouping fields.

    Bookkeeping fields are left out and times are UTC text. A new address (a new caller, or an
    order placed from an address its key is not expected at) is shown beside the key's
    declared whitelist and the addresses it was seen from, when known.
    """
    ev = red.data(f.evidence)
    out = sorted((label_of(k), value_text(k, v, red)) for k, v in ev.items()
                 if k not in HIDDEN and v is not None and v != "")
    for k, v in sorted(f.group.items()):
        if k not in ev:
            out.append((label_of(k), red.text(str(v))))
    new_address = f.signal is Signal.UNKNOWN_IP or (
        f.signal is Signal.FOREIGN_ORDER and bool(f.evidence.get("ip")))
    if not new_address or context is None:
        return out
    if "whitelist" not in ev:
        out.append(("declared whitelist", ", ".join(context.whitelist) or "none declared"))
    if context.known_ips is not None and "known_ips" not in ev:
        caller = str(f.evidence.get("ip") or f.group.get("ip") or "")
        known = [ip for ip in context.known_ips if ip != caller]  # the new one is not "before"
        out.append(("addresses seen before", value_text("known_ips", known, red)))
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
