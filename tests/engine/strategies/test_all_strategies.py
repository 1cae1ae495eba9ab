"""Properties every registered strategy keeps: builds from defaults, deterministic on real data,
signals carry the candle's exact Decimal close and a strength in [0, 1], unclosed candles are
ignored, per-symbol state (feeding symbols together = feeding them apart), and its own counts."""

from dataclasses import replace
from decimal import Decimal

import pytest

from engine.data import load_klines, sample_kline_files
from engine.strategies.base import SafeStrategy, available, build_strategy
from engine.strategies.stats import signal_stats

NAMES = sorted(available())
NEW = ["adx_trend", "bollinger_reversion", "donchian_breakout", "confluence", "regime_switch", "ensemble"]


@pytest.fixture(scope="module")
def btc():
    return load_klines(sample_kline_files(["BTCUSDT"])[0]).candles


@pytest.fixture(scope="module")
def three():
    return [load_klines(p).candles[:4000] for p in sample_kline_files(["BTCUSDT", "ETHUSDT", "SOLUSDT"])]


def test_the_library_is_registered():
    assert set(NEW) <= set(NAMES) and "ema_trend" in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_on_real_data_with_exact_prices(name, btc):
    a, b = build_strategy(name), build_strategy(name)
    ra = [x for c in btc if (x := a.on_candle(c))]
    rb = [x for c in btc if (x := b.on_candle(c))]
    assert ra == rb
    if name != "confluence":  # the confluence strategy needs external signals
        assert len(ra) >= 5
    closes = {c.open_time_ms: c.close for c in btc}
    for s in ra:
        assert isinstance(s.price, Decimal) and s.price == closes[s.candle_open_time_ms]
        assert 0.0 <= s.strength <= 1.0 and s.reason and s.symbol == "BTCUSDT"
        assert s.time_ms == s.candle_open_time_ms + 59_999
    if name in NEW:
        st = signal_stats(SafeStrategy(a))
        assert st.signals == len(ra) and st.longs + st.shorts == len(ra)


@pytest.mark.parametrize("name", [n for n in NAMES if n != "ensemble"])  # ensemble weights pool symbols
def test_symbols_do_not_leak_into_each_other(name, three):
    together = build_strategy(name)
    merged = sorted((c for cs in three for c in cs), key=lambda c: (c.open_time_ms, c.symbol))
    joint = [x for c in merged if (x := together.on_candle(c))]
    apart = []
    for cs in three:
        s = build_strategy(name)
        apart += [x for c in cs if (x := s.on_candle(c))]
    key = lambda s: (s.candle_open_time_ms, s.symbol)  # noqa: E731
    assert sorted(joint, key=key) == sorted(apart, key=key)


@pytest.mark.parametrize("name", NAMES)
def test_unclosed_candles_are_ignored(name, btc):
    s = build_strategy(name)
    assert all(s.on_candle(replace(c, closed=False)) is None for c in btc[:500])
    ref = build_strategy(name)
    assert [x for c in btc[:3000] if (x := s.on_candle(c))] == [x for c in btc[:3000] if (x := ref.on_candle(c))]
