"""No look-ahead: market features at candle t are the same whether computed on the data up to t
(``MarketData.head(t + 1)``: candles 0..t and the funding rates published by t's close) or on all
of it; and the env observes exactly those features of its last closed candle."""

from __future__ import annotations

import pytest

np = pytest.importorskip("numpy")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from rl.features import FEATURE_NAMES, FUNDING_INTERVAL_MS, compute_features  # noqa: E402
from tests.rl.conftest import sample  # noqa: E402

DATA = sample("BTCUSDT")
FULL = compute_features(DATA)
N = len(DATA)


def _funding_candles() -> list[int]:
    kt = np.asarray(DATA.open_time) // FUNDING_INTERVAL_MS
    return (np.nonzero(kt[1:] > kt[:-1])[0] + 1).tolist()


def assert_causal(t: int) -> None:
    part = compute_features(DATA.head(t + 1))
    assert part.shape == (t + 1, len(FEATURE_NAMES))
    # bit-identical, not merely close: every feature is elementwise or a sequential prefix sum
    np.testing.assert_array_equal(part[t], FULL[t], err_msg=f"features at t={t} depend on later data")


def test_shape_dtype_and_finite():
    assert FULL.shape == (N, len(FEATURE_NAMES))
    assert FULL.dtype == np.float32
    assert np.isfinite(FULL).all()
    assert (np.abs(FULL) <= 10).all()
    # not degenerate: every feature varies over the sample
    assert (FULL.std(axis=0) > 0).all()


@pytest.mark.parametrize("t", [0, 1, 2, 14, 59, 60, 239, 240, 241, N // 2, N - 2, N - 1])
def test_no_look_ahead_at_edges(t):
    assert_causal(t)


def test_no_look_ahead_around_funding_instants():
    # the funding feature switches near 00/08/16 UTC: check the candles around each instant
    for f in _funding_candles()[:6]:
        for t in range(f - 2, f + 3):
            assert_causal(t)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=N - 1))
def test_no_look_ahead_anywhere(t):
    assert_causal(t)


def test_future_candles_cannot_move_past_features():
    # scramble everything after t: rows ≤ t must not change
    from dataclasses import replace

    t = 5000
    rng = np.random.default_rng(0)
    noise = np.ones(N)
    noise[t + 1:] = rng.uniform(0.5, 1.5, N - t - 1)
    o, h, lo, c, v = (np.asarray(getattr(DATA, k)) * noise for k in ("open", "high", "low", "close", "volume"))
    changed = replace(DATA, open=o, high=h, low=lo, close=c, volume=v,
                      funding={k: r * 3 for k, r in DATA.funding.items()} | {
                          k: r for k, r in DATA.funding.items() if k <= int(DATA.close_time[t])})
    other = compute_features(changed)
    np.testing.assert_array_equal(other[: t + 1], FULL[: t + 1])
    assert not np.array_equal(other[t + 1:], FULL[t + 1:])


def test_env_observes_the_features_of_its_last_closed_candle():
    pytest.importorskip("gymnasium")
    from rl.env import EnvConfig, FuturesTargetEnv

    env = FuturesTargetEnv(DATA, EnvConfig(decision_every=3, episode_steps=50))
    nf = len(FEATURE_NAMES)
    obs, info = env.reset(options={"start": 1000})
    t = 1000
    np.testing.assert_array_equal(obs[:nf], compute_features(DATA.head(t + 1))[t])
    for _ in range(5):
        obs, *_ = env.step(np.array([0.5], dtype=np.float32))
        t += 3
        assert env.candle_index == t
        np.testing.assert_array_equal(obs[:nf], compute_features(DATA.head(t + 1))[t])
