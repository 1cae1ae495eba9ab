"""Asks before an emergency flatten, saying exactly what it will do."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.facade import EngineSnapshot

EXPLANATION = """\
This will, in order:
  1. halt the engine: no new entries;
  2. cancel every open order and every resting conditional order
     (stop-losses, take-profits);
  3. close every position, reduce-only, at market.
Positions close at whatever the market pays. It cannot be undone."""


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def exposure(snap: EngineSnapshot | None) -> str:
    """What is open right now, as far as the last snapshot knows."""
    if snap is None:
        return "Open right now: unknown (no snapshot yet)."
    text = (f"Open right now: {_plural(len(snap.positions), 'position')} · "
            f"{_plural(len(snap.orders), 'order')} · {_plural(len(snap.algo_orders), 'conditional order')}")
    if snap.mode.lower() == "mainnet":
        text += "\nMAINNET — REAL MONEY"
    return text


class ConfirmFlattenScreen(ModalScreen[bool]):
    """``y`` confirms (dismisses with True); ``n`` or ``escape`` cancels."""

    BINDINGS = [
        Binding("y", "confirm", "Flatten everything"),
        Binding("n,escape", "cancel", "Cancel"),
    ]

    def __init__(self, snapshot: EngineSnapshot | None) -> None:
        super().__init__(id="confirm-flatten")
        self.snapshot = snapshot
        """The snapshot the exposure line is read from."""

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog -danger"):
            yield Static("EMERGENCY FLATTEN", classes="dialog-title", markup=False)
            yield Static(EXPLANATION, classes="dialog-body", markup=False)
            yield Static(exposure(self.snapshot), classes="dialog-exposure", markup=False)
            yield Static("y  flatten everything      n / esc  cancel", classes="dialog-keys", markup=False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
