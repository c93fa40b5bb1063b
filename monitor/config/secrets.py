"""Secrets written where the config expects none: refused without ever echoing them.

Two ways a secret ends up in the TOML by mistake: pasted into an `*_env` field, which holds
the NAME of an environment variable, and embedded in an Apprise URL (a bearer header, a bot
token in the path, a password). Both are refused; the message shows at most the value's
length, because the message goes to a terminal, a journal or a CI log.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# Apprise schemes whose plain URL carries no credential by design (a credential can still be
# added to one: a password, a `+Header`, a `?token=`; `url_credential` looks for those).
SAFE_URL_SCHEMES = {"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"}
# query parameter or header names that hold a credential (Apprise: `?+Header=`, `?-param=`,
# `?:payload=`, plain `?name=`)
CREDENTIAL_NAME = re.compile(
    r"(auth|token|secret|passw|pass$|pwd|key|signature|sig$|cookie|session|bearer|credential)",
    re.IGNORECASE,
)


def looks_like_secret(v: str) -> bool:
    """A long run of base62/base64 with mixed case and digits, or a long hex string: the shape
    of an API key, a secret or a bot token, not of an environment variable name."""
    s = v.strip()
    if len(s) >= 32 and re.fullmatch(r"[0-9a-fA-F]+", s):
        return True
    if len(s) < 20 or not re.fullmatch(r"[A-Za-z0-9+/=_:.-]+", s):
        return False
    return (any(c.islower() for c in s) and any(c.isupper() for c in s)
            and any(c.isdigit() for c in s))


def masked(v: str) -> str:
    """What a message may say about a value that might be a secret: its length only."""
    return f"a {len(v)}-character value"


def env_name(v: str | None, example: str) -> str | None:
    """The NAME of an environment variable, or None; a value shaped like a key is refused."""
    if v is None:
        return None
    move = (f"write the variable's NAME here (e.g. `{example}`) and its value in .env as "
            f"`{example}=...`")
    if looks_like_secret(v) or (not ENV_NAME.fullmatch(v) and len(v) >= 16):
        raise ValueError(f"this field holds the NAME of an environment variable, but it holds "
                         f"{masked(v)} shaped like a key or secret (not shown); {move}; if it is "
                         "a real key, it has been in this file: rotate it")
    if not ENV_NAME.fullmatch(v):
        raise ValueError(f"{masked(v)} is not an environment variable name (letters, digits and "
                         f"'_', not starting with a digit); {move}")
    return v


def url_credential(url: str) -> str | None:
    """What in an Apprise URL is a credential (a description, never the value), or None."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    shown = scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,11}", scheme) else "this"
    if scheme not in SAFE_URL_SCHEMES:
        return f"a {shown}:// URL carries its service's token in the URL itself"
    if parts.password:
        return f"the {shown}:// URL has a password (user:password@)"
    for seg in unquote(parts.path).split("/"):
        if looks_like_secret(seg):
            return f"a path segment of the {shown}:// URL looks like a token"
    # split by hand: parse_qsl decodes '+' as a space, and Apprise's '+' marks a header
    for pair in filter(None, re.split(r"[&;]", parts.query)):
        name, _, value = (unquote(x) for x in pair.partition("="))
        bare = name.lstrip("+-:")
        if looks_like_secret(bare):
            return f"a query part of the {shown}:// URL looks like a token"
        kind = {"+": "header", "-": "parameter", ":": "payload field"}.get(name[:1], "parameter")
        if CREDENTIAL_NAME.search(bare):
            return f"the {shown}:// URL sets the {kind} {bare!r}, which holds a credential"
        if value.lower().startswith(("bearer ", "basic ", "token ")) or looks_like_secret(value):
            return f"the {kind} {bare!r} of the {shown}:// URL holds a token-shaped value"
    return None
