"""Signing: the official HMAC vector, RSA/Ed25519 round trips, the wire string, no secret leaks."""

import base64
import threading
import time
from urllib.parse import parse_qsl, unquote

import pytest
import requests
from binance.lib.authentication import rsa_signature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from requests.structures import CaseInsensitiveDict

from engine.exchange.binance.endpoints import Endpoints
from engine.exchange.binance.rest import BinanceRest, _Connector
from engine.exchange.binance.signing import (
    Credentials,
    Ed25519Signer,
    HmacSigner,
    RsaSigner,
    make_signer,
    query_string,
    sign_params,
)
from engine.exchange.errors import AuthError

OFFICIAL_SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
OFFICIAL_PAYLOAD = ("symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
                    "&recvWindow=5000&timestamp=1591702613943")
OFFICIAL_SIG = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1", "price": "9000",
         "timeInForce": "GTC", "recvWindow": 5000}


def _pem(key, password: bytes | None = None) -> str:
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc).decode()


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key():
    return ed25519.Ed25519PrivateKey.generate()


def test_hmac_matches_the_official_vector():
    signed = sign_params(ORDER, 1591702613943, HmacSigner(OFFICIAL_SECRET))
    unsigned = {k: v for k, v in signed.items() if k != "signature"}
    assert query_string(unsigned) == OFFICIAL_PAYLOAD
    assert signed["signature"] == OFFICIAL_SIG
    assert list(signed)[-2:] == ["timestamp", "signature"]  # timestamp then signature, last


def test_sign_params_puts_timestamp_and_signature_last_even_if_present():
    signed = sign_params({"timestamp": 1, "symbol": "X", "signature": "old"}, 5, HmacSigner("s"))
    assert list(signed) == ["symbol", "timestamp", "signature"] and signed["timestamp"] == 5


def test_rsa_signature_verifies_with_the_public_key_and_equals_the_connectors(rsa_key):
    signer = make_signer(Credentials("k", private_key_pem=_pem(rsa_key)))
    assert isinstance(signer, RsaSigner)
    sig = signer.sign(OFFICIAL_PAYLOAD)
    rsa_key.public_key().verify(base64.b64decode(sig), OFFICIAL_PAYLOAD.encode(), padding.PKCS1v15(), hashes.SHA256())
    # PKCS#1 v1.5 is deterministic: byte-identical to what binance-futures-connector produces
    assert sig == rsa_signature(_pem(rsa_key), OFFICIAL_PAYLOAD).decode()


def test_ed25519_signature_verifies_with_the_public_key(ed_key):
    signer = make_signer(Credentials("k", private_key_pem=_pem(ed_key)))
    assert isinstance(signer, Ed25519Signer)
    sig = signer.sign(OFFICIAL_PAYLOAD)
    ed_key.public_key().verify(base64.b64decode(sig), OFFICIAL_PAYLOAD.encode())  # raises if wrong


def test_encrypted_pem_needs_its_passphrase(ed_key):
    pem = _pem(ed_key, b"pw-123")
    assert isinstance(make_signer(Credentials("k", private_key_pem=pem, passphrase="pw-123")), Ed25519Signer)
    with pytest.raises(AuthError) as ei:
        make_signer(Credentials("k", private_key_pem=pem, passphrase="wrong"))
    assert "pw-123" not in str(ei.value) and "wrong" not in str(ei.value)


def test_garbage_pem_is_an_auth_error_without_the_key_text():
    with pytest.raises(AuthError) as ei:
        make_signer(Credentials("k", private_key_pem="-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----"))
    assert "SECRETSTUFF" not in str(ei.value)


def test_private_key_wins_over_secret_and_none_without_either(ed_key):
    assert isinstance(make_signer(Credentials("k", secret="s", private_key_pem=_pem(ed_key))), Ed25519Signer)
    assert isinstance(make_signer(Credentials("k", secret="s")), HmacSigner)
    assert make_signer(Credentials("k")) is None and make_signer(None) is None


def test_credentials_repr_and_str_hide_secrets(ed_key):
    pem = _pem(ed_key)
    c = Credentials("APIKEY1234567890", secret="TOPSECRET-HMAC", private_key_pem=pem, passphrase="PASSPHRASE")
    for text in (repr(c), str(c), f"{c}", repr([c]), repr(make_signer(c))):
        assert "TOPSECRET" not in text and "PASSPHRASE" not in text and "PRIVATE KEY" not in text
        assert "APIKEY1234567890" not in text
    assert set(c.secrets()) == {"APIKEY1234567890", "TOPSECRET-HMAC", pem, "PASSPHRASE"}


# -- the wire, through the real UMFutures subclass (requests dispatch replaced) -------------------


class _Capture:
    def __init__(self):
        self.calls = []
        self.lock = threading.Lock()

    def dispatch(self, connector, method):
        def send(url, params, timeout, **kw):
            with self.lock:
                self.calls.append({"method": method, "url": url, "params": params, "timeout": timeout,
                                   "session": id(connector.session), "thread": threading.get_ident(),
                                   "headers": dict(connector.session.headers)})
            time.sleep(0.005)
            r = requests.Response()
            r.status_code = 200
            r._content = b'{"orderId": 42, "status": "NEW"}'
            r.headers = CaseInsensitiveDict({"X-MBX-USED-WEIGHT-1M": "17", "X-MBX-ORDER-COUNT-10S": "3"})
            return r
        return send


@pytest.fixture
def capture(monkeypatch):
    cap = _Capture()
    monkeypatch.setattr(_Connector, "_dispatch_request", lambda self, m: cap.dispatch(self, m))
    return cap


async def test_wire_query_is_signed_last_with_offset_timestamp_and_encoded_ed25519(capture, ed_key):
    rest = BinanceRest(Endpoints.local("http://127.0.0.1:1", "ws://127.0.0.1:1"),
                       Credentials("KEY-abc", private_key_pem=_pem(ed_key)), wall_ms=lambda: 1_000_000,
                       fast_orders=False)  # the connector's own path (orders normally take fastsend)
    rest.offset_ms = 2_500
    data = await rest.call("POST", "/fapi/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                      "quantity": "0.001", "newClientOrderId": "a@b"},
                           weight=0, is_order=True)
    assert data == {"orderId": 42, "status": "NEW"}
    call = capture.calls[0]
    assert call["method"] == "POST" and call["url"] == "http://127.0.0.1:1/fapi/v1/order"
    assert call["headers"]["X-MBX-APIKEY"] == "KEY-abc"
    qs = call["params"]
    head, sig_enc = qs.rsplit("&signature=", 1)
    assert head == ("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.001&newClientOrderId=a@b"
                    "&recvWindow=5000&timestamp=1002500")
    assert "+" not in sig_enc and "/" not in sig_enc and "=" not in sig_enc  # base64 percent-encoded
    ed_key.public_key().verify(base64.b64decode(unquote(sig_enc)), head.encode())
    assert rest.limits.used_weight_1m == 17 and rest.limits.order_count_10s == 3
    rest.close()


async def test_hmac_wire_signature_recomputes_over_the_raw_query(capture):
    rest = BinanceRest(Endpoints.mainnet(), Credentials("K", secret=OFFICIAL_SECRET), wall_ms=lambda: 1591702613943)
    await rest.call("GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "x1"})
    head, sig = capture.calls[0]["params"].rsplit("&signature=", 1)
    assert HmacSigner(OFFICIAL_SECRET).sign(head) == sig
    assert dict(parse_qsl(head))["timestamp"] == "1591702613943"
    rest.close()


async def test_each_worker_thread_has_its_own_session(capture):
    import asyncio

    rest = BinanceRest(Endpoints.mainnet(), Credentials("K", secret="s"), max_workers=4)
    await asyncio.gather(*(rest.call("GET", "/fapi/v1/time", security="NONE") for _ in range(12)))
    by_session = {}
    for c in capture.calls:
        by_session.setdefault(c["session"], set()).add(c["thread"])
    assert all(len(threads) == 1 for threads in by_session.values())
    assert "signature" not in capture.calls[0]["params"]  # NONE security: unsigned
    rest.close()


def test_fast_order_path_sends_the_same_signed_query_as_the_connector(ed_key):
    """fastsend writes exactly the query string the connector would (encoding, timestamp, signature last)."""
    from binance.lib.utils import cleanNoneValue, encoded_string

    from engine.exchange.binance.fastsend import OrderSender
    from engine.exchange.binance.signing import make_signer, sign_params

    signer = make_signer(Credentials("KEY-abc", private_key_pem=_pem(ed_key)))
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001",
              "newClientOrderId": "a@b", "recvWindow": 5000}
    sender = OrderSender("https://fapi.binance.com", "KEY-abc", signer, lambda: 1_002_500)
    raw = sender._request_bytes("POST", "/fapi/v1/order", dict(params)).decode()
    line, *headers = raw.split("\r\n")
    expected = encoded_string(cleanNoneValue(sign_params(params, 1_002_500, signer)))
    assert line == f"POST /fapi/v1/order?{expected} HTTP/1.1"
    assert "X-MBX-APIKEY: KEY-abc" in headers and "Host: fapi.binance.com" in headers
    head, sig = expected.rsplit("&signature=", 1)
    assert head.endswith("&timestamp=1002500") and "newClientOrderId=a@b" in head
    ed_key.public_key().verify(base64.b64decode(unquote(sig)), head.encode())
