"""The ensemble: weighted votes, weights from each member's virtual out-of-sample PnL (only candles
after the signal — no look-ahead), exposed for display; config validation."""

import json

import pytest

from engine.model import Direction
from engine.strategies.base import StrategyError, build_strategy
from engine.strategies.ensemble import Ensemble, EnsembleParams
from tests.engine.strategies.support import Stub, ramp, series

P = EnsembleParams(members="bull,bull2,bear", horizon_bars=5, window_trades=10, prior_trades=0, cost_pct=0.0,
                   sensitivity=2.0, threshold=0.6, vote_ttl_bars=1, cooldown_bars=0)
L, S = Direction.LONG, Direction.SHORT


def make(bull=(), bull2=(), bear=(), **kw):
    members = {"bull": Stub("bull", L, set(bull)), "bull2": Stub("bull2", L, set(bull2)),
               "bear": Stub("bear", S, set(bear))}
    return Ensemble(EnsembleParams(**{**P.__dict__, **kw}), members=members)


UP = series(ramp(40, 100, 0.5))  # prices only rise: longs win, shorts lose


def run(ens, cs=UP):
    weights, out = [], {}
    for k, c in enumerate(cs):
        if (s := ens.on_candle(c)) is not None:
            out[k] = s
        weights.append(dict(ens.weights()))
    return weights, out


def test_equal_weights_a_lone_vote_is_not_enough_agreement_is():
    ens = make(bull=[1], bull2=[1, 3], bear=[])
    w, out = run(ens, UP[:5])
    assert w[0] == pytest.approx({"bull": 1 / 3, "bull2": 1 / 3, "bear": 1 / 3})
    assert list(out) == [1]  # two of three agree on candle 1: 2/3 >= 0.6; bull2 alone on candle 3: 1/3
    s = out[1]
    assert (s.direction, s.strategy, s.price) == (L, "ensemble", UP[1].close)
    assert s.strength == pytest.approx(2 / 3, abs=1e-4)
    assert "bull LONG" in s.reason and "bull2 LONG" in s.reason


def test_opposite_votes_cancel_and_votes_live_for_vote_ttl_bars():
    assert run(make(bull=[1], bull2=[1], bear=[1]))[1] == {}  # 1/3 + 1/3 - 1/3 < 0.6
    assert run(make(bull=[1], bull2=[2]))[1] == {}  # one candle apart, each vote lives one candle
    assert list(run(make(bull=[1], bull2=[2], vote_ttl_bars=2))[1]) == [2]


def test_weights_follow_out_of_sample_pnl_and_never_look_ahead():
    ens = make(bull=[0], bear=[0])
    w, _ = run(ens, UP[:8])
    # the virtual trades opened at candle 0's close are judged on candle 5's close, not before
    assert all(x == w[0] for x in w[:5])
    assert w[5]["bull"] > w[5]["bull2"] > w[5]["bear"] and sum(w[5].values()) == pytest.approx(1)
    stats = {m.name: m for m in ens.member_stats()}
    assert stats["bull"].virtual_trades == 1 and stats["bull"].wins == 1 and stats["bull"].performance > 0
    assert stats["bear"].win_rate == 0 and stats["bull2"].virtual_trades == 0
    assert stats["bull"].window_pnl_pct == pytest.approx((UP[5].close_f / UP[0].close_f - 1) * 100)
    json.dumps([m.as_dict() for m in ens.member_stats()])

    # the same history up to candle 7, then prices crash: weights up to candle 7 are identical
    crash = UP[:8] + series([80.0] * 10, start=8)
    w2, _ = run(make(bull=[0], bear=[0]), crash)
    assert w2[:8] == w[:8]


def test_a_member_that_earned_its_weight_can_signal_alone():
    ens = make(bull=[0, 10], bear=[0])
    w, out = run(ens, UP[:12])
    assert list(out) == [10] and w[9]["bull"] > 0.6
    assert out[10].direction is L and out[10].strength == pytest.approx(w[10]["bull"], abs=1e-4)


def test_cooldown_and_symbols():
    ens = make(bull=[1, 2, 3], bull2=[1, 2, 3], cooldown_bars=5)
    assert list(run(ens, UP[:6])[1]) == [1]
    ens = make(bull=[1], bull2=[1])
    a, b = series(ramp(3, 100, 0.5), symbol="BTCUSDT"), series(ramp(3, 50, 0.5), symbol="ETHUSDT")
    sigs = [s for pair in zip(a, b) for c in pair if (s := ens.on_candle(c))]
    assert [(s.symbol, s.direction) for s in sigs] == [("BTCUSDT", L), ("ETHUSDT", L)]
    assert ens.signal_stats().by_symbol == (("BTCUSDT", 1), ("ETHUSDT", 1))


def test_default_members_and_forwarding_external_signals():
    ens = build_strategy("ensemble")
    names = [m.name for m in ens.member_stats()]
    assert names == ["ema_trend", "adx_trend", "bollinger_reversion", "donchian_breakout"]
    assert ens.weights() == pytest.approx({n: 0.25 for n in ens.weights()})
    with_conf = build_strategy("ensemble", {"members": "confluence,adx_trend"})
    res = with_conf.process_signal(113, "m1", "BTC", None, 1_746_403_200_000)
    assert [r.status.value for r in res] == ["pending"]


@pytest.mark.parametrize("raw, needle", [
    ({"members": ""}, "members must name"),
    ({"members": "adx_trend,adx_trend"}, "must not repeat"),
    ({"members": "adx_trend,nope"}, "unknown member strategy 'nope'"),
    ({"members": "regime_switch"}, "cannot be a member"),
    ({"threshold": 0}, "threshold must be"),
    ({"horizon_bars": 0}, "horizon_bars must be"),
    ({"sensitivity": "hot"}, "strategies.ensemble.sensitivity"),
    ({"weights": 1}, "unknown parameter"),
])
def test_bad_config_names_the_field(raw, needle):
    with pytest.raises(StrategyError, match=needle):
        build_strategy("ensemble", raw)
