"""The user's alert channels, from the TOML's URLs and/or an Apprise config file, and routing.

A channel is one Apprise destination with a stable name: deliveries in the outbox are recorded
per channel name, so a name must survive a restart. TOML channels use their `name`; entries of
an Apprise YAML/TEXT config file are named `<file name>#<n>` in file order.

Routing: an alert of severity S goes to every channel whose tags meet `routing[S]`, and to every
untagged channel (an untagged channel is a catch-all, so a one-channel setup gets everything).
The daily digest goes to channels tagged with anything in `routing[warning]`, `routing[info]`
or `digest`, and to untagged channels.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from monitor.config import AlertsConfig
from monitor.core.findings import Severity


def _quiet_imports() -> None:
    """Apprise's e-mail plugin imports the stdlib `imghdr`, which warns on 3.11+.

    The test suite runs with warnings as errors, and Apprise imports plugins lazily on first
    use, so the module is imported once here with that one warning silenced.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*imghdr")
        import imghdr  # noqa: F401


_quiet_imports()

import apprise  # noqa: E402


@dataclass(frozen=True)
class Channel:
    name: str
    tags: frozenset[str]
    url: SecretStr | None = None  # a TOML channel
    config_path: str | None = None  # or an entry of an Apprise config file
    config_index: int = 0
    service: str = field(default="", compare=False)

    def build(self) -> apprise.Apprise:
        """A fresh Apprise object for one send (fresh, so no plugin throttle state carries)."""
        ap = apprise.Apprise()
        if self.url is not None:
            if not ap.add(self.url.get_secret_value()):
                raise ValueError(f"channel {self.name!r}: Apprise does not accept its URL")
            return ap
        servers = _config_servers(self.config_path or "")
        if self.config_index >= len(servers):
            raise ValueError(
                f"channel {self.name!r}: {self.config_path} now has only {len(servers)} entries"
            )
        ap.add(servers[self.config_index])
        return ap


def _config_servers(path: str) -> list[apprise.plugins.NotifyBase]:
    ac = apprise.AppriseConfig()
    if not ac.add(path):
        raise ValueError(f"{path}: Apprise cannot read this config file")
    # Apprise 2.x calls it services(); 1.x called it servers()
    listing = getattr(ac, "services", None) or getattr(ac, "servers")  # noqa: B009
    return list(listing())


def load_channels(cfg: AlertsConfig) -> list[Channel]:
    """Every configured channel; raises ValueError naming a bad Apprise config file."""
    out = [
        Channel(name=ch.name, tags=frozenset(ch.tags), url=ch.resolved_url, service="url")
        for ch in cfg.channels
        if ch.resolved_url is not None
    ]
    if cfg.apprise_config:
        if not Path(cfg.apprise_config).is_file():
            raise ValueError(f"alerts.apprise_config: {cfg.apprise_config} does not exist")
        base = Path(cfg.apprise_config).name
        for i, server in enumerate(_config_servers(cfg.apprise_config)):
            out.append(Channel(
                name=f"{base}#{i}", tags=frozenset(server.tags), config_path=cfg.apprise_config,
                config_index=i, service=str(server.service_name),
            ))
    names = [c.name for c in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"alerts.channels: channel names must be unique; repeated: {dupes}")
    return out


def route(channels: Iterable[Channel], wanted: Iterable[str]) -> list[str]:
    want = set(wanted)
    return [c.name for c in channels if not c.tags or c.tags & want]


def severity_channels(channels: Iterable[Channel], cfg: AlertsConfig, sev: Severity) -> list[str]:
    return route(channels, cfg.routing.get(sev.value, []))


def digest_channels(channels: Iterable[Channel], cfg: AlertsConfig) -> list[str]:
    wanted = {"digest", *cfg.routing.get("warning", []), *cfg.routing.get("info", [])}
    return route(channels, wanted)


def prefers_rich(ap: apprise.Apprise) -> bool:
    """True when the channel's preferred body is HTML or Markdown rather than plain text."""
    for server in ap:
        return _first_format(server) != "text"
    return False


def _first_format(server: apprise.plugins.NotifyBase) -> str:
    fmt = server.notify_format
    first = fmt[0] if isinstance(fmt, tuple | list) and fmt else fmt
    return str(getattr(first, "value", first))


def prepare(
    ap: apprise.Apprise, title: str, text: str, markdown: str | None
) -> tuple[str, str, apprise.NotifyFormat]:
    """(title, body, body format) for one channel, within that channel's limits.

    The limits are the Apprise plugin's, so they follow the URL scheme: `tgram://` 4,096
    characters with the title inside the body, `discord://` 2,000, `pover://` 1,024,
    `mailto://` 32,768. A rich channel is measured by the HTML (or Markdown) Apprise makes of
    the Markdown, since that is what the service counts. A longer alert is summarised
    (`monitor.alert.fit`), not split.
    """
    from apprise.conversion import convert_between

    from monitor.alert.fit import fit

    server = next(iter(ap), None)
    rich = bool(markdown) and server is not None and _first_format(server) != "text"
    body, fmt = (markdown or "", apprise.NotifyFormat.MARKDOWN) if rich else (
        text, apprise.NotifyFormat.TEXT)
    if server is None:
        return title, body, fmt
    title_max = int(server.title_maxlen)
    # Telegram has no title field and Discord's plain messages have none either: the plugin
    # puts the title at the top of the body, so the body always leaves room for it
    limit = int(server.body_maxlen) - len(title) - 16
    if 0 < title_max < len(title):
        tag = title[title.rfind(" ["):] if title.endswith("]") and " [" in title else ""
        title = title[: title_max - len(tag) - 3] + "..." + tag  # keep the alert id
    target = _first_format(server)

    def measure(s: str) -> int:
        if not rich or target == "markdown":
            return len(s)
        return len(convert_between(apprise.NotifyFormat.MARKDOWN, apprise.NotifyFormat(target), s))

    return title, fit(body, max(limit, 200), measure), fmt
