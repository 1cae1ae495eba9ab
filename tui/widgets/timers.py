"""Break-even timers: per position, the time left and whether break-even was reached."""

from __future__ import annotations

from engine.facade import EngineSnapshot
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row


def timer_rows(snap: EngineSnapshot) -> list[Row]:
    """One row per timer, time left measured on the exchange clock."""
    rows: list[Row] = []
    for t in snap.timers:
        left = t.deadline_ms - snap.exchange_time_ms
        if t.break_even_reached:
            left_cell, be = Cell(fmt.DASH, "muted", right=True), Cell("reached", "accepted")
        elif left <= 0:
            left_cell, be = Cell(fmt.countdown(0), "warn", right=True), Cell("expired", "warn")
        else:
            left_cell, be = Cell(fmt.countdown(left), right=True), Cell("not yet", "muted")
        rows.append((f"{t.symbol}:{t.side}", {
            "symbol": Cell(t.symbol),
            "side": Cell(t.side, "long" if t.side == "LONG" else "short"),
            "left": left_cell,
            "be": be,
        }))
    return rows


class TimersTable(DeckTable):
    """One row per break-even timer."""

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("side", "Side"),
        Col("left", "Left", right=True),
        Col("be", "Break-even"),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's timers; returns how many there are."""
        self.sync(timer_rows(snap), compact=compact)
        return len(snap.timers)
