"""Composites as the engine builds them from settings: members get the user's own
``[strategies.<member>]`` overrides, and every regime switch is logged with its regime and time."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from engine.backtest import build_engine
from engine.config import Settings
from engine.data import load_klines, sample_kline_files
from engine.exchange.sim.matching import load_default_rules
from engine.strategies.base import StrategyError

DAYS = 3


@pytest.fixture(scope="module")
def candles():
    return load_klines(sample_kline_files(["BTCUSDT"])[0]).candles[: DAYS * 1440]


def _engine(strategies: dict):
    return build_engine(Settings(symbols=["BTCUSDT"], strategies=strategies), load_default_rules(), run_id="wiring")


def _member_signals(eng, candles) -> tuple[dict, dict]:
    rs, ens = eng.strategies["regime_switch"], eng.strategies["ensemble"]
    for c in candles:
        rs.on_candle(c)
        ens.on_candle(c)
    regime = {n: st.signals for n, st in rs.inner.member_stats().items() if st is not None}
    ensemble = {m.name: m.signals for m in ens.inner.member_stats()}
    return regime, ensemble


def test_members_are_built_with_the_users_member_overrides(candles):
    base_regime, base_ensemble = _member_signals(_engine({}), candles)
    assert base_regime["bollinger_reversion"] > 0 and base_ensemble["bollinger_reversion"] > 0
    # a band 40 sigma wide is never crossed: the member, configured as the user said, stays silent
    eng = _engine({"bollinger_reversion": {"band_k": 40}})
    assert eng.strategies["regime_switch"].inner.members["bollinger_reversion"].inner.params.band_k == 40
    regime, ensemble = _member_signals(eng, candles)
    assert regime["bollinger_reversion"] == 0 and ensemble["bollinger_reversion"] == 0
    assert regime["adx_trend"] == base_regime["adx_trend"]  # the others are untouched
    assert ensemble["ema_trend"] == base_ensemble["ema_trend"]


def test_a_bad_member_override_is_refused_naming_the_member():
    with pytest.raises(StrategyError, match=r"strategies\.adx_trend"):
        _engine({"adx_trend": {"adx_min": "lots"}})


def test_every_regime_switch_is_logged_with_its_regime_and_candle_time(candles, caplog):
    caplog.set_level(logging.INFO, logger="engine.strategies.regime_switch")
    rs = _engine({"regime_switch": {"recent_switches": 1000}}).strategies["regime_switch"]
    for c in candles:
        rs.on_candle(c)
    switches = rs.inner.recent_switches()
    lines = [r.getMessage() for r in caplog.records if r.name == "engine.strategies.regime_switch"]
    assert len(switches) == rs.inner.switch_count == len(lines) > 5
    for sw, text in zip(switches, lines, strict=True):
        minute = datetime.fromtimestamp((sw.time_ms - 59_999) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
        assert text.startswith(f"regime switch {sw.symbol} at the candle of {minute} UTC")
        assert f"-> {sw.regime.value} ({sw.reason})" in text
        assert text.endswith(f"strategy {sw.from_strategy or 'flat'} -> {sw.to_strategy or 'flat'}")
    assert len(rs.inner.drain_switches()) == len(switches)
