"""Checks on single config values, shared by the config models and the standalone tap's reader.

Plain functions over strings that raise `ValueError` with the fix, so pydantic reports them
under the field's dotted path (`sources.tap.listen: ...`) and nothing here needs the models.
"""

from __future__ import annotations

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
