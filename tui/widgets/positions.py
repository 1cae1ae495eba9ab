"""Open positions: size, prices, unrealised PnL, protection and age."""

from __future__ import annotations

from engine.facade import EngineSnapshot, TimerView
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row


def pnl_tone(value) -> str | None:
    """``gain`` above zero, ``loss`` below, no tone at zero."""
    return "gain" if value > 0 else "loss" if value < 0 else None


def timer_cell(timer: TimerView | None, now_ms: int) -> Cell:
    """A break-even timer in one cell (the compact layout folds the timers pane in here)."""
    if timer is None:
        return Cell(fmt.DASH, "muted", right=True)
    if timer.break_even_reached:
        return Cell("✓ b/e", "accepted", right=True)
    return Cell(fmt.countdown(timer.deadline_ms - now_ms), right=True)


def position_rows(snap: EngineSnapshot) -> list[Row]:
    """One row per position, in the snapshot's order."""
    now = snap.exchange_time_ms
    timers = {(t.symbol, t.side): t for t in snap.timers}
    rows: list[Row] = []
    for p in snap.positions:
        rows.append((f"{p.symbol}:{p.side}", {
            "symbol": Cell(p.symbol),
            "side": Cell(p.side, "long" if p.side == "LONG" else "short"),
            "size": Cell(fmt.qty(p.size), right=True),
            "entry": Cell(fmt.price(p.entry_price), right=True),
            "mark": Cell(fmt.price(p.mark_price), right=True),
            "upnl": Cell(fmt.signed_money(p.unrealized_pnl), pnl_tone(p.unrealized_pnl), right=True),
            "stop": Cell(fmt.price(p.stop_price), None if p.stop_price else "warn", right=True),
            "tp": Cell(fmt.price(p.take_profit_price), right=True),
            "liq": Cell(fmt.price(p.liquidation_price), right=True),
            "age": Cell(fmt.duration(now - p.opened_ms) if p.opened_ms is not None else fmt.DASH, right=True),
            "be": timer_cell(timers.get((p.symbol, p.side)), now),
        }))
    return rows


class PositionsTable(DeckTable):
    """Open positions with their stop, take-profit, liquidation price and age."""

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("side", "Side"),
        Col("size", "Size", right=True),
        Col("entry", "Entry", right=True, compact=False),
        Col("mark", "Mark", right=True),
        Col("upnl", "uPnL", right=True),
        Col("stop", "Stop", right=True),
        Col("tp", "Take profit", right=True),
        Col("liq", "Liquidation", right=True, compact=False),
        Col("age", "Age", right=True, compact=False),
        Col("be", "B/E", right=True, wide=False),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's positions; returns how many there are."""
        self.sync(position_rows(snap), compact=compact)
        return len(snap.positions)
