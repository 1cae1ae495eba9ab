"""The sans-I/O engine step on its own: closed-candle gate, duplicate events, commands, hygiene."""

import json
import logging
import subprocess
import sys
from decimal import Decimal

import pytest

from engine.backtest import build_sim_run, step
from engine.config import Settings
from engine.events import FlattenAll, Halt, Resume, SwitchStrategy
from engine.exchange.binance.parse import parse_user_event
from engine.guard.base import EngineState
from engine.logs import setup_logging
from engine.model import Candle, Direction, Signal
from engine.orders.status import IllegalTransition
from engine.state.journal import Journal


class Recorder:
    name = "recorder"

    def __init__(self):
        self.seen = []
        self.emit_on = set()

    def on_candle(self, c):
        self.seen.append(c)
        if c.open_time_ms in self.emit_on:
            return Signal(self.name, c.symbol, Direction.LONG, 1.0, "test", c.open_time_ms, c.close, c.close_time_ms)
        return None


def candle(i, close="100000", closed=True, symbol="BTCUSDT"):
    p = Decimal(close)
    return Candle(symbol, i * 60_000, i * 60_000 + 59_999, p, p + 10, p - 10, p, Decimal(1), closed)


@pytest.fixture
def run():
    r = build_sim_run(Settings(symbols=["BTCUSDT"], risk={"funding_blackout_min": 0}), run_id="core", journal=Journal("core"), strict=True)
    rec = Recorder()
    r.engine.strategies["recorder"] = type(r.engine.strategies["ema_trend"])(rec)
    r.engine.handle(SwitchStrategy("recorder"))
    step(r, candle(0))  # applies the switch
    r.recorder = rec
    return r


def test_only_closed_candles_reach_the_strategy(run):
    n = len(run.recorder.seen)
    step(run, candle(1, closed=False))
    assert len(run.recorder.seen) == n
    step(run, candle(2))
    assert run.recorder.seen[-1].open_time_ms == 2 * 60_000


def test_accepted_signal_opens_a_protected_position(run):
    run.recorder.emit_on.add(60_000)
    step(run, candle(1))
    eng = run.engine
    assert len(eng.positions) == 1
    assert eng.orders.is_protected(next(iter(eng.positions)))
    assert eng.stats.accepted == 1


def test_halt_denies_with_reason_halted_and_resume_allows(run):
    run.engine.handle(Halt("test"))
    run.recorder.emit_on.add(60_000)
    step(run, candle(1))
    rec = run.journal.take().signals[-1]
    assert rec.verdict.value == "denied" and rec.reason.startswith("halted")
    run.engine.handle(Resume())
    assert run.engine.state is EngineState.ACTIVE
    run.recorder.emit_on.add(120_000)
    step(run, candle(2))
    assert run.engine.positions


def test_flatten_closes_everything_and_halts(run):
    run.recorder.emit_on.add(60_000)
    step(run, candle(1))
    run.engine.handle(FlattenAll("test"))
    from engine.core import pump

    pump(run.engine, run.port)
    assert run.engine.state is EngineState.HALTED
    assert not [p for p in run.sim.position_risk({}) if Decimal(p["positionAmt"]) != 0]
    assert run.sim.open_algo_orders({}) == [] and run.sim.open_orders({}) == []


def test_a_duplicated_fill_event_is_counted_once(run):
    run.recorder.emit_on.add(60_000)
    step(run, candle(1))
    fill_event = next(e for e in run.sim.all_fills())
    trade = run.engine.trades.open[next(iter(run.engine.trades.open))]
    before = (trade.entry_qty, trade.fees, run.engine.stats.fills)
    raw = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {
        "s": "BTCUSDT", "c": "dup", "S": "BUY", "o": "MARKET", "ot": "MARKET", "x": "TRADE", "X": "FILLED",
        "i": fill_event["orderId"], "q": fill_event["qty"], "z": fill_event["qty"], "l": fill_event["qty"],
        "L": fill_event["price"], "ap": fill_event["price"], "n": fill_event["commission"], "N": "USDT",
        "t": fill_event["id"], "rp": "0", "ps": "BOTH", "T": 1}}
    run.engine.on_exchange_event(parse_user_event(raw))
    assert (trade.entry_qty, trade.fees, run.engine.stats.fills) == before
    assert run.engine.stats.duplicate_fills == 1


def test_strict_mode_raises_on_an_illegal_transition(run):
    run.recorder.emit_on.add(60_000)
    step(run, candle(1))
    entry = next(o for o in run.engine.orders.orders.values() if o.req.purpose.value == "entry")
    raw = {"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 1, "o": {
        "s": "BTCUSDT", "c": entry.req.client_order_id, "S": "BUY", "o": "MARKET", "x": "CANCELED",
        "X": "CANCELED", "i": entry.exchange_order_id, "q": "1", "z": "1", "l": "0", "L": "0", "ap": "0",
        "ps": "BOTH", "T": 1}}
    with pytest.raises(IllegalTransition):
        run.engine.on_exchange_event(parse_user_event(raw))  # FILLED -> CANCELED


def test_strategy_switch_applies_on_the_next_closed_candle(run):
    run.engine.handle(SwitchStrategy("ema_trend"))
    assert run.engine.active_name == "recorder"
    n = len(run.recorder.seen)
    step(run, candle(5))
    assert run.engine.active_name == "ema_trend" and len(run.recorder.seen) == n


def test_a_crashing_strategy_is_logged_not_fatal(run, caplog):
    def boom(c):
        raise RuntimeError("bug")

    run.engine._strategy_fn = boom
    step(run, candle(7))
    assert run.engine.stats.strategy_errors == 1 and "bug" in caplog.text


def test_engine_never_imports_textual_or_torch():
    code = ("import sys, engine.cli, engine.backtest, engine.runtime, engine.core, engine.state.store; "
            "bad = [m for m in ('textual', 'torch', 'stable_baselines3') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_secrets_never_reach_the_log(tmp_path):
    secret = "s3cr3t-KEY-value-xyz"
    log_file = tmp_path / "l.jsonl"
    setup_logging("INFO", log_file, [secret], console=False)
    logging.getLogger("t").error("request failed for key %s", secret)
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logging.getLogger("t").exception("boom")
    text = log_file.read_text()
    assert secret not in text and text.count("***") >= 2
    assert json.loads(text.splitlines()[0])["msg"] == "request failed for key ***"
    logging.getLogger().handlers.clear()
