"""Checks on single config values, shared by the config models and the standalone tap's reader.

Plain functions over strings that raise `ValueError` with the fix, so pydantic reports them
under the field's dotted path (`sources.tap.listen: ...`) and nothing here needs the models.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import socket
from urllib.parse import urlsplit

SECRET_NAME = re.compile(r"(secret|api_?key|token|password|passwd)$", re.IGNORECASE)


def local_address(v: str | None) -> str | None:
    """An IP address literal the sockets bind to, or None (`bind_problem` checks that this
    host has it: a config is also validated away from the host it runs on)."""
    if v is None or v == "":
        return None
    try:
        addr = ipaddress.ip_address(v)
    except ValueError as exc:
        raise ValueError(f"{v!r} is not an IP address of this host (e.g. \"203.0.113.10\")"
                         ) from exc
    return str(addr)


def public_address(v: str | None) -> str | None:
    """An IP address literal (not necessarily this host's: a NAT's public side), or None."""
    if v is None or v == "":
        return None
    try:
        return str(ipaddress.ip_address(v))
    except ValueError as exc:
        raise ValueError(f"{v!r} is not an IP address (e.g. \"203.0.113.10\"); write the "
                         "public address this host calls Binance from") from exc


HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


def listen_address(v: str) -> str:
    """`HOST:PORT` to listen on: HOST an IPv4 literal or a name this host resolves, PORT
    0-65535 (0: a free port chosen at start). `bind_problem` checks the host has the address."""
    example = 'e.g. "127.0.0.1:8765"'
    host, sep, port = v.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{v!r} is not HOST:PORT ({example})")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not a number from 0 to 65535 ({example})")
    if ":" in host or host.startswith("["):
        raise ValueError(f"{host!r}: listen on an IPv4 address or a name ({example})")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        if not HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not an IP address or a host name ({example})"
                             ) from None
        try:
            socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            raise ValueError(f"{host!r} is not an IP address or a name this host resolves "
                             f"({example})") from None
    return v


def url_host(v: str) -> str:
    """The host of a URL to call, checked for shape only (Binance's names resolve only where
    there is a network, and check-config also runs where there is none)."""
    parts = urlsplit(v)
    try:
        parts.port  # noqa: B018 - raises on a port out of range or not a number
    except ValueError:
        raise ValueError(f"{v!r}: the port is not a number from 1 to 65535") from None
    host = parts.hostname or ""
    if not host:
        raise ValueError(f"{v!r} names no host (e.g. \"https://api.binance.com\")")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} is not an IP address or a host name") from None
    return host


def bind_problem(field: str, host: str | None) -> str | None:
    """Why this host cannot bind `host` (an address or a name), or None.

    A throw-away socket is bound to it (port 0, closed at once): an address the host does not
    have would make the tap's listen or every source's connect fail at start, a crash loop
    instead of one line."""
    if not host:
        return None
    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
        family, _t, _p, _c, addr = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind(addr)
    except OSError:
        return (f"{field}: {host!r} is not an address of this host (nothing can listen on or "
                "send from it here); use one `ip -brief address` lists, or 127.0.0.1")
    return None


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# The severities an alert can have (monitor.core.findings.Severity's values; config sits left of
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


def address_problems(listen: str, sources: dict[str, str | None]) -> list[str]:
    """The tap's listen host and each source address, bound on this host (see bind_problem)."""
    found = [bind_problem("sources.tap.listen", listen.rpartition(":")[0])]
    found += [bind_problem(field, host) for field, host in sources.items()]
    return [p for p in found if p is not None]
