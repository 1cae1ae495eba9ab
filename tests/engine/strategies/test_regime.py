"""Regime detection (trend up/down, range, volatility spike, crash) with its thresholds, holds and
confirmation, per symbol; and the regime → strategy switcher."""

import dataclasses
import json

import pytest

from engine.strategies.regime import (
    Regime,
    RegimeDetector,
    RegimeParams,
    StrategySwitcher,
    default_regime_map,
)
from tests.engine.strategies.support import candle, noise, ramp, series

RP = RegimeParams(adx_period=14, trend_adx=25, range_adx=18, fast_ema=10, slow_ema=30, atr_period=5,
                  baseline_period=40, spike_ratio=2.5, spike_candle_mult=6, crash_lookback=5, crash_drop_pct=3,
                  crash_hold_bars=3, spike_hold_bars=2, confirm_bars=3)


def changes(cs, params=RP):
    d = RegimeDetector(params)
    return [(k, ch) for k, c in enumerate(cs) if (ch := d.update(c))]


def path(cs, params=RP):
    return [(k, ch.regime) for k, ch in changes(cs, params)]


def test_unknown_until_warmed_up_then_ranging():
    assert RP.warmup == 42
    d = RegimeDetector(RP)
    cs = series(noise(60, amp=0.5))
    for c in cs[:41]:
        assert d.update(c) is None and d.regime("BTCUSDT") is Regime.UNKNOWN
    ch = d.update(cs[41])
    assert (ch.previous, ch.regime, ch.time_ms) == (Regime.UNKNOWN, Regime.RANGING, cs[41].close_time_ms)
    assert "ADX" in ch.reason
    json.dumps(ch.as_dict())


def test_trends_up_and_down_after_confirmation():
    up = series(noise(60, amp=0.5) + ramp(40, 100, 0.3))
    down = series(noise(60, amp=0.5) + ramp(40, 100, -0.3))
    assert path(up) == [(41, Regime.RANGING), (71, Regime.TRENDING_UP)]
    assert path(down) == [(41, Regime.RANGING), (69, Regime.TRENDING_DOWN)]
    (_, ch), = [x for x in changes(up) if x[1].regime is Regime.TRENDING_UP]
    assert ch.adx >= 25 and "held 3 candles" in ch.reason
    eager = dataclasses.replace(RP, confirm_bars=1)
    assert path(up, eager)[-1] == (69, Regime.TRENDING_UP)  # the classification flipped 2 candles earlier


def test_a_noisy_range_stays_mostly_ranging():
    for seed in (1, 4):
        d = RegimeDetector(RP)
        seen = [d.update(c) and None or d.regime("BTCUSDT") for c in series(noise(400, amp=0.5, seed=seed))]
        after = seen[RP.warmup:]
        assert after.count(Regime.RANGING) / len(after) > 0.95


def test_a_crash_wins_immediately_and_is_held_after_the_last_crash_candle():
    cs = series(noise(60, amp=0.5) + [99, 98, 97, 96.5] + noise(20, level=96.5, amp=0.3))
    got = changes(cs)
    crash = [(k, ch) for k, ch in got if ch.regime is Regime.CRASH]
    assert [k for k, _ in crash] == [63]  # close 96.5 is > 3% under the close 5 candles earlier
    assert crash[0][1].change_pct <= -3 and "over 5 candles" in crash[0][1].reason
    # candle 64 still meets the condition; then 3 more candles are held (65–67); 68 leaves
    after = [(k, ch.regime) for k, ch in got if k > 63]
    assert after[0] == (68, Regime.TRENDING_DOWN)


def test_a_volatility_spike_from_one_huge_candle():
    cs = series(noise(60, amp=0.3), wick=0.05)
    cs.append(candle(60, 100.0, open_=100.0, high=104, low=96))
    cs += series(noise(20, amp=0.3, seed=3), start=61, wick=0.05)
    spike = [(k, ch) for k, ch in changes(cs) if ch.regime is Regime.VOLATILITY_SPIKE]
    assert [k for k, _ in spike] == [60] and "ATR5/baseline" in spike[0][1].reason
    only_candle = dataclasses.replace(RP, spike_ratio=50.0)  # the ATR ratio can no longer trigger
    spike = [(k, ch) for k, ch in changes(cs, only_candle) if ch.regime is Regime.VOLATILITY_SPIKE]
    assert [k for k, _ in spike] == [60] and "x baseline ATR" in spike[0][1].reason
    leave = [k for k, ch in changes(cs) if ch.previous is Regime.VOLATILITY_SPIKE]
    assert leave == [63]  # held for 2 more candles (61, 62)


def test_symbols_are_independent_and_state_is_readable():
    d = RegimeDetector(RP)
    a = series(noise(60, amp=0.5) + ramp(40, 100, 0.3), symbol="BTCUSDT")
    b = series(noise(100, amp=0.5, seed=4), symbol="ETHUSDT")
    for x, y in zip(a, b):
        d.update(x), d.update(y)
    assert d.regimes() == {"BTCUSDT": Regime.TRENDING_UP, "ETHUSDT": Regime.RANGING}
    st = d.state("BTCUSDT")
    assert st.regime is Regime.TRENDING_UP and st.candles == 100 and st.plus_di > st.minus_di
    assert d.state("XRPUSDT") is None and d.regime("XRPUSDT") is Regime.UNKNOWN
    assert d.update(candle(0, 1.0, closed=False, symbol="XRPUSDT")) is None


@pytest.mark.parametrize("kw, needle", [({"slow_ema": 10, "fast_ema": 10}, "slow_ema must be"),
                                        ({"range_adx": 30}, "range_adx"), ({"spike_ratio": 1.0}, "spike_ratio"),
                                        ({"crash_drop_pct": 0}, "crash_drop_pct"),
                                        ({"confirm_bars": 0}, "confirm_bars")])
def test_bad_regime_params(kw, needle):
    with pytest.raises(ValueError, match=needle):
        RegimeParams(**kw)


# -- switcher ---------------------------------------------------------------------------------------


def test_switcher_reports_each_switch_with_the_regime_that_caused_it():
    sw = StrategySwitcher(default_regime_map())
    assert sw.active("BTCUSDT") is None
    cs = series(noise(60, amp=0.5) + ramp(40, 100, 0.3) + [100, 99, 98, 97] + noise(10, level=97, amp=0.2))
    d = RegimeDetector(RP)
    switches = [s for c in cs if (ch := d.update(c)) and (s := sw.on_regime_change(ch))]
    assert [(s.previous_regime, s.regime, s.from_strategy, s.to_strategy) for s in switches][:3] == [
        (Regime.UNKNOWN, Regime.RANGING, None, "bollinger_reversion"),
        (Regime.RANGING, Regime.TRENDING_UP, "bollinger_reversion", "adx_trend"),
        (Regime.TRENDING_UP, Regime.CRASH, "adx_trend", None),
    ]
    crash = switches[2]
    assert "over 5 candles" in crash.reason and "adx_trend -> flat" in crash.describe()
    json.dumps([s.as_dict() for s in switches])
    assert sw.active_by_symbol()["BTCUSDT"] == switches[-1].to_strategy


def test_switcher_is_silent_when_the_strategy_does_not_change_and_validates_its_map():
    sw = StrategySwitcher({"trending_up": "adx_trend", "trending_down": "adx_trend", Regime.RANGING: "flat"})
    assert sw.strategies() == ("adx_trend",) and sw.strategy_for(Regime.CRASH) is None
    d = RegimeDetector(RP)
    a = series(noise(60, amp=0.5) + ramp(40, 100, 0.3))
    chs = [ch for c in a if (ch := d.update(c))]
    assert sw.on_regime_change(chs[0]) is None  # unknown -> ranging: flat -> flat
    assert sw.on_regime_change(chs[1]).to_strategy == "adx_trend"
    flipped = dataclasses.replace(chs[1], previous=Regime.TRENDING_UP, regime=Regime.TRENDING_DOWN)
    assert sw.on_regime_change(flipped) is None  # up -> down: still adx_trend
    with pytest.raises(ValueError, match="unknown regime 'sideways'"):
        StrategySwitcher({"sideways": "x"})
