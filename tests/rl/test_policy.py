"""The ``rl-sac`` strategy: its observation equals the env's, a target becomes signals as
documented, the policy file round-trips, and registration only happens when a policy exists."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.config import Settings
from engine.model import Direction
from engine.strategies import base
from rl.features import FEATURE_NAMES, WARMUP, compute_features
from rl.policy import NAME, ActorNet, PolicyFileError, RlSacParams, RlSacStrategy, promoted_path, register
from rl.train import policy_meta
from rl.env import EnvConfig

N_OBS = len(FEATURE_NAMES) + 5


def constant_net(action: float, k: int = 5) -> ActorNet:
    """A policy whose target is always ``action`` (no hidden layer, mu = atanh(action))."""
    w = np.zeros((1, N_OBS), np.float32)
    b = np.array([math.atanh(action)], np.float32)
    return ActorNet([], (w, b), policy_meta(EnvConfig(decision_every=k), "BTCUSDT"))


def feed(strategy, candles):
    return [s for s in (strategy.on_candle(c) for c in candles) if s is not None]


def test_live_features_equal_the_env_features(btc):
    full = compute_features(btc)
    s = RlSacStrategy(constant_net(0.0), funding={"BTCUSDT": btc.funding})
    for t in (WARMUP, WARMUP + 1, 777, 5000, len(btc) - 1):
        s2 = RlSacStrategy(constant_net(0.0), funding={"BTCUSDT": btc.funding})
        for c in btc.candles[t - WARMUP: t + 1]:
            s2.on_candle(c)
        np.testing.assert_allclose(s2.features("BTCUSDT"), full[t], rtol=0, atol=2e-4)
    assert s.decisions == 0


@pytest.mark.parametrize("action,direction", [(0.6, Direction.LONG), (-0.6, Direction.SHORT), (0.1, None)])
def test_target_zone_entry_is_the_only_signal(btc, action, direction):
    s = RlSacStrategy(constant_net(action), RlSacParams(entry_threshold=0.25))
    sigs = feed(s, btc.candles[:WARMUP + 200])
    assert s.decisions == 200 // 5  # every k-th candle from the first one with full look-backs
    if direction is None:
        assert sigs == []
    else:  # entering the zone signals once; staying in it emits nothing
        assert len(sigs) == 1 and sigs[0].direction is direction and sigs[0].strategy == NAME
        assert sigs[0].strength == pytest.approx(abs(action), abs=1e-4)
        assert sigs[0].candle_open_time_ms == btc.candles[WARMUP].open_time_ms


def test_policy_file_round_trip_and_bad_files(tmp_path):
    rng = np.random.default_rng(1)
    net = ActorNet([(rng.normal(size=(8, N_OBS)), rng.normal(size=8))], (rng.normal(size=(1, 8)), rng.normal(size=1)),
                   policy_meta(EnvConfig(), "BTCUSDT"))
    p = tmp_path / "p.npz"
    net.save(p)
    back = ActorNet.load(p)
    x = rng.normal(size=(16, N_OBS)).astype(np.float32)
    np.testing.assert_array_equal(back(x), net(x))
    assert not list(tmp_path.glob(".*tmp"))  # written atomically, no temp left
    with pytest.raises(PolicyFileError, match="no policy file"):
        ActorNet.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(PolicyFileError, match="not a policy file"):
        ActorNet.load(tmp_path / "junk.npz")


def test_register_only_with_a_promoted_policy(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))  # keep the registry of other tests clean
    settings = Settings(state_dir=tmp_path)
    assert register(settings) is False
    assert NAME not in base.available()
    path = promoted_path(settings)
    assert path == tmp_path / "rl" / "rl-sac.npz"
    path.parent.mkdir()
    constant_net(0.5).save(path)
    assert register(settings) is True
    assert NAME in base.available()
    strat = base.build_strategy(NAME, {"entry_threshold": 0.4})
    assert isinstance(strat, RlSacStrategy) and strat.params.entry_threshold == 0.4
    with pytest.raises(base.StrategyError, match="strategies.rl-sac.entry_threshold"):
        base.build_strategy(NAME, {"entry_threshold": "x"})
    with pytest.raises(base.StrategyError, match="no policy file"):
        base.build_strategy(NAME, {"model": str(tmp_path / "nope.npz")})
