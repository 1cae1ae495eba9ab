"""Every key's effect on the engine facade, driven through Pilot over the FakeFacade."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, OptionList

from engine.events import FlattenAll, Halt, Resume, SwitchStrategy
from tests.tui.support import wait_until
from tests.tui.snapshot_apps.perpdeck_app import make_app
from tui.actions import ACTIONS, palette_actions
from tui.fake import FakeFacade
from tui.screens.confirm_flatten import ConfirmFlattenScreen
from tui.screens.confirm_quit import ConfirmQuitScreen
from tui.screens.flatten_result import FlattenResultScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.strategy_picker import StrategyPickerScreen
from tui.widgets.header import HeaderBar
from tui.widgets.log import LogView


def header_text(app, field: str) -> str:
    return app.main_screen.query_one(HeaderBar).field(field).value


async def test_h_submits_halt_and_header_shows_halted():
    # Arrange
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "ACTIVE" in header_text(app, "engine-state"))
        # Act
        await pilot.press("h")
        # Assert
        assert app.facade.commands == [Halt("operator")]
        await wait_until(pilot, lambda: "HALTED" in header_text(app, "engine-state"))
        assert "operator" in header_text(app, "engine-state")


async def test_r_submits_resume_and_header_shows_active():
    app = make_app(state="HALTED", halt_reason="operator")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: "HALTED" in header_text(app, "engine-state"))
        await pilot.press("r")
        assert app.facade.commands == [Resume()]
        await wait_until(pilot, lambda: "ACTIVE" in header_text(app, "engine-state"))


async def test_flatten_asks_then_submits_and_result_screen_shows_flat():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("F")
        assert isinstance(app.screen, ConfirmFlattenScreen)
        assert app.facade.commands == []

        await pilot.press("y")

        assert app.facade.commands == [FlattenAll("operator")]
        await wait_until(pilot, lambda: isinstance(app.screen, FlattenResultScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.report is not None and screen.report.state == "flat")
        assert "FLAT" in str(screen.query_one("#flatten-status").render())

        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await wait_until(pilot, lambda: app.main_screen.shown is not None and not app.main_screen.shown.positions)


async def test_flatten_result_shows_running_then_flat():
    shown: list[str] = []
    app = make_app(refresh_s=1.0)  # slow ticks: the first report stays up long enough to be read
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("F", "y")
        await wait_until(pilot, lambda: isinstance(app.screen, FlattenResultScreen))
        screen = app.screen
        await wait_until(pilot, lambda: screen.report is not None)
        shown.append(screen.report.state)
        await wait_until(pilot, lambda: screen.report.state == "flat")
        shown.append(screen.report.state)
    assert shown == ["running", "flat"]


async def test_ctrl_f_also_asks_before_flattening():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("ctrl+f")
        assert isinstance(app.screen, ConfirmFlattenScreen)


async def test_flatten_escape_or_n_sends_nothing():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("F", "escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("F", "n")
        assert isinstance(app.screen, MainScreen)
        await pilot.pause(0.15)
        assert app.facade.commands == []


async def test_s_then_choosing_a_strategy_submits_switch_and_notifies():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("s")
        assert isinstance(app.screen, StrategyPickerScreen)
        options = app.screen.query_one(OptionList)
        assert options.get_option_at_index(options.highlighted).id == "ema_trend"  # the active one

        await pilot.press("down", "enter")

        assert app.facade.commands == [SwitchStrategy("rl_policy")]
        assert any("next closed candle" in n.message for n in app._notifications)
        await wait_until(pilot, lambda: header_text(app, "strategy") == "rl_policy")


async def test_s_then_escape_or_the_active_strategy_sends_nothing():
    app = make_app()
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.snapshot is not None)
        await pilot.press("s", "escape")
        await pilot.press("s", "enter")  # the active one is highlighted
        assert isinstance(app.screen, MainScreen)
        assert app.facade.commands == []


async def test_q_with_open_positions_asks_and_stays_until_confirmed():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuitScreen)
        assert "stop-loss" in app.screen.query_one(".dialog-body").render().plain
        await pilot.pause(0.15)
        assert app.return_code is None

        await pilot.press("n")
        assert isinstance(app.screen, MainScreen)
        assert app.return_code is None

        await pilot.press("q", "y")
        await wait_until(pilot, lambda: app.return_code is not None)
    assert app.facade.commands == []  # quitting sends nothing to the engine


async def test_ctrl_q_with_open_positions_asks_too():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("ctrl+q")
        assert isinstance(app.screen, ConfirmQuitScreen)
        await pilot.press("ctrl+q")  # a second one does not stack another dialog
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        assert app.return_code is None


async def test_q_without_positions_quits_at_once():
    app = make_app(with_positions=False)
    async with app.run_test() as pilot:
        await pilot.press("q")
        await wait_until(pilot, lambda: app.return_code is not None)
        assert not isinstance(app.screen, ConfirmQuitScreen)


async def test_question_mark_shows_help_listing_every_action():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one(DataTable)
        rows = [table.get_row(key) for key in table.rows]
        assert [str(row[1]) for row in rows] == [a.title for a in ACTIONS]
        assert [str(row[0]) for row in rows] == [a.key_label for a in ACTIONS]
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_lists_the_actions_and_runs_them():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await wait_until(pilot, lambda: isinstance(app.screen, CommandPalette))
        palette = app.screen
        commands = palette.query_one(CommandList)
        await wait_until(pilot, lambda: commands.option_count == len(palette_actions()))
        titles = [str(commands.get_option_at_index(i).prompt).split("\n")[0] for i in range(commands.option_count)]
        assert titles == [a.title for a in palette_actions()]

        await pilot.press(*"engine: halt")
        await wait_until(pilot, lambda: commands.option_count >= 1)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.facade.commands == [Halt("operator")])


async def test_l_cycles_the_log_level_filter():
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.main_screen.query_one(LogView)
        await wait_until(pilot, lambda: len(log.lines) == 11)
        await pilot.press("l")
        assert log.level == "INFO"
        assert len(log.lines) == 10  # the DEBUG line is hidden
        await pilot.press("l")
        assert log.level == "WARNING"
        assert len(log.lines) == 3
        await pilot.press("l", "l")
        assert log.level == "ALL"
        assert app.main_screen.query_one("#log-pane").border_title == "Log · all levels"


async def test_refresh_is_skipped_while_a_dialog_is_open():
    app = make_app()
    async with app.run_test() as pilot:
        await pilot.press("question_mark")
        served = app.facade.snapshots_served
        await pilot.pause(0.35)
        assert app.facade.snapshots_served == served
        await pilot.press("escape")
        await wait_until(pilot, lambda: app.facade.snapshots_served > served)


async def test_a_failing_snapshot_is_reported_once_and_the_console_keeps_running():
    class Broken(FakeFacade):
        def snapshot(self):
            raise RuntimeError("engine gone")

    app = make_app(Broken())
    async with app.run_test() as pilot:
        await pilot.pause(0.35)
        messages = [n.message for n in app._notifications]
        assert messages.count("engine snapshot failed: engine gone") == 1
        assert app.return_code is None
        await pilot.press("q")  # the state is unknown, so it asks
        assert isinstance(app.screen, ConfirmQuitScreen)


def test_refresh_is_at_most_ten_times_a_second():
    assert make_app(refresh_s=0.01).refresh_s == 0.1
    assert make_app(refresh_s=0.25).refresh_s == 0.25
