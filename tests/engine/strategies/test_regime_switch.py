"""The regime_switch strategy: only the member its regime calls for may signal, every member sees
every candle, flat in a crash, switches come out as data; config and member validation."""

import json

import pytest

from engine.model import Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.regime import Regime
from engine.strategies.regime_switch import RegimeMapParams, RegimeSwitch, build_regime_switch
from engine.strategies.stats import signal_stats
from tests.engine.strategies.support import Stub, noise, ramp, series
from tests.engine.strategies.test_regime import RP

MAP = RegimeMapParams(trending_up="trend", trending_down="trend", ranging="revert", volatility_spike="flat",
                      crash="flat")


def make(**kw):
    trend, revert = Stub("trend"), Stub("revert", Direction.SHORT)
    return RegimeSwitch(kw.pop("params", MAP), RP, members={"trend": trend, "revert": revert}), trend, revert


def test_only_the_member_in_charge_signals_and_every_member_sees_every_candle():
    rs, trend, revert = make()
    cs = series(noise(60, amp=0.5) + ramp(40, 100, 0.3) + [100, 99, 98, 97] + noise(10, level=97, amp=0.2))
    out = {k: s for k, c in enumerate(cs) if (s := rs.on_candle(c))}
    assert trend.seen["BTCUSDT"] == revert.seen["BTCUSDT"] == len(cs)
    assert min(out) == 41 and all(k >= 41 for k in out)  # flat while warming up
    assert {out[k].strategy for k in range(41, 71)} == {"revert"}  # ranging
    assert {out[k].strategy for k in range(71, 100)} == {"trend"}  # trending up
    assert not any(k in out for k in range(100, 105))  # 112 -> 100 in one candle: a crash, flat
    assert out[71].reason.startswith("[trending_up -> trend] ")
    switches = rs.drain_switches()
    assert [(s.regime, s.to_strategy) for s in switches][:3] == [
        (Regime.RANGING, "revert"), (Regime.TRENDING_UP, "trend"), (Regime.CRASH, None)]
    assert rs.drain_switches() == [] and len(rs.recent_switches()) == len(switches) == rs.switch_count
    json.dumps([s.as_dict() for s in switches])
    assert rs.active_by_symbol() == {"BTCUSDT": switches[-1].to_strategy}
    assert rs.regimes()["BTCUSDT"] is switches[-1].regime and rs.regime_state("BTCUSDT").candles == len(cs)
    assert rs.signal_stats().signals == len(out) and signal_stats(rs).signals == len(out)


def test_signals_can_carry_the_switchers_own_name():
    rs, _, _ = make(params=RegimeMapParams(**{**MAP.__dict__, "attribute_to_member": False}))
    sigs = [s for c in series(noise(60, amp=0.5)) if (s := rs.on_candle(c))]
    assert sigs and {s.strategy for s in sigs} == {"regime_switch"}


def test_built_from_config_with_default_members():
    rs = build_strategy("regime_switch", {"ranging": "flat", "crash_drop_pct": 4, "attribute_to_member": "no"})
    assert rs.detector.params.crash_drop_pct == 4.0 and rs.params.attribute_to_member is False
    assert set(rs.members) == {"adx_trend", "donchian_breakout"}
    assert set(build_strategy("regime_switch").members) == {"adx_trend", "bollinger_reversion", "donchian_breakout"}
    stats = build_regime_switch({}, {"adx_trend": {"adx_min": 40}}).members["adx_trend"].inner.params
    assert stats.adx_min == 40.0


@pytest.mark.parametrize("raw, needle", [
    ({"ranging": "nope"}, "unknown member strategy 'nope'"),
    ({"crash": "ensemble"}, "'ensemble' cannot be a member"),
    ({"crash_drop_pct": 0}, "crash_drop_pct must be"),
    ({"confirm_bars": "x"}, "strategies.regime_switch.confirm_bars"),
    ({"wat": 1}, "unknown parameter"),
])
def test_bad_config_names_the_field(raw, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("regime_switch", raw)


def test_missing_injected_member_is_refused():
    with pytest.raises(StrategyError, match="no member strategy"):
        RegimeSwitch(MAP, RP, members={"trend": Stub("trend")})
