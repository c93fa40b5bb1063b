"""Scrub secrets out of anything an alert, a log line or an error string might carry.

Findings should never hold a secret, but an alert is the one place where a mistake upstream
would be sent to a third party (Telegram, a mail server), so every string that leaves the alert
package passes through a `Redactor` first. It removes, in order: the configured secret values
themselves (API keys, API secrets, channel URLs and their tokens), anything shaped like a
Binance key or secret or an HMAC signature (64 alphanumerics), and fields and parameters named
like a secret (`monitor/core/redaction.py`: the same rule the stored events and the logs follow).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from monitor.config import Config
from monitor.core.redaction import REDACTED, is_secret_name, scrub_text

# Binance API keys and secrets are 64 alphanumerics; HMAC-SHA256 signatures are 64 hex digits.
_KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64,}(?![A-Za-z0-9])")
_MIN_SECRET_LEN = 8  # shorter values would redact ordinary words; they are not real secrets


class Redactor:
    """Replaces known secret values and secret-shaped strings with `[redacted]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {s for s in secrets if s and len(s) >= _MIN_SECRET_LEN}
        # longest first, so a URL is removed whole before its token is looked for
        self._values = sorted(values, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self._values:
            if secret in value:
                value = value.replace(secret, REDACTED)
        # secret-named values (`apiSecret=...`, `"token": "..."`) by the events' own rule
        return _KEY_SHAPED.sub(REDACTED, scrub_text(value))

    def data(self, value: Any) -> Any:
        """A JSON-like copy with secret-named fields dropped and every string scrubbed."""
        if isinstance(value, dict):
            return {
                self.text(str(k)): self.data(v)
                for k, v in value.items()
                if not is_secret_name(k)
            }
        if isinstance(value, list | tuple | set | frozenset):
            return [self.data(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def url_secrets(url: str) -> list[str]:
    """The parts of an Apprise URL that may be credentials: the whole URL, user info, path."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    for piece in (parts.password, parts.username):
        if piece:
            out.extend({piece, unquote(piece)})
    # tokens usually sit in the host (tgram://bottoken/...) or path segments of token schemes
    if parts.scheme not in ("json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"):
        host = parts.netloc.rpartition("@")[2]  # not .hostname: a token may hold a ':'
        out.extend([host, *host.split(":")])
        out.extend(seg for seg in parts.path.split("/") if len(seg) >= 16)
    for seg in parts.query.split("&"):
        name, _, val = seg.partition("=")
        if val and re.search(r"(token|key|secret|pass|pwd|auth)", name, re.IGNORECASE):
            out.extend({val, unquote(val)})
    return out


def config_secrets(cfg: Config) -> list[str]:
    """Every secret value a loaded config holds (resolved from the environment)."""
    out: list[str] = []
    for acct in cfg.accounts:
        for key in acct.keys:
            for s in (key.api_key, key.api_secret, key.private_key_passphrase):
                if s is not None:
                    out.append(s.get_secret_value())
            if key.private_key_pem is not None:  # each line of the PEM's body, and all of it
                body = [ln.strip() for ln in key.private_key_pem.get_secret_value().decode(
                    "ascii", "replace").splitlines() if ln.strip() and "-----" not in ln]
                out.extend(ln for ln in body if len(ln) >= 16)
                out.append("".join(body))
    for ch in cfg.alerts.channels:
        if ch.resolved_url is not None and ch.url_env is not None:
            out.extend(url_secrets(ch.resolved_url.get_secret_value()))
    return out
