"""API key material: the three key types Binance issues and a `Signer` for each.

A key is HMAC (Binance generated a shared secret), Ed25519 or RSA (the user registered a public
key and signs with the private half, a PKCS#8 PEM file). A `Signer` holds one key and turns a
payload into the signature string Binance checks: lowercase hex for HMAC, base64 for the others
(binance-wire-2.md section 1). What the payload is, and how the signature travels, is the wire's
business (`monitor/binance/signing.py`); callers never branch on the type. Key material never
appears in a repr.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from pydantic import SecretStr

from monitor.core.errors import KeywatchError

if TYPE_CHECKING:  # cryptography costs ~10 MiB of RSS: imported only for an Ed25519/RSA key
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa


class KeyType(StrEnum):
    HMAC = "hmac"
    ED25519 = "ed25519"
    RSA = "rsa"


class Signer(Protocol):
    """One API key's signing half: `sign(payload)` is the signature string as Binance expects
    it before transport encoding (hex for HMAC, base64 otherwise)."""

    @property
    def key_type(self) -> KeyType: ...

    def sign(self, payload: str) -> str: ...


@dataclass(frozen=True)
class HmacSigner:
    secret: SecretStr = field(repr=False)
    key_type: KeyType = KeyType.HMAC

    def sign(self, payload: str) -> str:
        return hmac_sha256_hex(self.secret, payload)


@dataclass(frozen=True)
class Ed25519Signer:
    private_key: ed25519.Ed25519PrivateKey = field(repr=False)
    key_type: KeyType = KeyType.ED25519

    def sign(self, payload: str) -> str:
        return base64.b64encode(self.private_key.sign(payload.encode())).decode()


@dataclass(frozen=True)
class RsaSigner:
    private_key: rsa.RSAPrivateKey = field(repr=False)
    key_type: KeyType = KeyType.RSA

    def sign(self, payload: str) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        sig = self.private_key.sign(payload.encode(), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(sig).decode()


class PrivateKeyError(KeywatchError):
    """A PEM private key that cannot sign for Binance: says what is wrong and what to give."""


def load_signer(pem: bytes, passphrase: SecretStr | None = None, *,
                expect: KeyType | None = None, where: str = "the private key") -> Signer:
    """A PEM (PKCS#8, encrypted or not) -> its signer. Refuses, in one line each: a public key
    given instead of the private one, a missing or wrong passphrase, a key that is neither
    Ed25519 nor RSA (2048 bits or more), and one of the other type than `expect`."""
    if b"PUBLIC KEY-----" in pem and b"PRIVATE KEY-----" not in pem:
        raise PrivateKeyError(f"{where} is a public key; give the private key (PKCS#8 PEM, "
                              "-----BEGIN PRIVATE KEY-----) whose public half you registered",
                              where=where)
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    pw = passphrase.get_secret_value().encode() if passphrase is not None else None
    try:
        key = serialization.load_pem_private_key(pem, password=pw)
    except TypeError as exc:  # encrypted without a passphrase, or a passphrase for a plain key
        need = "is encrypted: name its passphrase" if pw is None else "is not encrypted: drop"
        raise PrivateKeyError(f"{where} {need} the passphrase variable ({exc})",
                              where=where) from None
    except (ValueError, UnsupportedAlgorithm):
        hint = "the passphrase is wrong or " if pw is not None else ""
        raise PrivateKeyError(f"{where} could not be read: {hint}it is not a PEM private key "
                              "(PKCS#8, -----BEGIN PRIVATE KEY-----)", where=where) from None
    signer: Signer
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signer = Ed25519Signer(key)
    elif isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise PrivateKeyError(f"{where} is a {key.key_size}-bit RSA key; Binance takes "
                                  "2048 or 4096 bits", where=where)
        signer = RsaSigner(key)
    else:
        raise PrivateKeyError(f"{where} is a {type(key).__name__.removeprefix('_')}; Binance "
                              "API keys are Ed25519, RSA or HMAC", where=where)
    if expect is not None and signer.key_type is not expect:
        raise PrivateKeyError(f"{where} is an {signer.key_type.value} key but the key is "
                              f"declared {expect.value}; fix `type` or the file", where=where)
    return signer


def as_signer(secret: SecretStr | str | Signer) -> Signer:
    """A bare secret is an HMAC key (what every caller passed before other types existed)."""
    if isinstance(secret, str):
        return HmacSigner(SecretStr(secret))
    if isinstance(secret, SecretStr):
        return HmacSigner(secret)
    return secret


def hmac_sha256_hex(secret: SecretStr | str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of `payload` (UTF-8) keyed by the secret."""
    key = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    return hmac.new(key.encode(), payload.encode(), hashlib.sha256).hexdigest()
