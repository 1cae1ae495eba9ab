"""Break-even timers: per position, the time left to reach break-even and the price that triggers it."""

from __future__ import annotations

from engine.facade import EngineSnapshot, TimerView
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row


def left_cell(t: TimerView, now_ms: int) -> Cell:
    """Time left on the exchange clock, or the timer's outcome once there is no time to count."""
    if t.break_even_reached:
        return Cell("✓ reached", "accepted", right=True)
    if t.closing:
        return Cell("closing", "warn", right=True)
    if t.deadline_ms is None:
        return Cell("no limit", "muted", right=True)
    left = t.deadline_ms - now_ms
    if left <= 0:
        return Cell(fmt.countdown(0), "warn", right=True)
    return Cell(fmt.countdown(left), right=True)


def trigger_cell(t: TimerView) -> Cell:
    """The price that moves the stop to break-even; muted once reached (the stop has moved)."""
    if t.trigger_price is None:
        return Cell(fmt.DASH, "muted", right=True)
    return Cell(fmt.price(t.trigger_price), "muted" if t.break_even_reached else None, right=True)


def timer_rows(snap: EngineSnapshot) -> list[Row]:
    """One row per timer, time left measured on the exchange clock."""
    now = snap.exchange_time_ms
    rows: list[Row] = []
    for t in snap.timers:
        rows.append((f"{t.symbol}:{t.side}", {
            "symbol": Cell(t.symbol),
            "side": Cell(t.side, "long" if t.side == "LONG" else "short"),
            "left": left_cell(t, now),
            "trigger": trigger_cell(t),
        }))
    return rows


class TimersTable(DeckTable):
    """One row per break-even plan: time left (or reached) and the price that moves the stop.

    The break-even stop level itself shows in the positions pane once the stop has moved there
    (``b/e 97,347.40``); the pane stays 40 cells wide so the signals beside it keep their reasons.
    """

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("side", "Side"),
        Col("left", "Left", right=True),
        Col("trigger", "Trigger", right=True),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's timers; returns how many there are."""
        self.sync(timer_rows(snap), compact=compact)
        return len(snap.timers)
