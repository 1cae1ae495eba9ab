"""BinanceRest over a fake transport: unknown-status resolution (one order, never two), clock
resync on -1021, retries of certainly-failed requests, and the rate-limit gate."""

import asyncio
import json

import pytest
import requests
from binance.error import ClientError, ServerError
from requests.structures import CaseInsensitiveDict

from engine.exchange.binance.endpoints import Endpoints
from engine.exchange.binance.errmap import SERVICE_UNAVAILABLE_TEXT, UNKNOWN_503_TEXT
from engine.exchange.binance.rest import ALGO_PATH, ORDER_PATH, BinanceRest, RateLimitState, klines_weight
from engine.exchange.binance.signing import Credentials
from engine.exchange.errors import Banned, ExchangeError, RateLimited, UnknownStatusError

UNKNOWN_503 = json.dumps({"code": -1000, "msg": UNKNOWN_503_TEXT})


class FakeClock:
    def __init__(self, t=1_700_000_000_000):
        self.t = t
        self.sleeps = []

    def wall_ms(self):
        return self.t

    async def sleep(self, s):
        self.sleeps.append(s)
        self.t += int(s * 1000)


def not_found():
    return ClientError(400, -2013, "Order does not exist.", CaseInsensitiveDict())


class FakeBinance:
    """A tiny order book keeper speaking the connector's exception language.

    ``post_script`` lists what each POST does: ``ok``; ``applied+503`` / ``applied+timeout`` /
    ``applied+1007`` (order created, caller told "unknown"); ``lost+503`` (not created, told
    "unknown"); ``unavailable`` (503 Service Unavailable, not created); ``reject`` (-2019).
    ``hidden_queries``: how many GETs miss a just-created order (engine lag).
    """

    def __init__(self, clock, *, server_offset_ms=0):
        self.clock = clock
        self.server_offset_ms = server_offset_ms
        self.orders = {}
        self.algos = {}
        self.next_id = 1000
        self.post_script = []
        self.get_script = []
        self.hidden_queries = 0
        self.calls = []
        self.headers = {}
        self.timestamp_errors = 0

    def _book(self, path):
        return (self.orders, "newClientOrderId", "orderId") if path == ORDER_PATH else (self.algos, "clientAlgoId", "algoId")

    async def __call__(self, method, path, params, security):
        self.calls.append((method, path, dict(params)))
        hdr = CaseInsensitiveDict(self.headers)
        if path == "/fapi/v1/time":
            return {"serverTime": self.clock.t + self.server_offset_ms}, hdr
        if self.timestamp_errors and security == "SIGNED":
            self.timestamp_errors -= 1
            raise ClientError(400, -1021, "Timestamp for this request is outside of the recvWindow.", hdr)
        if path in (ORDER_PATH, ALGO_PATH):
            book, cid_field, id_field = self._book(path)
            if method == "POST":
                what = self.post_script.pop(0) if self.post_script else "ok"
                cid = params[cid_field]
                if what == "unavailable":
                    raise ServerError(503, SERVICE_UNAVAILABLE_TEXT)
                if what == "lost+503":
                    raise ServerError(503, UNKNOWN_503)
                if what == "reject":
                    raise ClientError(400, -2019, "Margin is insufficient.", hdr)
                if cid in book:
                    raise ClientError(400, -4116, "clientOrderId is duplicated.", hdr)
                self.next_id += 1
                book[cid] = {id_field: self.next_id, cid_field: cid, "status": "NEW", "algoStatus": "NEW"}
                if what == "applied+503":
                    raise ServerError(503, UNKNOWN_503)
                if what == "applied+timeout":
                    raise requests.exceptions.ReadTimeout("Read timed out.")
                if what == "applied+1007":
                    raise ClientError(408, -1007, "Timeout waiting for response from backend server.", hdr)
                return dict(book[cid]), hdr
            if method == "GET":
                what = self.get_script.pop(0) if self.get_script else "ok"
                if what == "unavailable":
                    raise ServerError(503, SERVICE_UNAVAILABLE_TEXT)
                cid = params.get("origClientOrderId") or params.get("clientAlgoId")
                if cid not in book or self.hidden_queries > 0:
                    self.hidden_queries = max(0, self.hidden_queries - 1)
                    raise not_found()
                return dict(book[cid]), hdr
        return {}, hdr

    def posts(self, path=ORDER_PATH):
        return [c for c in self.calls if c[0] == "POST" and c[1] == path]


def make(clock=None, **kw):
    clock = clock or FakeClock()
    fake = FakeBinance(clock)
    rest = BinanceRest(Endpoints.mainnet(), Credentials("k", secret="s"), wall_ms=clock.wall_ms, sleep=clock.sleep,
                       transport=fake, **kw)
    return rest, fake, clock


ORDER = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01", "newClientOrderId": "pd-1"}
ALGO = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": "60000", "clientAlgoId": "pd-s1", "closePosition": "true"}


# -- unknown status: exactly one order ------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["applied+503", "applied+timeout", "applied+1007"])
async def test_unknown_status_after_the_order_was_applied_returns_it_without_resending(outcome):
    rest, fake, _ = make()
    fake.post_script = [outcome]
    r = await rest.new_order(ORDER)
    assert r["orderId"] == fake.orders["pd-1"]["orderId"]
    assert len(fake.orders) == 1 and len(fake.posts()) == 1


async def test_unknown_status_when_not_applied_resends_once_with_the_same_client_id():
    rest, fake, _ = make()
    fake.post_script = ["lost+503", "ok"]
    r = await rest.new_order(ORDER)
    assert len(fake.orders) == 1 and r["orderId"] == fake.orders["pd-1"]["orderId"]
    posts = fake.posts()
    assert len(posts) == 2 and {p[2]["newClientOrderId"] for p in posts} == {"pd-1"}


async def test_an_unknown_stop_is_resolved_faster_than_an_unknown_entry():
    """A stop whose placement is unknown leaves a position bare: it is looked up at 0.1, 0.2 s…
    and resent (same clientAlgoId) within a second; an entry waits 0.5, 1 s… before its resend."""
    rest, fake, clock = make()
    fake.post_script = ["lost+503", "ok"]
    t0 = clock.t
    await rest.new_algo_order(ALGO)
    algo_wait_ms = clock.t - t0
    assert len(fake.posts(ALGO_PATH)) == 2 and algo_wait_ms <= 500

    rest, fake, clock = make()
    fake.post_script = ["lost+503", "ok"]
    t0 = clock.t
    await rest.new_order(ORDER)
    assert clock.t - t0 >= 1_500 > algo_wait_ms


async def test_a_stalled_resolution_query_is_abandoned_and_asked_again():
    """The lookup of a maybe-placed stop stalls (no answer at all): it is given up after
    ``resolve_timeout_s`` and asked again, not waited on for the full request timeout."""
    rest, fake, _ = make(resolve_timeout_s=0.05)
    fake.post_script = ["applied+503"]
    inner = rest._transport
    stalled = []

    async def transport(method, path, params, security):
        if method == "GET" and path == ALGO_PATH and not stalled:
            stalled.append(path)
            await asyncio.get_running_loop().create_future()  # never answered
        return await inner(method, path, params, security)

    rest._transport = transport
    r = await asyncio.wait_for(rest.new_algo_order(ALGO), 5)  # without the limit: a hang
    assert stalled and r["algoId"] == fake.algos["pd-s1"]["algoId"]
    assert len(fake.posts(ALGO_PATH)) == 1  # found on the second look: never resent


async def test_two_unknowns_with_nothing_placed_raise_without_a_third_send():
    rest, fake, _ = make()
    fake.post_script = ["lost+503", "lost+503", "ok", "ok"]
    with pytest.raises(UnknownStatusError):
        await rest.new_order(ORDER)
    assert len(fake.posts()) == 2 and fake.orders == {}


async def test_resend_that_meets_the_original_resolves_to_it():
    # the first send was applied but invisible to the queries; the resend hits -4116
    rest, fake, _ = make()
    fake.post_script = ["applied+503", "ok"]
    fake.hidden_queries = 2
    r = await rest.new_order(ORDER)
    assert len(fake.orders) == 1 and r["orderId"] == fake.orders["pd-1"]["orderId"]
    assert len(fake.posts()) == 2


async def test_one_not_found_is_not_enough_to_resend():
    rest, fake, _ = make()  # not_found_confirmations=2 by default
    fake.post_script = ["applied+503"]
    fake.hidden_queries = 1  # the engine lags one query behind
    await rest.new_order(ORDER)
    assert len(fake.posts()) == 1 and len(fake.orders) == 1


async def test_query_failures_during_resolution_are_retried():
    rest, fake, _ = make()
    fake.post_script = ["applied+503"]
    fake.get_script = ["unavailable"] * 6  # retried inside call() and by the resolver
    r = await rest.new_order(ORDER)
    assert r["orderId"] == fake.orders["pd-1"]["orderId"] and len(fake.posts()) == 1


async def test_duplicate_client_id_returns_the_existing_order():
    rest, fake, _ = make()
    first = await rest.new_order(ORDER)
    again = await rest.new_order(ORDER)
    assert again["orderId"] == first["orderId"] and len(fake.orders) == 1


async def test_algo_orders_resolve_by_client_algo_id():
    rest, fake, _ = make()
    fake.post_script = ["applied+timeout"]
    r = await rest.new_algo_order(ALGO)
    assert r["algoId"] == fake.algos["pd-s1"]["algoId"] and len(fake.posts(ALGO_PATH)) == 1
    queried = [c for c in fake.calls if c[0] == "GET" and c[1] == ALGO_PATH]
    assert queried and queried[0][2]["clientAlgoId"] == "pd-s1" and "symbol" not in queried[0][2]
    fake.post_script = ["lost+503", "ok"]
    r2 = await rest.new_algo_order({**ALGO, "clientAlgoId": "pd-s2"})
    assert r2["algoId"] == fake.algos["pd-s2"]["algoId"] and len(fake.algos) == 2


async def test_a_definite_rejection_is_raised_without_queries():
    rest, fake, _ = make()
    fake.post_script = ["reject"]
    with pytest.raises(ExchangeError) as ei:
        await rest.new_order(ORDER)
    assert ei.value.code == -2019 and "margin" in str(ei.value)
    assert [c[0] for c in fake.calls] == ["POST"]


async def test_service_unavailable_is_retried_with_backoff_and_places_one_order():
    rest, fake, clock = make()
    fake.post_script = ["unavailable", "unavailable", "ok"]
    r = await rest.new_order(ORDER)
    assert len(fake.orders) == 1 and r["orderId"]
    assert clock.sleeps[:2] == [0.2, 0.4]


async def test_transient_failures_give_up_after_max_retries():
    rest, fake, _ = make(max_retries=3)
    fake.post_script = ["unavailable"] * 10
    with pytest.raises(ExchangeError) as ei:
        await rest.new_order(ORDER)
    assert ei.value.retryable and len(fake.posts()) == 4 and fake.orders == {}


# -- time ------------------------------------------------------------------------------------------


async def test_sync_time_offset_is_server_minus_midpoint():
    class StepClock(FakeClock):
        def wall_ms(self):
            self.t += 100  # each read advances 100 ms (t0 = +100, t1 = +200 after the call)
            return self.t

    clock = StepClock(1_000_000)
    fake = FakeBinance(clock, server_offset_ms=5_000)
    rest = BinanceRest(Endpoints.mainnet(), None, wall_ms=clock.wall_ms, sleep=clock.sleep, transport=fake)
    off = await rest.sync_time()
    # t0=1_000_100; server sampled at t=1_000_100 (+5000); t1=1_000_200 → midpoint 1_000_150
    assert off == 1_005_100 - 1_000_150
    assert rest.limits.offset_ms == off


async def test_a_time_sync_whose_answer_hangs_is_asked_again():
    rest, fake, clock = make()
    rest.time_sync_timeout_s = 0.05
    inner, asked = rest._transport, []

    async def transport(method, path, params, security):
        asked.append(path)
        if path == "/fapi/v1/time" and len(asked) == 1:
            await asyncio.get_running_loop().create_future()  # never answered
        return await inner(method, path, params, security)

    rest._transport = transport
    assert await asyncio.wait_for(rest.sync_time(), 5) == 0  # without the limit: a hang
    assert asked == ["/fapi/v1/time", "/fapi/v1/time"]


async def test_minus_1021_resyncs_once_and_resends():
    rest, fake, _ = make()
    fake.server_offset_ms = 3_000
    fake.timestamp_errors = 1
    r = await rest.account()
    assert r == {} and rest.offset_ms == 3_000
    assert [c[1] for c in fake.calls] == ["/fapi/v3/account", "/fapi/v1/time", "/fapi/v3/account"]


async def test_a_second_minus_1021_is_raised():
    rest, fake, _ = make()
    fake.timestamp_errors = 2
    with pytest.raises(ExchangeError) as ei:
        await rest.account()
    assert ei.value.code == -1021
    assert sum(1 for c in fake.calls if c[1] == "/fapi/v1/time") == 1


async def test_signed_calls_carry_recv_window_and_public_ones_do_not():
    rest, fake, _ = make(recv_window_ms=3000)
    await rest.position_risk()
    await rest.klines("BTCUSDT", "1m", start_ms=0, limit=1500)
    assert fake.calls[0][2] == {"recvWindow": 3000}
    assert fake.calls[1][2] == {"symbol": "BTCUSDT", "interval": "1m", "startTime": 0, "limit": 1500}


# -- rate limits: pure decisions -------------------------------------------------------------------

T = 1_700_000_050_000  # 10 s into a minute
assert T % 60_000 == 10_000


def test_gate_lets_requests_through_below_90_percent():
    st = RateLimitState()
    st.observe_headers({"X-MBX-USED-WEIGHT-1M": "2150"}, T)
    assert st.delay_ms(T, 5, False) == 0  # 2155 <= 2160


def test_gate_waits_for_the_minute_to_roll_near_the_weight_limit():
    st = RateLimitState()
    st.observe_headers({"x-mbx-used-weight-1m": "2158"}, T)
    d = st.delay_ms(T, 5, False)
    assert 50_000 <= d <= 50_100  # until the next minute boundary
    assert st.delay_ms(T + d, 5, False) == 0  # a counter from an earlier window counts as zero


def test_gate_uses_the_limits_from_exchange_info():
    st = RateLimitState()
    st.apply_exchange_info({"rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 20},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 100}]})
    assert (st.weight_limit_1m, st.order_limit_10s, st.order_limit_1m) == (1000, 20, 100)
    st.observe_headers({"X-MBX-USED-WEIGHT-1M": "895"}, T)
    assert st.delay_ms(T, 10, False) > 0


def test_gate_waits_for_the_order_windows():
    st = RateLimitState()
    st.observe_headers({"X-MBX-ORDER-COUNT-10S": "270"}, T + 3_000)
    d = st.delay_ms(T + 3_000, 0, True)
    assert 7_000 <= d <= 7_100  # next 10 s window
    assert st.delay_ms(T + 3_000, 1, False) == 0  # non-order requests are not held back
    st = RateLimitState()
    st.observe_headers({"X-MBX-ORDER-COUNT-1M": "1080"}, T)
    assert 50_000 <= st.delay_ms(T, 0, True) <= 50_100


def test_gate_honours_retry_after_and_bans():
    st = RateLimitState()
    st.observe_error(RateLimited(-1003, "x", until_ms=T + 4_000), T)
    assert st.delay_ms(T, 1, False) == 4_000 and st.delay_ms(T + 4_000, 1, False) == 0
    st.observe_error(Banned(-1003, "x", until_ms=T + 120_000), T)
    with pytest.raises(Banned):
        st.delay_ms(T + 60_000, 1, False)
    assert st.delay_ms(T + 120_000, 1, False) == 0


def test_reserve_counts_in_flight_requests():
    st = RateLimitState()
    for _ in range(3):
        st.reserve(T, 40, True)
    assert st.weight_now(T) == 120 and st.orders_10s_now(T) == 3 and st.orders_1m_now(T) == 3
    assert st.weight_now(T + 60_000) == 0


def test_klines_weight_table():
    assert [klines_weight(n) for n in (99, 100, 499, 500, 1000, 1500)] == [1, 2, 2, 5, 5, 10]


# -- rate limits: the client ------------------------------------------------------------------------


async def test_client_sleeps_until_the_window_rolls_then_sends():
    rest, fake, clock = make()
    clock.t = T
    fake.headers = {"X-MBX-USED-WEIGHT-1M": "2159"}
    await rest.position_risk()
    fake.headers = {"X-MBX-USED-WEIGHT-1M": "3"}
    await rest.position_risk()
    assert len(clock.sleeps) == 1 and 50 <= clock.sleeps[0] <= 50.1
    assert len(fake.calls) == 2


async def test_429_blocks_all_requests_until_retry_after_then_resends():
    rest, fake, clock = make()
    calls = []

    async def transport(method, path, params, security):
        calls.append((path, clock.t))
        if len(calls) == 1:
            raise ClientError(429, -1003, "Too many requests", CaseInsensitiveDict({"Retry-After": "3"}))
        return {"ok": 1}, {}

    rest._transport = transport
    t0 = clock.t
    assert await rest.account() == {"ok": 1}
    await rest.balance()
    assert clock.sleeps == [3.0]
    assert calls == [("/fapi/v3/account", t0), ("/fapi/v3/account", t0 + 3000), ("/fapi/v3/balance", t0 + 3000)]


async def test_repeated_429s_give_up_with_rate_limited():
    rest, fake, clock = make(max_rate_retries=2)
    calls = []

    async def transport(method, path, params, security):
        calls.append(path)
        raise ClientError(429, -1003, "Too many requests", CaseInsensitiveDict({"Retry-After": "1"}))

    rest._transport = transport
    with pytest.raises(RateLimited) as ei:
        await rest.new_order(ORDER)
    assert ei.value.retryable and len(calls) == 3 and clock.sleeps == [1.0, 1.0]


async def test_418_raises_and_nothing_is_sent_during_the_ban():
    rest, fake, clock = make()
    sent = []

    async def transport(method, path, params, security):
        sent.append(path)
        if len(sent) == 1:
            raise ClientError(418, -1003, f"Way too many requests; IP banned until {clock.t + 300_000}.",
                              CaseInsensitiveDict())
        return {}, {}

    rest._transport = transport
    with pytest.raises(Banned):
        await rest.account()
    for _ in range(3):
        with pytest.raises(Banned) as ei:
            await rest.new_order(ORDER)
        assert "banned" in str(ei.value).lower()
    assert sent == ["/fapi/v3/account"]
    assert rest.limits.banned_until_ms == clock.t + 300_000
    clock.t += 300_000
    await rest.account()
    assert len(sent) == 2


async def test_a_back_off_or_ban_outlives_the_process(tmp_path):
    """A process killed inside a 429 back-off (or a 418 ban) must not send the moment it restarts:
    Binance answers requests during a back-off with a ban. The next client waits the rest out."""
    state = tmp_path / "status" / "ratelimit-mainnet.json"
    clock = FakeClock()
    rest, fake, _ = make(clock, limits_file=state)
    hits = []

    async def limited(method, path, params, security):
        hits.append(clock.t)
        if len(hits) == 1:
            raise ClientError(429, -1003, "Too many requests", CaseInsensitiveDict({"Retry-After": "4"}))
        return {"ok": 1}, {}

    rest._transport = limited
    with pytest.raises(RateLimited):
        await _one_try(rest)
    assert json.loads(state.read_text())["retry_after_until_ms"] == clock.t + 4000
    clock.t += 1000  # killed; a new process starts a second later
    again, fake2, _ = make(clock, limits_file=state)
    sent = []

    async def ok(method, path, params, security):
        sent.append(clock.t)
        return {"ok": 1}, {}

    again._transport = ok
    t0 = clock.t
    assert await again.account() == {"ok": 1}
    assert sent == [t0 + 3000]  # the 3 s left of the back-off, then sent

    # a long ban: every request refused unsent until it ends, in the next process too
    async def banned(method, path, params, security):
        raise ClientError(418, -1003, f"Way too many requests; IP banned until {clock.t + 600_000}.",
                          CaseInsensitiveDict())

    again._transport = banned
    with pytest.raises(Banned):
        await again.account()
    third, _, _ = make(clock, limits_file=state)
    third._transport = ok
    with pytest.raises(Banned):
        await third.account()
    assert len(sent) == 1
    # another exchange's record (a different REST URL) is not taken over
    other = BinanceRest(Endpoints.testnet(), Credentials("k", secret="s"), wall_ms=clock.wall_ms, sleep=clock.sleep,
                        transport=ok, limits_file=state)
    await other.account()
    assert len(sent) == 2


async def _one_try(rest):
    rest.max_rate_retries = 0
    return await rest.account()


async def test_a_short_ban_is_waited_out_and_the_request_then_goes():
    """A ban of a few seconds (shorter than ``max_rate_wait_s``) is waited out in the gate, like a
    Retry-After: the stop that met it goes out the moment it ends, not on some later retry."""
    rest, fake, clock = make()
    sent = []

    async def transport(method, path, params, security):
        sent.append((path, clock.t))
        if len(sent) == 1:
            raise ClientError(418, -1003, f"Way too many requests; IP banned until {clock.t + 2_000}.",
                              CaseInsensitiveDict())
        return {"algoId": 5, "clientAlgoId": params.get("clientAlgoId")}, {}

    rest._transport = transport
    t0 = clock.t
    with pytest.raises(Banned):
        await rest.account()  # the request that met the ban learns of it
    r = await rest.new_algo_order(ALGO)
    assert r["algoId"] == 5
    assert sent[1][0] == ALGO_PATH and t0 + 2_000 <= sent[1][1] <= t0 + 2_100  # right after the ban, not before


async def test_a_very_long_retry_after_raises_instead_of_hanging():
    rest, fake, clock = make(max_rate_wait_s=10)
    rest.limits.retry_after_until_ms = clock.t + 600_000
    with pytest.raises(RateLimited):
        await rest.account()
    assert fake.calls == []


async def test_closed_client_refuses_calls():
    rest, _, _ = make()
    rest.close()
    with pytest.raises(ExchangeError):
        await rest.account()


def test_wire_params_never_carry_floats_or_exponents():
    from decimal import Decimal

    from engine.exchange.binance.rest import wire_params

    assert wire_params({"a": None, "q": Decimal("1E-7"), "p": Decimal("65000.10"), "r": True, "n": 5}) == {
        "q": "0.0000001", "p": "65000.1", "r": "true", "n": 5}
    with pytest.raises(TypeError):
        wire_params({"quantity": 0.001})


async def test_a_float_is_refused_before_anything_is_sent():
    rest, fake, _ = make()
    with pytest.raises(TypeError):
        await rest.new_order({**ORDER, "quantity": 0.01})
    assert fake.calls == []


async def test_a_ban_while_resolving_stays_unknown_status():
    rest, fake, clock = make()
    fake.post_script = ["lost+503"]
    orig = fake.__call__

    async def transport(method, path, params, security):
        if method == "GET":
            raise ClientError(418, -1003, f"IP banned until {clock.t + 60_000}.", CaseInsensitiveDict())
        return await orig(method, path, params, security)

    rest._transport = transport
    with pytest.raises(UnknownStatusError) as ei:
        await rest.new_order(ORDER)
    assert ei.value.unknown_status and len(fake.posts()) == 1
