"""Asks before quitting while positions are open."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


def warning_text(open_positions: int | None) -> str:
    """Says what quitting leaves behind."""
    if open_positions is None:
        what = "Positions may be open (the engine could not be read)."
    elif open_positions == 1:
        what = "1 position is open."
    else:
        what = f"{open_positions} positions are open."
    return (
        f"{what}\n"
        "Quitting leaves them open on the exchange, with their stop-loss and take-profit "
        "orders resting there. Nothing manages them until perpdeck runs again."
    )


class ConfirmQuitScreen(ModalScreen[bool]):
    """``y`` quits anyway (True); ``n`` or ``escape`` stays (False)."""

    BINDINGS = [
        Binding("y", "confirm", "Quit anyway"),
        Binding("n,escape", "cancel", "Stay"),
    ]

    def __init__(self, open_positions: int | None) -> None:
        super().__init__(id="confirm-quit")
        self.open_positions = open_positions
        """How many positions are open (None if unknown)."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -warning"):
            yield Static("QUIT WITH OPEN POSITIONS?", classes="dialog-title", markup=False)
            yield Static(warning_text(self.open_positions), classes="dialog-body", markup=False)
            yield Static("y  quit anyway      n / esc  stay", classes="dialog-keys", markup=False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
