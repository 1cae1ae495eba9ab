"""SAC training on CPU: a tiny seeded run saves a checkpoint, the exported policy reproduces SB3's
deterministic action, is reloaded as the ``rl-sac`` strategy and trades in a sim run; a stopped run
resumes where it stopped; the device is chosen explicitly."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

pytest.importorskip("stable_baselines3")
import torch  # noqa: E402
from stable_baselines3 import SAC  # noqa: E402

from engine.config import Settings  # noqa: E402
from engine.data import KlineFile  # noqa: E402
from rl.files import atomic_write_bytes  # noqa: E402
from rl.gate import backtest  # noqa: E402
from rl.policy import ActorNet, RlSacParams, RlSacStrategy  # noqa: E402
from rl.train import Trainer, env_config, export_policy, pick_device  # noqa: E402

TINY = {"learning_starts": 200, "net_arch": [32, 32], "batch_size": 64, "episode_steps": 100,
        "eval_every_steps": 500, "train_freq": 2}


def tiny(tmp_path, **rl) -> Settings:
    return Settings(state_dir=tmp_path, symbols=["BTCUSDT"], rl={**TINY, **rl})


def test_tiny_training_saves_reloads_and_trades_in_a_sim_run(tmp_path, btc):
    settings = tiny(tmp_path, total_steps=1500, seed=3)
    progress: list[dict] = []
    res = Trainer(settings, data=btc, on_progress=progress.append).run(resume=False)
    assert res.state == "finished" and res.steps == 1500 and res.device == "cpu"
    assert torch.get_num_threads() == 1  # the engine keeps its core
    d = tmp_path / "rl"
    for name in ("last.zip", "last.json", "best.zip", "best.json", "last_buffer.pkl"):
        assert (d / name).is_file(), name
    assert not list(d.glob(".*.tmp"))
    meta = json.loads((d / "last.json").read_text())
    assert meta["steps"] == 1500 and meta["buffer_steps"] == 1500 and meta["seed"] == 3
    assert [e["steps"] for e in res.evals] == [500, 1000, 1500]
    assert res.best_val_return_pct == max(e["return_pct"] for e in res.evals)
    last = progress[-1]
    assert last["steps"] == 1500 and last["actor_loss"] is not None and last["critic_loss"] is not None

    # the exported numpy policy is SB3's deterministic actor
    cfg = env_config(settings)
    net = export_policy(d / "best.zip", d / "p.npz", cfg, "BTCUSDT")
    model = SAC.load(str(d / "best.zip"), device="cpu")
    obs = np.random.default_rng(0).normal(size=(64, net.n_obs)).astype(np.float32)
    want, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(ActorNet.load(d / "p.npz")(obs), want, atol=1e-5)

    # its own copy of the file, as a strategy, trading through the engine's sim pipeline
    strat = RlSacStrategy(ActorNet.load(d / "p.npz"), RlSacParams(entry_threshold=0.01),
                          funding={"BTCUSDT": btc.funding})
    kf = KlineFile("BTCUSDT", d / "BTCUSDT.csv", btc.candles[-3000:])
    m = backtest(settings, [kf], {"BTCUSDT": btc.funding}, "rl-sac", strat)
    assert strat.decisions == (3000 - 240) // 5 and strat.signals >= 1
    assert m.trades >= 1 and m.fees > 0


def test_a_stopped_run_resumes_from_its_checkpoint(tmp_path, btc):
    settings = tiny(tmp_path, total_steps=800)
    stop = threading.Event()

    def on_progress(p):
        if p.get("steps", 0) >= 300:
            stop.set()

    first = Trainer(settings, data=btc, stop_event=stop, on_progress=on_progress, report_every_s=0).run(resume=False)
    assert first.state == "stopped" and 300 <= first.steps < 800
    meta = json.loads((tmp_path / "rl" / "last.json").read_text())
    assert meta["steps"] == first.steps == meta["buffer_steps"]
    second = Trainer(settings, data=btc).run(resume=True)
    assert second.state == "finished" and second.steps == 800
    assert SAC.load(str(tmp_path / "rl" / "last.zip"), device="cpu").num_timesteps == 800


def test_device_is_chosen_explicitly():
    assert pick_device("cpu") == ("cpu", "cpu")
    if torch.cuda.is_available():
        assert pick_device("auto")[0] == "cuda:0"
    else:
        assert pick_device("auto") == ("cpu", "cpu")
        with pytest.raises(ValueError, match="rl.device"):
            pick_device("cuda")
    with pytest.raises(ValueError, match="rl.device"):
        pick_device("gpu")


def test_atomic_write_keeps_the_old_file_when_replace_fails(tmp_path, monkeypatch):
    p = tmp_path / "ck.zip"
    atomic_write_bytes(p, b"old")

    def boom(*_a):
        raise OSError("disk full")

    monkeypatch.setattr("rl.files.os.replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["ck.zip"]
