"""FuturesTargetEnv: gymnasium contract (SB3's check_env), seeding, episode rules, reward, dead-band."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("gymnasium")

from rl.env import (  # noqa: E402
    ACCOUNT_NAMES,
    OBS_NAMES,
    ORDER_FILLED,
    ORDER_NONE,
    EnvConfig,
    FuturesTargetEnv,
)
from rl.features import FEATURE_NAMES, WARMUP  # noqa: E402

A = np.float32


def make(btc, **kw) -> FuturesTargetEnv:
    base = dict(decision_every=5, episode_steps=100)
    base.update(kw)
    return FuturesTargetEnv(btc, EnvConfig(**base))


def test_passes_stable_baselines3_check_env(btc):
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # check_env reports problems as warnings too
        sb3.check_env(make(btc), warn=True, skip_render_check=True)


def test_spaces(btc):
    env = make(btc)
    assert env.action_space.shape == (1,) and env.action_space.dtype == np.float32
    assert float(env.action_space.low[0]) == -1.0 and float(env.action_space.high[0]) == 1.0
    assert env.observation_space.dtype == np.float32
    assert env.observation_space.shape == (len(FEATURE_NAMES) + len(ACCOUNT_NAMES),) == (len(OBS_NAMES),)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    rng = np.random.default_rng(0)
    for _ in range(100):
        obs, *_ = env.step(rng.uniform(-3, 3, 1).astype(A))  # out-of-range actions are clipped
        assert env.observation_space.contains(obs)


def _rollout(env, seed, n=60):
    obs, info = env.reset(seed=seed)
    out = [(info["start"], obs.copy())]
    rng = np.random.default_rng(99)
    for _ in range(n):
        obs, r, te, tr, info = env.step(rng.uniform(-1, 1, 1).astype(A))
        out.append((r, obs.copy(), info["equity"]))
        if te or tr:
            break
    return out


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, np.ndarray):
                np.testing.assert_array_equal(u, v)
            else:
                assert u == v


def test_seeded_and_reproducible(btc):
    env = make(btc)
    a = _rollout(env, 123)
    b = _rollout(make(btc), 123)
    _same(a, b)
    _same(a, _rollout(env, 123))  # same env instance, re-seeded
    starts = {env.reset(seed=s)[1]["start"] for s in range(20)}
    assert len(starts) > 10  # random start
    lo, hi = min(starts), max(starts)
    assert lo >= WARMUP and hi <= len(btc) - 1 - 100 * 5


def test_fixed_length_episode_is_truncated(btc):
    env = make(btc, episode_steps=37)
    env.reset(seed=1)
    for i in range(1, 38):
        _, _, te, tr, _ = env.step(np.array([0.3], A))
        assert not te
        assert tr == (i == 37)


def test_flat_policy_earns_nothing_and_pays_nothing(btc):
    env = make(btc)
    env.reset(seed=2)
    for _ in range(100):
        _, r, _, _, info = env.step(np.array([0.0], A))
        assert r == 0.0 and info["equity"] == 10_000.0
    assert env.fees_paid == 0.0 and env.funding_paid == 0.0


def test_reward_is_log_equity_return_minus_drawdown_penalty(btc):
    cfg = dict(drawdown_penalty=0.7, reward_scale=50.0, episode_steps=300)
    env = make(btc, **cfg)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    prev, peak, dd_prev = 10_000.0, 10_000.0, 0.0
    for _ in range(300):
        _, r, te, tr, info = env.step(rng.uniform(-1, 1, 1).astype(A))
        eq = info["equity"]
        peak = max(peak, eq)
        dd = 1 - eq / peak
        expect = 50.0 * (math.log(eq / prev) - 0.7 * max(0.0, dd - dd_prev))
        assert r == pytest.approx(expect, rel=1e-12, abs=1e-12)
        prev, dd_prev = eq, dd
        if te or tr:
            break
    assert env.fees_paid > 0  # the costs are in the equity the reward is computed from


def test_costs_lower_the_reward(btc):
    def total(**kw):
        env = make(btc, episode_steps=200, **kw)
        env.reset(options={"start": 3000})
        rng = np.random.default_rng(4)
        return sum(env.step(rng.uniform(-1, 1, 1).astype(A))[1] for _ in range(200))

    free = total(taker_fee_rate=0, slippage_bps=0, default_funding_rate=0)
    assert total(taker_fee_rate="0.0005", slippage_bps=0) < free
    assert total(taker_fee_rate=0, slippage_bps=3) < free


def test_dead_band(btc):
    env = make(btc, deadband=0.1, max_notional=20_000)
    env.reset(options={"start": 1000})
    env.step(np.array([0.5], A))
    assert env.last_order[0] == ORDER_FILLED
    qty = env.position_qty
    env.step(np.array([0.55], A))  # within 0.1 of the current fraction: nothing sent
    assert env.last_order[0] == ORDER_NONE and env.position_qty == qty
    env.step(np.array([0.7], A))
    assert env.last_order[0] == ORDER_FILLED and env.position_qty > qty


def test_action_sets_target_fraction_of_max_notional(btc):
    env = make(btc, max_notional=30_000, deadband=0.0)
    env.reset(options={"start": 1000})
    t = env.candle_index
    close = float(btc.close[t])
    env.step(np.array([-0.4], A))
    assert env.position_qty == pytest.approx(-math.floor(0.4 * 30_000 / close / 0.001) * 0.001)


def test_terminates_at_max_drawdown(btc):
    env = make(btc, max_drawdown=0.002, max_notional=100_000, leverage=20, episode_steps=2000)
    env.reset(options={"start": 500})
    for _ in range(2000):
        _, _, te, tr, info = env.step(np.array([1.0], A))
        if te or tr:
            break
    assert te and info["reason"] == "max_drawdown"
    peak = max(10_000.0, env._peak)
    assert 1 - info["equity"] / peak >= 0.002


def test_needs_enough_candles(btc):
    with pytest.raises(ValueError):
        FuturesTargetEnv(btc.head(500), EnvConfig(decision_every=5, episode_steps=100))


def test_step_imports_no_pandas_and_no_torch():
    code = (
        "import sys, numpy as np\n"
        "from rl.data import sample_market_data\n"
        "from rl.env import FuturesTargetEnv, EnvConfig\n"
        "env = FuturesTargetEnv(sample_market_data('BTCUSDT'), EnvConfig(episode_steps=50))\n"
        "env.reset(seed=0)\n"
        "for _ in range(50): env.step(np.array([0.5], np.float32))\n"
        "bad = [m for m in ('pandas', 'torch', 'stable_baselines3') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)


def test_stepping_past_the_end_needs_a_reset(btc):
    env = make(btc, episode_steps=2)
    env.reset(seed=0)
    env.step(np.array([0.0], A))
    env.step(np.array([0.0], A))
    with pytest.raises(RuntimeError):
        env.step(np.array([0.0], A))
    env.reset()
    env.step(np.array([0.0], A))


def test_config_from_perpdeck_settings():
    from engine.config import Settings

    s = Settings()
    cfg = EnvConfig.from_settings(s, decision_every=3)
    assert cfg.taker_fee_rate == s.sim.taker_fee_rate and cfg.slippage_bps == s.sim.slippage_bps
    assert cfg.default_funding_rate == s.sim.default_funding_rate
    assert cfg.starting_balance == s.sim.starting_balance
    assert cfg.leverage == s.leverage and cfg.margin_type == str(getattr(s.margin_type, "value", s.margin_type))
    assert cfg.decision_every == 3
