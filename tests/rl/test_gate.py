"""The promotion gate through the engine's backtest: it rejects a worse candidate and accepts a
clearly better one (synthetic trend data, so the outcome is known in advance)."""

from __future__ import annotations

import math

import pytest

from engine.config import Settings
from engine.model import Direction, Signal
from rl.gate import BuyAndHold, Flat, GateConfig, backtest, format_report, holdout_files, run_gate
from tests.rl.synth import trend_file


class AlwaysShort:
    name = "always_short"

    def on_candle(self, c):
        return Signal(self.name, c.symbol, Direction.SHORT, 1.0, "short", c.open_time_ms, c.close, c.close_time_ms)


SETTINGS = Settings(symbols=["BTCUSDT"])
UP = trend_file(n=2880)


def test_gate_accepts_a_clearly_better_candidate():
    rep = run_gate(SETTINGS, [UP], {}, candidate=("long", BuyAndHold), incumbent=("short", AlwaysShort),
                   config=GateConfig(max_drawdown_pct=20, sub_windows=4, cost_multiplier=2))
    assert rep.candidate.return_pct > 5 > 0 > rep.incumbent.return_pct
    assert rep.candidate.sharpe > rep.incumbent.sharpe
    assert rep.stressed.return_pct > 0 and rep.stressed.fees > rep.candidate.fees  # costs really doubled
    assert [c.passed for c in rep.checks] == [True] * 5
    assert rep.promote
    text = format_report(rep)
    for word in ("return %", "Sharpe", "Sortino", "max DD %", "PF", "win %", "trades", "fees", "funding",
                 "decision: PROMOTE"):
        assert word in text


def test_gate_rejects_a_worse_candidate_and_says_why():
    rep = run_gate(SETTINGS, [UP], {}, candidate=("short", AlwaysShort), incumbent=("long", BuyAndHold),
                   config=GateConfig(max_drawdown_pct=20, sub_windows=4, cost_multiplier=2))
    assert not rep.promote
    failed = {c.name for c in rep.checks if not c.passed}
    assert {"net return beats the incumbent", "Sharpe beats the incumbent",
            "profitable at 2x fees and slippage", "wins most holdout sub-windows"} <= failed
    assert "decision: REJECT" in format_report(rep)


def test_drawdown_cap_alone_can_reject():
    rep = run_gate(SETTINGS, [UP], {}, candidate=("long", BuyAndHold), incumbent=("short", AlwaysShort),
                   config=GateConfig(max_drawdown_pct=0.01, sub_windows=4))
    assert [c.name for c in rep.checks if not c.passed] == ["max drawdown within the cap"]
    assert not rep.promote


def test_a_named_incumbent_runs_through_the_registry():
    rep = run_gate(SETTINGS, [UP], {}, candidate=("flat", Flat), incumbent="ema_trend",
                   config=GateConfig(sub_windows=2))
    assert rep.incumbent.name == "ema_trend"
    assert not rep.promote  # flat is never profitable under stress (0 is not > 0)


def test_flat_and_metrics():
    m = backtest(SETTINGS, [UP], {}, "flat", Flat(), sub_windows=3)
    assert (m.return_pct, m.sharpe, m.trades, m.fees) == (0.0, 0.0, 0, 0.0)
    assert m.window_returns_pct == (0.0, 0.0, 0.0)
    b = backtest(SETTINGS, [UP], {}, "bh", BuyAndHold(), sub_windows=3)
    assert len(b.equity) == 2880 // 60 + 2  # start, every hour, after closing
    assert b.equity[0] == 10_000.0
    assert math.isclose(b.return_pct, 100 * (b.equity[-1] / b.equity[0] - 1))
    # the window returns chain to the whole-run return
    total = math.prod(1 + w / 100 for w in b.window_returns_pct)
    assert math.isclose(total, b.equity[-1] / b.equity[0], rel_tol=1e-12)
    assert 0 < b.win_rate_pct <= 100 and b.trades >= 1 and b.profit_factor > 1


def test_holdout_is_the_most_recent_period_and_disjoint():
    before, hold, cut = holdout_files([UP], 0.6, 0.2)
    assert max(c.open_time_ms for c in before[0].candles) < cut <= min(c.open_time_ms for c in hold[0].candles)
    assert len(before[0].candles) + len(hold[0].candles) == len(UP.candles)
    assert hold[0].candles[-1] == UP.candles[-1]


@pytest.mark.parametrize("bad", [dict(max_drawdown_pct=0), dict(sub_windows=0), dict(cost_multiplier=0.5)])
def test_bad_gate_config_names_the_setting(bad):
    with pytest.raises(ValueError, match="rl.gate_"):
        GateConfig(**bad)
