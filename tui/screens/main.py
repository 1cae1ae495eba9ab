"""The dashboard: header, positions, signals, break-even timers, orders and the log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from engine.facade import EngineSnapshot
from tui.screens.base import COMPACT_BELOW_HEIGHT, COMPACT_BELOW_WIDTH, DeckScreen, changed
from tui.widgets.header import HeaderBar
from tui.widgets.log import LogView
from tui.widgets.orders import OrdersTable
from tui.widgets.positions import PositionsTable
from tui.widgets.signals import SignalsTable
from tui.widgets.tables import Pane
from tui.widgets.timers import TimersTable

__all__ = ["COMPACT_BELOW_HEIGHT", "COMPACT_BELOW_WIDTH", "MainScreen"]


class MainScreen(DeckScreen):
    """Shows each snapshot the app reads, touching only the panes whose data changed."""

    COMPACT_HIDES_PALETTE = False

    def __init__(self) -> None:
        super().__init__(id="main")

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with Vertical(id="body"):
            yield Pane("Positions", PositionsTable(id="positions"), empty="no open positions", id="positions-pane")
            with Horizontal(id="middle"):
                yield Pane("Signals", SignalsTable(id="signals"), empty="no signals yet", id="signals-pane")
                yield Pane("Break-even timers", TimersTable(id="timers"), empty="no timers", id="timers-pane")
            yield Pane("Orders", OrdersTable(id="orders"), empty="no open orders", id="orders-pane")
            yield Pane("Log", LogView(id="log"), id="log-pane")
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self._show_log_level()

    def paint(self, old: EngineSnapshot | None, snap: EngineSnapshot) -> None:
        compact = self.compact
        if changed(old, snap, "positions", "timers", "exchange_time_ms"):
            count = self.query_one(PositionsTable).show(snap, compact)
            self.query_one("#positions-pane", Pane).show_count(count)
        if changed(old, snap, "signals"):
            count = self.query_one(SignalsTable).show(snap, compact)
            self.query_one("#signals-pane", Pane).show_count(count)
        if changed(old, snap, "timers", "exchange_time_ms"):
            count = self.query_one(TimersTable).show(snap, compact)
            self.query_one("#timers-pane", Pane).show_count(count)
        if changed(old, snap, "orders", "algo_orders"):
            count = self.query_one(OrdersTable).show(snap, compact)
            self.query_one("#orders-pane", Pane).show_count(count)
        self.query_one(LogView).show(snap.log)

    def cycle_log_level(self) -> str:
        """Show the next log level filter; returns it."""
        level = self.query_one(LogView).cycle_level()
        self._show_log_level()
        return level

    def _show_log_level(self) -> None:
        level = self.query_one(LogView).level
        note = "all levels" if level == "ALL" else f"{level} and above"
        self.query_one("#log-pane", Pane).show_count(None, note)
