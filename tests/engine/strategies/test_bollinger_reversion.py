"""Bollinger mean reversion: fades stretched closes only when RSI and the edge filter agree."""

from decimal import Decimal

import pytest

from engine.model import Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.bollinger_reversion import BollingerReversion, BollingerReversionParams
from tests.engine.strategies.support import candle, feed, noise, series

P = BollingerReversionParams(period=20, band_k=2.0, rsi_period=14, rsi_low=30, rsi_high=70, min_edge_pct=0.15,
                             cooldown_bars=0)


def with_(**kw):
    return BollingerReversionParams(**{**P.__dict__, **kw})


def test_long_below_the_lower_band_short_above_the_upper():
    dip = series(noise(40, amp=0.3) + [99.6, 99.2, 98.8, 98.0])
    sigs = feed(BollingerReversion(P), dip)
    assert [(i, s.direction) for i, s in sigs] == [(43, Direction.LONG)]
    i, s = sigs[0]
    assert s.price == dip[i].close and isinstance(s.price, Decimal) and s.strategy == "bollinger_reversion"
    assert 0.5 <= s.strength <= 1 and "below lower" in s.reason

    pop = series(noise(40, amp=0.3) + [101.5])
    assert [(i, s.direction) for i, s in feed(BollingerReversion(P), pop)] == [(40, Direction.SHORT)]


def test_rsi_must_be_stretched_too():
    closes = noise(40, amp=0.3) + [98.5]  # one sharp drop: z < -2 but RSI14 only ~36
    assert feed(BollingerReversion(P), series(closes)) == []
    assert [s.direction for _, s in feed(BollingerReversion(with_(rsi_low=40)), series(closes))] == [Direction.LONG]


def test_the_mean_must_be_far_enough_to_pay_the_fees():
    closes = noise(40, amp=0.001) + [99.99]  # a huge z-score, but the mean is 0.01% away
    assert feed(BollingerReversion(P), series(closes, wick=0.0001)) == []
    loose = feed(BollingerReversion(with_(min_edge_pct=0.0)), series(closes, wick=0.0001))
    assert [s.direction for _, s in loose] == [Direction.LONG]


def test_no_signal_inside_the_bands_or_during_warmup():
    assert feed(BollingerReversion(P), series(noise(500, amp=0.3, seed=4))) == []
    assert feed(BollingerReversion(P), series([100.0] * 10 + [90.0])) == []  # 11 candles < 20-candle window


def test_cooldown_and_per_symbol_state():
    closes = noise(40, amp=0.3) + [101.5, 102.5, 103.5]
    assert len(feed(BollingerReversion(P), series(closes))) == 3
    assert len(feed(BollingerReversion(with_(cooldown_bars=5)), series(closes))) == 1
    s = BollingerReversion(P)
    btc = series(noise(40, amp=0.3) + [101.5], symbol="BTCUSDT")
    eth = series(noise(41, amp=0.3, seed=9), symbol="ETHUSDT")
    sigs = [x for pair in zip(eth, btc) for c in pair if (x := s.on_candle(c))]
    assert [(x.symbol, x.direction) for x in sigs] == [("BTCUSDT", Direction.SHORT)]
    assert s.on_candle(candle(99, 50.0, closed=False)) is None


@pytest.mark.parametrize("params, needle", [
    ({"period": 1}, "period must be"),
    ({"band_k": 0}, "band_k must be"),
    ({"rsi_low": 80}, "rsi_low must be"),
    ({"min_edge_pct": -1}, "min_edge_pct must be"),
    ({"band_k": "wide"}, "strategies.bollinger_reversion.band_k"),
    ({"nope": 1}, "unknown parameter"),
])
def test_bad_params_name_the_field(params, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("bollinger_reversion", params)
