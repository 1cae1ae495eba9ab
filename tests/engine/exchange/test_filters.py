"""Filters parsed exactly as Binance sends them; rounding and checks hold for arbitrary values."""

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.exchange.filters import (
    FilterError,
    fmt,
    parse_exchange_info,
    parse_leverage_brackets,
    parse_symbol,
    with_brackets,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"


def rules(symbol="BTCUSDT"):
    info = json.loads((FIXTURES / "exchange_info_futures.json").read_text())
    r = parse_exchange_info(info)[symbol]
    br = parse_leverage_brackets(json.loads((FIXTURES / "leverage_brackets.json").read_text()))
    return with_brackets(r, br.get(symbol, ()))


def test_real_exchange_info_payload_is_parsed_field_by_field():
    r = rules("BTCUSDT")
    assert r.price_filter.tick_size == Decimal("0.10")
    assert r.price_filter.min_price == Decimal("402")
    assert r.lot_size.step_size == Decimal("0.001")
    assert r.min_notional == Decimal("10")  # MIN_NOTIONAL.notional, not spot's minNotional
    assert r.percent_price.multiplier_up == Decimal("1.1000")
    assert r.percent_price.multiplier_decimal == 4
    assert r.max_num_orders == 200


def test_filter_key_order_does_not_matter():
    entry = {
        "symbol": "XUSDT",
        "filters": [
            {"tickSize": "0.01", "filterType": "PRICE_FILTER", "maxPrice": "1000", "minPrice": "0.01"},
            {"filterType": "LOT_SIZE", "stepSize": "0.1", "minQty": "0.1", "maxQty": "100"},
            {"notional": "5", "filterType": "MIN_NOTIONAL"},
        ],
    }
    r = parse_symbol(entry)
    assert r.price_filter.tick_size == Decimal("0.01")
    assert r.market_lot_size == r.lot_size  # falls back when MARKET_LOT_SIZE is absent
    assert r.min_notional == Decimal("5")


def test_missing_price_filter_is_a_clear_error():
    with pytest.raises(ValueError, match="PRICE_FILTER"):
        parse_symbol({"symbol": "XUSDT", "filters": [{"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1", "maxQty": "2"}]})


def test_leverage_brackets_single_object_and_array_forms():
    one = {"symbol": "ETHUSDT", "brackets": [{"bracket": 1, "initialLeverage": 75, "notionalCap": 10000,
                                             "notionalFloor": 0, "maintMarginRatio": 0.0065, "cum": 0.0}]}
    assert parse_leverage_brackets(one) == parse_leverage_brackets([one])
    b = parse_leverage_brackets(one)["ETHUSDT"][0]
    assert b.maint_margin_ratio == Decimal("0.0065")


def test_max_notional_for_leverage_uses_the_brackets():
    r = rules("BTCUSDT")
    assert r.max_notional_for_leverage(125) == Decimal(50000)
    assert r.max_notional_for_leverage(3) > Decimal(1_000_000)


def test_fmt_never_writes_exponents():
    assert fmt(Decimal("1E-5")) == "0.00001"
    assert fmt(Decimal("100.000")) == "100"
    assert fmt(Decimal("0")) == "0"
    assert fmt(Decimal("1E+3")) == "1000"


prices = st.decimals(min_value=Decimal("402"), max_value=Decimal("1000000"), places=6, allow_nan=False,
                     allow_infinity=False)
qtys = st.decimals(min_value=Decimal("0"), max_value=Decimal("999"), places=8, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(prices)
def test_rounded_price_is_on_the_tick_grid_and_within_half_a_tick(p):
    r = rules()
    rp = r.round_price(p)
    r.check_price(rp)  # never raises: on grid, within bounds
    assert abs(rp - p) <= r.price_filter.tick_size / 2
    assert r.round_price_down(p) <= p <= r.round_price_up(p)
    assert "E" not in fmt(rp)


@settings(max_examples=300, deadline=None)
@given(qtys)
def test_quantity_rounds_down_to_the_step(q):
    r = rules()
    rq = r.round_qty(q)
    assert rq <= q
    assert q - rq < r.market_lot_size.step_size or rq == 0
    if rq > 0:
        r.check_qty(rq, market=True)


@settings(max_examples=200, deadline=None)
@given(prices, qtys)
def test_min_notional_check_matches_the_definition(p, q):
    r = rules()
    if q * p < r.min_notional:
        with pytest.raises(FilterError) as exc:
            r.check_notional(q, p)
        assert exc.value.code == -4164
        r.check_notional(q, p, reduce_only=True)  # reduce-only is exempt
    else:
        r.check_notional(q, p)


def test_off_grid_values_get_binance_codes():
    r = rules()
    with pytest.raises(FilterError) as e:
        r.check_price(Decimal("30000.05"))
    assert e.value.code == -4014
    with pytest.raises(FilterError) as e:
        r.check_qty(Decimal("0.0015"), market=True)
    assert e.value.code == -4023
    with pytest.raises(FilterError) as e:
        r.check_qty(Decimal("0"), market=True)
    assert e.value.code == -4003


def test_float_is_refused():
    from engine.exchange.filters import D

    with pytest.raises(TypeError):
        D(0.1)
