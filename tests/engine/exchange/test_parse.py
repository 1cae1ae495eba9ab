"""The one Binance parser, on real payload samples (tests/fixtures, from nautilus_trader)."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from engine.events import ExAccountUpdate, ExAlgoUpdate, ExOrderUpdate, ExStreamExpired
from engine.exchange.binance.parse import (
    ParseError,
    parse_kline_event,
    parse_mark_price_event,
    parse_rest_kline,
    parse_user_event,
)
from engine.model import AlgoStatus, OrderStatus, OrderType, PositionSide, Side

FIX = Path(__file__).parents[2] / "fixtures"


def load(name):
    return json.loads((FIX / name).read_text())


def test_order_trade_update_trade_becomes_a_fill():
    ev = parse_user_event(load("ws_order_update_trade.json"))
    assert isinstance(ev, ExOrderUpdate)
    assert ev.status is OrderStatus.PARTIALLY_FILLED
    f = ev.fill
    assert f is not None
    assert (f.trade_id, f.price, f.quantity, f.commission) == (12345678, Decimal("7100.50"), Decimal("0.001"),
                                                              Decimal("0.01000000"))
    assert f.realized_pnl == Decimal("12.34") and f.is_maker and f.position_side is PositionSide.LONG


def test_order_update_new_has_no_fill():
    ev = parse_user_event(load("ws_order_update_new.json"))
    assert ev.fill is None and ev.type is OrderType.TRAILING_STOP_MARKET and ev.side is Side.BUY


def test_liquidation_fill_is_counted_even_with_exec_type_calculated():
    ev = parse_user_event(load("ws_futures_order_update_liquidation.json"))
    assert ev.fill is not None and ev.client_order_id.startswith("autoclose")
    assert ev.fill.quantity == Decimal("0.100")


def test_algo_updates_including_combined_stream_wrapper():
    new = parse_user_event(load("ws_algo_update_new.json"))
    assert isinstance(new, ExAlgoUpdate) and new.status is AlgoStatus.NEW and new.actual_order_id is None
    trig = parse_user_event(load("ws_futures_algo_update_triggered.json"))
    assert trig.status is AlgoStatus.TRIGGERED and trig.actual_order_id == 88937381063  # "ai" is a string
    assert trig.trigger_price == Decimal("0.13855") and trig.type is OrderType.STOP_MARKET
    fin = parse_user_event(load("ws_futures_algo_update_finished.json"))
    assert fin.status is AlgoStatus.FINISHED
    canc = parse_user_event(load("ws_algo_update_canceled.json"))
    assert canc.status is AlgoStatus.CANCELED and canc.reason == "Reduce Only reject"


def test_trailing_activation_flag_ia():
    """``ia`` (since 2026-08) is absent on most updates, a JSON bool on trailing stops."""
    msg = load("ws_algo_update_new.json")
    assert parse_user_event(msg).activated is None
    for raw, want in ((False, False), (True, True), ("true", True)):
        msg["o"]["ia"] = raw
        assert parse_user_event(msg).activated is want
    msg["o"]["ia"] = "yes"
    with pytest.raises(ParseError, match="o.ia"):
        parse_user_event(msg)


def test_account_update_positions_and_balance():
    ev = parse_user_event(load("ws_account_update.json"))
    assert isinstance(ev, ExAccountUpdate)
    assert ev.wallet_balance == Decimal("122624.12345678") and ev.reason == "ORDER"
    long_ = [p for p in ev.positions if p.position_side is PositionSide.LONG][0]
    assert long_.amount == Decimal("20") and long_.entry_price == Decimal("6563.6")


def test_listen_key_expired_with_string_event_time():
    ev = parse_user_event({"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "x"})
    assert isinstance(ev, ExStreamExpired) and ev.time_ms == 1736996475556


def test_unknown_event_types_are_ignored_and_malformed_ones_raise():
    assert parse_user_event({"e": "TRADE_LITE", "E": 1}) is None
    with pytest.raises(ParseError):
        parse_user_event({"e": "ORDER_TRADE_UPDATE", "o": {"s": "BTCUSDT"}})
    with pytest.raises(ParseError):
        parse_user_event({"no": "type"})
    bad = load("ws_order_update_trade.json")
    bad["o"]["L"] = "not-a-number"
    with pytest.raises(ParseError, match="o.L"):
        parse_user_event(bad)


def test_market_stream_payloads():
    k = parse_kline_event(load("kline_stream_closed.json"))
    assert k.closed and k.close == Decimal("0.0020") and k.close_time_ms == 1638747719999
    m = parse_mark_price_event(load("mark_price_stream.json"))
    assert m.mark_price == Decimal("11794.15000000") and m.funding_rate == Decimal("0.00038167")
    row = [1789478160000, "76936.20", "76965.50", "76936.10", "76965.40", "20.680", 1789478219999, "1", 8, "1", "1", "0"]
    c = parse_rest_kline("BTCUSDT", row)
    assert c.high == Decimal("76965.50") and c.open_time_ms == 1789478160000
