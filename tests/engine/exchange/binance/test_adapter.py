"""BinanceAdapter over a fake transport and fake sockets: rules, configure, the Exchange port,
stream wiring, ``wait_user_events`` and ``stream_status``."""

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import pytest
from binance.error import ClientError
from requests.structures import CaseInsensitiveDict

from engine.events import ExOrderUpdate
from engine.exchange.binance.adapter import BinanceAdapter
from engine.exchange.binance.endpoints import Endpoints
from engine.exchange.binance.rest import BinanceRest
from engine.exchange.binance.signing import Credentials
from engine.exchange.errors import ExchangeConfigError
from engine.model import AlgoOrderRequest, OrderPurpose, OrderRequest, OrderType, Side

from .test_streams import FakeConnect, FakeWS, wait_until

SIM_DATA = Path(__file__).parents[4] / "engine" / "exchange" / "sim" / "data"
FIX = Path(__file__).parents[3] / "fixtures"


def err(code, msg="x", status=400):
    return ClientError(status, code, msg, CaseInsensitiveDict())


class Router:
    """Answers by (method, path); a value may be a callable(params) or an exception to raise."""

    def __init__(self, over=None):
        self.calls = []
        self.routes = {
            ("GET", "/fapi/v1/time"): lambda p: {"serverTime": 1_700_000_000_000},
            ("GET", "/fapi/v1/exchangeInfo"): json.loads((SIM_DATA / "exchange_info.json").read_text()),
            ("GET", "/fapi/v1/leverageBracket"): json.loads((SIM_DATA / "leverage_brackets.json").read_text()),
            ("POST", "/fapi/v1/leverage"): lambda p: {"symbol": p["symbol"], "leverage": p["leverage"]},
            ("POST", "/fapi/v1/marginType"): {"code": 200, "msg": "success"},
            ("GET", "/fapi/v1/positionSide/dual"): {"dualSidePosition": False},
            ("POST", "/fapi/v1/positionSide/dual"): {"code": 200, "msg": "success"},
            ("GET", "/fapi/v3/positionRisk"): [],
            ("GET", "/fapi/v1/openOrders"): [],
            ("GET", "/fapi/v1/openAlgoOrders"): [],
            ("POST", "/fapi/v1/order"): lambda p: {"orderId": 77, "status": "NEW", "clientOrderId": p["newClientOrderId"]},
            ("POST", "/fapi/v1/algoOrder"): lambda p: {"algoId": 88, "algoStatus": "NEW"},
            ("DELETE", "/fapi/v1/algoOrder"): {"code": "200", "msg": "success"},
            ("DELETE", "/fapi/v1/order"): {"status": "CANCELED"},
            ("POST", "/fapi/v1/listenKey"): {"listenKey": "LK-0123456789abcdef"},
            ("PUT", "/fapi/v1/listenKey"): {},
            ("DELETE", "/fapi/v1/listenKey"): {},
            ("GET", "/fapi/v3/account"): {"totalWalletBalance": "1000.5", "totalUnrealizedProfit": "1",
                                         "totalMarginBalance": "1001.5", "availableBalance": "900",
                                         "totalInitialMargin": "100", "totalMaintMargin": "5"},
        }
        self.routes.update(over or {})

    async def __call__(self, method, path, params, security):
        self.calls.append((method, path, dict(params), security))
        r = self.routes.get((method, path), {})
        if isinstance(r, BaseException):
            raise r
        if callable(r):
            r = r(params)
        if isinstance(r, BaseException):
            raise r
        return r, {}

    def sent(self, method, path):
        return [c[2] for c in self.calls if c[0] == method and c[1] == path]


def make(router=None, symbols=("BTCUSDT", "ETHUSDT"), connect=None, **kw):
    router = router or Router()
    rest = BinanceRest(Endpoints.testnet(), Credentials("k", secret="s"), transport=router)
    out = {"candles": [], "marks": [], "events": [], "status": []}
    ad = BinanceAdapter(rest, Endpoints.testnet(), symbols=list(symbols), on_candle=out["candles"].append,
                        on_mark=out["marks"].append, on_user_event=out["events"].append,
                        on_stream_status=lambda s, st: out["status"].append((s, st)), backoff=lambda n: 0.0,
                        connect=connect, **kw)
    return ad, router, out


async def test_start_caches_rules_with_brackets_and_rate_limits():
    ad, router, _ = make()
    await ad.start()
    rules = await ad.symbol_rules()
    assert set(rules) == {"BTCUSDT", "ETHUSDT"}
    assert rules["BTCUSDT"].brackets and rules["BTCUSDT"].price_filter.tick_size > 0
    assert ad.rest.limits.weight_limit_1m == 2400 and ad.rest.limits.order_limit_10s == 300
    assert ("GET", "/fapi/v1/time") == router.calls[0][:2]


async def test_start_refuses_unknown_symbols():
    ad, _, _ = make(symbols=("BTCUSDT", "NOPEUSDT"))
    with pytest.raises(ExchangeConfigError) as ei:
        await ad.start()
    assert "NOPEUSDT" in str(ei.value)


async def test_configure_sets_leverage_and_margin_and_treats_4046_as_done():
    router = Router({("POST", "/fapi/v1/marginType"): err(-4046, "No need to change margin type.")})
    ad, router, _ = make(router)
    notes = await ad.configure(leverage=5, margin_type="ISOLATED", position_mode="ONEWAY")
    assert router.sent("POST", "/fapi/v1/leverage") == [{"symbol": "BTCUSDT", "leverage": 5, "recvWindow": 5000},
                                                        {"symbol": "ETHUSDT", "leverage": 5, "recvWindow": 5000}]
    assert [p["marginType"] for p in router.sent("POST", "/fapi/v1/marginType")] == ["ISOLATED", "ISOLATED"]
    assert any("already ISOLATED" in n for n in notes) and any("ONEWAY" in n for n in notes)
    assert router.sent("POST", "/fapi/v1/positionSide/dual") == []


async def test_configure_passes_a_ban_through_so_startup_waits_it_out():
    """A 418 while setting the margin type says nothing about the setting: it is raised as the
    ban it is (startup waits it out), not as a configuration error that ends the process."""
    from engine.exchange.errors import Banned
    from engine.live import retry_startup

    answers = [err(-1003, "Way too many requests; IP banned until 1.", 418)]
    router = Router({("POST", "/fapi/v1/marginType"): lambda p: answers.pop() if answers else {"code": 200}})
    ad, router, _ = make(router)
    with pytest.raises(Banned):
        await ad.configure(leverage=3, margin_type="ISOLATED", position_mode="ONEWAY")
    ad.rest.limits.banned_until_ms = 0  # the ban is over
    notes = await retry_startup(lambda: ad.configure(leverage=3, margin_type="ISOLATED", position_mode="ONEWAY"),
                                "account set-up", first_backoff_s=0)
    assert any("margin type set to ISOLATED" in n for n in notes)


async def test_configure_switches_position_mode_when_flat():
    router = Router({("GET", "/fapi/v1/positionSide/dual"): {"dualSidePosition": True},
                       ("POST", "/fapi/v1/positionSide/dual"): err(-4059, "No need to change position side.")})
    ad, router, _ = make(router)
    notes = await ad.configure(leverage=3, margin_type="CROSSED", position_mode="ONEWAY")
    assert router.sent("POST", "/fapi/v1/positionSide/dual")[0]["dualSidePosition"] == "false"
    assert any("ONEWAY" in n for n in notes)


async def test_configure_refuses_to_switch_mode_with_a_position_open():
    pos = [{"symbol": "ETHUSDT", "positionSide": "LONG", "positionAmt": "0.5", "entryPrice": "3000"}]
    router = Router({("GET", "/fapi/v1/positionSide/dual"): {"dualSidePosition": True},
                       ("GET", "/fapi/v3/positionRisk"): pos,
                       ("GET", "/fapi/v1/openAlgoOrders"): [{"algoId": 1}]})
    ad, router, _ = make(router)
    with pytest.raises(ExchangeConfigError) as ei:
        await ad.configure(leverage=3, margin_type="CROSSED", position_mode="ONEWAY")
    text = str(ei.value)
    assert "HEDGE" in text and "ONEWAY" in text and "ETHUSDT" in text and "conditional" in text
    assert router.sent("POST", "/fapi/v1/positionSide/dual") == []


async def test_configure_explains_margin_type_blocked_by_a_position():
    router = Router({("POST", "/fapi/v1/marginType"): err(-4048, "Margin type cannot be changed if there exists position.")})
    ad, _, _ = make(router)
    with pytest.raises(ExchangeConfigError) as ei:
        await ad.configure(leverage=3, margin_type="isolated", position_mode="ONEWAY")
    assert "BTCUSDT" in str(ei.value) and "position" in str(ei.value) and ei.value.code == -4048


async def test_configure_rejects_nonsense_settings():
    ad, _, _ = make()
    with pytest.raises(ExchangeConfigError):
        await ad.configure(leverage=3, margin_type="PORTFOLIO", position_mode="ONEWAY")


async def test_orders_go_out_with_the_sim_ports_params_and_return_ids():
    ad, router, _ = make()
    oid = await ad.place_order(OrderRequest("pd-e1", "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.010"),
                                            OrderPurpose.ENTRY))
    aid = await ad.place_algo_order(AlgoOrderRequest("pd-s1", "BTCUSDT", Side.SELL, OrderType.STOP_MARKET,
                                                     Decimal("60000.10"), OrderPurpose.STOP_LOSS))
    assert (oid, aid) == (77, 88)
    sent = router.sent("POST", "/fapi/v1/order")[0]
    assert sent["quantity"] == "0.01" and sent["newClientOrderId"] == "pd-e1" and sent["type"] == "MARKET"
    algo = router.sent("POST", "/fapi/v1/algoOrder")[0]
    assert algo["triggerPrice"] == "60000.1" and algo["clientAlgoId"] == "pd-s1" and algo["closePosition"] == "true"
    assert all(isinstance(v, (str, int)) for v in {**sent, **algo}.values())  # never a float on the wire
    await ad.cancel_algo_order("BTCUSDT", "pd-s1")
    await ad.cancel_order("BTCUSDT", "pd-e1")
    assert router.sent("DELETE", "/fapi/v1/algoOrder")[0] == {"clientAlgoId": "pd-s1", "recvWindow": 5000}
    assert router.sent("DELETE", "/fapi/v1/order")[0]["origClientOrderId"] == "pd-e1"


async def test_positions_and_account_are_parsed():
    pos = [{"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "-0.010", "entryPrice": "65000",
            "unRealizedProfit": "1.5", "isolatedWallet": "0", "updateTime": 5}]
    ad, _, _ = make(Router({("GET", "/fapi/v3/positionRisk"): pos}))
    [p] = await ad.positions()
    assert p.amount == Decimal("-0.010") and p.symbol == "BTCUSDT"
    acct = await ad.account()
    assert acct.wallet_balance == Decimal("1000.5") and acct.available_balance == Decimal("900")


async def test_streams_wire_through_and_wait_user_events_counts():
    order = (FIX / "ws_order_update_new.json").read_text()
    user_ws = FakeWS([order, json.dumps({"e": "TRADE_LITE", "E": 1}), order])
    market_ws = FakeWS([json.dumps({"stream": "btcusdt@markPrice@1s", "data": {
        "e": "markPriceUpdate", "E": 1, "s": "BTCUSDT", "p": "65000.1", "r": "0.0001", "T": 2}})])

    def connect(url):
        return (market_conn if "/market/" in url else user_conn)(url)

    market_conn, user_conn = FakeConnect([market_ws]), FakeConnect([user_ws])
    ad, router, out = make(connect=connect, time_sync_interval_s=3600)
    assert ad.stream_status()["user"]["state"] == "down"
    await ad.start_streams()
    await ad.wait_user_events(3, timeout_s=2)
    await wait_until(lambda: out["marks"])
    assert ad.user_events_received == 3
    assert [type(e) for e in out["events"]] == [ExOrderUpdate, ExOrderUpdate]
    st = ad.stream_status()
    assert st["user"]["state"] == "connected" and st["market"]["state"] == "connected"
    assert set(st["market"]) == {"state", "last_message_ms", "reconnects"} and st["user"]["last_message_ms"] > 0
    assert user_conn.urls == ["wss://fstream.binancefuture.com/private/ws/LK-0123456789abcdef"]
    assert market_conn.urls[0].startswith("wss://fstream.binancefuture.com/market/stream?streams=")
    with pytest.raises(TimeoutError):
        await ad.wait_user_events(4, timeout_s=0.01)
    await ad.stop()
    assert router.sent("DELETE", "/fapi/v1/listenKey") == [{}]
    assert ("market", "down") in out["status"] and ("user", "down") in out["status"]
    assert ad.stream_status()["user"]["state"] == "down"


async def test_seeded_candles_are_backfilled_on_connect():
    t0 = 1_700_000_040_000
    rows = [[t0 + k * 60_000, "1", "2", "0.5", "1.5", "10", t0 + (k + 1) * 60_000 - 1, "15", 3, "5", "7", "0"]
            for k in range(1, 4)]
    router = Router({("GET", "/fapi/v1/klines"): lambda p: [r for r in rows if r[0] >= p["startTime"]]})
    ad, router, out = make(router, symbols=("BTCUSDT",), connect=FakeConnect([FakeWS(), FakeWS()]),
                           time_sync_interval_s=3600)
    ad.rest.offset_ms = t0 + 4 * 60_000 + 5 - ad.rest.wall_ms()  # the exchange clock: just after t0+4m
    ad.seed_candles({"btcusdt": t0})
    await ad.start_streams()
    await wait_until(lambda: len(out["candles"]) == 3)
    await ad.stop()
    assert [c.open_time_ms for c in out["candles"]] == [t0 + 60_000, t0 + 120_000, t0 + 180_000]
    k = router.sent("GET", "/fapi/v1/klines")[0]
    assert k == {"symbol": "BTCUSDT", "interval": "1m", "startTime": t0 + 60_000, "limit": 1500}


def test_endpoints():
    m, t = Endpoints.mainnet(), Endpoints.testnet()
    assert (m.rest_url, m.ws_market_url, m.ws_private_url, m.name) == (
        "https://fapi.binance.com", "wss://fstream.binance.com/market", "wss://fstream.binance.com/private", "mainnet")
    assert t.rest_url == "https://demo-fapi.binance.com" and t.name == "testnet" and not t.is_mainnet
    loc = Endpoints.local("http://127.0.0.1:8000/", "ws://127.0.0.1:8001/")
    assert (loc.rest_url, loc.ws_market_url, loc.ws_private_url, loc.name) == (
        "http://127.0.0.1:8000", "ws://127.0.0.1:8001/market", "ws://127.0.0.1:8001/private", "sim")


def test_adapter_and_rest_reprs_hide_secrets():
    rest = BinanceRest(Endpoints.mainnet(), Credentials("APIKEY-XYZ-123456", secret="SECRET-ABC"))
    ad = BinanceAdapter(rest, Endpoints.mainnet(), symbols=["BTCUSDT"], on_candle=print, on_mark=print,
                        on_user_event=print)
    for text in (repr(rest), repr(ad)):
        assert "SECRET-ABC" not in text and "APIKEY-XYZ-123456" not in text
    rest.close()


async def test_user_stream_gap_is_reported_after_a_drop():
    order = (FIX / "ws_order_update_new.json").read_text()
    user_conn = FakeConnect([FakeWS([order], end="drop"), FakeWS([order])])

    def connect(url):
        return user_conn(url) if "/private/" in url else FakeConnect([])(url)

    ad, _, out = make(connect=connect, time_sync_interval_s=3600)
    await ad.start_streams()
    await ad.wait_user_events(2, timeout_s=2)
    await ad.stop()
    assert ("user", "gap") in out["status"]
    assert ad.stream_status()["user"]["reconnects"] == 1
    await asyncio.sleep(0)


async def test_user_trades_follows_every_page():
    """Binance answers a time window with its newest ``limit`` rows: a full page is split until
    none is full, so a restart that was down through many fills recovers all of them."""
    from tests.engine.exchange.test_sim_matching import candle, make as make_sim, market

    sim = make_sim("30000")
    for minute in range(7):
        sim.on_candle(candle(minute, "30000", "30000", "30000", "30000"))
        market(sim, "BUY", "0.01")
    router = Router({("GET", "/fapi/v1/userTrades"): lambda p: sim.user_trades(p),
                     ("GET", "/fapi/v1/time"): lambda p: {"serverTime": sim.now_ms}})
    ad = make(router)[0]
    await ad.rest.sync_time()
    ad.USER_TRADES_PAGE = 3
    since = sim.all_fills()[0]["time"]
    rows = await ad.user_trades("BTCUSDT", since)
    assert [r["id"] for r in rows] == [f["id"] for f in sim.all_fills()] and len(rows) == 7
    pages = router.sent("GET", "/fapi/v1/userTrades")
    assert len(pages) > 1 and all(p["limit"] == 3 and p["endTime"] - p["startTime"] < 7 * 86_400_000
                                  for p in pages)


async def test_exchange_time_comes_from_the_exchange_not_the_request_clock():
    """A local replay's /fapi/v1/time is wall time (for signing); its exchange clock is what
    premiumIndex says. Fill fetches end at the exchange clock."""
    router = Router({("GET", "/fapi/v1/premiumIndex"): lambda p: {"symbol": p["symbol"], "time": 1_747_000_000_000}})
    ad = make(router)[0]
    assert await ad.exchange_time_ms() == 1_747_000_000_000
    assert router.sent("GET", "/fapi/v1/premiumIndex") == [{"symbol": "BTCUSDT"}]
