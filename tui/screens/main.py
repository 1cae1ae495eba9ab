"""The dashboard: header, positions, signals, break-even timers, orders and the log."""

from __future__ import annotations

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer

from engine.facade import EngineSnapshot
from tui.messages import SnapshotTaken
from tui.widgets.header import HeaderBar
from tui.widgets.log import LogView
from tui.widgets.orders import OrdersTable
from tui.widgets.positions import PositionsTable
from tui.widgets.signals import SignalsTable
from tui.widgets.tables import Pane
from tui.widgets.timers import TimersTable

COMPACT_BELOW_WIDTH = 116
"""Narrower terminals get the compact layout (fewer columns); the wide orders table needs ~114."""
COMPACT_BELOW_HEIGHT = 32
"""Shorter terminals get the compact layout (slim panes, timers folded into positions)."""


def _changed(old: EngineSnapshot | None, new: EngineSnapshot, *fields: str) -> bool:
    return old is None or any(getattr(old, f) != getattr(new, f) for f in fields)


class MainScreen(Screen):
    """Shows each snapshot the app reads, touching only the panes whose data changed."""

    LIVE = True
    """The app sends this screen snapshots while it is on top."""

    def __init__(self) -> None:
        super().__init__(id="main")
        self.compact = False
        """Whether the compact layout is in use (set from the terminal size)."""
        self.shown: EngineSnapshot | None = None
        """The snapshot on screen."""

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
        self._set_compact(self.app.size.width, self.app.size.height)
        self._show_log_level()

    def on_screen_resume(self) -> None:
        self.app.call_later(self.app.refresh_snapshot, self)

    def on_resize(self, event: events.Resize) -> None:
        if self._set_compact(event.size.width, event.size.height) and self.shown is not None:
            self.show(self.shown, force=True)

    def _set_compact(self, width: int, height: int) -> bool:
        compact = width < COMPACT_BELOW_WIDTH or height < COMPACT_BELOW_HEIGHT
        changed = compact != self.compact or not (self.has_class("-compact") or self.has_class("-wide"))
        self.compact = compact
        self.set_class(compact, "-compact")
        self.set_class(not compact, "-wide")
        self.query_one(Footer).compact = compact
        return changed

    def on_snapshot_taken(self, message: SnapshotTaken) -> None:
        self.show(message.snapshot)

    def show(self, snap: EngineSnapshot, *, force: bool = False) -> None:
        """Paint ``snap``; panes whose slice of the snapshot is unchanged are left alone."""
        old = None if force else self.shown
        compact = self.compact
        self.query_one(HeaderBar).show(snap, self.app.wall_clock_ms(), compact)
        if _changed(old, snap, "positions", "timers", "exchange_time_ms"):
            count = self.query_one(PositionsTable).show(snap, compact)
            self.query_one("#positions-pane", Pane).show_count(count)
        if _changed(old, snap, "signals"):
            count = self.query_one(SignalsTable).show(snap, compact)
            self.query_one("#signals-pane", Pane).show_count(count)
        if _changed(old, snap, "timers", "exchange_time_ms"):
            count = self.query_one(TimersTable).show(snap, compact)
            self.query_one("#timers-pane", Pane).show_count(count)
        if _changed(old, snap, "orders", "algo_orders"):
            count = self.query_one(OrdersTable).show(snap, compact)
            self.query_one("#orders-pane", Pane).show_count(count)
        self.query_one(LogView).show(snap.log)
        self.shown = snap

    def cycle_log_level(self) -> str:
        """Show the next log level filter; returns it."""
        level = self.query_one(LogView).cycle_level()
        self._show_log_level()
        return level

    def _show_log_level(self) -> None:
        level = self.query_one(LogView).level
        note = "all levels" if level == "ALL" else f"{level} and above"
        self.query_one("#log-pane", Pane).show_count(None, note)
