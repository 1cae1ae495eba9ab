"""Judged signals, newest at the bottom: what each strategy wanted and what the guard said."""

from __future__ import annotations

from engine.facade import EngineSnapshot
from engine.model import SignalRecord, Verdict
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row

SIGNALS_SHOWN = 100
"""The newest signals kept in the table."""


def verdict_cell(record: SignalRecord) -> Cell:
    """``accepted`` or ``denied: <reason>``."""
    if record.verdict is Verdict.ACCEPTED:
        return Cell("accepted", "accepted")
    return Cell(f"denied: {record.reason}" if record.reason else "denied", "denied")


def signal_rows(signals: tuple[SignalRecord, ...]) -> list[Row]:
    """One row per signal, oldest first, so the newest is at the bottom like the log."""
    rows: list[Row] = []
    for record in signals[-SIGNALS_SHOWN:]:
        sig = record.signal
        rows.append((f"{sig.signal_id}@{record.time_ms}", {
            "time": Cell(fmt.hms(record.time_ms)),
            "symbol": Cell(sig.symbol),
            "strategy": Cell(sig.strategy),
            "side": Cell(sig.direction.value, "long" if sig.direction.value == "LONG" else "short"),
            "score": Cell(fmt.score(sig.strength), right=True),
            "verdict": verdict_cell(record),
        }))
    return rows


class SignalsTable(DeckTable):
    """The newest signals, newest at the bottom; it follows new rows unless it has focus."""

    COLUMNS = (
        Col("time", "Time"),
        Col("symbol", "Symbol"),
        Col("strategy", "Strategy", compact=False),
        Col("side", "Side"),
        Col("score", "Score", right=True),
        Col("verdict", "Verdict"),
    )

    MAX_ROWS = 50
    """Newest signals listed: a full table changes rows without changing size (no layout pass)."""

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's newest signals; returns how many are listed."""
        rows = signal_rows(snap.signals[-self.MAX_ROWS:])
        if self.sync(rows, compact=compact) and not self.has_focus:
            if self.size:  # the table's height is its own: the new end is known now, scroll in this repaint
                self.scroll_end(animate=False, immediate=True, x_axis=False)
            else:
                self.call_after_refresh(self.scroll_end, animate=False, immediate=True, x_axis=False)
        return len(rows)
