"""The strategies view (issue 7): per-strategy statistics kept from bus facts, regimes and switches,
ensemble weights, external signals and held confluences — in the facade and on screen."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from engine.events import ExternalSignalIngested, IngestSignal, SignalJudged, SwitchStrategy
from engine.facade import StrategyStatsBook, external_view
from engine.model import Direction, PositionSide, Signal, SignalRecord, Trade, Verdict
from tests.tui.snapshot_apps.perpdeck_app import make_app
from tests.tui.support import wait_until
from tests.tui.test_engine_keys import FIXED_WALL_MS, advance, make_runtime
from tui.app import PerpdeckApp
from tui.fake import FakeFacade, seeded_snapshot, with_ensemble, with_regimes
from tui.screens.main import MainScreen
from tui.screens.strategies import StrategiesScreen
from tui.widgets.strategies import (
    ConfluencesTable,
    ExternalSignalsTable,
    RegimesTable,
    StrategyStatsTable,
    SwitchesTable,
    WeightsTable,
    clip,
    weight_bar,
)

NAMES = ("alpha", "beta", "gamma")


def judged(name: str, accepted: bool, t: int = 0) -> SignalRecord:
    sig = Signal(name, "BTCUSDT", Direction.LONG, 0.5, "r", t, Decimal(100), t)
    return SignalRecord(sig, Verdict.ACCEPTED if accepted else Verdict.DENIED, "" if accepted else "no", None, t)


def closed(name: str, gross: Decimal, fees: Decimal, i: int = 0) -> Trade:
    return Trade(f"t{i}", None, name, "BTCUSDT", Direction.LONG, PositionSide.BOTH, 0, Decimal(100), Decimal(1),
                 1, Decimal(101), "r", None, fees, Decimal(0), gross, Decimal(0), Decimal(0))


money = st.decimals(min_value=-500, max_value=500, places=2, allow_nan=False, allow_infinity=False)
event = st.one_of(
    st.tuples(st.just("signal"), st.sampled_from(NAMES), st.booleans()),
    st.tuples(st.just("trade"), st.sampled_from(NAMES), st.tuples(money, money.map(abs))),
)


@given(st.lists(event, max_size=60))
def test_stats_book_matches_a_recount_of_the_facts(events):
    book = StrategyStatsBook()
    for i, (kind, name, arg) in enumerate(events):
        if kind == "signal":
            book.on_signal(judged(name, arg))
        else:
            book.on_trade_closed(closed(name, arg[0], arg[1], i))
    view = {s.name: s for s in book.view()}
    assert list(view) == sorted(view)
    for name in NAMES:
        sigs = [a for k, n, a in events if k == "signal" and n == name]
        trades = [a[0] - a[1] for k, n, a in events if k == "trade" and n == name]
        if not sigs and not trades:
            assert name not in view
            continue
        s = view[name]
        assert (s.accepted, s.denied) == (sigs.count(True), sigs.count(False))
        assert (s.trades, s.wins, s.net_pnl) == (len(trades), sum(1 for p in trades if p > 0), sum(trades, Decimal(0)))
        assert s.win_rate == (s.wins / s.trades if s.trades else None)


def test_stats_view_is_cached_until_a_fact_arrives():
    book = StrategyStatsBook()
    book.on_signal(judged("alpha", True))
    first = book.view()
    assert book.view() is first
    book.on_signal(judged("alpha", False))
    assert book.view() is not first and book.view()[0].denied == 1


# -- over the real engine ---------------------------------------------------------------------------


def test_runtime_facade_counts_what_the_engine_judged_and_closed(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    judged_records: list[SignalRecord] = []
    run.engine.bus.subscribe(SignalJudged, lambda f: judged_records.append(f.record))
    run.engine.handle(SwitchStrategy("regime_switch"))
    advance(run, 1200)
    stats = {s.name: s for s in facade.snapshot().strategy_stats}
    verdicts = Counter((r.signal.strategy, r.verdict) for r in judged_records)
    trades = run.engine.trades.closed
    assert judged_records and trades  # the run produced both, or the test proves nothing
    for name in {r.signal.strategy for r in judged_records} | {t.strategy for t in trades}:
        mine = [t for t in trades if t.strategy == name]
        s = stats[name]
        assert (s.accepted, s.denied) == (verdicts[(name, Verdict.ACCEPTED)], verdicts[(name, Verdict.DENIED)])
        assert (s.trades, s.wins) == (len(mine), sum(1 for t in mine if t.net_pnl > 0))
        assert s.net_pnl == sum((t.net_pnl for t in mine), Decimal(0))


def test_regime_switch_active_shows_regimes_and_switches(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    assert facade.snapshot().regimes is None  # the active strategy has no regimes
    run.engine.handle(SwitchStrategy("regime_switch"))
    advance(run, 1200)
    snap = facade.snapshot()
    rs = run.engine.strategies["regime_switch"].inner
    assert [(r.symbol, r.regime, r.strategy) for r in snap.regimes] == [
        (sym, regime.value, rs.active_by_symbol().get(sym)) for sym, regime in rs.regimes().items()]
    recent = rs.recent_switches()
    assert recent, "no switch in 600 candles per symbol: the test data changed"
    assert [(s.symbol, s.time_ms, s.regime, s.to_strategy) for s in snap.regime_switches] == [
        (s.symbol, s.time_ms, s.regime.value, s.to_strategy) for s in recent[-20:]]
    assert snap.ensemble_weights is None
    assert facade.snapshot().regime_switches is snap.regime_switches  # no new switch: not rebuilt


def test_ensemble_active_shows_member_weights(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    run.engine.handle(SwitchStrategy("ensemble"))
    advance(run, 600)
    snap = facade.snapshot()
    ens = run.engine.strategies["ensemble"].inner
    assert [(w.name, w.weight) for w in snap.ensemble_weights] == list(ens.weights().items())
    assert abs(sum(w.weight for w in snap.ensemble_weights) - 1.0) < 1e-9
    assert snap.regimes is None


def test_external_signals_and_the_confluence_they_form(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    eng = run.engine
    eng.handle(IngestSignal(113, "m-1", "BTC", source="cli"))
    eng.handle(IngestSignal(110, "m-2", "BTCUSDT", source="simulate"))
    eng.handle(IngestSignal(110, "m-2", "BTCUSDT", source="simulate"))
    eng.handle(IngestSignal(113, "m-3", "USDT", source="http"))
    snap = facade.snapshot()
    got = [(v.message_type, v.message_id, v.symbol, v.status, v.source) for v in snap.external_signals]
    assert got == [("113", "m-1", "BTCUSDT", "pending", "cli"), ("110", "m-2", "BTCUSDT", "confluence", "simulate"),
                   ("110", "m-2", "BTCUSDT", "duplicate", "simulate"), ("113", "m-3", "USDT", "rejected", "http")]
    assert snap.external_signals[1].score is not None and snap.external_signals[1].score >= 0.6
    assert "symbol" in snap.external_signals[3].detail
    held = eng.strategies["confluence"].inner.held()
    assert [(c.strategy, c.symbol, c.score) for c in snap.confluences] == [
        ("confluence", c.symbol, c.score) for c in held]
    assert snap.confluences[0].fomo.endswith("m-1") and snap.confluences[0].alpha == "m-2"


def test_an_external_signal_no_strategy_takes_is_shown_as_unused():
    v = external_view(ExternalSignalIngested(110, "x", "BTC", 5, None, "", "python"))
    assert (v.status, v.symbol, v.message_type) == ("unused", "BTC", "110")


# -- on screen ----------------------------------------------------------------------------------------


async def test_2_opens_the_strategies_view_and_2_again_goes_back():
    snap = with_regimes(seeded_snapshot())
    app = make_app(FakeFacade(snap))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        assert isinstance(app.screen, StrategiesScreen)
        screen = app.screen
        stats = screen.query_one(StrategyStatsTable)
        await wait_until(pilot, lambda: stats.row_count > 0)
        assert set(stats.row_keys) == {s.name for s in snap.strategy_stats} | {"regime_switch"}
        assert stats.cell("regime_switch", "state").text == "● active"
        assert stats.cell("rl_policy", "state").text == "disabled"
        assert stats.cell("ema_trend", "win_rate").text == "75%"
        assert screen.query_one(RegimesTable).row_count == len(snap.regimes)
        assert screen.query_one(SwitchesTable).row_count == len(snap.regime_switches)
        assert screen.query_one(ExternalSignalsTable).row_count == len(snap.external_signals)
        assert screen.query_one(ConfluencesTable).row_count == len(snap.confluences)
        assert not screen.query_one("#weights-pane").display
        await pilot.press("2")
        assert isinstance(app.screen, MainScreen)


async def test_1_and_escape_go_back_and_3_swaps_views():
    app = make_app(FakeFacade(with_ensemble(seeded_snapshot())))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        weights = app.screen.query_one(WeightsTable)
        await wait_until(pilot, lambda: weights.row_count == 4)
        assert not app.screen.query_one("#regime-row").display
        await pilot.press("1")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("2", "3")
        assert type(app.screen).__name__ == "TrainingScreen" and len(app.screen_stack) == 2
        await pilot.press("2", "escape")
        assert isinstance(app.screen, MainScreen) and len(app.screen_stack) == 1


async def test_view_keys_do_nothing_while_a_dialog_is_open():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("F", "2")
        assert type(app.screen).__name__ == "ConfirmFlattenScreen"


async def test_strategies_view_over_the_real_engine_follows_ingested_signals(tmp_path):
    run, rt, facade = make_runtime(tmp_path, with_positions=False)
    app = PerpdeckApp(facade, refresh_s=0.1, clock_ms=lambda: FIXED_WALL_MS)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        external = app.screen.query_one(ExternalSignalsTable)
        confluences = app.screen.query_one(ConfluencesTable)
        rt.submit(IngestSignal(113, "a", "ETH"))
        rt.submit(IngestSignal(110, "b", "ETH"))
        await rt._apply_commands()
        await wait_until(pilot, lambda: external.row_count == 2 and confluences.row_count == 1)
        assert confluences.row_keys == ("confluence:ETHUSDT",)


def test_cells_never_overflow_their_budget():
    assert clip("abcdef", 4) == "abc…" and clip("abc", 4) == "abc"
    assert weight_bar(0.0) == " " * 10 and weight_bar(1.0) == "█" * 10 and len(weight_bar(0.37)) == 10
