"""The facade's break-even timers, partial take-profit and guard status, over a real sim engine."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest

from engine.backtest import build_sim_run, step
from engine.config import Settings
from engine.control import ControlServer
from engine.data import KlineFile, load_klines, sample_kline_files
from engine.events import SwitchStrategy
from engine.facade import BREAK_EVEN, STOP_LOSS, RuntimeFacade, StatusView, status_view
from engine.model import Direction, Signal
from engine.runtime import RunPaths, SimRuntime
from engine.state.journal import Journal
from engine.strategies.base import SafeStrategy

TIMEOUT_S = 3600
TRIGGER_PCT = Decimal("0.15")
"""Above the two taker fees (0.1%), so reaching it moves the stop to entry plus fees."""
TP1_PCT = Decimal("0.3")


class EveryCandle:
    """A long signal on every closed candle: a position opens on the first one."""

    name = "alpha"

    def on_candle(self, c):
        return Signal(self.name, c.symbol, Direction.LONG, 0.5, "every candle", c.open_time_ms, c.close,
                      c.close_time_ms)


@pytest.fixture
def sim(tmp_path):
    files = [load_klines(p) for p in sample_kline_files(["BTCUSDT"])]
    files = [KlineFile(f.symbol, f.path, f.candles[:240]) for f in files]
    settings = Settings(
        symbols=["BTCUSDT"],
        risk={"funding_blackout_min": 0, "take_profit_1_pct": str(TP1_PCT), "max_positions_per_day": 7,
              "max_consecutive_losses": 3},
        exits={"break_even_trigger_pct": str(TRIGGER_PCT), "break_even_timeout_s": TIMEOUT_S},
    )
    run = build_sim_run(settings, run_id="status", files=files, funding={}, journal=Journal("status"))
    run.engine.strategies["alpha"] = SafeStrategy(EveryCandle())
    run.engine.handle(SwitchStrategy("alpha"))
    rt = SimRuntime(run, None, RunPaths.for_run(tmp_path, tmp_path / "x.db", "status"))
    facade = RuntimeFacade(rt)
    run.cursor = 0
    return run, rt, facade


def advance(run, n: int = 1) -> None:
    for c in run.candles[run.cursor:run.cursor + n]:
        step(run, c)
    run.cursor += n


def test_a_new_position_shows_a_running_break_even_timer_and_both_take_profits(sim):
    run, _rt, facade = sim
    advance(run)
    snap = facade.snapshot()
    (p,) = snap.positions
    (t,) = snap.timers
    assert (t.symbol, t.side) == (p.symbol, p.side) == ("BTCUSDT", "LONG")
    assert not t.break_even_reached and not t.closing
    assert t.deadline_ms == p.opened_ms + TIMEOUT_S * 1000 > snap.exchange_time_ms
    rules = run.engine.rules["BTCUSDT"]
    assert t.trigger_price == rules.round_price_up(p.entry_price * (1 + TRIGGER_PCT / 100))  # on the tick grid
    assert p.entry_price < t.break_even_price < t.trigger_price  # entry plus fees, below the trigger
    assert p.stop_kind == STOP_LOSS and p.stop_price < p.entry_price
    assert p.tp1_price is not None and p.entry_price < p.tp1_price < p.take_profit_price
    assert abs(p.tp1_qty - p.size / 2) <= Decimal("0.001")  # half of it, to the symbol's step
    assert not p.tp1_done


def test_reaching_break_even_and_tp1_show_in_the_snapshot(sim):
    run, _rt, facade = sim
    advance(run)
    first = facade.snapshot()
    size = first.positions[0].size
    for _ in range(200):  # the sample data reaches both within minutes
        advance(run)
        snap = facade.snapshot()
        if snap.timers and snap.timers[0].break_even_reached and snap.positions[0].tp1_done:
            break
    else:
        pytest.fail("break-even and TP1 never reached in the sample data")
    (p,) = snap.positions
    (t,) = snap.timers
    assert t.deadline_ms is None  # no deadline once reached
    assert p.stop_kind == BREAK_EVEN and p.stop_price == t.break_even_price
    assert p.size < size  # TP1 closed part of it
    assert p.opened_ms == first.positions[0].opened_ms


def test_status_reports_the_guard_limits_and_counts(sim):
    run, _rt, facade = sim
    advance(run)
    st = facade.snapshot().status
    assert st.positions_opened_today == 1
    assert st.max_positions_per_day == 7
    assert (st.consecutive_losses, st.max_consecutive_losses) == (0, 3)
    assert st.disabled_strategies == () and st.halted_by is None
    monitor = run.engine.monitor  # what the monitor decided shows on the next snapshot
    monitor.consecutive_losses = 2
    monitor.disabled_strategies.add("beta")
    st = facade.snapshot().status
    assert st.consecutive_losses == 2 and st.disabled_strategies == ("beta",)


def test_ctl_status_document_carries_the_same_figures(sim, tmp_path):
    run, rt, facade = sim
    advance(run)
    snap = facade.snapshot()
    reply = asyncio.run(ControlServer(tmp_path / "s.sock", facade, rt).execute("status"))
    doc = json.loads(json.dumps(reply))["status"]  # JSON all the way
    assert doc["position_count"] == 1 and doc["daily_trades"] == snap.trades_today
    assert (doc["positions_opened_today"], doc["max_positions_per_day"]) == (1, 7)
    assert (doc["consecutive_losses"], doc["max_consecutive_losses"]) == (0, 3)
    assert doc["disabled_strategies"] == [] and doc["guard"]["halted_by"] is None
    (timer,) = doc["timers"]
    assert timer["symbol"] == "BTCUSDT" and timer["deadline_ms"] == snap.timers[0].deadline_ms
    assert Decimal(timer["trigger_price"]) == snap.timers[0].trigger_price
    (pos,) = doc["positions"]
    assert Decimal(pos["tp1_price"]) == snap.positions[0].tp1_price and pos["tp1_done"] is False
    assert pos["stop_kind"] == "stop_loss"


def test_status_of_an_engine_without_a_risk_monitor_is_unknown_not_an_error():
    eng = SimpleNamespace(params=SimpleNamespace(max_daily_trades=5), guard=SimpleNamespace(signal_rules=[]))
    assert status_view(eng) == StatusView()
