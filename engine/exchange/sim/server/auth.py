"""API keys, request signatures (HMAC-SHA256, RSA PKCS#1 v1.5, Ed25519) and the timestamp window.

The signed payload is the RAW query string up to (not including) ``&signature=`` followed by the
raw form body (Binance: ``totalParams = queryString + requestBody``, no separator), never a
re-encoding of decoded parameters (protocol notes §2.3).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from engine.exchange.sim.matching import SimApiError

DEFAULT_API_KEY = "perpdeck-sim-key"
DEFAULT_API_SECRET = "perpdeck-sim-secret"

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60000

MSG_TS_WINDOW = "Timestamp for this request is outside of the recvWindow."
MSG_TS_AHEAD = "Timestamp for this request was 1000ms ahead of the server's time."


@dataclass(frozen=True)
class ApiKey:
    """One registered key. ``public_key_pem`` is an RSA or Ed25519 public key (type auto-detected).

    Several ``ApiKey`` entries may share one ``api_key`` (e.g. an HMAC secret and an Ed25519 key);
    a signature is accepted when any of them verifies it.
    """

    api_key: str
    hmac_secret: str | None = None
    public_key_pem: str | None = None


def _err(code: int, msg: str, status: int = 400) -> SimApiError:
    return SimApiError(status, code, msg)


class _Verifier:
    def __init__(self, key: ApiKey) -> None:
        self.secret = key.hmac_secret.encode() if key.hmac_secret is not None else None
        self.rsa: RSAPublicKey | None = None
        self.ed: Ed25519PublicKey | None = None
        if key.public_key_pem:
            pub = load_pem_public_key(key.public_key_pem.encode())
            if isinstance(pub, RSAPublicKey):
                self.rsa = pub
            elif isinstance(pub, Ed25519PublicKey):
                self.ed = pub
            else:
                raise ValueError(f"api key {key.api_key!r}: unsupported public key type {type(pub).__name__}")
        if self.secret is None and self.rsa is None and self.ed is None:
            raise ValueError(f"api key {key.api_key!r}: needs an hmac_secret or a public_key_pem")

    def verify(self, payload: bytes, signature: str) -> bool:
        if self.secret is not None:
            expected = hmac.new(self.secret, payload, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected, signature.lower()):
                return True
        if self.rsa is None and self.ed is None:
            return False
        try:
            raw = base64.b64decode(signature.replace(" ", "+"), validate=True)
        except (binascii.Error, ValueError):
            return False
        try:
            if self.rsa is not None:
                self.rsa.verify(raw, payload, padding.PKCS1v15(), hashes.SHA256())
            else:
                assert self.ed is not None
                self.ed.verify(raw, payload)
            return True
        except InvalidSignature:
            return False


class KeyStore:
    """The registered API keys (all of them trade the one simulated account)."""

    def __init__(self, keys: tuple[ApiKey, ...] | list[ApiKey]) -> None:
        self._by_key: dict[str, list[_Verifier]] = {}
        for k in keys:
            self.add(k)

    def add(self, key: ApiKey) -> None:
        self._by_key.setdefault(key.api_key, []).append(_Verifier(key))

    def check_key(self, api_key: str | None) -> None:
        """USER_STREAM / SIGNED: the ``X-MBX-APIKEY`` header must name a registered key."""
        if not api_key:
            raise _err(-2014, "API-key format invalid.", 401)
        if api_key not in self._by_key:
            raise _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def verify(self, api_key: str, raw_query: str, raw_body: str) -> None:
        """Check the signature of a SIGNED request (raises -1102 / -1022)."""
        payload, sig = split_signature(raw_query, raw_body)
        if sig is None or sig == "":
            raise _err(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        data = payload.encode("utf-8")
        for v in self._by_key.get(api_key, []):
            if v.verify(data, sig):
                return
        raise _err(-1022, "Signature for this request is not valid.")


def split_signature(raw_query: str, raw_body: str) -> tuple[str, str | None]:
    """(signed payload, percent-decoded signature or None). ``signature`` must be the last parameter."""

    def cut(s: str) -> tuple[str, str | None]:
        if s.startswith("signature="):
            return "", s[len("signature="):]
        i = s.rfind("&signature=")
        if i < 0:
            return s, None
        return s[:i], s[i + len("&signature="):]

    q, sig = cut(raw_query)
    if sig is not None:
        return q + raw_body, unquote(sig.split("&", 1)[0])
    b, sig = cut(raw_body)
    if sig is not None:
        return raw_query + b, unquote(sig.split("&", 1)[0])
    return raw_query + raw_body, None


def check_timestamp(params: dict[str, str], server_ms: int) -> None:
    """Binance's rule: ``timestamp < server + 1000 and server - timestamp <= recvWindow`` (§2.6)."""
    raw = params.get("timestamp")
    try:
        ts = int(raw) if raw is not None else None
    except ValueError:
        ts = None
    if ts is None:
        raise _err(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed.")
    rw_raw = params.get("recvWindow")
    recv_window = DEFAULT_RECV_WINDOW_MS
    if rw_raw is not None and rw_raw != "":
        try:
            recv_window = int(rw_raw)
        except ValueError:
            raise _err(-1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed.") from None
        if recv_window <= 0:
            raise _err(-1130, "Data sent for parameter 'recvWindow' is not valid.")
        if recv_window > MAX_RECV_WINDOW_MS:
            raise _err(-1131, "recvWindow must be less than 60000")
    if ts >= server_ms + 1000:
        raise _err(-1021, MSG_TS_AHEAD)
    if server_ms - ts > recv_window:
        raise _err(-1021, MSG_TS_WINDOW)
