"""Donchian breakout: a close beyond the prior channel, cleared by the ATR buffer, on volume."""

from decimal import Decimal

import pytest

from engine.model import Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.donchian_breakout import DonchianBreakout, DonchianBreakoutParams
from tests.engine.strategies.support import candle, feed, noise, series

P = DonchianBreakoutParams(channel=20, buffer_atr=0.1, atr_period=14, volume_mult=1.5, min_width_pct=0.2,
                           cooldown_bars=0)


def with_(**kw):
    return DonchianBreakoutParams(**{**P.__dict__, **kw})


def range_then(last_close, *, volume=3.0, n=30, last_volume=None, params=P, **kw):
    """``n`` candles ranging within 99.4–100.6 (closes 99.5–100.5, wicks 0.1), then one more."""
    cs = series(noise(n, amp=0.5), volume=1.0)
    prev = cs[-1].close_f
    cs.append(candle(n, last_close, open_=prev, volume=volume if last_volume is None else last_volume, **kw))
    return feed(DonchianBreakout(params), cs), cs


def test_long_above_the_channel_short_below():
    sigs, cs = range_then(101.5)
    assert [(i, s.direction) for i, s in sigs] == [(30, Direction.LONG)]
    s = sigs[0][1]
    assert s.price == Decimal("101.5") == cs[30].close and s.strategy == "donchian_breakout"
    assert 0.5 <= s.strength <= 1 and "20-candle high" in s.reason
    sigs, _ = range_then(98.5)
    assert [(i, s.direction) for i, s in sigs] == [(30, Direction.SHORT)]


def test_the_breakout_needs_volume():
    assert range_then(101.5, volume=1.2)[0] == []  # 1.2x the channel's mean volume < 1.5x
    assert [s.direction for _, s in range_then(101.5, volume=1.2, params=with_(volume_mult=0))[0]] == [Direction.LONG]


def test_the_close_must_clear_the_channel_by_the_atr_buffer():
    _, cs = range_then(101.5)
    top = max(c.high_f for c in cs[10:30])
    just = round(top + 0.01, 2)  # above the channel high, but by far less than 0.1 ATR? (ATR ~0.7)
    assert range_then(just)[0] == []
    assert [s.direction for _, s in range_then(just, params=with_(buffer_atr=0.0))[0]] == [Direction.LONG]


def test_the_current_candle_is_not_part_of_its_own_channel():
    # a candle whose own high is far above everything still breaks out on its close
    sigs, _ = range_then(101.5, high=110.0)
    assert [s.direction for _, s in sigs] == [Direction.LONG]
    # and a long upper wick with a close back inside the range is no breakout
    assert range_then(100.0, high=110.0)[0] == []


def test_narrow_channels_are_skipped():
    cs = series(noise(30, level=100, amp=0.02), wick=0.01)
    cs.append(candle(30, 100.2, open_=100.0, volume=3.0))
    assert feed(DonchianBreakout(P), cs) == []  # channel width ~0.06% < 0.2%
    cs2 = series(noise(30, level=100, amp=0.02), wick=0.01) + [candle(30, 100.2, open_=100.0, volume=3.0)]
    assert [s.direction for _, s in feed(DonchianBreakout(with_(min_width_pct=0.0)), cs2)] == [Direction.LONG]


def test_warmup_cooldown_and_unclosed_candles():
    s = DonchianBreakout(P)
    assert feed(s, series([100.0] * 10 + [105.0], volume=1.0)) == []  # 10 candles < the 20-candle channel
    closes = noise(30, amp=0.5) + [101.5, 102.5, 103.5]
    cs = series(closes, volume=1.0)
    cs[30:] = [candle(30 + k, c, open_=closes[29 + k], volume=5.0) for k, c in enumerate(closes[30:])]
    assert len(feed(DonchianBreakout(P), cs)) == 3
    assert len(feed(DonchianBreakout(with_(cooldown_bars=5)), cs)) == 1
    u = DonchianBreakout(P)
    assert u.on_candle(candle(0, 100, closed=False)) is None and u._state == {}


@pytest.mark.parametrize("params, needle", [
    ({"channel": 1}, "channel must be"),
    ({"volume_mult": -1}, "volume_mult must be"),
    ({"buffer_atr": "x"}, "strategies.donchian_breakout.buffer_atr"),
    ({"zzz": 1}, "unknown parameter"),
])
def test_bad_params_name_the_field(params, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("donchian_breakout", params)
