"""Emergency flatten: halt, cancel everything, close everything, and verify on the exchange."""

import asyncio
from decimal import Decimal

from engine.backtest import build_sim_run, run_sync
from engine.config import Settings
from engine.data import KlineFile, load_klines, sample_kline_files
from engine.events import FlattenAll, TradeOpened
from engine.guard.base import EngineState
from engine.live import run_sim_over_wire
from engine.model import ExitReason
from engine.runtime import RunPaths, SimRuntime
from engine.state.journal import Journal


def files(days=2, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")):
    out = [load_klines(p) for p in sample_kline_files(list(symbols))]
    return [KlineFile(f.symbol, f.path, f.candles[: days * 1440]) for f in out]


def open_run(tmp_path):
    """A sim run stopped mid-data with positions open and their stops resting."""
    run = build_sim_run(Settings(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"]), run_id="fl", files=files(),
                        funding={}, journal=Journal("fl"))
    candles = run.candles
    for i in range(0, len(candles), 30):
        run_sync(run, candles[i:i + 30], close_at_end=False)
        if len(run.engine.positions) == 2:
            break
    assert run.sim.open_algo_orders({}), "the scenario needs resting stops"
    return run, SimRuntime(run, None, RunPaths.for_run(tmp_path, tmp_path / "x.db", "fl"))


def exchange_is_flat(sim):
    return (not [p for p in sim.position_risk({}) if Decimal(p["positionAmt"]) != 0]
            and not sim.open_orders({}) and not sim.open_algo_orders({}))


def test_flatten_closes_everything_including_a_position_opened_outside_perpdeck(tmp_path):
    run, rt = open_run(tmp_path)
    # a position and a resting order the engine knows nothing about (opened by hand on the exchange)
    held = {sym for sym, _ in run.engine.positions}
    free = next(s for s in ("SOLUSDT", "ETHUSDT", "BTCUSDT") if s not in held)
    qty = {"SOLUSDT": "1", "ETHUSDT": "0.1", "BTCUSDT": "0.01"}[free]
    run.sim.new_order({"symbol": free, "side": "BUY", "type": "MARKET", "quantity": qty,
                       "newClientOrderId": "manual-1"})
    run.sim.drain_events()
    report = asyncio.run(rt.flatten("test"))
    assert report.state == "flat" and report.attempts >= 1
    assert exchange_is_flat(run.sim)
    assert run.engine.state is EngineState.HALTED
    assert {t.exit_reason for t in run.engine.trades.closed[-2:]} <= {ExitReason.FLATTEN, ExitReason.MANUAL}


def test_flatten_reports_what_is_still_open_when_the_exchange_refuses(tmp_path):
    run, rt = open_run(tmp_path)
    real = run.port.place_order

    def refuse(req):
        from engine.exchange.errors import ExchangeError

        raise ExchangeError(-1001, "Internal error; unable to process your request. Please try again.", 503)

    run.port.place_order = refuse
    rt.flatten_attempts = 3
    report = asyncio.run(rt.flatten("test"))
    assert report.state == "failed" and report.attempts == 3
    assert report.open_positions and all(("LONG" in s or "SHORT" in s) for s in report.open_positions)
    run.port.place_order = real


def test_flatten_over_the_wire_from_an_operator_command(tmp_path):
    settings = Settings(state_dir=tmp_path, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    seen = {}

    def on_runtime(rt):
        seen["rt"] = rt

        def first_trade(_fact):
            if "asked" not in seen:
                seen["asked"] = True
                rt.submit(FlattenAll("test"))

        rt.run_.engine.bus.subscribe(TradeOpened, first_trade)

    summary, run = asyncio.run(run_sim_over_wire(settings, run_id="fw", paths=RunPaths.for_run(tmp_path, settings.db_path, "fw"),
                                                 journal=Journal("fw"), files=files(days=1), funding={},
                                                 install_signal_handlers=False, on_runtime=on_runtime))
    rt = seen["rt"]
    assert rt.flatten_report is not None and rt.flatten_report.state == "flat"
    assert run.engine.state is EngineState.HALTED
    assert run.engine.trades.closed and run.engine.trades.closed[0].exit_reason is ExitReason.FLATTEN
    assert summary["trades"] == 1  # halted: no new entries after the flatten


def test_the_facade_shows_the_exchanges_liquidation_price(tmp_path):
    from engine.facade import RuntimeFacade

    run, rt = open_run(tmp_path)
    snap = RuntimeFacade(rt).snapshot()
    risk = {r["symbol"]: Decimal(r["liquidationPrice"]) for r in run.sim.position_risk({})
            if Decimal(r["positionAmt"]) != 0}
    assert snap.positions
    for pv in snap.positions:
        tick = run.engine.rules[pv.symbol].price_filter.tick_size
        assert pv.liquidation_price is not None
        assert abs(pv.liquidation_price - risk[pv.symbol]) <= tick  # same formula as the matching engine
