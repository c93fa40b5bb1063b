"""Who is calling and may they: signature, timestamp window, key, IP whitelist, permission.

REST signs the exact query string followed by the body (wire 1.1); the WebSocket API signs its
params sorted by name, apiKey included, values unencoded (wire 1.2). HMAC-SHA256 only here;
Ed25519/RSA keys are not modelled (not needed by any scenario).
"""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal, InvalidOperation

from monitor.world.sim import errors
from monitor.world.sim.state import ApiKey, Books

MAX_RECV_WINDOW = 60_000
DEFAULT_RECV_WINDOW = Decimal(5000)


def hmac_hex(secret: str, payload: str | bytes) -> str:
    data = payload.encode() if isinstance(payload, str) else payload
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def ws_payload(params: dict[str, object]) -> str:
    """WS API signature payload: every param but `signature`, sorted, `k=v` joined by `&`."""
    return "&".join(
        f"{k}={_ws_value(v)}" for k, v in sorted(params.items()) if k != "signature"
    )


def _ws_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def strip_signature(raw: bytes) -> tuple[bytes, str | None]:
    """Split `a=1&b=2&signature=xx` into the signed bytes and the signature, keeping order."""
    if not raw:
        return b"", None
    kept: list[bytes] = []
    signature: str | None = None
    for part in raw.split(b"&"):
        if part.startswith(b"signature="):
            signature = part[len(b"signature="):].decode("latin-1")
        else:
            kept.append(part)
    return b"&".join(kept), signature


def verify_signature(key: ApiKey, payload: bytes, signature: str | None) -> None:
    if not signature:
        raise errors.missing_param("signature")
    expected = hmac_hex(key.secret, payload)
    if not hmac.compare_digest(expected, signature.lower()):
        raise errors.bad_signature()


def check_timestamp(params: dict[str, str], server_ms: int) -> None:
    """Binance's timing rule (wire 1.1): -1021 when stale or more than 1 s ahead."""
    raw_ts = params.get("timestamp")
    if raw_ts in (None, ""):
        raise errors.missing_param("timestamp")
    try:
        ts = int(str(raw_ts))
    except ValueError as exc:
        raise errors.bad_value("timestamp") from exc
    if ts > 10**14:  # microseconds
        ts //= 1000
    raw_rw = params.get("recvWindow")
    try:
        recv = Decimal(str(raw_rw)) if raw_rw not in (None, "") else DEFAULT_RECV_WINDOW
    except InvalidOperation as exc:
        raise errors.bad_value("recvWindow") from exc
    if recv > MAX_RECV_WINDOW:
        raise errors.bad_value("recvWindow", "Cannot be greater than 60000.")
    if ts >= server_ms + 1000:
        raise errors.ahead_timestamp()
    if server_ms - ts > recv:
        raise errors.stale_timestamp()


def lookup_key(books: Books, api_key: str | None) -> ApiKey:
    """-2014 for a missing or malformed key, -2015 for an unknown one."""
    if not api_key or len(api_key) != 64 or not api_key.isalnum():
        raise errors.bad_key_format()
    key = books.keys.get(api_key)
    if key is None:
        raise errors.rejected_key()
    return key


def check_ip(key: ApiKey, peer_ip: str) -> None:
    if key.ip_whitelist is not None and peer_ip not in key.ip_whitelist:
        raise errors.rejected_key()


def check_permission(key: ApiKey, flag: str | None) -> None:
    if flag is not None and not key.permissions.get(flag, False):
        raise errors.rejected_key()
