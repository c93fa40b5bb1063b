"""Checks on single config values, shared by the config models and the standalone tap's reader.

Plain functions over strings that raise `ValueError` with the fix, so pydantic reports them
under the field's dotted path (`sources.tap.listen: ...`) and nothing here needs the models.
"""

from __future__ import annotations

import difflib
import ipaddress
import re

SECRET_NAME = re.compile(r"(secret|api_?key|token|password|passwd)$", re.IGNORECASE)
# URL schemes that can be written in the TOML because they carry no credential by design.
SAFE_URL_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}


def local_address(v: str | None) -> str | None:
    """An IP address literal (the socket binds to it), or None."""
    if v is None or v == "":
        return None
    try:
        return str(ipaddress.ip_address(v))
    except ValueError as exc:
        raise ValueError(f"{v!r} is not an IP address of this host (e.g. \"203.0.113.10\")"
                         ) from exc


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The severities an alert can have (monitor.findings.Severity's values; config sits left of
# findings in the data flow, so the names are repeated here and a test keeps them equal).
SEVERITIES = ("critical", "high", "warning", "info")
# Severities that page at once (monitor.alert.manager.immediate); the others wait for the digest.
PAGING = ("critical", "high")
DEFAULT_ROUTING: dict[str, list[str]] = {
    "critical": ["critical"], "high": ["critical"], "warning": ["digest"], "info": [],
}


def routing_table(table: dict[str, list[str]]) -> dict[str, list[str]]:
    """The routing table with every severity: unknown keys refused (a typo would leave its
    severity unrouted), missing severities taken from `DEFAULT_ROUTING`."""
    unknown = [k for k in table if k not in SEVERITIES]
    if unknown:
        parts = []
        for k in unknown:
            close = difflib.get_close_matches(k.lower(), SEVERITIES, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parts.append(f"{k!r} is not a severity{hint}")
        raise ValueError(f"{'; '.join(parts)} (the keys are the severities: "
                         f"{', '.join(SEVERITIES)})")
    return {sev: list(table.get(sev, DEFAULT_ROUTING[sev])) for sev in SEVERITIES}


def unrouted(table: dict[str, list[str]], channel_tags: list[frozenset[str]]) -> list[str]:
    """Paging severities whose alerts would reach no channel, each with the fix.

    A channel takes an alert when it is untagged (a catch-all) or shares a tag with the
    severity's routing entry (monitor.alert.channels.route)."""
    out = []
    for sev in PAGING:
        wanted = set(table.get(sev, []))
        if not any(not tags or tags & wanted for tags in channel_tags):
            out.append(f"alerts.routing.{sev}: {sev} alerts go to channels tagged "
                       f"{sorted(wanted)}, and no channel has one of those tags, so they would "
                       f"never be delivered; add one of them to a channel's `tags`, or set "
                       f"`{sev} = [\"<a tag your channel has>\"]`")
    return out


def digest_unrouted(table: dict[str, list[str]], channel_tags: list[frozenset[str]]) -> bool:
    """True when the daily digest (warning and info findings) reaches no channel."""
    wanted = {"digest", *table.get("warning", []), *table.get("info", [])}
    return bool(channel_tags) and not any(not t or t & wanted for t in channel_tags)
