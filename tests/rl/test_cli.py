"""``perpdeck train`` / ``perpdeck optimize`` and the ``[rl]`` settings."""

from __future__ import annotations

import tomllib

import pytest

from engine.cli import EXIT_BAD_INPUT, EXIT_OK, main
from engine.config import ConfigError, Settings, load_settings
from engine.strategies.base import build_strategy
from rl.optimize import params_toml, search_space


@pytest.fixture(autouse=True)
def _cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./config.toml, no ./.env


def config(tmp_path, rl: str) -> str:
    p = tmp_path / "c.toml"
    p.write_text(f'state_dir = "{tmp_path / "state"}"\nsymbols = ["BTCUSDT"]\n[rl]\n{rl}\n')
    return str(p)


def test_train_then_gate_only(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    cfg = config(tmp_path, "learning_starts = 100\nnet_arch = [16]\nbatch_size = 32\nepisode_steps = 100\n"
                           "eval_every_steps = 200")
    assert main(["--config", cfg, "train", "--steps", "300", "--seed", "1", "--no-gate"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "training finished at step 300 of 300 on cpu" in out
    assert (tmp_path / "state" / "rl" / "best.zip").is_file()
    assert main(["--config", cfg, "train", "--gate-only"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "promotion gate" in out and "rl-sac (candidate)" in out and "ema_trend (incumbent)" in out
    assert "decision: " in out


def test_train_refuses_bad_input(tmp_path, capsys):
    assert main(["--state-dir", str(tmp_path), "train", "--steps", "0"]) == EXIT_BAD_INPUT
    assert "--steps" in capsys.readouterr().err
    assert main(["--state-dir", str(tmp_path), "train", "--gate-only"]) == EXIT_BAD_INPUT
    assert "no checkpoint" in capsys.readouterr().err


def test_optimize_unknown_strategy_names_the_option(tmp_path, capsys):
    assert main(["--state-dir", str(tmp_path), "optimize", "--strategy", "nope", "--trials", "1"]) == EXIT_BAD_INPUT
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("toml,needle", [
    ('device = "gpu"', "rl.device"),
    ("total_steps = 0", "rl.total_steps"),
    ("train_fraction = 0.7\nvalidation_fraction = 0.3", "rl"),
    ('symbol = "BTC"', "rl.symbol"),
    ("net_arch = []", "rl.net_arch"),
    ("gate_sub_windows = true", "rl.gate_sub_windows"),
])
def test_bad_rl_values_name_the_field(tmp_path, toml, needle):
    p = tmp_path / "c.toml"
    p.write_text(f"[rl]\n{toml}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config_path=p, env_file=None, environ={})
    assert needle in str(info.value)


def test_rl_defaults():
    rl = Settings().rl
    assert (rl.enabled, rl.device, rl.symbol, rl.train_fraction, rl.validation_fraction) == (
        True, "auto", "BTCUSDT", 0.6, 0.2)


def test_optimizer_space_and_params_file_round_trip():
    dims, current = search_space("ema_trend", {"fast": 10})
    assert current["fast"] == 10
    by = {d.name: d for d in dims}
    assert by["fast"].kind == "int" and by["fast"].low <= 10 <= by["fast"].high
    assert by["min_atr_pct"].kind == "float" and by["min_atr_pct"].log
    text = params_toml("ema_trend", {**current, "slow": 60})
    table = tomllib.loads(text)["strategies"]["ema_trend"]
    assert build_strategy("ema_trend", table).params.slow == 60


def test_console_gets_a_trainer_only_when_enabled():
    from engine.cli import _console_trainer
    from rl.worker import TrainerWorker, rl_available

    if rl_available():
        assert isinstance(_console_trainer(Settings()), TrainerWorker)
    assert _console_trainer(Settings(rl={"enabled": False})) is None


def test_a_promoted_policy_is_listed_as_rl_sac(tmp_path, capsys, monkeypatch):
    from engine.strategies import base
    from tests.rl.test_policy import constant_net

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    assert main(["--state-dir", str(tmp_path), "strategies"]) == EXIT_OK
    assert "rl-sac" not in capsys.readouterr().out
    (tmp_path / "rl").mkdir()
    constant_net(0.5).save(tmp_path / "rl" / "rl-sac.npz")
    assert main(["--state-dir", str(tmp_path), "strategies"]) == EXIT_OK
    assert "rl-sac" in capsys.readouterr().out


def test_console_side_modules_import_no_torch():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, engine.cli, rl.worker, rl.policy, rl.gate, rl.promote\n"
            "print([m for m in ('torch', 'stable_baselines3', 'optuna') if m in sys.modules])")
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
