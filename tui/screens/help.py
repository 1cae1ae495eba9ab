"""Every key and command, generated from the actions table."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from tui.actions import ACTIONS, Action

HINTS = "tab / shift+tab move between panes · arrows scroll the focused pane · ctrl+q quits from anywhere"


class HelpScreen(ModalScreen[None]):
    """Lists :data:`tui.actions.ACTIONS`: keys, palette title, what it does."""

    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]

    def __init__(self, actions: tuple[Action, ...] = ACTIONS) -> None:
        super().__init__(id="help")
        self.actions = actions
        """The rows shown."""

    def compose(self) -> ComposeResult:
        table: DataTable = DataTable(id="help-table", cursor_type="none", zebra_stripes=False)
        table.add_columns("Keys", "Command", "What it does")
        for action in self.actions:
            table.add_row(action.key_label, action.title, action.help, key=action.id)
        with Vertical(classes="dialog"):
            yield Static("PERPDECK — KEYS", classes="dialog-title", markup=False)
            yield table
            yield Static(HINTS, classes="dialog-body", markup=False)
            yield Static("esc / ? / q  close", classes="dialog-keys", markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
