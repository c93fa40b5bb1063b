"""Binance's error codes and what each means to the person reading an alert or a table.

One definition: the alert title for a burst of refused calls (`alert/render.py`), the short
name in the notebook's failure table (`investigate/tables.py`), the evidence of a failure
count (`alert/evidence.py`) and the verdict of `check-config --online` (`keycheck.py`) all
read this table. A title is given only to the codes a refusal
burst can be made of (the key, its signature, its address or the clock); a -2010 in an order
finding says "rejected order", which its rule's own title already tells.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ErrorCode:
    code: int
    name: str  # a few words for a table column
    title: str | None = None  # an alert title for calls refused with this code
    # what it means when a key check (`check-config --online`) is refused with it, and the fix
    check: str | None = None


CODES: dict[int, ErrorCode] = {c.code: c for c in (
    ErrorCode(-1022, "bad signature",
              "Calls with a bad signature (-1022): a wrong secret, maybe your own bot after a "
              "secret change",
              "signature not valid: the secret (HMAC) or the private key (Ed25519/RSA) is not "
              "this key's: rotated, a typo in the .env, or a PEM file whose public half is not "
              "the one registered with Binance; copy the secret shown when the key was "
              "created, or point private_key_env at the matching PEM file"),
    ErrorCode(-2015, "invalid key/IP/permission",
              "Calls refused: invalid key, IP not whitelisted or permission missing (-2015)",
              "invalid API key, this host's address not on its IP whitelist, or no permission "
              "for this call; check that the key exists and its whitelist has this host"),
    ErrorCode(-2014, "bad API-key format", "Calls refused: malformed API key (-2014)",
              "API-key format invalid: the key in the environment is not a Binance key; check "
              "the .env line"),
    ErrorCode(-1021, "timestamp outside recvWindow",
              "Calls refused: timestamp outside recvWindow (-1021, a clock problem)",
              "timestamp outside recvWindow: this host's clock is off; enable NTP "
              "(`timedatectl set-ntp true`)"),
    ErrorCode(-2008, "invalid API-key ID (deleted key)",
              "Calls refused: the API key was deleted (-2008)",
              "invalid API key ID: the key was deleted; create a new one"),
    ErrorCode(-1002, "not authorized", "Calls refused: not authorized for this request (-1002)",
              "not authorized for this request: the key lacks the permission it needs"),
    ErrorCode(-1003, "too much weight"),
    ErrorCode(-1015, "too many orders"),
    ErrorCode(-2010, "order rejected (balance)"),
    ErrorCode(-1013, "filter failure"),
)}


def code_name(code: int) -> str:
    """'-1022 bad signature'; an unlisted code is just its number."""
    known = CODES.get(code)
    return f"{code} {known.name}" if known else str(code)
