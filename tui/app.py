"""The perpdeck console: a Textual app over an engine :class:`~engine.facade.Facade`.

It reads frozen snapshots and sends commands; it never sees engine internals or SQL. Refresh
follows dolphie's timing: a one-shot timer, re-armed after each refresh so refreshes never
overlap, reads ``facade.snapshot()`` and posts it to the screen on top — unless that screen is a
dialog that does not follow live data, in which case the refresh is skipped (the timer goes on).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from textual.app import App
from textual.screen import ModalScreen, Screen
from textual.timer import Timer

from engine.events import FlattenAll, Halt, Resume, StartTraining, StopTraining, SwitchStrategy
from engine.facade import TRAINING_UNAVAILABLE, EngineSnapshot, Facade
from tui.actions import bindings
from tui.commands import ActionsProvider
from tui.messages import SnapshotTaken
from tui.screens.confirm_flatten import ConfirmFlattenScreen
from tui.screens.confirm_quit import ConfirmQuitScreen
from tui.screens.flatten_result import FlattenResultScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.strategies import StrategiesScreen
from tui.screens.strategy_picker import StrategyPickerScreen
from tui.screens.training import TrainingScreen

DEFAULT_REFRESH_S = 0.25
"""Seconds between snapshot reads."""
MIN_REFRESH_S = 0.1
"""The fastest refresh allowed: at most ten repaints a second."""
OPERATOR = "operator"
"""The reason given with commands the operator sends from the console."""


def wall_clock_ms() -> int:
    """Milliseconds since the epoch, from the machine's clock."""
    return time.time_ns() // 1_000_000


class PerpdeckApp(App[None]):
    """The trading console. Every key is a row of :data:`tui.actions.ACTIONS`."""

    CSS_PATH = "app.tcss"
    TITLE = "perpdeck"
    BINDINGS = bindings()
    COMMANDS = {ActionsProvider}
    COMMAND_PALETTE_BINDING = "ctrl+p"

    def __init__(
        self,
        facade: Facade,
        *,
        refresh_s: float = DEFAULT_REFRESH_S,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        """``facade`` is the engine; ``clock_ms`` is the wall clock that stream ages are measured on."""
        super().__init__()
        self.facade = facade
        """The engine, as snapshots out and commands in."""
        self.refresh_s = max(MIN_REFRESH_S, refresh_s)
        """Seconds between snapshot reads."""
        self.wall_clock_ms = clock_ms
        """Wall clock in epoch ms (injected so tests render the same text every time)."""
        self.snapshot: EngineSnapshot | None = None
        """The latest snapshot read."""
        self.main_screen = MainScreen()
        """The dashboard, always at the bottom of the screen stack."""
        self._refresh_timer: Timer | None = None
        self._last_error = ""

    def get_default_screen(self) -> MainScreen:
        return self.main_screen

    # -- refresh ------------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._arm_refresh()

    def _arm_refresh(self) -> None:
        self._refresh_timer = self.set_timer(self.refresh_s, self._on_refresh_timer, name="snapshot-refresh")

    def _on_refresh_timer(self) -> None:
        try:
            self.refresh_snapshot()
        finally:
            if self.is_running and self.screen_stack:
                self._arm_refresh()

    def refresh_snapshot(self, for_screen: Screen | None = None) -> EngineSnapshot | None:
        """Read a snapshot and post it to the screen on top, if that screen follows live data.

        With ``for_screen``, only while that screen is still the one on top.
        """
        if not self.screen_stack:  # starting up or shutting down
            return None
        screen = self.screen
        if not getattr(screen, "LIVE", False) or (for_screen is not None and for_screen is not screen):
            return None
        try:
            snap = self.facade.snapshot()
        except Exception as exc:  # noqa: BLE001 - the console must outlive a bad read
            self._report(f"engine snapshot failed: {exc}")
            return None
        self.snapshot = snap
        screen.post_message(SnapshotTaken(snap))
        return snap

    def _report(self, text: str) -> None:
        self.log.error(text)
        if text != self._last_error:
            self._last_error = text
            self.notify(text, title="engine", severity="error")

    def _submit(self, command: object, *, refresh: bool = True) -> bool:
        """Send ``command``; on success show its effect at once (unless ``refresh`` is False)."""
        try:
            self.facade.submit(command)
        except Exception as exc:  # noqa: BLE001 - say so, keep running
            self._report(f"{type(command).__name__} failed: {exc}")
            return False
        if refresh:
            self.refresh_snapshot()
        return True

    # -- actions (one per row of tui.actions.ACTIONS) ------------------------------------------

    def action_halt(self) -> None:
        """Stop new entries."""
        self._submit(Halt(OPERATOR))

    def action_resume(self) -> None:
        """Allow new entries again."""
        self._submit(Resume())

    def action_flatten(self) -> None:
        """Ask, then flatten everything and follow the result."""
        if isinstance(self.screen, ConfirmFlattenScreen | FlattenResultScreen):
            return
        self.push_screen(ConfirmFlattenScreen(self.snapshot), self._flatten_confirmed)

    def _flatten_confirmed(self, confirmed: bool | None) -> None:
        # The result dialog reads the next snapshots itself, from the first one on.
        if confirmed and self._submit(FlattenAll(OPERATOR), refresh=False):
            self.push_screen(FlattenResultScreen())

    def action_switch_strategy(self) -> None:
        """Pick a strategy; the engine switches on the next closed candle."""
        snap = self.snapshot
        if snap is None or not snap.strategies:
            self.notify("no strategies to choose from", severity="warning")
            return
        self.push_screen(StrategyPickerScreen(snap.strategies, snap.strategy), self._strategy_chosen)

    def _strategy_chosen(self, name: str | None) -> None:
        if not name:
            return
        if self.snapshot is not None and name == self.snapshot.strategy:
            self.notify(f"{name} is already active")
            return
        if self._submit(SwitchStrategy(name)):
            self.notify(f"strategy → {name}: applies on the next closed candle", title="strategy")

    def action_show_dashboard(self) -> None:
        """Back to the dashboard from a view."""
        if not isinstance(self.screen, ModalScreen) and self.screen is not self.main_screen:
            while len(self.screen_stack) > 1 and self.screen is not self.main_screen:
                self.pop_screen()

    def action_show_strategies(self) -> None:
        """Show the strategies view; from it, go back."""
        self._toggle_view(StrategiesScreen)

    def action_show_training(self) -> None:
        """Show the training view; from it, go back."""
        self._toggle_view(TrainingScreen)

    def _toggle_view(self, view: type[Screen]) -> None:
        screen = self.screen
        if isinstance(screen, ModalScreen):
            return  # a dialog is open: it keeps the keys
        if isinstance(screen, view):
            self.action_show_dashboard()
        elif screen is self.main_screen:
            self.push_screen(view())
        else:
            self.switch_screen(view())

    def action_start_training(self) -> None:
        """Start (or resume) the background RL trainer."""
        view = self._training_view()
        if view is None:
            return
        if view.state in ("running", "starting"):
            self.notify(f"training is already {view.state}", title="training")
        elif view.state == "stopping":
            self.notify("training is still stopping: start it again once it has stopped", title="training")
        elif self._submit(StartTraining()):
            resume = " from its checkpoint" if view.state == "stopped" else ""
            self.notify(f"training starting{resume}", title="training")

    def action_stop_training(self) -> None:
        """Stop the RL trainer after its current step (a checkpoint is saved)."""
        view = self._training_view()
        if view is None:
            return
        if view.state not in ("running", "starting"):
            self.notify(f"training is not running ({view.state})", title="training")
        elif self._submit(StopTraining()):
            self.notify("training stopping: a checkpoint is saved after the current step", title="training")

    def _training_view(self):
        """The trainer's view now; None (and a note saying why) when there is no trainer."""
        try:
            view = self.facade.snapshot().training
        except Exception as exc:  # noqa: BLE001 - say so, keep running
            self._report(f"engine snapshot failed: {exc}")
            return None
        if view is None:
            self.notify(TRAINING_UNAVAILABLE, title="training", severity="warning", timeout=8)
        return view

    def action_cycle_log_level(self) -> None:
        """Show the next log level filter (in the training view's log when that is on top)."""
        screen = self.screen
        (screen if isinstance(screen, TrainingScreen) else self.main_screen).cycle_log_level()

    def action_show_help(self) -> None:
        """List every key and command."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit; while positions are open, ask first (they stay open, stops resting)."""
        if isinstance(self.screen, ConfirmQuitScreen):
            return
        try:
            open_positions: int | None = len(self.facade.snapshot().positions)
        except Exception:  # noqa: BLE001 - cannot tell: ask
            open_positions = None
        if open_positions == 0:
            self.exit()
            return
        self.push_screen(ConfirmQuitScreen(open_positions), self._quit_confirmed)

    def _quit_confirmed(self, confirmed: bool | None) -> None:
        if confirmed:
            self.exit()


def run(facade: Facade, **kwargs) -> None:
    """Run the console over ``facade`` until the operator quits."""
    PerpdeckApp(facade, **kwargs).run()
