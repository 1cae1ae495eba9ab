"""Break-even timers, partial take-profit, moved stops and the guard line: cells and live panes."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from engine.facade import BREAK_EVEN, TRAILING, StatusView, TimerView
from tests.tui.support import wait_until
from tests.tui.snapshot_apps.perpdeck_app import make_app
from tui.fake import MINUTE_MS, NOW_MS, FakeFacade, position, seeded_snapshot
from tui.widgets.header import disabled_text, guard_text, limit_text, losses_text
from tui.widgets.positions import PositionsTable, stop_cell, take_profit_cell, timer_cell
from tui.widgets.timers import TimersTable, left_cell

D = Decimal


def long(**kw):
    return position("BTCUSDT", "LONG", "0.010", "100000", "101000", **kw)


# -- positions pane cells ------------------------------------------------------------------------


def test_take_profit_shows_both_levels_then_the_rest_after_tp1():
    before = long(tp1="105000", tp1_qty="0.005", take_profit="110000")
    after = replace(before, tp1_done=True)
    assert take_profit_cell(before).text == "105,000.00 → 110,000.00"
    assert take_profit_cell(after).text == "✓ → 110,000.00"
    assert take_profit_cell(before, compact=True).text == "105,000.00 →"
    assert take_profit_cell(after, compact=True).text == "✓ 110,000.00"


def test_take_profit_with_one_level_or_none():
    assert take_profit_cell(long(take_profit="110000")).text == "110,000.00"
    assert take_profit_cell(long(tp1="105000")).text == "105,000.00"  # TP2 merged into TP1
    assert take_profit_cell(long(tp1="105000", tp1_done=True)).text == "✓ 105,000.00"
    none = take_profit_cell(long())
    assert (none.text, none.tone) == ("—", "muted")


def test_stop_is_tagged_once_moved_and_warns_when_missing():
    assert (stop_cell(long(stop="97000")).text, stop_cell(long(stop="97000")).tone) == ("97,000.00", None)
    be = stop_cell(long(stop="100100", stop_kind=BREAK_EVEN))
    assert (be.text, be.tone) == ("b/e 100,100.00", "accepted")
    assert stop_cell(long(stop="100500", stop_kind=TRAILING)).text == "trail 100,500.00"
    assert stop_cell(long()).tone == "warn"


def timer(deadline_ms=None, reached=False, closing=False) -> TimerView:
    return TimerView("BTCUSDT", "LONG", deadline_ms, reached, D("100150"), D("100100"), closing)


def test_break_even_cell_of_the_compact_layout():
    now = NOW_MS
    assert timer_cell(None, now).text == "—"
    assert timer_cell(timer(now + 12 * MINUTE_MS + 30_000), now).text == "12:30"
    assert (timer_cell(timer(now - 1), now).text, timer_cell(timer(now - 1), now).tone) == ("0:00", "warn")
    assert timer_cell(timer(reached=True), now).text == "✓ b/e"
    assert timer_cell(timer(closing=True), now).text == "closing"
    assert timer_cell(timer(), now).text == "no limit"


def test_timers_pane_left_column():
    now = NOW_MS
    assert left_cell(timer(now + 53 * MINUTE_MS + 4_000), now).text == "53:04"
    assert left_cell(timer(now + 2 * 3_600_000), now).text == "2:00:00"
    assert (left_cell(timer(reached=True), now).text, left_cell(timer(reached=True), now).tone) == \
        ("✓ reached", "accepted")
    assert left_cell(timer(closing=True), now).tone == "warn"
    assert left_cell(timer(now), now).text == "0:00"
    assert left_cell(timer(), now).text == "no limit"


# -- header: the guard line ----------------------------------------------------------------------


def test_guard_line_texts():
    assert limit_text(3, 10) == ("3/10", None)
    assert limit_text(10, 10) == ("10/10", "-warn")
    assert limit_text(2, None) == ("2", None)
    assert limit_text(None, 10) == ("—", None)
    assert losses_text(StatusView(consecutive_losses=1, max_consecutive_losses=4)) == ("1/4", None)
    assert losses_text(StatusView(consecutive_losses=3, max_consecutive_losses=4)) == ("3/4", "-warn")
    assert losses_text(StatusView(consecutive_losses=4, max_consecutive_losses=4)) == ("4/4", "-bad")
    assert losses_text(StatusView(consecutive_losses=2, max_consecutive_losses=0)) == ("2", None)  # off
    assert guard_text(StatusView(), compact=False) == ("ok", "-ok")
    assert guard_text(StatusView(halted_by="consecutive_losses"), compact=True) == ("halt: losing streak", "-bad")
    assert guard_text(StatusView(shock_until_ms=NOW_MS), compact=True) == ("shock → 12:34", "-warn")
    assert disabled_text(StatusView(), compact=False) == ("none", None)
    assert disabled_text(StatusView(disabled_strategies=("a", "b")), compact=True) == ("2 strategies", "-bad")
    assert disabled_text(StatusView(disabled_strategies=("a", "b")), compact=False) == ("a, b", "-bad")


# -- live panes ----------------------------------------------------------------------------------


async def test_timers_count_down_on_the_exchange_clock_and_show_break_even_reached():
    fake = FakeFacade()
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        timers = app.main_screen.query_one(TimersTable)
        await wait_until(pilot, lambda: timers.row_count == 3)
        assert timers.cell("ETHUSDT:SHORT", "left").text == "12:30"
        assert timers.cell("BTCUSDT:LONG", "left").text == "✓ reached"
        fake.advance(90_000)
        await wait_until(pilot, lambda: timers.cell("ETHUSDT:SHORT", "left").text == "11:00")
        assert timers.cell("SOLUSDT:LONG", "left").text == "51:34"


async def test_compact_positions_show_the_next_take_profit_and_the_break_even_column():
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.main_screen.query_one(PositionsTable)
        await wait_until(pilot, lambda: table.row_count == 3)
        assert table.cell("BTCUSDT:LONG", "tp_next").text == "✓ 99,500.00"
        assert table.cell("BTCUSDT:LONG", "stop").text == "b/e 97,347.40"
        assert table.cell("BTCUSDT:LONG", "be").text == "✓ b/e"
        assert table.cell("ETHUSDT:SHORT", "tp_next").text == "3,260.00 →"
        assert table.cell("ETHUSDT:SHORT", "be").text == "12:30"


def test_seeded_snapshot_has_the_trade_management_cases():
    snap = seeded_snapshot()
    btc, eth, _sol = snap.positions
    assert btc.tp1_done and btc.stop_kind == BREAK_EVEN
    assert eth.tp1_price is not None and not eth.tp1_done
    assert [t.break_even_reached for t in snap.timers] == [True, False, False]
    assert snap.timers[0].deadline_ms is None
    assert snap.status.disabled_strategies == ("rl_policy",) and snap.status.consecutive_losses == 1


def test_exchange_trailing_stop_says_armed_or_trailing():
    armed = long(stop="99000", trailing_activated=False)
    active = long(stop="100500", trailing_activated=True)
    assert (stop_cell(armed).text, stop_cell(armed).tone) == ("trail armed 99,000.00", None)
    assert (stop_cell(active).text, stop_cell(active).tone) == ("trailing 100,500.00", "accepted")
    assert stop_cell(armed, compact=True).text == "armed 99,000.00"
    assert stop_cell(active, compact=True).text == "trail 100,500.00"
    # Not an exchange trailing stop: as before.
    assert stop_cell(long(stop="99000", trailing_activated=None)).text == "99,000.00"


async def test_positions_pane_shows_the_trailing_state_in_both_layouts():
    from tui.fake import trailing_positions

    snap = replace(seeded_snapshot(), positions=trailing_positions())
    for size, btc, eth in (((120, 40), "trailing 97,519.60", "trail armed 3,390.00"),
                           ((80, 24), "trail 97,519.60", "armed 3,390.00")):
        app = make_app(FakeFacade(snap))
        async with app.run_test(size=size) as pilot:
            table = app.main_screen.query_one(PositionsTable)
            await wait_until(pilot, lambda: table.row_count == 3)
            assert table.cell("BTCUSDT:LONG", "stop").text == btc
            assert table.cell("ETHUSDT:SHORT", "stop").text == eth


def test_runtime_facade_reads_the_trailing_state_of_each_bracket(tmp_path):
    from tests.tui.test_engine_keys import make_runtime

    run, rt, facade = make_runtime(tmp_path, with_positions=True)
    (key, br), *_ = run.engine.orders.brackets.items()
    view = lambda: next(p for p in facade.snapshot().positions if (p.symbol, p.side) == (key[0], "LONG"))  # noqa: E731
    assert br.trail_client_id is None and view().trailing_activated is None  # no exchange trailing stop
    br.trail_client_id = "pdR0-test"  # what the order manager sets when it places one
    assert view().trailing_activated is False
    br.trail_exchange_active = True  # ALGO_UPDATE reported ia=true
    assert view().trailing_activated is True
