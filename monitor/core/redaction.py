"""What counts as a secret, by pattern: one definition for events, alerts and logs.

Exact names missed `apiSecret=` and `secret_key=` (stored verbatim in `events.raw`), so a name
is judged by what it contains once normalised (lower case, no `_`, `-`, `.` or spaces): any name
holding secret, signature, private, passphrase, password, token, apikey, authorization,
credential or cookie is secret, wherever it appears: a JSON key, a query or form parameter
(`...&apiSecret=...`), a header line (`X-MBX-APIKEY: ...`). A name that says it holds a digest
of something (`api_key_sha256`, `secret_hash`) is not: a fingerprint is how Keywatch names keys
without holding them.

Values are also judged by shape where that is safe: a PEM private key block, a bearer token,
and a 64-character mixed-case alphanumeric run (the shape of a Binance API key and its secret;
a digest is single-case hex, which is kept, since event ids and fingerprints look like that).

Standard library only and imports nothing of Keywatch: `events.py` (the leftmost module) uses
it, and so do the alert redactor and the log filter.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

REDACTED = "[redacted]"


def key_fingerprint(api_key: str) -> str:
    """sha256 hex of an API key: how Keywatch names a key (config `api_key_sha256`, the tap's
    record, the spool) without ever holding the key itself. One definition for all of them."""
    return hashlib.sha256(api_key.encode()).hexdigest()

SECRET_WORDS = ("secret", "signature", "private", "passphrase", "password", "passwd", "token",
                "apikey", "authorization", "credential", "cookie")
DIGEST_WORDS = ("sha256", "sha512", "sha1", "fingerprint", "digest", "hash")
_NOT_ALNUM = re.compile(r"[^a-z0-9]")

# name=value in a query string, a form body or a log line (the value ends at & space quote , ;)
_PAIR = re.compile(r"(?P<name>[A-Za-z0-9_.\-\[\]]{2,64})=(?P<value>[^&\s\"',;]+)")
# "name": "value" inside a string that holds JSON text (or a Python repr: 'name': 'value')
_JSON_PAIR = re.compile(r"(?P<q>\\?[\"'])(?P<name>[^\"'\\]{2,64})(?P=q)\s*:\s*b?"
                        r"(?P<q2>\\?[\"'])(?P<value>[^\"'\\]*)(?P=q2)")
# Name: value (a header line as logged or pasted)
_HEADER = re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_\-]{1,63})\s*:\s*(?P<value>[^\s,;\"']+)")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}")
_PEM = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
                  re.DOTALL)
_KEY_SHAPED = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]{64}(?![A-Za-z0-9])")


def normalise(name: object) -> str:
    return _NOT_ALNUM.sub("", str(name).lower())


def is_secret_name(name: object) -> bool:
    """True for any name that may carry a secret (see the module docstring)."""
    n = normalise(name)
    return any(w in n for w in SECRET_WORDS) and not any(w in n for w in DIGEST_WORDS)


def _mixed_case(value: str) -> bool:
    return any(c.islower() for c in value) and any(c.isupper() for c in value)


def scrub_text(text: str) -> str:
    """`text` with every secret-named value and every secret-shaped value replaced."""
    if len(text) < 64 and not any(c in text for c in '=:"') and \
            "bearer" not in text.lower() and "basic" not in text.lower():
        return text  # the common case (a symbol, a status): nothing here can match
    text = _PEM.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    for pattern in (_JSON_PAIR, _PAIR, _HEADER):
        text = pattern.sub(_named, text)
    return _KEY_SHAPED.sub(lambda m: REDACTED if _mixed_case(m.group()) else m.group(), text)


def _named(m: re.Match[str]) -> str:
    if not is_secret_name(m.group("name")) or m.group("value") == REDACTED:
        return m.group()
    start, end = m.span("value")
    base = m.start()
    whole = m.group()
    return whole[:start - base] + REDACTED + whole[end - base:]


def redact(payload: Any) -> Any:
    """A JSON-like copy: secret-named keys dropped, every string scrubbed (`scrub_text`)."""
    if isinstance(payload, dict):
        return {scrub_text(k) if isinstance(k, str) else k: redact(v)
                for k, v in payload.items() if not is_secret_name(k)}
    if isinstance(payload, list | tuple | set | frozenset):
        return [redact(v) for v in payload]
    if isinstance(payload, str):
        return scrub_text(payload)
    return payload


def secret_paths(payload: Any, prefix: str = "") -> list[str]:
    """Where a payload still carries a secret-named key (empty once `redact` ran)."""
    found: list[str] = []
    if isinstance(payload, dict):
        for k, v in payload.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            if is_secret_name(k):
                found.append(path)
            found.extend(secret_paths(v, path))
    elif isinstance(payload, list):
        for i, v in enumerate(payload):
            found.extend(secret_paths(v, f"{prefix}[{i}]"))
    return found
