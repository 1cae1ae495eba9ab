"""The whole pipeline on the bundled real data, checked against the sim exchange and the database.

These run exactly what ``perpdeck --no-ui`` runs (``run_sim_session``) and then compare the
journal in SQLite with the exchange's own books.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from engine.backtest import build_sim_run
from engine.config import Settings
from engine.model import ExitReason, OrderPurpose, PositionSide
from engine.runtime import RunPaths, run_sim_session
from engine.state.journal import Journal
from engine.state.store import Store


def _session(tmp: Path, run_id: str, watch: bool = False, **settings_kw):
    """Exactly what ``perpdeck --no-ui`` runs; optionally with the stop watcher on the sim."""
    settings = Settings(state_dir=tmp, **settings_kw)
    run = build_sim_run(settings, run_id=run_id, journal=Journal(run_id), strict=True)
    run.watch = _watch_protection(run, hedge=settings.position_mode == "HEDGE") if watch else None
    paths = RunPaths.for_run(tmp, settings.db_path, run_id)
    summary = asyncio.run(run_sim_session(settings, run, paths, install_signal_handlers=False))
    return settings, run, summary


async def _db(path: Path, run_id: str):
    store = await Store.open(path)
    try:
        return {
            "fills": await store.fills(run_id),
            "trades": await store.trades(run_id),
            "signals": await store.signals(run_id),
            "orders": await store.orders(run_id),
            "algo_orders": await store.algo_orders(run_id),
            "positions": await store.positions(run_id),
            "funding": await store.funding(run_id),
            "runs": await store.runs(),
        }
    finally:
        await store.close()


@pytest.fixture(scope="module")
def oneway(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oneway")
    settings, run, summary = _session(tmp, "oneway", watch=True)
    return settings, run, summary, asyncio.run(_db(settings.db_path, "oneway"))


def test_on_that_run_a_stop_rested_on_the_exchange_whenever_a_position_was_open(oneway):
    _, run, summary, _ = oneway
    assert run.watch["checks"] > 1000
    assert run.watch["violations"] == []
    assert summary["unprotected_checks"] == 0 and summary["protection_failures"] == 0


def test_the_bundled_run_trades(oneway):
    _, run, summary, db = oneway
    assert summary["candles"] == len(run.candles) >= 3 * 7 * 1440
    assert summary["trades"] >= 5
    assert summary["signals"] > summary["trades"]
    reasons = {t.exit_reason for t in db["trades"]}
    # exits by resting exchange-side orders happened: a stop (initial or moved) and a take-profit
    assert reasons & {ExitReason.STOP_LOSS, ExitReason.BREAK_EVEN_STOP, ExitReason.TRAILING}
    assert reasons & {ExitReason.TAKE_PROFIT_1, ExitReason.TAKE_PROFIT_2}


def test_each_fill_is_stored_exactly_once(oneway):
    _, run, _, db = oneway
    exchange = [(f["symbol"], int(f["id"])) for f in run.sim.all_fills()]
    stored = [(f.symbol, f.trade_id) for f in db["fills"]]
    assert len(stored) == len(set(stored)) == len(exchange) > 0
    assert set(stored) == set(exchange)
    by_id = {(f["symbol"], int(f["id"])): f for f in run.sim.all_fills()}
    for f in db["fills"]:
        x = by_id[(f.symbol, f.trade_id)]
        assert (f.price, f.quantity, f.commission, f.realized_pnl) == (
            Decimal(x["price"]), Decimal(x["qty"]), Decimal(x["commission"]), Decimal(x["realizedPnl"]))


def test_trade_pnl_in_the_database_equals_the_balance_change(oneway):
    _, run, summary, db = oneway
    start = Decimal(summary["starting_balance"])
    change = run.sim.wallet_balance() - start
    assert all(not t.is_open for t in db["trades"])  # end of data closed everything
    assert sum((t.net_pnl for t in db["trades"]), Decimal(0)) == change  # exact, fees and funding included
    assert sum((t.fees for t in db["trades"]), Decimal(0)) == sum(
        (Decimal(f["commission"]) for f in run.sim.all_fills()), Decimal(0))
    sim_funding = sum((Decimal(f["amount"]) for f in run.sim.funding_history()), Decimal(0))
    assert sum((t.funding for t in db["trades"]), Decimal(0)) == sim_funding != 0
    assert sum((Decimal(f["amount"]) for f in db["funding"]), Decimal(0)) == sim_funding


def test_never_more_than_one_position_per_symbol(oneway):
    _, _, _, db = oneway
    by_symbol: dict[str, list] = {}
    for t in db["trades"]:
        by_symbol.setdefault(t.symbol, []).append(t)
    for trades in by_symbol.values():
        trades.sort(key=lambda t: t.entry_time_ms)
        for a, b in zip(trades, trades[1:]):
            assert a.exit_time_ms <= b.entry_time_ms  # no overlap: one position at a time
    assert all(p.amount == 0 for p in db["positions"])


def test_every_signal_is_stored_with_its_verdict(oneway):
    _, run, summary, db = oneway
    assert len(db["signals"]) == summary["signals"] == run.engine.stats.signals
    accepted = [s for s in db["signals"] if s.verdict.value == "accepted"]
    denied = [s for s in db["signals"] if s.verdict.value == "denied"]
    assert len(accepted) == summary["accepted"]
    assert all(s.reason for s in denied)
    assert sum(summary["denials"].values()) == len(denied)


def test_every_entry_got_an_exchange_side_stop_and_take_profit(oneway):
    _, _, _, db = oneway
    entries = [o for o in db["orders"] if o.purpose is OrderPurpose.ENTRY and o.filled_qty > 0]
    algos = db["algo_orders"]
    assert entries
    for e in entries:
        mine = [a for a in algos if a.signal_id == e.signal_id]
        stops = [a for a in mine if a.purpose is OrderPurpose.STOP_LOSS]
        assert stops and stops[0].close_position and stops[0].algo_id is not None
        assert stops[0].type.value == "STOP_MARKET"
        assert any(a.purpose is OrderPurpose.TAKE_PROFIT for a in mine)
    assert not [a for a in algos if a.status.is_open]  # nothing left resting after the run


def test_same_input_gives_the_same_summary(oneway, tmp_path):
    _, _, first, _ = oneway
    _, _, second = _session(tmp_path, "again")
    volatile = {"run_id", "database", "log_file", "heartbeat"}
    assert {k: v for k, v in first.items() if k not in volatile} == {
        k: v for k, v in second.items() if k not in volatile}


def _watch_protection(run, hedge: bool):
    """Wrap the sim's candle intake: whenever the price is about to move, every open position must
    already have a resting STOP_MARKET closePosition on the exchange, and there is at most one
    position per symbol (per side in hedge mode)."""
    sim = run.sim
    real = sim.on_candle
    seen = {"checks": 0, "violations": []}
    last: dict[str, Decimal] = {}

    def on_candle(c):
        rows = [p for p in sim.position_risk({}) if Decimal(p["positionAmt"]) != 0]
        if rows:
            stops = [a for a in sim.open_algo_orders({}) if a["orderType"] == "STOP_MARKET" and a["closePosition"]]
            keys = [(p["symbol"], p["positionSide"]) for p in rows]
            if len(keys) != len(set(keys)) or (not hedge and len({k[0] for k in keys}) != len(keys)):
                seen["violations"].append(("two positions", c.open_time_ms, keys))
            for p in rows:
                long_ = Decimal(p["positionAmt"]) > 0
                exit_side = "SELL" if long_ else "BUY"
                ok = [a for a in stops if a["symbol"] == p["symbol"] and a["positionSide"] == p["positionSide"]
                      and a["side"] == exit_side]
                seen["checks"] += 1
                if not ok:
                    seen["violations"].append(("no stop", c.open_time_ms, p["symbol"]))
                elif p["symbol"] in last and long_ != (Decimal(ok[0]["triggerPrice"]) < last[p["symbol"]]):
                    # a stop may move (break-even, trailing) but always stays on the losing side of price
                    seen["violations"].append(("stop on the wrong side", c.open_time_ms, p["symbol"]))
        real(c)
        last[c.symbol] = c.close

    sim.on_candle = on_candle
    return seen


def test_hedge_mode_keeps_one_position_per_side_and_each_has_a_stop(tmp_path):
    settings, run, summary = _session(tmp_path, "hedge", watch=True, position_mode="HEDGE")
    assert run.watch["checks"] > 1000 and run.watch["violations"] == []
    assert summary["trades"] > 5
    sides = {t.position_side for t in run.engine.trades.closed}
    assert sides and sides <= {PositionSide.LONG, PositionSide.SHORT}
    assert sum((t.net_pnl for t in run.engine.trades.closed), Decimal(0)) == (
        run.sim.wallet_balance() - Decimal(summary["starting_balance"]))
