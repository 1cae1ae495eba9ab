"""REST side of the local exchange, driven by the unchanged Binance client (UMFutures) and raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import quote, urlencode

import pytest
import requests
from binance.error import ClientError, ServerError
from binance.um_futures import UMFutures
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from engine.data import sample_kline_files
from engine.exchange.sim.server import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    MSG_UNKNOWN_STATUS,
    ApiKey,
    LocalExchange,
    SimControl,
    load_replay,
    run_standalone,
)

from .conftest import (
    T0,
    away_from_window_edge,
    call,
    hmac_query,
    make_sim,
    now_ms,
    raw,
    wait_for,
)


async def advance(ex: LocalExchange, n: int = 1) -> dict:
    ctl = await SimControl.connect(ex.ws_url)
    try:
        r = {}
        for _ in range(n):
            r = await ctl.advance()
        return r
    finally:
        await ctl.close()


async def test_public_endpoints_and_weight_header(ex, client):
    before = now_ms()
    t = await call(client.time)
    assert before - 1000 <= t["serverTime"] <= now_ms() + 1000  # request clock, not the 2025 replay
    info = await call(client.exchange_info)
    assert {"BTCUSDT", "ETHUSDT"} <= {s["symbol"] for s in info["symbols"]}
    assert [r["rateLimitType"] for r in info["rateLimits"]] == ["REQUEST_WEIGHT", "ORDERS", "ORDERS"]
    r = await raw("GET", ex.rest_url + "/fapi/v1/ping")
    assert r.status_code == 200 and r.json() == {}
    assert r.headers["Content-Type"] == "application/json"
    assert int(r.headers["X-MBX-USED-WEIGHT-1M"]) >= 3
    r = await raw("GET", ex.rest_url + "/fapi/v1/nope")
    assert r.status_code == 404 and r.headers["Content-Type"] == "application/json"
    assert set(r.json()) == {"code", "msg"}


async def test_market_order_query_cancel_positions_account_balance(ex, client):
    await advance(ex)
    limited = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url, show_limit_usage=True)
    r = await call(limited.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                   newClientOrderId="m-1", newOrderRespType="RESULT")
    assert r["data"]["status"] == "FILLED" and r["data"]["executedQty"] == "0.01"
    usage = r["limit_usage"]
    assert usage["x-mbx-order-count-10s"] == "1" and usage["x-mbx-order-count-1m"] == "1"
    assert "x-mbx-used-weight-1m" in usage
    limited.session.close()

    q = await call(client.query_order, symbol="BTCUSDT", origClientOrderId="m-1")
    assert q["status"] == "FILLED" and q["clientOrderId"] == "m-1"

    # a resting limit order, cancelled
    lim = await call(client.new_order, symbol="BTCUSDT", side="BUY", type="LIMIT", quantity="0.010",
                     price="99000", timeInForce="GTC", newClientOrderId="l-1")
    assert lim["status"] == "NEW"
    opened = await call(client.get_orders, symbol="BTCUSDT")
    assert [o["clientOrderId"] for o in opened] == ["l-1"]
    one = await call(client.get_open_orders, symbol="BTCUSDT", origClientOrderId="l-1")
    assert one["orderId"] == lim["orderId"]
    c = await call(client.cancel_order, symbol="BTCUSDT", orderId=lim["orderId"])
    assert c["status"] == "CANCELED"
    with pytest.raises(ClientError) as e:
        await call(client.cancel_order, symbol="BTCUSDT", orderId=lim["orderId"])
    assert e.value.status_code == 400 and e.value.error_code == -2011
    with pytest.raises(ClientError) as e:
        await call(client.get_open_orders, symbol="BTCUSDT", origClientOrderId="m-1")  # filled: not open
    assert e.value.error_code == -2013

    pos = await call(client.get_position_risk, symbol="BTCUSDT")
    assert [p["positionAmt"] for p in pos] == ["0.01"]
    acc = await call(client.account)
    assert acc["positions"][0]["symbol"] == "BTCUSDT" and "totalWalletBalance" in acc
    bal = await call(client.balance)
    assert bal[0]["asset"] == "USDT"
    trades = await call(client.get_account_trades, symbol="BTCUSDT")
    assert len(trades) == 1 and trades[0]["orderId"] == q["orderId"]
    fee = await call(client.commission_rate, symbol="BTCUSDT")
    assert fee["takerCommissionRate"] == "0.0005"
    # v2 shapes: every symbol, leverage as a string, lowercase margin type
    v2 = await call(client.sign_request, "GET", "/fapi/v2/positionRisk", {})
    assert {p["symbol"] for p in v2} >= {"BTCUSDT", "ETHUSDT"}
    btc = next(p for p in v2 if p["symbol"] == "BTCUSDT")
    assert btc["positionAmt"] == "0.01" and btc["marginType"] == "cross" and isinstance(btc["leverage"], str)
    acc2 = await call(client.sign_request, "GET", "/fapi/v2/account", {})
    assert acc2["canTrade"] is True and any(p["symbol"] == "ETHUSDT" for p in acc2["positions"])


async def test_account_settings_endpoints(ex, client):
    await advance(ex)
    r = await call(client.change_leverage, symbol="BTCUSDT", leverage=5)
    assert r["leverage"] == 5 and r["symbol"] == "BTCUSDT"
    r = await call(client.change_margin_type, symbol="BTCUSDT", marginType="ISOLATED")
    assert r == {"code": 200, "msg": "success"}
    with pytest.raises(ClientError) as e:
        await call(client.change_margin_type, symbol="BTCUSDT", marginType="ISOLATED")
    assert e.value.error_code == -4046
    assert (await call(client.get_position_mode)) == {"dualSidePosition": False}
    brackets = await call(client.leverage_brackets, symbol="BTCUSDT")
    assert brackets[0]["symbol"] == "BTCUSDT"
    cfg = await call(client.sign_request, "GET", "/fapi/v1/symbolConfig", {"symbol": "BTCUSDT"})
    assert cfg == [{"symbol": "BTCUSDT", "marginType": "ISOLATED", "isAutoAddMargin": False, "leverage": 5,
                    "maxNotionalValue": cfg[0]["maxNotionalValue"]}]
    prem = await call(client.mark_price, symbol="BTCUSDT")
    assert prem["symbol"] == "BTCUSDT" and prem["nextFundingTime"] > T0


async def test_conditional_type_on_order_endpoint_is_4120_and_algo_via_sign_request(ex, client):
    await advance(ex)
    with pytest.raises(ClientError) as e:
        await call(client.new_order, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity="0.010",
                   stopPrice="95000")
    assert e.value.error_code == -4120
    assert "Algo Order API" in e.value.error_message
    await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    algo = await call(client.sign_request, "POST", "/fapi/v1/algoOrder", {
        "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": "95000", "quantity": "0.010", "reduceOnly": "true", "clientAlgoId": "sl-1"})
    assert algo["algoStatus"] == "NEW" and algo["orderType"] == "STOP_MARKET"
    got = await call(client.sign_request, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "sl-1"})
    assert got["algoId"] == algo["algoId"]
    opened = await call(client.sign_request, "GET", "/fapi/v1/openAlgoOrders", {"symbol": "BTCUSDT"})
    assert [a["clientAlgoId"] for a in opened] == ["sl-1"]
    with pytest.raises(ClientError) as e:  # invisible to the plain order endpoints
        await call(client.query_order, symbol="BTCUSDT", orderId=algo["algoId"])
    assert e.value.error_code == -2013
    c = await call(client.sign_request, "DELETE", "/fapi/v1/algoOrder", {"algoId": algo["algoId"]})
    assert c["code"] == "200" and c["clientAlgoId"] == "sl-1"
    c = await call(client.sign_request, "DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"})
    assert c["code"] == 200


async def test_listen_key_endpoints(ex, client):
    k1 = (await call(client.new_listen_key))["listenKey"]
    k2 = (await call(client.new_listen_key))["listenKey"]
    assert k1 == k2 and len(k1) == 64  # the same key while it is active
    assert (await call(client.renew_listen_key, k1)) == {"listenKey": k1}
    assert (await call(client.close_listen_key, k1)) == {}
    with pytest.raises(ClientError) as e:
        await call(client.renew_listen_key, k1)
    assert e.value.error_code == -1125
    k3 = (await call(client.new_listen_key))["listenKey"]
    assert k3 != k1
    # USER_STREAM: the API key alone, no signature
    r = await raw("POST", ex.rest_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    assert r.json() == {"listenKey": k3}
    r = await raw("POST", ex.rest_url + "/fapi/v1/listenKey")
    assert r.status_code == 401 and r.json()["code"] == -2014


async def test_auth_errors(ex, client):
    bad = UMFutures(DEFAULT_API_KEY, "wrong-secret", base_url=ex.rest_url)
    with pytest.raises(ClientError) as e:
        await call(bad.account)
    assert e.value.status_code == 400 and e.value.error_code == -1022
    assert e.value.error_message == "Signature for this request is not valid."
    bad.session.close()
    q = hmac_query({"timestamp": now_ms()})
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/account?{q}")
    assert r.status_code == 401 and r.json() == {"code": -2014, "msg": "API-key format invalid."}
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/account?{q}", headers={"X-MBX-APIKEY": "someone-else"})
    assert r.status_code == 401 and r.json()["code"] == -2015
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/account?signature=00", headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    assert r.status_code == 400 and r.json()["code"] == -1102  # timestamp is mandatory
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/account?timestamp={now_ms()}",
                  headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    assert r.json()["code"] == -1102  # so is the signature
    # uppercase hex is accepted (case-insensitive)
    q = urlencode({"timestamp": now_ms()})
    sig = hmac_query({"timestamp": int(q.split("=")[1])}).split("signature=")[1].upper()
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/balance?{q}&signature={sig}",
                  headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    assert r.status_code == 200


async def test_form_body_params_are_signed_and_query_wins(ex):
    await advance(ex)
    body = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.020"})
    query = urlencode({"quantity": "0.010", "newClientOrderId": "form-1", "timestamp": now_ms()})
    import hashlib
    import hmac
    sig = hmac.new(DEFAULT_API_SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()
    r = await raw("POST", f"{ex.rest_url}/fapi/v1/order?{query}&signature={sig}", data=body,
            headers={"X-MBX-APIKEY": DEFAULT_API_KEY, "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["origQty"] == "0.01"  # the query string's quantity won


async def test_clock_skew_gives_1021_until_the_client_resyncs(ex, client):
    ex.faults.clock_skew_ms = 10_000  # server clock 10 s ahead of ours
    with pytest.raises(ClientError) as e:
        await call(client.account)
    assert e.value.error_code == -1021
    assert e.value.error_message == "Timestamp for this request is outside of the recvWindow."
    # resync the way a client does: offset from GET /fapi/v1/time, re-sign, resend
    t0 = now_ms()
    server = (await call(client.time))["serverTime"]
    offset = server - (t0 + now_ms()) // 2
    q = hmac_query({"timestamp": now_ms() + offset})
    r = await raw("GET", f"{ex.rest_url}/fapi/v3/account?{q}", headers={"X-MBX-APIKEY": DEFAULT_API_KEY})
    assert r.status_code == 200, r.text
    ex.faults.clock_skew_ms = -5_000  # server behind: our timestamps are "ahead"
    with pytest.raises(ClientError) as e:
        await call(client.account)
    assert e.value.error_message == "Timestamp for this request was 1000ms ahead of the server's time."
    # a wider recvWindow does not help a timestamp from the future, but does help a late one
    ex.faults.clock_skew_ms = 10_000
    assert "totalWalletBalance" in await call(client.account, recvWindow=20000)


async def test_rsa_and_ed25519_signatures(candles):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()

    def pub(k) -> str:
        return k.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    keys = [ApiKey("rsa-key", public_key_pem=pub(rsa_key)), ApiKey("ed-key", public_key_pem=pub(ed_key))]
    async with LocalExchange(make_sim(candles), candles, keys=keys) as ex:
        rsa_pem = rsa_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption()).decode()
        c = UMFutures("rsa-key", private_key=rsa_pem, base_url=ex.rest_url)
        assert (await call(c.balance))[0]["asset"] == "USDT"
        c.session.close()
        # Ed25519: UMFutures cannot sign it, so sign the way the official SDK does
        q = urlencode({"timestamp": now_ms()})
        sig = base64.b64encode(ed_key.sign(q.encode())).decode()
        r = await raw("GET", f"{ex.rest_url}/fapi/v3/balance?{q}&signature={quote(sig, safe='')}",
                headers={"X-MBX-APIKEY": "ed-key"})
        assert r.status_code == 200, r.text
        other = ed25519.Ed25519PrivateKey.generate()
        sig = base64.b64encode(other.sign(q.encode())).decode()
        r = await raw("GET", f"{ex.rest_url}/fapi/v3/balance?{q}&signature={quote(sig, safe='')}",
                headers={"X-MBX-APIKEY": "ed-key"})
        assert r.status_code == 400 and r.json()["code"] == -1022
        # the RSA key cannot be used with the other key's signature scheme
        r = await raw("GET", f"{ex.rest_url}/fapi/v3/balance?{hmac_query({'timestamp': now_ms()})}",
                headers={"X-MBX-APIKEY": "rsa-key"})
        assert r.json()["code"] == -1022


async def test_weight_limit_429_with_retry_after_then_418(ex, client):
    ex.limits.request_weight_1m = 3
    ex.limits.backoff_grace_ms = 0  # every request after the 429 counts as not backing off
    await away_from_window_edge(60)
    for _ in range(3):
        await call(client.time)
    with pytest.raises(ClientError) as e:
        await call(client.time)
    assert e.value.status_code == 429 and e.value.error_code == -1003
    assert 1 <= int(e.value.header["Retry-After"]) <= 60
    assert "current limit is 3 requests per minute" in e.value.error_message
    with pytest.raises(ClientError) as e:  # kept coming during the back-off: banned
        await call(client.time)
    assert e.value.status_code == 418 and e.value.error_code == -1003
    assert int(e.value.header["Retry-After"]) >= 100
    with pytest.raises(ClientError) as e:
        await call(client.exchange_info)
    assert e.value.status_code == 418


async def test_requests_in_flight_when_the_429_went_out_are_not_banned(ex, client):
    """A request arriving right after the 429 (within ``backoff_grace_ms``) was sent before the
    client could know: it gets the 429 again. One that keeps coming after that is banned."""
    ex.limits.request_weight_1m = 2
    ex.limits.backoff_grace_ms = 60_000
    await away_from_window_edge(60)
    for _ in range(2):
        await call(client.time)
    for _ in range(2):  # the first 429, then one still "in flight"
        with pytest.raises(ClientError) as e:
            await call(client.time)
        assert e.value.status_code == 429 and "Retry-After" in e.value.header
    ex.limits.backoff_grace_ms = 0  # the grace is over
    with pytest.raises(ClientError) as e:
        await call(client.time)
    assert e.value.status_code == 418


async def test_order_count_limit(ex, client):
    await advance(ex)
    ex.limits.orders_10s = 2
    await away_from_window_edge(10)
    for _ in range(2):
        await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    with pytest.raises(ClientError) as e:
        await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    assert e.value.status_code == 429 and e.value.error_code == -1015
    assert e.value.header["X-MBX-ORDER-COUNT-10S"] == "3" and "Retry-After" in e.value.header
    assert len(await call(client.get_account_trades, symbol="BTCUSDT")) == 2  # the third was not applied


async def test_injected_rate_limit_and_ban(ex, client):
    ex.limits.backoff_grace_ms = 0
    ex.faults.rate_limit_next(2)
    with pytest.raises(ClientError) as e:
        await call(client.time)
    assert e.value.status_code == 429 and e.value.header["Retry-After"] == "2"
    with pytest.raises(ClientError) as e:
        await call(client.time)
    assert e.value.status_code == 418


async def test_ban_for(ex, client):
    ex.faults.ban_for(30)
    with pytest.raises(ClientError) as e:
        await call(client.time)
    assert e.value.status_code == 418 and 29 <= int(e.value.header["Retry-After"]) <= 30


async def test_unknown_status_503_applies_the_order_exactly_once(ex, client):
    await advance(ex)
    ex.faults.unknown_next("/fapi/v1/order")
    with pytest.raises(ServerError) as e:
        await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                   newClientOrderId="u-1")
    assert e.value.status_code == 503 and MSG_UNKNOWN_STATUS in e.value.message
    q = await call(client.query_order, symbol="BTCUSDT", origClientOrderId="u-1")
    assert q["status"] == "FILLED"
    assert len(await call(client.get_account_trades, symbol="BTCUSDT")) == 1
    assert [p["positionAmt"] for p in await call(client.get_position_risk, symbol="BTCUSDT")] == ["0.01"]


async def test_fail_next_does_not_apply_and_reject_next(ex, client):
    await advance(ex)
    ex.faults.fail_next(2, status=503, path="/fapi/v1/order")
    for _ in range(2):
        with pytest.raises(ServerError) as e:
            await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                       newClientOrderId="f-1")
        assert e.value.status_code == 503 and json.loads(e.value.message)["msg"] == "Service Unavailable."
    with pytest.raises(ClientError) as e:
        await call(client.query_order, symbol="BTCUSDT", origClientOrderId="f-1")
    assert e.value.error_code == -2013
    ex.faults.reject_next("/fapi/v1/order", -1008, "Request throttled by system-level protection. "
                          "Reduce-only/close-position orders are exempt. Please try again.", http_status=503)
    with pytest.raises(ServerError) as e:
        await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
    assert json.loads(e.value.message)["code"] == -1008
    r = await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010",
                   newClientOrderId="f-1")
    assert r["clientOrderId"] == "f-1"
    ex.faults.fail_next(1, status=0)  # connection dropped without an answer
    with pytest.raises(requests.exceptions.ConnectionError):
        await call(client.time)
    assert (await call(client.time))["serverTime"] > 0


async def test_delay_rest(ex, client):
    ex.faults.delay_rest_s = 0.2
    slow = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url, timeout=0.05)
    with pytest.raises(requests.exceptions.Timeout):
        await call(slow.time)
    slow.session.close()
    ex.faults.delay_rest_s = 0.0
    assert (await call(client.time))["serverTime"] > 0


async def test_klines_never_go_beyond_the_replay_clock(ex, client):
    assert await call(client.klines, "BTCUSDT", "1m") == []
    await advance(ex, 7)  # 3.5 minutes of two symbols
    rows = await call(client.klines, "BTCUSDT", "1m", limit=1500)
    assert [r[0] for r in rows] == [T0, T0 + 60_000, T0 + 120_000, T0 + 180_000]
    assert rows[0] == [T0, "100000", "100020", "99980", "100010", "12.5", T0 + 59_999, "0", 0, "0", "0", "0"]
    eth = await call(client.klines, "ETHUSDT", "1m")
    assert len(eth) == 3  # ETH's 4th candle has not been replayed yet
    assert [r[0] for r in await call(client.klines, "BTCUSDT", "1m", startTime=T0 + 60_000, limit=2)] == \
        [T0 + 60_000, T0 + 120_000]
    assert [r[0] for r in await call(client.klines, "BTCUSDT", "1m", endTime=T0 + 60_000)] == [T0, T0 + 60_000]
    assert await call(client.klines, "BTCUSDT", "1m", startTime=T0 + 10 * 60_000) == []
    five = await call(client.klines, "BTCUSDT", "5m")
    assert len(five) == 1 and five[0][0] == T0 and five[0][6] == T0 + 300_000 - 1 and five[0][5] == "50"
    with pytest.raises(ClientError) as e:
        await call(client.klines, "BTCUSDT", "1m", limit=1501)
    assert e.value.error_code == -1130
    with pytest.raises(ClientError) as e:
        await call(client.klines, "BTCUSDT", "1s")
    assert e.value.error_code == -1120


async def test_keep_alive_connection_is_reused(ex):
    def go() -> list[tuple[int, str, int]]:
        out = []
        with requests.Session() as s:
            for _ in range(3):
                r = s.get(ex.rest_url + "/fapi/v1/time", timeout=5, stream=True)
                sock = r.raw._connection.sock  # the pooled connection's socket
                out.append((r.status_code, r.headers["Connection"], sock.getsockname()[1]))
                r.content
        return out

    got = await asyncio.to_thread(go)
    assert [g[:2] for g in got] == [(200, "keep-alive")] * 3
    assert len({g[2] for g in got}) == 1  # one TCP connection for all three


def test_load_replay_uses_the_bundled_sample():
    sim, candles = load_replay(symbols=["BTCUSDT"])
    assert candles and {c.symbol for c in candles} == {"BTCUSDT"}
    assert sim.now_ms == candles[0].open_time_ms


async def test_run_standalone_serves_until_cancelled():
    ed = ed25519.Ed25519PrivateKey.generate()
    pem = ed.public_key().public_bytes(serialization.Encoding.PEM,
                                       serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    started: list[LocalExchange] = []
    lines: list[str] = []
    task = asyncio.create_task(run_standalone(port=0, ws_port=0, data_files=[sample_kline_files(["ETHUSDT"])[0]],
                                              ed25519_public_key=pem, out=lines.append,
                                              on_started=started.append))
    try:
        await wait_for(lambda: bool(started) or task.done())
        ex = started[0]
        assert any(ex.rest_url in line for line in lines) and any(DEFAULT_API_KEY in line for line in lines)
        c = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
        assert (await call(c.balance))[0]["asset"] == "USDT"  # the default HMAC pair
        c.session.close()
        q = urlencode({"timestamp": now_ms()})
        sig = quote(base64.b64encode(ed.sign(q.encode())).decode(), safe="")
        r = await raw("GET", f"{ex.rest_url}/fapi/v3/balance?{q}&signature={sig}",
                      headers={"X-MBX-APIKEY": DEFAULT_API_KEY})  # and the Ed25519 key on the same API key
        assert r.status_code == 200, r.text
        async with await SimControl.connect(ex.ws_url) as ctl:
            assert (await ctl.advance())["symbol"] == "ETHUSDT"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
