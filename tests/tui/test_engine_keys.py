"""Every key's effect on the real engine (not a fake): the console over a real sim runtime."""

from __future__ import annotations

from decimal import Decimal

from engine.backtest import build_sim_run, step
from engine.config import Settings
from engine.data import KlineFile, load_klines, sample_kline_files
from engine.facade import RuntimeFacade
from engine.model import Direction, Signal, Verdict
from engine.runtime import RunPaths, SimRuntime
from engine.state.journal import Journal
from tui.app import PerpdeckApp

FIXED_WALL_MS = 1_746_500_000_000


class EveryCandle:
    """Signals on every closed candle (so the next decision is observable at once)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_candle(self, c):
        return Signal(self.name, c.symbol, Direction.LONG, 0.5, f"{self.name} says so", c.open_time_ms, c.close,
                      c.close_time_ms)


def make_runtime(tmp_path, with_positions: bool):
    files = [load_klines(p) for p in sample_kline_files(["BTCUSDT", "ETHUSDT"])]
    files = [KlineFile(f.symbol, f.path, f.candles[:1440]) for f in files]
    # The data starts at 00:00 UTC: no funding blackout, so the first candles' signals can enter.
    settings = Settings(symbols=["BTCUSDT", "ETHUSDT"], risk={"funding_blackout_min": 0})
    run = build_sim_run(settings, run_id="tui", files=files, funding={}, journal=Journal("tui"))
    from engine.strategies.base import SafeStrategy

    run.engine.strategies["alpha"] = SafeStrategy(EveryCandle("alpha"))
    run.engine.strategies["beta"] = SafeStrategy(EveryCandle("beta"))
    rt = SimRuntime(run, None, RunPaths.for_run(tmp_path, tmp_path / "x.db", "tui"))
    facade = RuntimeFacade(rt)
    rt.facade = facade
    run.cursor = 0
    if with_positions:
        from engine.events import SwitchStrategy

        run.engine.handle(SwitchStrategy("alpha"))
        advance(run, 3)
        assert run.engine.positions
    return run, rt, facade


def advance(run, n: int) -> None:
    for c in run.candles[run.cursor:run.cursor + n]:
        step(run, c)
    run.cursor += n


def last_judged(facade):
    return facade.snapshot().signals[-1]


async def test_h_halts_the_engine_and_the_next_signal_is_denied_halted(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    from engine.events import SwitchStrategy

    run.engine.handle(SwitchStrategy("alpha"))
    app = PerpdeckApp(facade, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("h")
        await rt._apply_commands()  # the runtime applies operator commands between candles
        advance(run, 2)
        rec = last_judged(facade)
        assert rec.verdict is Verdict.DENIED and rec.reason.startswith("halted")
        await pilot.press("r")
        await rt._apply_commands()
        advance(run, 1)
        assert last_judged(facade).verdict is Verdict.ACCEPTED


async def test_flatten_key_and_confirm_leave_the_exchange_with_nothing_open(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=True)
    assert run.sim.open_algo_orders({})
    app = PerpdeckApp(facade, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("F")
        await pilot.press("y")
        await rt._apply_commands()
        await pilot.pause()
        assert not [p for p in run.sim.position_risk({}) if Decimal(p["positionAmt"]) != 0]
        assert run.sim.open_orders({}) == [] and run.sim.open_algo_orders({}) == []
        assert facade.snapshot().flatten.state == "flat"


async def test_flatten_key_then_escape_does_nothing(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=True)
    app = PerpdeckApp(facade, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("F")
        await pilot.press("escape")
        await rt._apply_commands()
        assert run.engine.positions and facade.snapshot().state == "ACTIVE"


async def test_s_switches_strategy_and_the_next_decision_comes_from_it(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    app = PerpdeckApp(facade, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        from textual.widgets import OptionList

        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert "beta" in ids
        while options.highlighted != ids.index("beta"):  # arrow keys to "beta", enter to choose
            await pilot.press("down" if options.highlighted < ids.index("beta") else "up")
        await pilot.press("enter")
        await pilot.pause()
        await rt._apply_commands()
        advance(run, 1)
        assert run.engine.active_name == "beta"
        assert last_judged(facade).signal.strategy == "beta"


async def test_q_with_positions_asks_first_and_keeps_running_on_no(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=True)
    app = PerpdeckApp(facade, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app.is_running and "Quit" in type(app.screen).__name__
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and run.engine.positions
