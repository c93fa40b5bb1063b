"""Who is calling and may they: signature, timestamp window, key, IP whitelist, permission.

REST signs the exact query string followed by the body (wire 1.1); the WebSocket API signs its
params sorted by name, apiKey included, values unencoded (wire 1.2). Every key type Binance
issues (binance-wire-2.md section 1): HMAC-SHA256 (lowercase hex, case-insensitive), RSA
PKCS#1 v1.5 + SHA-256 and Ed25519 (base64, case-sensitive; percent-encoded in a REST query,
where an unencoded `+` arrives as a space and no longer verifies). A signature that does not
verify is -1022 whatever the type. On the WebSocket API the payload is the doc's raw form; the
stock clients percent-encode it (wire-2 1.3), so a signature over either form is accepted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from urllib.parse import unquote_plus, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

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


def ws_payload_encoded(params: dict[str, object]) -> str:
    """The same payload percent-encoded, as python-binance and binance-connector sign it."""
    return urlencode([(k, _ws_value(v)) for k, v in sorted(params.items()) if k != "signature"])


def ws_payloads(params: dict[str, object]) -> list[bytes]:
    """Every form of the WS payload a signature may be over (the doc's first)."""
    raw, enc = ws_payload(params), ws_payload_encoded(params)
    return [raw.encode()] if raw == enc else [raw.encode(), enc.encode()]


def public_key_type(pem: str) -> str:
    """"ed25519" or "rsa" for a PEM public key Binance would register; ValueError otherwise."""
    key = serialization.load_pem_public_key(pem.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPublicKey) and key.key_size in (2048, 4096):
        return "rsa"
    raise ValueError("Binance registers Ed25519 or 2048/4096-bit RSA public keys only")


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


def verify_signature(key: ApiKey, payload: bytes | Sequence[bytes], signature: str | None,
                     *, in_query: bool = False) -> None:
    """-1022 unless `signature` verifies over `payload` (or one of its forms) with the key.
    `in_query`: the signature as it arrived in a REST query or form body, still
    percent-encoded (HMAC's hex is the same either way)."""
    if not signature:
        raise errors.missing_param("signature")
    payloads = [payload] if isinstance(payload, bytes) else list(payload)
    if key.public_key is None:
        if not any(hmac.compare_digest(hmac_hex(key.secret, p), signature.lower())
                   for p in payloads):
            raise errors.bad_signature()
        return
    text = unquote_plus(signature) if in_query else signature
    try:
        sig = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise errors.bad_signature() from None
    public = serialization.load_pem_public_key(key.public_key.encode())
    for p in payloads:
        try:
            if isinstance(public, ed25519.Ed25519PublicKey):
                public.verify(sig, p)
            elif isinstance(public, rsa.RSAPublicKey):
                public.verify(sig, p, padding.PKCS1v15(), hashes.SHA256())
            else:
                break
            return
        except InvalidSignature:
            continue
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
