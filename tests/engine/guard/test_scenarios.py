"""Every guard rule as a scenario on the sim exchange: crafted prices, scripted signals, the real
backtest loop. Each test checks what reached the exchange (or did not) and the recorded reason."""

from __future__ import annotations

from decimal import Decimal

from engine.events import Resume, SwitchStrategy
from engine.guard.base import EngineState
from engine.model import Direction, Verdict
from tests.engine.orders.scenario import T0, bar, flat, path, run_scenario

L = Direction.LONG
QUIET = {"funding_blackout_min": 0, "shock_move_pct": 0, "atr_max_pct": 0}
"""Rules that would otherwise fire on crafted series: each test turns on the one it checks."""


def risk(**kw):
    return {**QUIET, **kw}


def judged(run):
    """(candle index, verdict, reason) of every signal, from the journal."""
    return [((r.signal.candle_open_time_ms - T0) // 60_000, r.verdict, r.reason) for r in run.journal_batch.signals]


def denied_with(run, text):
    return [j for j in judged(run) if j[1] is Verdict.DENIED and text in j[2]]


def test_per_symbol_notional_cap_denies_before_anything_is_sent():
    run = run_scenario(flat(30, start=0), {10: L}, risk=risk(max_notional_by_symbol={"BTCUSDT": 1000}))
    assert denied_with(run, "symbol notional cap")
    assert not run.engine.orders.orders  # nothing went to the exchange
    uncapped = run_scenario(flat(30, start=0), {10: L}, risk=risk(max_notional_usdt=5000))
    assert [j for j in judged(uncapped) if j[1] is Verdict.ACCEPTED]  # 3000 USDT fits under 5000


def test_leverage_bracket_caps_the_notional():
    run = run_scenario(flat(20), {10: L}, leverage=125,
                       risk=risk(position_size_pct=100, max_position_pct=100, max_total_exposure_pct=100))
    assert denied_with(run, "bracket maximum at 125x")
    assert not run.engine.orders.orders


def test_max_positions_per_day_counts_filled_entries_and_resets_at_midnight():
    # two signals the same day (the first trade is closed in between by its break-even timeout),
    # then one the next day
    day = 1440
    candles = flat(40) + flat(30, start=day - 10) + flat(20, start=day + 25)
    at = {5: L, 35: L, day + 30: L}
    run = run_scenario(candles, at, risk=risk(max_positions_per_day=1, max_daily_trades=20),
                       exits={"break_even_timeout_s": 600})
    verdicts = {i: (v, r) for i, v, r in judged(run)}
    assert verdicts[5][0] is Verdict.ACCEPTED
    assert verdicts[35][0] is Verdict.DENIED and "daily position limit" in verdicts[35][1]
    assert verdicts[day + 30][0] is Verdict.ACCEPTED


def test_max_trades_per_day():
    run = run_scenario(flat(60), {5: L, 40: L}, risk=risk(max_daily_trades=1),
                       exits={"break_even_timeout_s": 600})
    assert denied_with(run, "daily trade limit")
    assert len([o for o in run.engine.orders.orders.values() if o.req.purpose.value == "entry"]) == 1


def test_daily_loss_halts_until_the_next_utc_day():
    # entry at 1.0 (3000 USDT notional), price falls 5% with the stop widened to 10%: the open loss
    # (150 USDT) passes the 1% limit and halts; the next UTC day trading resumes by itself
    day = 1440
    candles = flat(10) + path(1.0, 0.98, 0.96, 0.95, start=10) + flat(20, level=0.95, start=14) \
        + flat(20, level=0.95, start=day + 5)
    run = run_scenario(candles, {5: L, 30: L, day + 10: L},
                       risk=risk(max_daily_loss_pct=1, stop_loss_pct=10, max_consecutive_losses=0))
    verdicts = {i: (v, r) for i, v, r in judged(run)}
    assert verdicts[30][0] is Verdict.DENIED and "daily loss" in verdicts[30][1]
    assert verdicts[day + 10][0] is Verdict.ACCEPTED
    assert run.engine.state is EngineState.ACTIVE


def losing_trades(n, start=0, gap=40):
    """n long entries, each stopped out 3% lower."""
    candles, at = [], {}
    for k in range(n):
        s = start + k * gap
        candles += flat(5, start=s) + path(1.0, 0.985, 0.96, start=s + 5) + flat(gap - 8, level=1.0, start=s + 8)
        at[s + 2] = L
    return candles, at


def test_consecutive_losses_halt_until_the_operator_resumes():
    candles, at = losing_trades(3)
    run = run_scenario(candles, at, risk=risk(max_consecutive_losses=2, max_daily_loss_pct=50))
    assert len(run.engine.trades.closed) == 2
    assert all(t.net_pnl < 0 for t in run.engine.trades.closed)
    assert run.engine.state is EngineState.HALTED and "consecutive losses" in run.engine.halt_reason
    assert denied_with(run, "halted")
    run.engine.handle(Resume())
    assert run.engine.state is EngineState.ACTIVE and run.engine.monitor.consecutive_losses == 0


def test_strategy_loss_limit_disables_that_strategy_only():
    candles, at = losing_trades(3)
    run = run_scenario(candles, at, risk=risk(strategy_loss_limit_pct=1, max_consecutive_losses=0,
                                              max_daily_loss_pct=50))
    assert denied_with(run, "strategy scripted disabled")
    assert "scripted" in run.engine.monitor.disabled_strategies
    assert run.engine.state is EngineState.ACTIVE  # the engine trades on; only that strategy stopped
    # another strategy is still allowed
    view = run.engine.guard_view()
    assert "ema_trend" not in view.disabled_strategies
    run.engine.handle(SwitchStrategy("ema_trend"))


def test_no_entries_in_the_window_around_funding():
    # 08:00 UTC funding: a signal at 07:57 is denied, one at 08:10 accepted
    eight = 8 * 60
    candles = flat(30, start=eight - 10)
    run = run_scenario(candles, {eight - 3: L, eight + 10: L}, risk=risk(funding_blackout_min=5))
    verdicts = {i: (v, r) for i, v, r in judged(run)}
    assert verdicts[eight - 3][0] is Verdict.DENIED and "funding blackout" in verdicts[eight - 3][1]
    assert verdicts[eight + 10][0] is Verdict.ACCEPTED


def test_high_volatility_scales_the_size_down():
    calm = flat(30, wiggle=0.0002)
    wild = [bar(k, 1.0, 1.004, 0.996, 1.0) for k in range(30)]  # 0.8% ranges: ATR% ≈ 0.8
    r_calm = run_scenario(calm, {20: L}, risk=risk(atr_max_pct=Decimal("0.4"), atr_period=14))
    r_wild = run_scenario(wild, {20: L}, risk=risk(atr_max_pct=Decimal("0.4"), atr_period=14))
    q_calm = r_calm.journal_batch.signals[0].quantity
    q_wild = r_wild.journal_batch.signals[0].quantity
    assert q_calm and q_wild
    ratio = q_wild / q_calm
    assert Decimal("0.45") <= ratio <= Decimal("0.55")  # 0.4 / 0.8 of the size


def test_market_shock_halts_then_lifts_after_the_cool_down():
    candles = flat(10) + [bar(10, 1.0, 1.05, 0.99, 1.02)] + flat(40, level=1.02, start=11)
    run = run_scenario(candles, {12: L, 45: L}, risk=risk(shock_move_pct=3, shock_cooldown_s=1200))
    verdicts = {i: (v, r) for i, v, r in judged(run)}
    assert verdicts[12][0] is Verdict.DENIED and "market shock" in verdicts[12][1]
    assert verdicts[45][0] is Verdict.ACCEPTED  # 20 min later, no new shock: re-evaluated and resumed


def test_min_trade_size():
    run = run_scenario(flat(20), {10: L}, risk=risk(min_trade_size=5000))
    assert denied_with(run, "min_trade_size")
    assert not run.engine.orders.orders


def test_size_is_proportional_to_the_balance():
    small = run_scenario(flat(20), {10: L}, risk=risk(), sim={"starting_balance": 10000})
    big = run_scenario(flat(20), {10: L}, risk=risk(), sim={"starting_balance": 20000})
    q1 = small.journal_batch.signals[0].quantity
    q2 = big.journal_batch.signals[0].quantity
    assert q2 == 2 * q1 > 0
