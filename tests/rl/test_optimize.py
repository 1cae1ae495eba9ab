"""Walk-forward optuna search of a strategy's parameters, adopted only through the gate."""

from __future__ import annotations

import tomllib

import pytest

pytest.importorskip("optuna")

from engine.config import Settings  # noqa: E402
from rl.gate import GateConfig  # noqa: E402
from rl.optimize import optimize  # noqa: E402
from tests.rl.synth import trend_file  # noqa: E402

DATA = [trend_file(n=2400, drift=0.00005, zig=0.002)]


def run(tmp_path, seed=0, gate=None):
    s = Settings(state_dir=tmp_path, symbols=["BTCUSDT"])
    return optimize(s, "ema_trend", trials=3, folds=2, seed=seed, files=DATA, funding={}, gate=gate,
                    out_dir=tmp_path / "opt")


def test_walk_forward_is_seeded_and_goes_through_the_gate(tmp_path):
    a = run(tmp_path)
    assert a.trials == 3 * 3  # two folds + the final search on the latest window
    assert [f.fold for f in a.folds] == [1, 2]
    assert a.report.candidate.name == "ema_trend optimised" and a.report.incumbent.name == "ema_trend current"
    assert set(a.candidate) == set(a.current)
    b = run(tmp_path)
    assert b.candidate == a.candidate and [f.test_sharpe for f in b.folds] == [f.test_sharpe for f in a.folds]
    if a.report.promote:
        assert tomllib.loads(a.written.read_text())["strategies"]["ema_trend"] == a.candidate
    else:
        assert a.written is None and not (tmp_path / "opt").exists()


def test_nothing_is_written_when_the_gate_rejects(tmp_path):
    # a candidate that trades pays fees (drawdown > 0 > cap); one that never trades is not profitable
    # under doubled costs: either way the gate rejects
    res = run(tmp_path, gate=GateConfig(max_drawdown_pct=1e-9))
    assert not res.report.promote
    assert res.written is None and not (tmp_path / "opt").exists()
