"""Open orders and resting conditional (algo) orders."""

from __future__ import annotations

from engine.facade import EngineSnapshot
from engine.model import AlgoOrder, Order, OrderStatus, Side
from tui import format as fmt
from tui.widgets.tables import Cell, Col, DeckTable, Row

BAD_STATUSES = {"REJECTED", "EXPIRED", "CANCELED"}
SHORT_TYPES = {
    "STOP_MARKET": "STOP MKT",
    "TAKE_PROFIT_MARKET": "TP MKT",
    "TAKE_PROFIT": "TP LIMIT",
    "STOP": "STOP LIMIT",
    "TRAILING_STOP_MARKET": "TRAIL STOP",
}
"""Order types as the compact layout writes them."""
SHORT_STATUSES = {"PARTIALLY_FILLED": "PARTIAL", "PENDING_NEW": "PENDING", "EXPIRED_IN_MATCH": "EXPIRED"}
"""Statuses as the compact layout writes them."""


def _side(side: Side) -> Cell:
    return Cell(side.value, "long" if side is Side.BUY else "short")


def _status(status: str) -> dict[str, Cell]:
    tone = "loss" if status in BAD_STATUSES else "warn" if status == "TRIGGERING" else None
    return {"status": Cell(status, tone), "status_short": Cell(SHORT_STATUSES.get(status, status), tone)}


def _type(type_: str, suffix: str = "") -> dict[str, Cell]:
    return {"type": Cell(type_ + suffix), "type_short": Cell(SHORT_TYPES.get(type_, type_) + suffix)}


def order_row(o: Order) -> Row:
    """A plain order: quantity (filled so far if partly filled) and limit price."""
    quantity = fmt.qty(o.quantity)
    if o.status is OrderStatus.PARTIALLY_FILLED:
        quantity = f"{fmt.qty(o.filled_qty)}/{quantity}"
    return (f"order:{o.client_order_id}", {
        **_type(o.type.value, " RO" if o.reduce_only else ""),
        "side": _side(o.side),
        "symbol": Cell(o.symbol),
        "qty": Cell(quantity, right=True),
        "price": Cell(fmt.price(o.price) if o.price is not None else "market", right=True),
        **_status(o.status.value),
        "client_id": Cell(o.client_order_id, "muted"),
    })


def algo_row(a: AlgoOrder) -> Row:
    """A conditional order: ``close`` for close-position orders, and its trigger price."""
    return (f"algo:{a.client_algo_id}", {
        **_type(a.type.value),
        "side": _side(a.side),
        "symbol": Cell(a.symbol),
        "qty": Cell("close" if a.close_position else fmt.DASH, right=True),
        "price": Cell(fmt.price(a.trigger_price), right=True),
        **_status(a.status.value),
        "client_id": Cell(a.client_algo_id, "muted"),
    })


def order_rows(snap: EngineSnapshot) -> list[Row]:
    """Open orders first, then conditional orders, each in the snapshot's order."""
    return [order_row(o) for o in snap.orders] + [algo_row(a) for a in snap.algo_orders]


class OrdersTable(DeckTable):
    """Every open order and every resting conditional order."""

    COLUMNS = (
        Col("type", "Type", compact=False),
        Col("type_short", "Type", wide=False),
        Col("side", "Side"),
        Col("symbol", "Symbol"),
        Col("qty", "Qty", right=True),
        Col("price", "Trigger / price", right=True, compact=False),
        Col("price_short", "Price", right=True, wide=False, cell="price"),
        Col("status", "Status", compact=False),
        Col("status_short", "Status", wide=False),
        Col("client_id", "Client id", compact=False),
    )

    def show(self, snap: EngineSnapshot, compact: bool) -> int:
        """Show the snapshot's orders; returns how many there are."""
        rows = order_rows(snap)
        self.sync(rows, compact=compact)
        return len(rows)
