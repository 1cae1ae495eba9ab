"""ADX trend following: signals when a strong directional trend begins, respects the EMA filter,
stays quiet in ranges, during warm-up and cooldown; bad params name the field."""

from decimal import Decimal

import pytest

from engine.model import Direction
from engine.strategies.adx_trend import AdxTrend, AdxTrendParams
from engine.strategies.base import StrategyError, build_strategy
from tests.engine.strategies.support import candle, feed, noise, ramp, series

P = AdxTrendParams(period=14, adx_min=30, di_margin=2, trend=30, cooldown_bars=0)


def test_long_when_an_up_trend_starts_and_short_when_a_down_trend_starts():
    up = series(noise(60, amp=0.5) + ramp(30, 100, 0.3))
    sigs = feed(AdxTrend(P), up)
    assert [(i, s.direction) for i, s in sigs] == [(71, Direction.LONG)]  # 11 candles into the rise
    i, s = sigs[0]
    assert s.price == up[i].close and isinstance(s.price, Decimal) and s.strategy == "adx_trend"
    assert s.time_ms == up[i].close_time_ms and 0 < s.strength <= 1 and "ADX14" in s.reason

    down = series(noise(60, amp=0.5) + ramp(30, 100, -0.3))
    assert [(i, s.direction) for i, s in feed(AdxTrend(P), down)] == [(69, Direction.SHORT)]


def test_no_signal_in_a_range():
    for seed in (1, 3):
        assert feed(AdxTrend(P), series(noise(400, amp=0.5, seed=seed))) == []


def test_trend_ema_blocks_a_counter_trend_bounce():
    # a decline, then a sharp 4-candle bounce: the DIs flip up, but the close stays under EMA60
    closes = noise(60, amp=0.5) + ramp(60, 100, -0.3) + ramp(4, 82, 1.2)
    slow = feed(AdxTrend(AdxTrendParams(period=14, adx_min=30, trend=60, cooldown_bars=0)), series(closes))
    fast = feed(AdxTrend(AdxTrendParams(period=14, adx_min=30, trend=5, cooldown_bars=0)), series(closes))
    assert [s.direction for _, s in slow] == [Direction.SHORT]
    assert [s.direction for _, s in fast] == [Direction.SHORT, Direction.LONG]  # same DIs, no EMA veto


def test_staying_in_a_trend_signals_once_and_cooldown_holds_the_reversal():
    closes = noise(60, amp=0.5) + ramp(30, 100, 0.3) + ramp(30, 109, -0.3)
    both = feed(AdxTrend(P), series(closes))
    assert [s.direction for _, s in both] == [Direction.LONG, Direction.SHORT]
    quiet = AdxTrendParams(**{**P.__dict__, "cooldown_bars": 100})
    assert [s.direction for _, s in feed(AdxTrend(quiet), series(closes))] == [Direction.LONG]


def test_warmup_and_unclosed_candles():
    s = AdxTrend(AdxTrendParams(period=14, adx_min=30, trend=200, cooldown_bars=0))
    assert feed(s, series(ramp(150, 100, 0.3))) == []  # a clear trend, but inside the 200-candle warm-up
    s = AdxTrend(P)
    for i in range(50):
        assert s.on_candle(candle(i, 100 + i, closed=False)) is None
    assert s._state == {}


def test_symbols_are_independent_and_counted():
    s = AdxTrend(P)
    a = series(noise(60, amp=0.5) + ramp(30, 100, 0.3), symbol="BTCUSDT")
    b = series(noise(90, amp=0.5, seed=3), symbol="ETHUSDT")
    mixed = [c for pair in zip(a, b) for c in pair]
    sigs = [x for c in mixed if (x := s.on_candle(c))]
    assert [(x.symbol, x.direction) for x in sigs] == [("BTCUSDT", Direction.LONG)]
    st = s.signal_stats()
    assert (st.signals, st.longs, st.shorts, st.by_symbol) == (1, 1, 0, (("BTCUSDT", 1),))


@pytest.mark.parametrize("params, needle", [
    ({"period": 1}, "period must be"),
    ({"adx_min": 0}, "adx_min must be"),
    ({"adx_min": "x"}, "strategies.adx_trend.adx_min"),
    ({"cooldown_bars": -1}, "cooldown_bars must be"),
    ({"trend": 2.5}, "strategies.adx_trend.trend: expected a whole number"),
    ({"bogus": 1}, "unknown parameter"),
])
def test_bad_params_name_the_field(params, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("adx_trend", params)
