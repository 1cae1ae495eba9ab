"""Credentials and request signing: HMAC-SHA256, RSA (PKCS#1 v1.5, SHA-256) and Ed25519.

What is signed is exactly what goes on the wire before ``&signature=`` — the connector's own
encoding (``urlencode(params, True)`` with ``@`` left raw), ``timestamp`` last but one and
``signature`` last (protocol notes §2.3). HMAC gives hex; RSA and Ed25519 give base64, which
the URL encoding then percent-encodes (``+``→``%2B``, ``/``→``%2F``, ``=``→``%3D``).

The key type of a PEM is detected from the key itself. Nothing here ever puts a secret, a
private key or a signature in a repr, a log line or an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any, Mapping

from binance.lib.utils import cleanNoneValue, encoded_string
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from engine.exchange.errors import AuthError


def _mask(value: str | None) -> str:
    if not value:
        return "None"
    return f"'{value[:4]}…'" if len(value) > 8 else "'***'"


@dataclass(frozen=True)
class Credentials:
    """An API key and one way to sign: ``secret`` (HMAC) or ``private_key_pem`` (RSA/Ed25519)."""

    api_key: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)  # HMAC
    private_key_pem: str | None = field(default=None, repr=False)  # RSA (PKCS#8) or Ed25519 PEM
    passphrase: str | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        if self.private_key_pem:
            return "PEM"
        if self.secret:
            return "HMAC"
        return "NONE"

    def secrets(self) -> list[str]:
        """Every secret-ish value, for a log redaction filter."""
        return [s for s in (self.api_key, self.secret, self.private_key_pem, self.passphrase) if s]

    def __repr__(self) -> str:
        return f"Credentials(api_key={_mask(self.api_key)}, signing={self.kind})"

    __str__ = __repr__


class Signer:
    """Signs a query string. ``kind`` is ``HMAC``, ``RSA`` or ``ED25519``."""

    kind: str = ""

    def sign(self, payload: str) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind}>"


class HmacSigner(Signer):
    kind = "HMAC"

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


class RsaSigner(Signer):
    kind = "RSA"

    def __init__(self, key: RSAPrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        sig = self._key.sign(payload.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
        return base64.b64encode(sig).decode("ascii")


class Ed25519Signer(Signer):
    kind = "ED25519"

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    def sign(self, payload: str) -> str:
        return base64.b64encode(self._key.sign(payload.encode("utf-8"))).decode("ascii")


def make_signer(creds: Credentials | None) -> Signer | None:
    """The signer for ``creds``: a private key wins over a secret. ``None`` when neither is set."""
    if creds is None:
        return None
    if creds.private_key_pem:
        pem = creds.private_key_pem.encode("utf-8") if isinstance(creds.private_key_pem, str) else creds.private_key_pem
        password = creds.passphrase.encode("utf-8") if creds.passphrase else None
        try:
            try:
                key = serialization.load_pem_private_key(pem, password=password)
            except TypeError:
                if password is None:
                    raise
                key = serialization.load_pem_private_key(pem, password=None)  # passphrase given, key not encrypted
        except (ValueError, TypeError) as exc:
            # cryptography's messages do not contain key material, but keep only the class name anyway.
            raise AuthError(0, f"cannot load the API private key ({type(exc).__name__}): expected an RSA "
                               "PKCS#8 or Ed25519 PEM, and the right passphrase if it is encrypted",
                            0, hint="check the configured private key and its passphrase") from None
        if isinstance(key, Ed25519PrivateKey):
            return Ed25519Signer(key)
        if isinstance(key, RSAPrivateKey):
            return RsaSigner(key)
        raise AuthError(0, f"unsupported private key type {type(key).__name__}: Binance takes RSA or Ed25519",
                        0, hint="")
    if creds.secret:
        return HmacSigner(creds.secret)
    return None


def query_string(params: Mapping[str, Any]) -> str:
    """The wire encoding the connector uses (``None`` values dropped, ``@`` kept raw)."""
    return encoded_string(cleanNoneValue(dict(params)))


def sign_params(params: Mapping[str, Any], timestamp_ms: int, signer: Signer) -> dict[str, Any]:
    """A new parameter dict: the given params in order, then ``timestamp``, then ``signature``."""
    payload = dict(params)
    payload.pop("signature", None)
    payload.pop("timestamp", None)
    payload["timestamp"] = timestamp_ms
    payload["signature"] = signer.sign(query_string(payload))
    return payload
