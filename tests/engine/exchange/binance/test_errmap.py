"""Connector/transport exceptions → typed errors with hints, and nothing secret in any message."""

import pytest
import requests
from binance.error import ClientError, ParameterRequiredError, ServerError
from requests.structures import CaseInsensitiveDict

from engine.exchange.binance.errmap import (
    SERVICE_UNAVAILABLE_TEXT,
    UNKNOWN_503_TEXT,
    map_exception,
    redact,
    short_key,
)
from engine.exchange.errors import (
    AuthError,
    Banned,
    ExchangeConfigError,
    ExchangeError,
    RateLimited,
    TransientError,
    UnknownStatusError,
)

URL = "https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&quantity=1&timestamp=1&signature=deadbeefcafe0123"


def ce(status, code, msg, headers=None):
    return ClientError(status, code, msg, CaseInsensitiveDict(headers or {}))


def test_minus_2015_on_mainnet_hints_at_testnet_keys_permissions_and_ip():
    e = map_exception(ce(401, -2015, "Invalid API-key, IP, or permissions for action."), env="mainnet")
    assert isinstance(e, AuthError) and e.code == -2015 and e.http_status == 401 and e.is_auth
    text = str(e)
    assert "testnet" in text and "MAINNET" in text and "IP" in text and "Futures" in text
    assert not e.retryable and not e.unknown_status


def test_minus_2015_on_testnet_says_use_a_testnet_key():
    e = map_exception(ce(401, -2015, "Invalid API-key, IP, or permissions for action."), env="testnet")
    assert "TESTNET" in e.hint


@pytest.mark.parametrize("code,status,word", [
    (-1022, 400, "signature"), (-2014, 401, "API key format"),
])
def test_signature_and_key_format_are_auth_errors(code, status, word):
    e = map_exception(ce(status, code, "x"))
    assert isinstance(e, AuthError) and word in e.hint


@pytest.mark.parametrize("code,word", [
    (-2019, "margin is insufficient"), (-1111, "precision"), (-4164, "notional"),
    (-2021, "trigger immediately"), (-4014, "tick"), (-4023, "step"), (-4061, "position mode"),
])
def test_trader_actionable_hints(code, word):
    e = map_exception(ce(400, code, "server text"))
    assert type(e) is ExchangeError and e.code == code and word in str(e)
    assert e.msg == "server text"


def test_429_is_rate_limited_with_retry_after():
    e = map_exception(ce(429, -1003, "Too many requests; current limit is 2400 requests per minute.",
                         {"Retry-After": "7"}), now_ms=1_000_000)
    assert isinstance(e, RateLimited) and not isinstance(e, Banned)
    assert e.until_ms == 1_007_000 and e.retry_after_s == 7 and e.retryable


def test_418_is_banned_until_the_timestamp_in_the_message():
    e = map_exception(ce(418, -1003, "Way too many requests; IP banned until 1700000123456. Please use the "
                                     "websocket for live updates to avoid bans."), now_ms=1_700_000_000_000)
    assert isinstance(e, Banned) and e.until_ms == 1_700_000_123_456 and not e.retryable


def test_418_without_timestamp_uses_retry_after_or_a_default():
    e = map_exception(ce(418, -1003, "banned", {"Retry-After": "300"}), now_ms=10_000)
    assert e.until_ms == 310_000
    e = map_exception(ce(418, -1003, "banned"), now_ms=10_000)
    assert e.until_ms > 10_000


def test_503_unknown_is_unknown_status():
    e = map_exception(ServerError(503, '{"code":-1000,"msg":"' + UNKNOWN_503_TEXT + '"}'))
    assert isinstance(e, UnknownStatusError) and e.unknown_status and not e.retryable
    e = map_exception(ServerError(503, UNKNOWN_503_TEXT))  # plain-text body
    assert isinstance(e, UnknownStatusError)


def test_503_service_unavailable_and_throttled_are_transient():
    assert isinstance(map_exception(ServerError(503, SERVICE_UNAVAILABLE_TEXT)), TransientError)
    e = map_exception(ServerError(503, '{"code":-1008,"msg":"Request throttled by system-level protection."}'))
    assert isinstance(e, TransientError) and e.code == -1008 and e.retryable and not e.unknown_status
    e = map_exception(ServerError(500, '{"code":-1001,"msg":"Internal error; unable to process your request. '
                                       'Please try again."}'))
    assert isinstance(e, TransientError)


def test_other_5xx_408_and_execution_unknown_codes_are_unknown_status():
    assert isinstance(map_exception(ServerError(502, "<html>Bad gateway</html>")), UnknownStatusError)
    assert isinstance(map_exception(ce(408, None, "timeout")), UnknownStatusError)
    assert isinstance(map_exception(ce(400, -1006, "Execution status unknown.")), UnknownStatusError)
    e = map_exception(ServerError(503, '{"code":-1007,"msg":"Timeout waiting for response from backend server."}'))
    assert isinstance(e, UnknownStatusError) and e.code == -1007


def test_read_timeout_is_unknown_and_never_shows_the_url():
    exc = requests.exceptions.ReadTimeout(f"HTTPSConnectionPool: Read timed out. (url: {URL})")
    e = map_exception(exc)
    assert isinstance(e, UnknownStatusError)
    assert "signature" not in str(e) and "deadbeef" not in str(e) and "BTCUSDT" not in str(e)


def test_connect_failures_are_transient_and_mid_request_drops_unknown():
    e = map_exception(requests.exceptions.ConnectTimeout(f"Max retries exceeded with url: {URL}"))
    assert isinstance(e, TransientError) and "deadbeef" not in str(e)

    class NewConnectionError(Exception):
        pass

    refused = requests.exceptions.ConnectionError(NewConnectionError(f"refused {URL}"))
    assert isinstance(map_exception(refused), TransientError)
    dropped = requests.exceptions.ConnectionError(f"('Connection aborted.', RemoteDisconnected()) {URL}")
    e = map_exception(dropped)
    assert isinstance(e, UnknownStatusError) and "deadbeef" not in str(e)


def test_connector_parameter_errors_and_unexpected_failures():
    assert type(map_exception(ParameterRequiredError(["apiKey"]))) is ExchangeError
    e = map_exception(KeyError("code"))
    assert isinstance(e, UnknownStatusError) and "KeyError" in e.msg


def test_existing_exchange_errors_pass_through():
    err = RateLimited(-1015, "too many orders")
    assert map_exception(err) is err


def test_server_messages_are_redacted_and_truncated():
    e = map_exception(ce(400, -1102, "bad signature=abcdef0123456789 listenKey=XYZXYZXYZXYZ " + "x" * 1000))
    assert "abcdef0123456789" not in str(e) and "XYZXYZXYZXYZ" not in str(e) and len(e.msg) < 400


def test_redact_covers_signatures_listen_keys_headers_and_given_secrets():
    text = ('GET /fapi/v1/order?a=1&signature=abc123 {"listenKey":"pqia91ma19a5s61cv6a81va65sdf19v8"} '
            'wss://x/private/ws/pqia91ma19a5s61cv6a81va65sdf19v8 X-MBX-APIKEY: MYKEY123 mysecretvalue')
    out = redact(text, ["mysecretvalue"])
    for s in ("abc123", "pqia91ma19a5s61cv6a81va65sdf19v8", "MYKEY123", "mysecretvalue"):
        assert s not in out
    assert short_key("pqia91ma19a5s61cv6a81va65sdf19v8") == "pqia…"


def test_config_error_is_an_exchange_error_with_a_plain_message():
    e = ExchangeConfigError("account is in HEDGE mode but the config says ONEWAY")
    assert isinstance(e, ExchangeError) and "HEDGE" in str(e) and not e.retryable and not e.unknown_status


def test_base_error_keeps_the_old_contract():
    assert ExchangeError(-1021, "x").retryable and ExchangeError(-1006, "x").unknown_status
    assert ExchangeError(0, "x", 500).unknown_status and not ExchangeError(-2019, "x").retryable
    assert ExchangeError(-4116, "x").hint.startswith("duplicate")
