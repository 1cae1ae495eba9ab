"""Tests for engine.exchange.sim.matching: Binance USDⓈ-M semantics of the in-process simulator."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.exchange.filters import fmt
from engine.exchange.sim.matching import SimApiError, SimExchange, load_default_rules
from engine.model import Candle, MarginType, PositionMode

D = Decimal
RULES = load_default_rules()
MIN = 60_000
DAY0 = 1750723200000  # 2025-06-24 00:00:00 UTC
H8 = 8 * 3600 * 1000


def candle(t_min: int, o: Any, h: Any, l: Any, c: Any, symbol: str = "BTCUSDT", base: int = 0) -> Candle:
    t = base + t_min * MIN
    return Candle(symbol, t, t + MIN - 1, D(str(o)), D(str(h)), D(str(l)), D(str(c)), D(1))


def make(price: Any = "30000", symbol: str = "BTCUSDT", **kw: Any) -> SimExchange:
    ex = SimExchange(RULES, **kw)
    base = kw.get("start_time_ms", 0)
    ex.on_candle(candle(0, price, price, price, price, symbol, base))
    return ex


def assert_api_error(fn: Any, params: dict, code: int) -> SimApiError:
    with pytest.raises(SimApiError) as exc:
        fn(params)
    assert exc.value.code == code, exc.value
    assert exc.value.http_status == 400
    return exc.value


def market(ex: SimExchange, side: str, qty: str, symbol: str = "BTCUSDT", **kw: str) -> dict:
    params = {"symbol": symbol, "side": side, "type": "MARKET", "quantity": qty, "newOrderRespType": "RESULT"}
    params.update(kw)
    return ex.new_order(params)


def algo(ex: SimExchange, side: str, otype: str, trigger: str | None = None, symbol: str = "BTCUSDT",
         **kw: str) -> dict:
    params = {"algoType": "CONDITIONAL", "symbol": symbol, "side": side, "type": otype}
    if trigger is not None:
        params["triggerPrice"] = trigger
    params.update(kw)
    return ex.new_algo_order(params)


def pos_amt(ex: SimExchange, symbol: str = "BTCUSDT", ps: str = "BOTH") -> Decimal:
    for row in ex.position_risk({"symbol": symbol}):
        if row["positionSide"] == ps:
            return D(row["positionAmt"])
    return D(0)


def kinds(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        if e["e"] == "ORDER_TRADE_UPDATE":
            out.append(f"OTU:{e['o']['x']}:{e['o']['X']}")
        elif e["e"] == "ACCOUNT_UPDATE":
            out.append(f"AU:{e['a']['m']}")
        elif e["e"] == "ALGO_UPDATE":
            out.append(f"ALGO:{e['o']['X']}")
        else:
            out.append(e["e"])
    return out


def is_num_str(v: Any) -> bool:
    if not isinstance(v, str):
        return False
    D(v)
    return "e" not in v.lower()


# ---------------------------------------------------------------------------------------------
# data and market info
# ---------------------------------------------------------------------------------------------


def test_default_rules_have_brackets() -> None:
    assert set(RULES) >= {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    for r in RULES.values():
        assert r.brackets, r.symbol
    assert RULES["BTCUSDT"].brackets[0].initial_leverage == 125


def test_exchange_info_and_brackets_shapes() -> None:
    ex = make(start_time_ms=5 * MIN)
    info = ex.exchange_info()
    assert info["serverTime"] == ex.now_ms
    assert len(info["rateLimits"]) == 3
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert {f["filterType"] for f in btc["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL", "PERCENT_PRICE"}
    json.dumps(info)
    br = ex.leverage_brackets({"symbol": "BTCUSDT"})
    assert isinstance(br, list) and br[0]["symbol"] == "BTCUSDT"
    b1 = br[0]["brackets"][0]
    assert b1 == {"bracket": 1, "initialLeverage": 125, "notionalCap": 50000, "notionalFloor": 0,
                  "maintMarginRatio": 0.004, "cum": 0.0}
    assert len(ex.leverage_brackets({})) == len(RULES)
    assert_api_error(ex.leverage_brackets, {"symbol": "NOPEUSDT"}, -1121)


def test_premium_index_and_mark() -> None:
    ex = make("30000")
    pi = ex.premium_index({"symbol": "BTCUSDT"})
    assert pi["markPrice"] == "30000" and pi["nextFundingTime"] == H8 and pi["time"] == ex.now_ms
    assert D(pi["lastFundingRate"]) == D("0.0001")
    ex.set_mark_price("BTCUSDT", D("30010.5"))
    assert ex.premium_index({"symbol": "BTCUSDT"})["markPrice"] == "30010.5"
    assert isinstance(ex.premium_index({}), list)


def test_custom_rules_tick_step_max_orders_and_synthesized_info() -> None:
    btc = RULES["BTCUSDT"]
    odd = dataclasses.replace(
        btc, symbol="ODDUSDT", max_num_orders=2, min_notional=D("0"),
        price_filter=dataclasses.replace(btc.price_filter, min_price=D("0.05"), tick_size=D("0.1")),
        lot_size=dataclasses.replace(btc.lot_size, min_qty=D("0.5"), step_size=D("1")),
        market_lot_size=dataclasses.replace(btc.market_lot_size, min_qty=D("0.5"), step_size=D("1")),
    )
    ex = SimExchange({"ODDUSDT": odd})
    ex.on_candle(candle(0, "100.05", "100.05", "100.05", "100.05", "ODDUSDT"))
    lim = {"symbol": "ODDUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "1.5"}
    assert_api_error(ex.new_order, {**lim, "price": "99.0"}, -4014)
    assert_api_error(ex.new_order, {**lim, "price": "99.05", "quantity": "2"}, -4023)
    assert_api_error(ex.new_order, {**lim, "price": "99.05", "quantity": "0.25"}, -1111)
    ex.new_order({**lim, "price": "99.05"})
    ex.new_order({**lim, "price": "98.05"})
    assert_api_error(ex.new_order, {**lim, "price": "97.05"}, -2025)
    info = ex.exchange_info()
    assert [s["symbol"] for s in info["symbols"]] == ["ODDUSDT"]
    assert {f["filterType"] for f in info["symbols"][0]["filters"]} >= {"PRICE_FILTER", "LOT_SIZE", "MIN_NOTIONAL"}
    json.dumps(info)


# ---------------------------------------------------------------------------------------------
# plain orders
# ---------------------------------------------------------------------------------------------


def test_market_fill_fee_and_event_shapes() -> None:
    ex = make("30000")
    ex.drain_events()
    r = market(ex, "BUY", "0.1", newClientOrderId="entry-1")
    assert r["status"] == "FILLED" and r["executedQty"] == "0.1" and r["avgPrice"] == "30000"
    assert r["clientOrderId"] == "entry-1" and isinstance(r["orderId"], int)
    assert r["cumQuote"] == "3000" and r["reduceOnly"] is False and r["positionSide"] == "BOTH"
    ev = ex.drain_events()
    assert kinds(ev) == ["OTU:NEW:NEW", "OTU:TRADE:FILLED", "AU:ORDER"]
    trade = ev[1]["o"]
    assert trade["c"] == "entry-1" and trade["o"] == "MARKET" and trade["ot"] == "MARKET"
    assert trade["l"] == "0.1" and trade["z"] == "0.1" and trade["L"] == "30000" and trade["ap"] == "30000"
    assert D(trade["n"]) == D("1.5") and trade["N"] == "USDT" and trade["m"] is False and trade["rp"] == "0"
    assert isinstance(trade["t"], int) and trade["i"] == r["orderId"] and trade["ps"] == "BOTH"
    assert ev[1]["E"] == ex.now_ms and ev[1]["T"] == ex.now_ms
    for k in ("q", "p", "ap", "sp", "l", "z", "L", "n", "rp", "b", "a"):
        assert is_num_str(trade[k]), k
    au = ev[2]["a"]
    assert D(au["B"][0]["wb"]) == D("9998.5") and au["B"][0]["a"] == "USDT"
    p = au["P"][0]
    assert p["pa"] == "0.1" and D(p["ep"]) == 30000 and p["mt"] == "cross" and p["ps"] == "BOTH"
    assert D(p["bep"]) == D("30015")  # entry + commission per unit
    assert ex.wallet_balance() == D("9998.5")
    fills = ex.all_fills()
    assert len(fills) == 1
    f = fills[0]
    assert f["commission"] == "1.5" and f["buyer"] is True and f["maker"] is False
    assert f["quoteQty"] == "3000" and f["realizedPnl"] == "0" and f["orderId"] == r["orderId"]
    assert ex.user_trades({"symbol": "BTCUSDT"}) == fills
    json.dumps(ev)


def test_market_ack_returns_new_but_executes() -> None:
    ex = make("30000")
    r = ex.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"})
    assert r["status"] == "NEW" and r["executedQty"] == "0" and r["cumQuote"] == "0"
    q = ex.query_order({"symbol": "BTCUSDT", "orderId": str(r["orderId"])})
    assert q["status"] == "FILLED" and q["executedQty"] == "0.01" and "time" in q
    assert pos_amt(ex) == D("-0.01")


def test_market_slippage_rounds_against_taker() -> None:
    ex = make("30000", slippage_bps=D("3"))
    assert market(ex, "BUY", "0.01")["avgPrice"] == "30009"
    ex = make("30000.3", slippage_bps=D("1"))  # 30003.30003 -> up to 30003.4 ; sell 29997.29997 -> 29997.2
    assert market(ex, "BUY", "0.01")["avgPrice"] == "30003.4"
    assert market(ex, "SELL", "0.02")["avgPrice"] == "29997.2"


@pytest.mark.parametrize("otype", ["STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"])
def test_conditional_types_rejected_on_order_endpoint(otype: str) -> None:
    ex = make()
    e = assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "SELL", "type": otype, "quantity": "0.01",
                                 "stopPrice": "29000"}, -4120)
    assert e.msg == "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
    assert str(e) == f"-4120: {e.msg}"


def test_parameter_errors() -> None:
    ex = make()
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    assert_api_error(ex.new_order, {**base, "symbol": "FOOUSDT"}, -1121)
    assert_api_error(ex.new_order, {k: v for k, v in base.items() if k != "quantity"}, -1102)
    assert_api_error(ex.new_order, {k: v for k, v in base.items() if k != "symbol"}, -1102)
    assert_api_error(ex.new_order, {**base, "type": "FOO"}, -1116)
    assert_api_error(ex.new_order, {**base, "side": "HOLD"}, -1117)
    assert_api_error(ex.new_order, {**base, "quantity": "1e-2"}, -1100)
    assert_api_error(ex.new_order, {**base, "quantity": "0.0101"}, -1111)
    assert_api_error(ex.new_order, {**base, "quantity": "121"}, -4005)  # MARKET_LOT_SIZE maxQty 120
    assert_api_error(ex.new_order, {**base, "price": "30000"}, -1106)
    assert_api_error(ex.new_order, {**base, "positionSide": "SIDEWAYS"}, -4060)
    lim = {**base, "type": "LIMIT", "price": "29000"}
    assert_api_error(ex.new_order, lim, -1102)  # timeInForce
    assert_api_error(ex.new_order, {**lim, "timeInForce": "GTC", "price": "29000.05"}, -1111)
    assert_api_error(ex.new_order, {**lim, "timeInForce": "GTC", "price": "100"}, -4013)
    assert_api_error(ex.new_order, {**lim, "timeInForce": "GTC", "side": "BUY", "price": "31600"}, -4016)
    assert_api_error(ex.new_order, {**lim, "timeInForce": "GTC", "side": "SELL", "price": "28000"}, -4024)
    assert_api_error(ex.new_order, {**lim, "timeInForce": "GTD"}, -1115)
    assert_api_error(ex.new_order, {**base, "newClientOrderId": "x" * 37}, -4015)
    assert_api_error(ex.new_order, {**base, "newClientOrderId": "bad id!"}, -1100)


def test_limit_rests_then_fills_as_maker() -> None:
    ex = make("30000")
    r = ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": "0.1", "price": "29800", "newClientOrderId": "bid"})
    assert r["status"] == "NEW" and r["price"] == "29800"
    oo = ex.open_orders({"symbol": "BTCUSDT"})
    assert [o["clientOrderId"] for o in oo] == ["bid"] and oo[0]["type"] == "LIMIT"
    acct = ex.account({})
    assert D(acct["totalOpenOrderInitialMargin"]) == D("29800") * D("0.1") / 20
    ex.drain_events()
    ex.on_candle(candle(1, "30000", "30050", "29900", "29950"))
    assert ex.drain_events() == []
    ex.on_candle(candle(2, "29950", "29960", "29700", "29900"))
    ev = ex.drain_events()
    assert kinds(ev) == ["OTU:TRADE:FILLED", "AU:ORDER"]
    assert ev[0]["o"]["m"] is True and ev[0]["o"]["L"] == "29800"
    assert D(ev[0]["o"]["n"]) == D("29800") * D("0.1") * D("0.0002")
    assert ex.open_orders({}) == []
    assert pos_amt(ex) == D("0.1")
    assert ex.all_fills()[0]["maker"] is True


def test_limit_gap_fills_at_limit_price() -> None:
    ex = make("30000")
    ex.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.1", "price": "30100"})
    ex.on_candle(candle(1, "30300", "30400", "30200", "30250"))
    assert ex.all_fills()[0]["price"] == "30100"


def test_marketable_limit_is_taker_at_last_or_better() -> None:
    ex = make("30000")
    r = ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": "0.1", "price": "30100", "newOrderRespType": "RESULT"})
    assert r["status"] == "FILLED" and r["avgPrice"] == "30000"
    assert ex.all_fills()[0]["maker"] is False


def test_time_in_force_outcomes() -> None:
    ex = make("30000")
    lim = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01"}
    assert_api_error(ex.new_order, {**lim, "price": "30000", "timeInForce": "GTX"}, -5022)
    assert_api_error(ex.new_order, {**lim, "price": "29000", "timeInForce": "FOK"}, -5021)
    ex.drain_events()
    r = ex.new_order({**lim, "price": "29000", "timeInForce": "IOC", "newOrderRespType": "RESULT"})
    assert r["status"] == "EXPIRED"
    ev = ex.drain_events()
    assert kinds(ev) == ["OTU:NEW:NEW", "OTU:EXPIRED:EXPIRED"] and ev[1]["o"]["er"] == "2"
    r = ex.new_order({**lim, "price": "29000", "timeInForce": "GTX"})
    assert r["status"] == "NEW"
    r = ex.new_order({**lim, "price": "30000", "timeInForce": "FOK", "newOrderRespType": "RESULT"})
    assert r["status"] == "FILLED"


def test_query_cancel_and_unknown_orders() -> None:
    ex = make("30000")
    r = ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                      "quantity": "0.01", "price": "29000", "newClientOrderId": "c1"})
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                             "quantity": "0.01", "price": "29000", "newClientOrderId": "c1"}, -4116)
    q = ex.query_order({"symbol": "BTCUSDT", "origClientOrderId": "c1"})
    assert q["orderId"] == r["orderId"] and q["status"] == "NEW"
    ex.drain_events()
    c = ex.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "c1"})
    assert c["status"] == "CANCELED"
    assert kinds(ex.drain_events()) == ["OTU:CANCELED:CANCELED"]
    assert_api_error(ex.cancel_order, {"symbol": "BTCUSDT", "orderId": str(r["orderId"])}, -2011)
    assert_api_error(ex.query_order, {"symbol": "BTCUSDT", "orderId": "123"}, -2013)
    assert_api_error(ex.query_order, {"symbol": "ETHUSDT", "orderId": str(r["orderId"])}, -2013)
    assert_api_error(ex.query_order, {"symbol": "BTCUSDT"}, -1102)
    # the client id is free again once the order is closed
    ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "29000", "newClientOrderId": "c1"})
    ex.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "31000"})
    assert ex.cancel_all_open_orders({"symbol": "BTCUSDT"}) == {
        "code": 200, "msg": "The operation of cancel all open order is done."}
    assert ex.open_orders({}) == []


def test_min_notional_and_reduce_only_exemption() -> None:
    ex = make("30000")
    e = assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}, -4164)
    assert "no smaller than 50" in e.msg
    market(ex, "BUY", "0.003")  # 90 USDT
    r = market(ex, "SELL", "0.001", reduceOnly="true")  # 30 USDT < 50 but reduce-only
    assert r["status"] == "FILLED" and r["reduceOnly"] is True
    assert pos_amt(ex) == D("0.002")


def test_reduce_only_rules_and_clipping() -> None:
    ex = make("30000")
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01",
                             "reduceOnly": "true"}, -2022)  # flat
    market(ex, "BUY", "0.01")
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                             "reduceOnly": "true"}, -2022)  # would increase
    r = market(ex, "SELL", "0.05", reduceOnly="true")
    assert r["origQty"] == "0.01" and r["executedQty"] == "0.01"
    assert pos_amt(ex) == 0


def test_resting_reduce_only_expires_when_flat() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.01")
    ex.new_order({"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "31000", "reduceOnly": "true"})
    ex.drain_events()
    market(ex, "SELL", "0.01")
    ev = ex.drain_events()
    assert kinds(ev)[-1] == "OTU:EXPIRED:EXPIRED" and ev[-1]["o"]["R"] is True
    assert ex.open_orders({}) == []


def test_margin_insufficient() -> None:
    ex = make("30000", starting_balance=D("100"))
    # 0.07 BTC = 2100 notional / 20 = 105 > 100
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.07"}, -2019)
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                             "quantity": "0.07", "price": "29900"}, -2019)
    market(ex, "BUY", "0.06")  # 90 IM + 0.9 fee
    assert D(ex.account({})["availableBalance"]) >= 0
    # closing never needs margin, even with a reduce-only order
    market(ex, "SELL", "0.06", reduceOnly="true")
    ex.change_leverage({"symbol": "BTCUSDT", "leverage": "50"})
    market(ex, "BUY", "0.1")


def test_one_way_flip_realises_and_reopens() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    ex.on_candle(candle(1, "30000", "31000", "30000", "31000"))
    market(ex, "SELL", "0.3")
    fills = ex.all_fills()
    assert D(fills[1]["realizedPnl"]) == D("100")  # (31000-30000) * 0.1
    rows = ex.position_risk({"symbol": "BTCUSDT"})
    assert len(rows) == 1
    assert rows[0]["positionAmt"] == "-0.2" and D(rows[0]["entryPrice"]) == D("31000")
    expected = D(10000) - D("1.5") + D(100) - D("31000") * D("0.3") * D("0.0005")
    assert ex.wallet_balance() == expected


def test_weighted_entry_and_partial_close() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    ex.on_candle(candle(1, "30000", "32000", "30000", "32000"))
    market(ex, "BUY", "0.1")
    row = ex.position_risk({"symbol": "BTCUSDT"})[0]
    assert D(row["entryPrice"]) == D("31000")
    assert D(row["unRealizedProfit"]) == D("200")
    market(ex, "SELL", "0.05")
    assert D(ex.all_fills()[-1]["realizedPnl"]) == D("50")


def test_hedge_mode_rules() -> None:
    ex = make("30000", position_mode=PositionMode.HEDGE)
    assert ex.get_position_mode({}) == {"dualSidePosition": True}
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    assert_api_error(ex.new_order, base, -4061)
    assert_api_error(ex.new_order, {**base, "positionSide": "BOTH"}, -4061)
    assert_api_error(ex.new_order, {**base, "positionSide": "LONG", "reduceOnly": "true"}, -1106)
    assert_api_error(ex.new_order, {**base, "side": "SELL", "positionSide": "LONG"}, -2022)  # nothing to close
    market(ex, "BUY", "0.02", positionSide="LONG")
    market(ex, "SELL", "0.03", positionSide="SHORT")
    assert pos_amt(ex, ps="LONG") == D("0.02") and pos_amt(ex, ps="SHORT") == D("-0.03")
    r = market(ex, "SELL", "0.05", positionSide="LONG")  # close long, clipped
    assert r["origQty"] == "0.02"
    assert pos_amt(ex, ps="LONG") == 0 and pos_amt(ex, ps="SHORT") == D("-0.03")
    rows = ex.position_risk({"symbol": "BTCUSDT"})
    assert sorted(r["positionSide"] for r in rows) == ["LONG", "SHORT"]
    assert_api_error(ex.new_algo_order, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY",
                                  "positionSide": "LONG", "type": "STOP_MARKET", "triggerPrice": "31000",
                                  "closePosition": "true"}, -2022)
    assert_api_error(ex.change_position_mode, {"dualSidePosition": "true"}, -4059)
    assert_api_error(ex.change_position_mode, {"dualSidePosition": "false"}, -4068)
    market(ex, "BUY", "0.03", positionSide="SHORT")
    assert ex.change_position_mode({"dualSidePosition": "false"}) == {"code": 200, "msg": "success"}
    assert ex.get_position_mode({}) == {"dualSidePosition": False}


def test_position_mode_change_blocked_by_open_orders() -> None:
    ex = make("30000")
    ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "29000"})
    assert_api_error(ex.change_position_mode, {"dualSidePosition": "true"}, -4067)


def test_leverage_and_margin_type() -> None:
    ex = make("30000")
    assert_api_error(ex.change_leverage, {"symbol": "BTCUSDT", "leverage": "126"}, -4028)
    assert_api_error(ex.change_leverage, {"symbol": "BTCUSDT", "leverage": "0"}, -4028)
    ex.drain_events()
    r = ex.change_leverage({"symbol": "BTCUSDT", "leverage": "10"})
    assert r == {"leverage": 10, "maxNotionalValue": "230000000", "symbol": "BTCUSDT"}
    assert ex.drain_events()[0]["ac"] == {"s": "BTCUSDT", "l": 10}
    assert_api_error(ex.change_margin_type, {"symbol": "BTCUSDT", "marginType": "CROSSED"}, -4046)
    assert ex.change_margin_type({"symbol": "BTCUSDT", "marginType": "ISOLATED"}) == {"code": 200, "msg": "success"}
    market(ex, "BUY", "0.1")
    assert_api_error(ex.change_margin_type, {"symbol": "BTCUSDT", "marginType": "CROSSED"}, -4048)
    assert_api_error(ex.change_leverage, {"symbol": "BTCUSDT", "leverage": "5"}, -4161)
    row = ex.position_risk({"symbol": "BTCUSDT"})[0]
    assert D(row["isolatedWallet"]) == D("300")  # 3000 / 10
    au = [e for e in ex.drain_events() if e["e"] == "ACCOUNT_UPDATE"][-1]
    assert au["a"]["P"][0]["mt"] == "isolated" and D(au["a"]["P"][0]["iw"]) == D("300")
    acct = ex.account({})
    assert D(acct["totalCrossWalletBalance"]) == ex.wallet_balance() - D("300")


# ---------------------------------------------------------------------------------------------
# algo orders
# ---------------------------------------------------------------------------------------------


def test_algo_stop_close_position_trigger_event_sequence() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    r = algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", clientAlgoId="sl-1",
             workingType="CONTRACT_PRICE")
    assert r["algoStatus"] == "NEW" and r["orderType"] == "STOP_MARKET" and r["triggerPrice"] == "29500"
    assert r["activatePrice"] == "" and r["callbackRate"] == "" and r["closePosition"] is True
    assert isinstance(r["algoId"], int) and r["clientAlgoId"] == "sl-1" and r["algoType"] == "CONDITIONAL"
    ex.drain_events()
    ex.on_candle(candle(1, "30000", "30100", "29400", "29600"))
    ev = ex.drain_events()
    assert kinds(ev) == ["ALGO:TRIGGERING", "ALGO:TRIGGERED", "OTU:NEW:NEW", "OTU:TRADE:FILLED", "AU:ORDER",
                         "ALGO:FINISHED"]
    trig = ev[1]["o"]
    child_id = int(trig["ai"])
    assert trig["aid"] == r["algoId"] and isinstance(trig["ai"], str) and trig["act"] == "MARKET"
    assert trig["caid"] == "sl-1" and trig["cp"] is True and trig["tt"] == ex.all_fills()[-1]["time"]
    child = ev[3]["o"]
    assert child["i"] == child_id and child["c"] == "sl-1" and child["o"] == "STOP_MARKET"
    assert child["ot"] == "STOP_MARKET" and child["cp"] is True and child["sp"] == "29500"
    assert child["L"] == "29500" and D(child["rp"]) == D("-50")
    fin = ev[5]["o"]
    assert fin["ap"] == "29500" and fin["aq"] == "0.1"
    assert pos_amt(ex) == 0
    q = ex.query_algo_order({"algoId": str(r["algoId"])})
    assert q["algoStatus"] == "FINISHED" and q["actualOrderId"] == str(child_id) and q["actualPrice"] == "29500"
    # the child is an ordinary order now
    qo = ex.query_order({"symbol": "BTCUSDT", "origClientOrderId": "sl-1"})
    assert qo["orderId"] == child_id and qo["status"] == "FILLED" and qo["type"] == "STOP_MARKET"


def test_algo_stop_gap_through_fills_at_open_with_slippage() -> None:
    ex = make("30000", slippage_bps=D("2"))
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true")
    ex.on_candle(candle(1, "29000", "29100", "28900", "29050"))
    # open 29000 gapped below the trigger -> 29000 * (1 - 0.0002) = 28994.2
    assert ex.all_fills()[-1]["price"] == "28994.2"


def test_stop_fires_before_take_profit_inside_one_candle_long() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", clientAlgoId="sl")
    algo(ex, "SELL", "TAKE_PROFIT_MARKET", "30500", closePosition="true", clientAlgoId="tp")
    ex.drain_events()
    # bearish candle: a plain open->high->low->close walk would hit the TP first
    ex.on_candle(candle(1, "30000", "30600", "29400", "29800"))
    assert ex.all_fills()[-1]["price"] == "29500"
    ev = ex.drain_events()
    tp_events = [e["o"] for e in ev if e["e"] == "ALGO_UPDATE" and e["o"]["caid"] == "tp"]
    assert [e["X"] for e in tp_events] == ["TRIGGERING", "EXPIRED"]
    assert tp_events[-1]["rm"]
    assert ex.query_algo_order({"clientAlgoId": "tp"})["algoStatus"] == "EXPIRED"


def test_stop_fires_before_take_profit_inside_one_candle_short() -> None:
    ex = make("30000")
    market(ex, "SELL", "0.1")
    algo(ex, "BUY", "STOP_MARKET", "30500", closePosition="true")
    algo(ex, "BUY", "TAKE_PROFIT_MARKET", "29500", closePosition="true")
    ex.on_candle(candle(1, "30000", "30600", "29400", "30200"))  # bullish: plain walk would hit TP first
    assert ex.all_fills()[-1]["price"] == "30500"
    assert D(ex.all_fills()[-1]["realizedPnl"]) == D("-50")


def test_take_profit_when_stop_not_reached() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29000", closePosition="true")
    algo(ex, "SELL", "TAKE_PROFIT_MARKET", "30500", closePosition="true")
    ex.on_candle(candle(1, "30000", "30700", "29900", "30600"))
    assert ex.all_fills()[-1]["price"] == "30500"


def test_algo_immediate_trigger_rejected() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    e = assert_api_error(ex.new_algo_order, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                      "type": "STOP_MARKET", "triggerPrice": "30100", "closePosition": "true"},
                  -2021)
    assert e.msg == "Order would immediately trigger."
    assert_api_error(ex.new_algo_order, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                  "type": "TAKE_PROFIT_MARKET", "triggerPrice": "29900", "closePosition": "true"},
              -2021)
    assert_api_error(ex.new_algo_order, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                  "type": "TRAILING_STOP_MARKET", "activatePrice": "29900", "callbackRate": "1",
                                  "quantity": "0.1", "reduceOnly": "true"}, -2021)


def test_algo_validation_errors() -> None:
    ex = make("30000")
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
            "triggerPrice": "29000"}
    assert_api_error(ex.new_algo_order, {**base, "closePosition": "true", "quantity": "0.1"}, -4137)
    assert_api_error(ex.new_algo_order, {**base, "closePosition": "true", "reduceOnly": "true"}, -4138)
    assert_api_error(ex.new_algo_order, {**base, "algoType": "VP"}, -1130)
    assert_api_error(ex.new_algo_order, base, -1102)  # quantity
    assert_api_error(ex.new_algo_order, {**base, "triggerPrice": "29000.05", "quantity": "0.01"}, -1111)
    assert_api_error(ex.new_algo_order, {**base, "type": "LIMIT", "quantity": "0.01"}, -1116)
    assert_api_error(ex.new_algo_order, {**base, "quantity": "0.01", "workingType": "LAST"}, -1130)
    assert_api_error(ex.new_algo_order, {**base, "symbol": "XUSDT", "quantity": "0.01"}, -1121)
    assert_api_error(ex.new_algo_order, {**base, "type": "STOP", "quantity": "0.01"}, -1102)  # price
    assert_api_error(ex.new_algo_order, {**base, "quantity": "0.001"}, -4164)
    algo(ex, "SELL", "STOP_MARKET", "29000", quantity="0.001", reduceOnly="true", clientAlgoId="dup")
    assert_api_error(ex.new_algo_order, {**base, "quantity": "0.01", "clientAlgoId": "dup"}, -4116)
    assert_api_error(ex.new_order, {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                             "newClientOrderId": "dup"}, -4116)
    hedge = make("30000", position_mode=PositionMode.HEDGE)
    assert_api_error(hedge.new_algo_order, {**base, "quantity": "0.01"}, -4061)
    assert_api_error(hedge.new_algo_order, {**base, "quantity": "0.01", "positionSide": "LONG", "reduceOnly": "true"}, -1106)


def test_untriggered_algo_is_invisible_to_order_endpoints() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    r = algo(ex, "SELL", "STOP_MARKET", "29000", closePosition="true", clientAlgoId="hidden")
    assert ex.open_orders({"symbol": "BTCUSDT"}) == []
    assert ex.open_orders({}) == []
    assert_api_error(ex.query_order, {"symbol": "BTCUSDT", "orderId": str(r["algoId"])}, -2013)
    assert_api_error(ex.query_order, {"symbol": "BTCUSDT", "origClientOrderId": "hidden"}, -2013)
    assert_api_error(ex.cancel_order, {"symbol": "BTCUSDT", "orderId": str(r["algoId"])}, -2011)
    assert_api_error(ex.cancel_order, {"symbol": "BTCUSDT", "origClientOrderId": "hidden"}, -2011)
    oa = ex.open_algo_orders({"symbol": "BTCUSDT"})
    assert [a["algoId"] for a in oa] == [r["algoId"]]
    assert oa[0]["actualOrderId"] == "" and oa[0]["algoStatus"] == "NEW"
    assert ex.open_algo_orders({"algoType": "CONDITIONAL"}) == oa
    # a flat row for a symbol that only has an open (algo) order
    rows = ex.position_risk({})
    assert [r["symbol"] for r in rows] == ["BTCUSDT"]


def test_cancel_algo_orders() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    r = algo(ex, "SELL", "STOP_MARKET", "29000", closePosition="true", clientAlgoId="sl")
    ex.drain_events()
    c = ex.cancel_algo_order({"clientAlgoId": "sl"})
    assert c == {"algoId": r["algoId"], "clientAlgoId": "sl", "code": "200", "msg": "success"}
    ev = ex.drain_events()
    assert kinds(ev) == ["ALGO:CANCELED"] and ev[0]["o"]["aid"] == r["algoId"]
    assert_api_error(ex.cancel_algo_order, {"algoId": str(r["algoId"])}, -2011)
    assert_api_error(ex.query_algo_order, {"algoId": "1"}, -2013)
    assert ex.query_algo_order({"algoId": str(r["algoId"])})["algoStatus"] == "CANCELED"
    algo(ex, "SELL", "STOP_MARKET", "29000", closePosition="true")
    algo(ex, "SELL", "TAKE_PROFIT_MARKET", "31000", closePosition="true")
    ex.drain_events()
    assert ex.cancel_all_algo_open_orders({"symbol": "BTCUSDT"}) == {
        "code": 200, "msg": "The operation of cancel all open order is done."}
    assert kinds(ex.drain_events()) == ["ALGO:CANCELED", "ALGO:CANCELED"]
    assert ex.open_algo_orders({}) == []
    ex.on_candle(candle(1, "30000", "32000", "28000", "30000"))
    assert len(ex.all_fills()) == 1


def test_close_position_without_position_expires() -> None:
    ex = make("30000")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", clientAlgoId="orphan")
    ex.drain_events()
    ex.on_candle(candle(1, "30000", "30000", "29400", "29450"))
    ev = ex.drain_events()
    assert kinds(ev) == ["ALGO:TRIGGERING", "ALGO:EXPIRED"]
    assert ev[-1]["o"]["rm"] and ev[-1]["o"]["ai"] == ""
    assert ex.all_fills() == []
    assert ex.open_algo_orders({}) == []


def test_reduce_only_algo_without_position_rejected_at_trigger() -> None:
    ex = make("30000")
    algo(ex, "SELL", "STOP_MARKET", "29500", quantity="0.01", reduceOnly="true")
    ex.drain_events()
    ex.on_candle(candle(1, "30000", "30000", "29400", "29450"))
    ev = ex.drain_events()
    assert kinds(ev) == ["ALGO:TRIGGERING", "ALGO:REJECTED"]


def test_opening_algo_with_quantity_and_margin_reject() -> None:
    ex = make("30000")
    algo(ex, "BUY", "STOP_MARKET", "30500", quantity="0.1")
    ex.on_candle(candle(1, "30000", "30600", "29900", "30550"))
    assert pos_amt(ex) == D("0.1") and ex.all_fills()[-1]["price"] == "30500"
    poor = make("30000", starting_balance=D("50"))
    algo(poor, "BUY", "STOP_MARKET", "30500", quantity="0.1")
    poor.drain_events()
    poor.on_candle(candle(1, "30000", "30600", "29900", "30550"))
    ev = poor.drain_events()
    assert kinds(ev) == ["ALGO:TRIGGERING", "ALGO:REJECTED"] and ev[-1]["o"]["rm"] == "Margin is insufficient."


def test_stop_limit_algo_child_rests_then_finishes() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP", "29500", price="29400", quantity="0.1", reduceOnly="true", clientAlgoId="sll")
    ex.drain_events()
    # triggers at 29500; the SELL limit at 29400 is marketable there -> taker at 29500 (limit or better)
    ex.on_candle(candle(1, "30000", "30000", "29400", "29450"))
    assert ex.all_fills()[-1]["price"] == "29500" and ex.all_fills()[-1]["maker"] is False
    ex2 = make("30000")
    market(ex2, "BUY", "0.1")
    algo(ex2, "SELL", "STOP", "29500", price="29600", quantity="0.1", reduceOnly="true", clientAlgoId="sll")
    ex2.drain_events()
    ex2.on_candle(candle(1, "29550", "29550", "29480", "29490"))  # triggers, limit 29600 not reached
    ev = ex2.drain_events()
    assert kinds(ev) == ["ALGO:TRIGGERING", "ALGO:TRIGGERED", "OTU:NEW:NEW"]
    oo = ex2.open_orders({"symbol": "BTCUSDT"})
    assert len(oo) == 1 and oo[0]["type"] == "STOP" and oo[0]["clientOrderId"] == "sll"
    assert oo[0]["stopPrice"] == "29500" and oo[0]["price"] == "29600"
    ex2.on_candle(candle(2, "29490", "29700", "29400", "29650"))
    ev = ex2.drain_events()
    assert kinds(ev) == ["OTU:TRADE:FILLED", "AU:ORDER", "ALGO:FINISHED"]
    assert ev[0]["o"]["m"] is True and ev[0]["o"]["L"] == "29600"


def test_mark_price_vs_contract_price_triggers() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", workingType="MARK_PRICE", clientAlgoId="mk")
    ex.set_mark_price("BTCUSDT", D("29600"))
    assert len(ex.all_fills()) == 1
    ex.set_mark_price("BTCUSDT", D("29450"))
    # the child is a market order: it executes at the last contract price
    assert ex.all_fills()[-1]["price"] == "30000"
    assert ex.query_algo_order({"clientAlgoId": "mk"})["algoStatus"] == "FINISHED"

    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", workingType="CONTRACT_PRICE")
    ex.set_mark_price("BTCUSDT", D("29000"))
    assert len(ex.all_fills()) == 1 and pos_amt(ex) == D("0.1")
    # -2021 compares against the working-type price
    assert_api_error(ex.new_algo_order, {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                  "type": "STOP_MARKET", "triggerPrice": "29200", "closePosition": "true",
                                  "workingType": "MARK_PRICE"}, -2021)
    algo(ex, "SELL", "STOP_MARKET", "29200", closePosition="true")  # contract price is 30000


def test_price_protect_blocks_mark_trigger_on_divergence() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP_MARKET", "29500", closePosition="true", workingType="MARK_PRICE", priceProtect="TRUE")
    ex.set_mark_price("BTCUSDT", D("28000"))  # 6.7% away from last 30000 > triggerProtect 5%
    assert len(ex.all_fills()) == 1
    ex.set_mark_price("BTCUSDT", D("29400"))
    assert len(ex.all_fills()) == 2


def test_trailing_stop() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    r = algo(ex, "SELL", "TRAILING_STOP_MARKET", quantity="0.1", reduceOnly="true", callbackRate="1",
             activatePrice="30500")
    assert r["activatePrice"] == "30500" and r["callbackRate"] == "1"
    ex.on_candle(candle(1, "30000", "30400", "29900", "30300"))  # not activated, a 1% drop is harmless
    ex.on_candle(candle(2, "30300", "31000", "30300", "30900"))  # activated, highest 31000
    assert len(ex.all_fills()) == 1
    ex.on_candle(candle(3, "30900", "30950", "30600", "30650"))  # 31000 * 0.99 = 30690
    assert ex.all_fills()[-1]["price"] == "30690"
    assert pos_amt(ex) == 0
    child = [e for e in ex.drain_events() if e["e"] == "ORDER_TRADE_UPDATE"][-1]["o"]
    assert child["o"] == "TRAILING_STOP_MARKET" and child["AP"] == "30500" and child["cr"] == "1"


def test_algo_child_visible_as_normal_order_after_trigger_and_cancellable() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    algo(ex, "SELL", "STOP", "29500", price="29550", quantity="0.1", reduceOnly="true", clientAlgoId="x1")
    ex.on_candle(candle(1, "29540", "29540", "29450", "29480"))
    assert ex.open_orders({})[0]["clientOrderId"] == "x1"
    ex.drain_events()
    c = ex.cancel_order({"symbol": "BTCUSDT", "origClientOrderId": "x1"})
    assert c["status"] == "CANCELED"
    assert kinds(ex.drain_events()) == ["OTU:CANCELED:CANCELED", "ALGO:FINISHED"]


# ---------------------------------------------------------------------------------------------
# funding
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("side,sign", [("BUY", -1), ("SELL", 1)])
def test_funding_sign_and_schedule(side: str, sign: int) -> None:
    rates = {"BTCUSDT": {DAY0 + 3: D("0.0003"), DAY0 + H8 - 2: D("-0.0002")}}
    start = DAY0 - 3 * MIN
    ex = SimExchange(RULES, funding_rates=rates, start_time_ms=start)
    ex.on_candle(candle(0, "30000", "30000", "30000", "30000", base=start))
    market(ex, side, "0.1")
    ex.on_candle(candle(1, "30000", "30100", "30000", "30100", base=start))
    ex.on_candle(candle(2, "30100", "30100", "30100", "30100", base=start))
    assert ex.funding_history() == []
    ex.drain_events()
    pi = ex.premium_index({"symbol": "BTCUSDT"})
    assert pi["nextFundingTime"] == DAY0 and D(pi["lastFundingRate"]) == D("0.0003")
    w0 = ex.wallet_balance()
    ex.on_candle(candle(3, "30100", "30200", "30000", "30200", base=start))  # opens at 00:00:00.000
    fh = ex.funding_history()
    assert len(fh) == 1 and fh[0]["time"] == DAY0 and fh[0]["rate"] == D("0.0003")
    expected = sign * D("0.1") * D("30100") * D("0.0003")  # previous mark
    assert fh[0]["amount"] == expected
    assert ex.wallet_balance() == w0 + expected
    ev = ex.drain_events()
    assert kinds(ev) == ["AU:FUNDING_FEE"]
    a = ev[0]["a"]
    assert a["P"] == [] and D(a["B"][0]["bc"]) == expected and ev[0]["E"] == DAY0
    # 08:00 uses the jittered key (-2 ms), 16:00 falls back to the default rate
    ex.advance_time(DAY0 + 2 * H8 + 5)
    fh = ex.funding_history()
    assert [f["time"] for f in fh] == [DAY0, DAY0 + H8, DAY0 + 2 * H8]
    assert [f["rate"] for f in fh] == [D("0.0003"), D("-0.0002"), D("0.0001")]
    assert fh[1]["amount"] == sign * D("0.1") * D("30200") * D("-0.0002")
    assert fh[2]["amount"] == sign * D("0.1") * D("30200") * D("0.0001")
    assert ex.now_ms == DAY0 + 2 * H8 + 5


def test_funding_isolated_event_carries_position() -> None:
    ex = make("30000", default_margin_type=MarginType.ISOLATED)
    market(ex, "BUY", "0.1")
    ex.drain_events()
    ex.advance_time(H8)
    ev = ex.drain_events()
    assert kinds(ev) == ["AU:FUNDING_FEE"]
    p = ev[0]["a"]["P"][0]
    assert p["mt"] == "isolated" and D(p["iw"]) == D("150") - D("0.3")


def test_no_funding_when_flat_and_clock_never_goes_back() -> None:
    ex = make("30000")
    ex.advance_time(10 * H8)
    assert ex.funding_history() == [] and ex.now_ms == 10 * H8
    ex.advance_time(5)
    assert ex.now_ms == 10 * H8
    assert ex.premium_index({"symbol": "BTCUSDT"})["nextFundingTime"] == 11 * H8


# ---------------------------------------------------------------------------------------------
# liquidation
# ---------------------------------------------------------------------------------------------


def test_isolated_liquidation_loses_isolated_margin() -> None:
    ex = make("30000", default_margin_type=MarginType.ISOLATED)
    market(ex, "BUY", "0.1")  # 3000 notional, 150 isolated margin at 20x
    ex.new_order({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                  "quantity": "0.01", "price": "20000"})
    row = ex.position_risk({"symbol": "BTCUSDT"})[0]
    lp = D(row["liquidationPrice"])
    assert D("28614") < lp < D("28615")  # (3000 - 150) / (0.1 * 0.996)
    w0 = ex.wallet_balance()
    ex.drain_events()
    ex.on_candle(candle(1, "30000", "30000", "28600", "28700"))
    ev = ex.drain_events()
    assert kinds(ev) == ["OTU:CANCELED:CANCELED", "OTU:NEW:NEW", "OTU:TRADE:FILLED", "AU:ORDER"]
    liq = ev[2]["o"]
    assert liq["c"] == "autoclose-1" and liq["o"] == "LIQUIDATION" and liq["ot"] == "LIQUIDATION"
    assert liq["L"] == "28614.4" and liq["S"] == "SELL"
    assert ex.wallet_balance() == w0 - D("150")
    assert pos_amt(ex) == 0 and ex.open_orders({}) == []


def test_cross_liquidation() -> None:
    ex = make("30000", starting_balance=D("1000"))
    market(ex, "BUY", "0.6")  # 18000 notional, 900 IM
    lp = D(ex.position_risk({"symbol": "BTCUSDT"})[0]["liquidationPrice"])
    assert D("28462") < lp < D("28463")
    ex.on_candle(candle(1, "30000", "30000", "28000", "28100"))
    f = ex.all_fills()[-1]
    assert f["price"] == "28462.1" and D(f["commission"]) > 0
    assert pos_amt(ex) == 0
    assert D(0) <= ex.wallet_balance() < D("1")


def test_short_liquidation_on_mark_override() -> None:
    ex = make("30000", default_margin_type=MarginType.ISOLATED)
    ex.change_leverage({"symbol": "BTCUSDT", "leverage": "50"})
    market(ex, "SELL", "0.1")
    lp = D(ex.position_risk({"symbol": "BTCUSDT"})[0]["liquidationPrice"])
    assert D("30000") < lp < D("30600")
    ex.set_mark_price("BTCUSDT", lp + 1)
    assert pos_amt(ex) == 0
    assert ex.all_fills()[-1]["side"] == "BUY"


# ---------------------------------------------------------------------------------------------
# account endpoints
# ---------------------------------------------------------------------------------------------


def test_account_balance_and_position_risk_shapes() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.1")
    ex.on_candle(candle(1, "30000", "30200", "29900", "30100"))
    row = ex.position_risk({"symbol": "BTCUSDT"})[0]
    for k in ("positionAmt", "entryPrice", "breakEvenPrice", "markPrice", "unRealizedProfit", "liquidationPrice",
              "isolatedMargin", "notional", "isolatedWallet", "initialMargin", "maintMargin",
              "positionInitialMargin", "openOrderInitialMargin", "bidNotional", "askNotional"):
        assert is_num_str(row[k]), k
    assert D(row["unRealizedProfit"]) == D("10") and D(row["notional"]) == D("3010")
    assert D(row["positionInitialMargin"]) == D("150.5") and D(row["maintMargin"]) == D("3010") * D("0.004")
    acct = ex.account({})
    assert D(acct["totalWalletBalance"]) == ex.wallet_balance()
    assert D(acct["availableBalance"]) == ex.wallet_balance() + D("10") - D("150.5")
    assert acct["positions"][0]["symbol"] == "BTCUSDT" and len(acct["assets"]) == 1
    bal = ex.balance({})
    assert bal[0]["asset"] == "USDT" and D(bal[0]["balance"]) == ex.wallet_balance()
    assert bal[0]["marginAvailable"] is True
    json.dumps([row, acct, bal])


def test_user_trades_filters() -> None:
    ex = make("30000")
    a = market(ex, "BUY", "0.01")
    ex.on_candle(candle(1, "30000", "30000", "30000", "30000"))
    market(ex, "BUY", "0.01")
    market(ex, "SELL", "0.01", symbol="BTCUSDT")
    assert len(ex.user_trades({"symbol": "BTCUSDT"})) == 3
    assert len(ex.user_trades({"symbol": "BTCUSDT", "orderId": str(a["orderId"])})) == 1
    assert len(ex.user_trades({"symbol": "BTCUSDT", "limit": "2"})) == 2
    first = ex.all_fills()[0]["id"]
    assert [t["id"] for t in ex.user_trades({"symbol": "BTCUSDT", "fromId": str(first + 1)})] == [first + 1, first + 2]
    assert ex.user_trades({"symbol": "ETHUSDT"}) == []
    assert_api_error(ex.user_trades, {"symbol": "BTCUSDT", "limit": "5000"}, -1130)
    assert_api_error(ex.user_trades, {}, -1102)


def test_user_trades_default_window_is_seven_days_of_replay_time() -> None:
    ex = make("30000")
    market(ex, "BUY", "0.01")
    ex.advance_time(8 * 24 * 3600 * 1000)
    assert ex.user_trades({"symbol": "BTCUSDT"}) == []
    assert len(ex.user_trades({"symbol": "BTCUSDT", "startTime": "0"})) == 1
    assert_api_error(ex.user_trades, {"symbol": "BTCUSDT", "startTime": "0", "endTime": str(8 * 24 * 3600 * 1000)}, -1127)
    assert len(ex.all_fills()) == 1


def test_idle_on_candle_is_cheap() -> None:
    import time

    ex = SimExchange(RULES)
    c = [candle(i, "30000", "30010", "29990", "30005", "ETHUSDT") for i in range(20_000)]
    t0 = time.perf_counter()
    for x in c:
        ex.on_candle(x)
    assert time.perf_counter() - t0 < 1.0
    assert ex.now_ms == c[-1].close_time_ms
    assert ex.premium_index({"symbol": "ETHUSDT"})["markPrice"] == "30005"


# ---------------------------------------------------------------------------------------------
# invariants over random sequences
# ---------------------------------------------------------------------------------------------

SYMS = {"BTCUSDT": (D("30000"), D("0.1"), D("0.001")), "ETHUSDT": (D("2000"), D("0.01"), D("0.001"))}

op_strategy = st.one_of(
    st.tuples(st.just("market"), st.sampled_from(sorted(SYMS)), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 3000), st.booleans()),
    st.tuples(st.just("limit"), st.sampled_from(sorted(SYMS)), st.sampled_from(["BUY", "SELL"]),
              st.integers(1, 3000), st.integers(-300, 300), st.sampled_from(["GTC", "IOC", "GTX", "FOK"])),
    st.tuples(st.just("algo"), st.sampled_from(sorted(SYMS)), st.sampled_from(["BUY", "SELL"]),
              st.sampled_from(["STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET"]),
              st.integers(5, 300), st.booleans(), st.integers(1, 1000), st.integers(-60, 60)),
    st.tuples(st.just("candle"), st.sampled_from(sorted(SYMS)), st.integers(-400, 400), st.integers(0, 300),
              st.integers(-20, 20)),
    st.tuples(st.just("candle"), st.sampled_from(sorted(SYMS)), st.integers(-400, 400), st.integers(0, 300),
              st.integers(-20, 20)),
    st.tuples(st.just("time"), st.integers(1, 3)),
    st.tuples(st.just("lev"), st.sampled_from(sorted(SYMS)), st.sampled_from([1, 5, 20, 50, 100, 125])),
    st.tuples(st.just("mtype"), st.sampled_from(sorted(SYMS)), st.sampled_from(["ISOLATED", "CROSSED"])),
    st.tuples(st.just("cancel"), st.sampled_from(sorted(SYMS))),
    st.tuples(st.just("mark"), st.sampled_from(sorted(SYMS)), st.integers(-300, 300)),
)


def _tick(symbol: str, price: Decimal) -> Decimal:
    return RULES[symbol].round_price(price)


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=st.lists(op_strategy, min_size=15, max_size=50), hedge=st.booleans(), slip=st.integers(0, 5),
       margin=st.sampled_from([MarginType.CROSSED, MarginType.ISOLATED]), lev=st.sampled_from([5, 20, 75, 125]))
def test_invariants_over_random_sequences(ops: list[tuple], hedge: bool, slip: int, margin: MarginType,
                                          lev: int) -> None:
    start = DAY0 - 30 * MIN
    rates = {"BTCUSDT": {DAY0 + 4: D("0.0004"), DAY0 + H8 + 1: D("-0.0003")}}
    ex = SimExchange(RULES, starting_balance=D("1000"), slippage_bps=D(slip), funding_rates=rates,
                     start_time_ms=start, position_mode=PositionMode.HEDGE if hedge else PositionMode.ONEWAY,
                     default_margin_type=margin, default_leverage=lev)
    price = {s: v[0] for s, v in SYMS.items()}
    minute = [0]

    def feed(symbol: str, o: Decimal, c: Decimal, wick: Decimal) -> None:
        t = max(ex.now_ms + 1, start + minute[0] * MIN)
        t -= t % MIN
        h = _tick(symbol, max(o, c) + wick)
        lo = _tick(symbol, max(min(o, c) - wick, price[symbol] / 2))
        ex.on_candle(Candle(symbol, t, t + MIN - 1, o, h, min(lo, o, c), c, D(1)))
        minute[0] = (t - start) // MIN + 1
        price[symbol] = c

    for s in SYMS:
        feed(s, price[s], price[s], D(0))
    events: list[dict] = []
    for op in ops:
        kind = op[0]
        try:
            if kind in ("market", "limit"):
                symbol, side, n = op[1], op[2], op[3]
                qty = SYMS[symbol][2] * n
                params = {"symbol": symbol, "side": side, "quantity": fmt(qty)}
                if hedge:
                    params["positionSide"] = "LONG" if (side == "BUY") == (n % 3 != 0) else "SHORT"
                elif kind == "market" and op[4]:
                    params["reduceOnly"] = "true"
                if kind == "market":
                    params["type"] = "MARKET"
                else:
                    params.update(type="LIMIT", timeInForce=op[5],
                                  price=fmt(_tick(symbol, price[symbol] * (1 + D(op[4]) / 10000))))
                ps = params.get("positionSide", "BOTH")
                before = pos_amt(ex, symbol, ps)
                avail_before = ex._available_raw()
                ex.new_order(params)
                after = pos_amt(ex, symbol, ps)
                # an entry: the position grew or flipped, or a resting order took open-order margin
                opening = abs(after) > abs(before) or (before * after < 0) or (
                    after == before and ex._available_raw() < avail_before)
                if opening:
                    assert ex._available_raw() >= 0  # no negative available balance after an entry
            elif kind == "algo":
                symbol, side, otype, dist, flag, n, limit_off = op[1:]
                up = (otype in ("STOP_MARKET", "STOP")) == (side == "BUY")
                trig = _tick(symbol, price[symbol] * (1 + (D(dist) if up else -D(dist)) / 10000))
                params = {"algoType": "CONDITIONAL", "symbol": symbol, "side": side, "type": otype}
                if otype == "TRAILING_STOP_MARKET":
                    params["callbackRate"] = fmt(D(dist % 50 + 1) / 10)
                    if flag:  # activation beyond the market (BUY below, SELL above)
                        act = price[symbol] * (1 + (D(dist) if side == "SELL" else -D(dist)) / 10000)
                        params["activatePrice"] = fmt(_tick(symbol, act))
                else:
                    params["triggerPrice"] = fmt(trig)
                if otype in ("STOP", "TAKE_PROFIT"):
                    params["price"] = fmt(_tick(symbol, trig * (1 + D(limit_off) / 10000)))
                if flag and otype in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                    params["closePosition"] = "true"
                else:
                    params["quantity"] = fmt(SYMS[symbol][2] * n)
                    if not hedge and limit_off % 2:
                        params["reduceOnly"] = "true"
                if hedge:
                    params["positionSide"] = "LONG" if (side == "SELL") == (n % 4 != 0) else "SHORT"
                    if params.get("closePosition"):
                        params["positionSide"] = "LONG" if side == "SELL" else "SHORT"
                ex.new_algo_order(params)
            elif kind == "candle":
                symbol, drift, wick, gap = op[1:]
                tick = SYMS[symbol][1]
                o = _tick(symbol, price[symbol] + tick * gap)
                c = _tick(symbol, o * (1 + D(drift) / 10000))
                feed(symbol, o, c, _tick(symbol, o * D(wick) / 10000))
            elif kind == "time":
                ex.advance_time(ex.now_ms + op[1] * H8 // 2)
                minute[0] = (ex.now_ms - start) // MIN + 1
            elif kind == "lev":
                ex.change_leverage({"symbol": op[1], "leverage": str(op[2])})
            elif kind == "mtype":
                ex.change_margin_type({"symbol": op[1], "marginType": op[2]})
            elif kind == "cancel":
                ex.cancel_all_open_orders({"symbol": op[1]})
                ex.cancel_all_algo_open_orders({"symbol": op[1]})
            elif kind == "mark":
                ex.set_mark_price(op[1], _tick(op[1], price[op[1]] * (1 + D(op[2]) / 10000)))
        except SimApiError as exc:
            assert exc.http_status == 400 and exc.code < 0
        events.extend(ex.drain_events())

    fills = ex.all_fills()
    # wallet == start + Σ realised − Σ commission + Σ funding, exactly
    total = D("1000") + sum((D(f["realizedPnl"]) - D(f["commission"]) for f in fills), D(0))
    total += sum((f["amount"] for f in ex.funding_history()), D(0))
    assert ex.wallet_balance() == total
    # position amount == Σ signed fill quantity, one row per (symbol, positionSide)
    rows = ex.position_risk({})
    keys = [(r["symbol"], r["positionSide"]) for r in rows]
    assert len(keys) == len(set(keys))
    for symbol in SYMS:
        for ps in (("LONG", "SHORT") if hedge else ("BOTH",)):
            signed = sum((D(f["qty"]) if f["side"] == "BUY" else -D(f["qty"])
                          for f in fills if f["symbol"] == symbol and f["positionSide"] == ps), D(0))
            assert pos_amt(ex, symbol, ps) == signed
            if hedge:
                assert (signed >= 0) if ps == "LONG" else (signed <= 0)
    # every fill exactly once, each TRADE followed by its ACCOUNT_UPDATE
    ids = [f["id"] for f in fills]
    assert len(ids) == len(set(ids))
    trade_events = [e["o"]["t"] for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert trade_events == ids
    for i, e in enumerate(events):
        if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE":
            assert events[i + 1]["e"] == "ACCOUNT_UPDATE" and events[i + 1]["a"]["m"] == "ORDER"
    assert all(D(f["commission"]) >= 0 for f in fills)
    json.dumps(events)
