"""Picks the strategy to switch to; the active one is marked."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option


class StrategyPickerScreen(ModalScreen[str | None]):
    """Dismisses with the chosen strategy's name, or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, strategies: tuple[str, ...], active: str) -> None:
        super().__init__(id="strategy-picker")
        self.strategies = strategies
        """The strategies the engine knows."""
        self.active = active
        """The one running now."""

    def compose(self) -> ComposeResult:
        options = [
            Option(f"● {name}   (active)" if name == self.active else f"  {name}", id=name)
            for name in self.strategies
        ]
        with Vertical(classes="dialog"):
            yield Static("SWITCH STRATEGY", classes="dialog-title", markup=False)
            yield OptionList(*options, id="strategies")
            yield Static("The switch applies on the next closed candle.", classes="dialog-body", markup=False)
            yield Static("↑/↓ choose   enter  switch   esc  cancel", classes="dialog-keys", markup=False)

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        if self.active in self.strategies:
            options.highlighted = self.strategies.index(self.active)
        options.focus()

    @on(OptionList.OptionSelected)
    def chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)
