"""The training view: the background RL trainer's state and progress (issue 8), and the log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Footer

from engine.facade import EngineSnapshot
from tui.screens.base import BACK, DeckScreen, changed
from tui.widgets.header import HeaderBar
from tui.widgets.log import LogView
from tui.widgets.tables import Pane
from tui.widgets.training import TrainingPanel


class TrainingScreen(DeckScreen):
    """The trainer's view (state, device, progress, speed, ETA, reward, losses, best validation
    return, checkpoint, detail) above the engine log, where the trainer's messages land too."""

    BINDINGS = [BACK]

    def __init__(self) -> None:
        super().__init__(id="training-screen")

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="training-header")
        with Vertical(id="training-body"):
            yield Pane("Training", TrainingPanel(id="training"), id="training-pane")
            yield Pane("Log", LogView(id="training-log"), id="training-log-pane")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self._show_log_level()

    def cycle_log_level(self) -> str:
        """Show the next log level filter in this view's log; returns it."""
        level = self.query_one(LogView).cycle_level()
        self._show_log_level()
        return level

    def _show_log_level(self) -> None:
        level = self.query_one(LogView).level
        note = "all levels" if level == "ALL" else f"{level} and above"
        self.query_one("#training-log-pane", Pane).show_count(None, note)

    def paint(self, old: EngineSnapshot | None, snap: EngineSnapshot) -> None:
        if changed(old, snap, "training"):
            self.query_one(TrainingPanel).show(snap.training)
            v = snap.training
            self.query_one("#training-pane", Pane).show_count(None, v.state if v is not None else "not available")
        self.query_one(LogView).show(snap.log)
