"""Open positions: size, prices, unrealised PnL, protection and age."""

from __future__ import annotations

from engine.facade import BREAK_EVEN, STOP_LOSS, TRAILING, EngineSnapshot, PositionView, TimerView
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row

STOP_TAGS = {BREAK_EVEN: "b/e", TRAILING: "trail"}
"""Put before the stop price when the stop was moved: to break-even, or trailing the price."""
TRAIL_TAGS = {False: "trail armed", True: "trailing"}
"""Put before the stop price while an exchange trailing stop is placed: waiting for its activation
price (armed), or activated and following the price (active)."""
TRAIL_TAGS_COMPACT = {False: "armed", True: "trail"}
"""The same, in the compact layout."""
TP_DONE = "✓"
"""Stands for a take-profit level that has filled."""
TP_NEXT = "→"
"""Between the partial take-profit (TP1) and the final one (TP2)."""


def pnl_tone(value) -> str | None:
    """``gain`` above zero, ``loss`` below, no tone at zero."""
    return "gain" if value > 0 else "loss" if value < 0 else None


def timer_cell(timer: TimerView | None, now_ms: int) -> Cell:
    """A break-even timer in one cell (the compact layout folds the timers pane in here)."""
    if timer is None:
        return Cell(fmt.DASH, "muted", right=True)
    if timer.break_even_reached:
        return Cell("✓ b/e", "accepted", right=True)
    if timer.closing:
        return Cell("closing", "warn", right=True)
    if timer.deadline_ms is None:
        return Cell("no limit", "muted", right=True)
    left = timer.deadline_ms - now_ms
    return Cell(fmt.countdown(left), "warn" if left <= 0 else None, right=True)


def stop_cell(p: PositionView, *, compact: bool = False) -> Cell:
    """The stop price, tagged ``b/e`` or ``trail`` once it was moved; a missing stop is a warning.

    An exchange trailing stop says whether it is ``trail armed`` (placed, waiting for its activation
    price) or ``trailing`` (activated, following the price); compact: ``armed`` / ``trail``."""
    if p.stop_price is None:
        return Cell(fmt.DASH, "warn", right=True)
    if p.trailing_activated is not None:
        tag = (TRAIL_TAGS_COMPACT if compact else TRAIL_TAGS)[p.trailing_activated]
        tone = "accepted" if p.trailing_activated or p.stop_kind != STOP_LOSS else None
        return Cell(f"{tag} {fmt.price(p.stop_price)}", tone, right=True)
    tag = STOP_TAGS.get(p.stop_kind)
    if tag is None:
        return Cell(fmt.price(p.stop_price), right=True)
    return Cell(f"{tag} {fmt.price(p.stop_price)}", "accepted", right=True)


def take_profit_cell(p: PositionView, *, compact: bool = False) -> Cell:
    """Both take-profit levels: ``TP1 → TP2``, ``✓ → TP2`` once TP1 filled; one level alone.

    Compact: the next level only, ``TP1 →`` (more to come) or ``✓ TP2`` (TP1 filled).
    """
    tp1, tp2 = p.tp1_price, p.take_profit_price
    if tp1 is None:
        return Cell(fmt.price(tp2), None if tp2 is not None else "muted", right=True)
    if tp2 is None:  # TP1 is the only level left to show
        return Cell(f"{TP_DONE} {fmt.price(tp1)}" if p.tp1_done else fmt.price(tp1), right=True)
    if compact:
        text = f"{TP_DONE} {fmt.price(tp2)}" if p.tp1_done else f"{fmt.price(tp1)} {TP_NEXT}"
    else:
        text = f"{TP_DONE if p.tp1_done else fmt.price(tp1)} {TP_NEXT} {fmt.price(tp2)}"
    return Cell(text, right=True)


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
            "stop": stop_cell(p),
            "stop_c": stop_cell(p, compact=True),
            "tp": take_profit_cell(p),
            "tp_next": take_profit_cell(p, compact=True),
            "liq": Cell(fmt.price(p.liquidation_price), right=True),
            "age": Cell(fmt.duration(now - p.opened_ms) if p.opened_ms is not None else fmt.DASH, right=True),
            "be": timer_cell(timers.get((p.symbol, p.side)), now),
        }))
    return rows


class PositionsTable(DeckTable):
    """Open positions with their stop, take-profits, liquidation price and age."""

    COLUMNS = (
        Col("symbol", "Symbol"),
        Col("side", "Side"),
        Col("size", "Size", right=True),
        Col("entry", "Entry", right=True, compact=False),
        Col("mark", "Mark", right=True),
        Col("upnl", "uPnL", right=True),
        Col("stop", "Stop", right=True, compact=False),
        Col("stop", "Stop", right=True, wide=False, cell="stop_c"),
        Col("tp", "Take profit", right=True, compact=False),
        Col("tp_next", "Take profit", right=True, wide=False),
        Col("liq", "Liquidation", right=True, compact=False),
        Col("age", "Age", right=True, compact=False),
        Col("be", "B/E", right=True, wide=False),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's positions; returns how many there are."""
        self.sync(position_rows(snap), compact=compact)
        return len(snap.positions)
