"""EMA trend strategy: signals on crosses in the trend's direction, respects the ATR filter,
never looks at unclosed candles, and is deterministic on real data."""

from decimal import Decimal

import pytest

from engine.data import load_klines, sample_kline_files
from engine.model import Candle, Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.ema_trend import EmaTrend, EmaTrendParams


def candle(i, close, spread=0.5, closed=True, symbol="BTCUSDT"):
    c = Decimal(str(close))
    s = Decimal(str(spread))
    return Candle(symbol, i * 60_000, i * 60_000 + 59_999, c, c + s, c - s, c, Decimal(1), closed)


def feed(strategy, closes, spread=0.5):
    return [(i, s) for i, x in enumerate(closes) if (s := strategy.on_candle(candle(i, x, spread))) is not None]


P = EmaTrendParams(fast=3, slow=6, trend=10, atr_period=3, min_atr_pct=0.01, max_atr_pct=5.0, cooldown_bars=0)


def test_long_on_up_cross_above_trend_and_short_on_down_cross_below():
    s = EmaTrend(P)
    closes = [100.0] * 12 + [101, 102, 103, 104] + [104] * 3 + [103, 101, 99, 97, 95, 93]
    sigs = feed(s, closes)
    dirs = [sig.direction for _, sig in sigs]
    assert Direction.LONG in dirs and Direction.SHORT in dirs
    first_long = next(i for i, sig in sigs if sig.direction is Direction.LONG)
    assert first_long == 12  # the first candle whose close breaks the flat series
    assert all(sig.price == Decimal(str(closes[i])) for i, sig in sigs)


def test_atr_filter_blocks_signals_in_dead_markets():
    quiet = EmaTrend(EmaTrendParams(**{**P.__dict__, "min_atr_pct": 50.0, "max_atr_pct": 60.0}))
    closes = [100.0] * 12 + [101, 102, 103, 104] + [103, 101, 99, 97]
    assert feed(quiet, closes) == []


def test_unclosed_candles_are_ignored():
    s = EmaTrend(P)
    for i in range(30):
        assert s.on_candle(candle(i, 100 + i, closed=False)) is None
    assert s._state == {}


def test_warmup_and_cooldown():
    s = EmaTrend(EmaTrendParams(**{**P.__dict__, "cooldown_bars": 50}))
    closes = [100.0] * 12 + [101, 102, 103, 104] + [103, 101, 99, 97, 95] + [96, 98, 100, 102, 104]
    assert len(feed(s, closes)) == 1  # later crosses fall inside the cooldown
    early = EmaTrend(P)
    assert feed(early, [100.0, 101, 102, 103, 104]) == []  # inside the warm-up


def test_deterministic_on_real_data():
    f = load_klines(sample_kline_files(["BTCUSDT"])[0])
    a = [s for c in f.candles if (s := build_strategy("ema_trend").on_candle(c))]  # new instance each call
    s1, s2 = build_strategy("ema_trend"), build_strategy("ema_trend")
    r1 = [x for c in f.candles if (x := s1.on_candle(c))]
    r2 = [x for c in f.candles if (x := s2.on_candle(c))]
    assert a == []  # a fresh strategy per candle never warms up
    assert r1 == r2 and len(r1) > 5


@pytest.mark.parametrize("params, needle", [({"fast": 50}, "fast must be"), ({"bogus": 1}, "unknown parameter"),
                                            ({"fast": "x"}, "strategies.ema_trend.fast")])
def test_bad_params_name_the_field(params, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("ema_trend", params)


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(StrategyError, match="ema_trend"):
        build_strategy("nope")
