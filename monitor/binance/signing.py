"""Request signing over exactly the bytes Binance will check, for every key type it issues.

REST and the WebSocket API sign different payloads (binance-wire.md section 1): REST signs the
query string followed by the body, exactly as sent (percent-encoded); the WebSocket API signs
every param except `signature`, `apiKey` included, sorted by name and *not* percent-encoded.
Getting either order wrong gives -1022, so both live here next to their golden vectors.

The key type changes only the signature over those payloads (`monitor/core/keys.py`): HMAC as
lowercase hex; RSA and Ed25519 as base64, which REST must percent-encode (`+` would arrive as a
space) and the WebSocket API sends as is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from pydantic import SecretStr

from monitor.core.keys import Signer, as_signer, hmac_sha256_hex

__all__ = ["Signer", "encode_query", "hmac_sha256_hex", "key_hint", "rest_payload",
           "sign_rest_query", "sign_ws_params", "ws_payload"]

Params = Mapping[str, object] | Sequence[tuple[str, object]]


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def encode_query(params: Params) -> str:
    """Percent-encode params in the given order (non-ASCII encoded before signing)."""
    items = params.items() if isinstance(params, Mapping) else params
    return urlencode([(k, _value(v)) for k, v in items])


def rest_payload(query: str, body: str = "") -> str:
    """The REST signature payload: query string and body concatenated, no separator."""
    return f"{query}{body}"


def sign_rest_query(secret: SecretStr | str | Signer, params: Params, body: str = "") -> str:
    """Return the query string to send: `params` in order with `signature` appended last,
    percent-encoded (base64's `+`, `/`, `=`; HMAC's hex is unchanged by it)."""
    query = encode_query(params)
    sig = quote(as_signer(secret).sign(rest_payload(query, body)), safe="")
    return f"{query}&signature={sig}" if query else f"signature={sig}"


def ws_payload(params: Mapping[str, object]) -> str:
    """The WS API signature payload: all params but `signature`, sorted, raw UTF-8 values."""
    return "&".join(
        f"{k}={_value(params[k])}" for k in sorted(params) if k != "signature"
    )


def sign_ws_params(secret: SecretStr | str | Signer, params: Mapping[str, object]
                   ) -> dict[str, object]:
    """Return a copy of `params` (which must include `apiKey`) with `signature` added, as a
    plain string (no percent-encoding on the WebSocket API)."""
    if "apiKey" not in params:
        raise ValueError("WebSocket API signatures cover apiKey: put it in params first")
    out = dict(params)
    out["signature"] = as_signer(secret).sign(ws_payload(params))
    return out


def key_hint(api_key: SecretStr | str | None) -> str:
    """At most the first 4 characters of a key, for logs and error text."""
    if api_key is None:
        return "<none>"
    raw = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
    return f"{raw[:4]}..." if raw else "<empty>"
