"""The service's start-up log line: what listens where and which channels alerts go to.

An operator reading the journal after a restart should learn, from one line, whether the tap
is up and on which address the bots must call it, where /healthz and /metrics are served, and
which alert channels are configured. Channels are named with their Apprise service only (the
URL scheme), never with their URL: the URL holds the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from monitor.alert.channels import Channel
from monitor.config import Config


class Listener(Protocol):
    host: str
    port: int


def channel_names(channels: Iterable[Channel]) -> list[str]:
    """'name (service)' per channel: the Apprise scheme, or the service of a config entry."""
    out = []
    for ch in channels:
        service = ch.service if ch.service not in ("", "url") else ""
        if ch.url is not None:
            scheme = ch.url.get_secret_value().split("://", 1)[0]
            service = scheme if scheme.isalnum() else "?"  # never a fragment of the URL
        out.append(f"{ch.name} ({service})" if service else ch.name)
    return out


def startup_line(cfg: Config, health: Listener | None, channels: Iterable[Channel]) -> str:
    accounts = ", ".join(a.name for a in cfg.accounts)
    tap = cfg.sources.tap
    mode = str(getattr(getattr(tap, "mode", None), "value", "inprocess"))
    if not tap.enabled:
        tap_text = "tap off"
    elif mode == "process":
        tap_text = (f"tap runs as `keywatch tap` on {tap.listen}; reading its spool "
                    f"{getattr(tap, 'spool', None)}")
    else:
        tap_text = f"tap listening on http://{tap.listen} (forwarding to {tap.upstream})"
    if health is None:
        health_text = "health and metrics off (--health-port to serve them)"
    else:
        where = (f"{health.host}:{health.port}" if health.port else
                 f"{health.host}, a free port chosen at start")
        health_text = f"health and metrics on http://{where} (/healthz, /metrics)"
    names = channel_names(channels)
    chan_text = (f"alert channels: {', '.join(names)}" if names else
                 "alert channels: none configured (findings are stored, not sent)")
    return (f"keywatch service started: {len(cfg.accounts)} account(s) ({accounts}); "
            f"{tap_text}; {health_text}; {chan_text}")
