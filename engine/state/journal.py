"""In-memory journal for the sans-I/O pipeline.

The pipeline records facts synchronously (``journal.fill(f)``, ``journal.event(...)``); an I/O task
calls ``await journal.flush(store)`` now and then (and at the end of a backtest). Nothing recorded
is ever lost: a failed or cancelled write puts its records back in front of anything recorded
since, and the next flush retries them in the original order.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from engine.model import AlgoOrder, Candle, Fill, Order, Position, SignalRecord, Trade
from engine.state.store import dumps

if TYPE_CHECKING:
    from engine.state.store import Store

_LISTS = (
    "orders", "algo_orders", "fills", "positions", "signals", "trades", "candles", "funding",
    "events", "plans", "fill_marks",
)  # fmt: skip


@dataclass
class JournalBatch:
    """Records in arrival order, one plain list per kind.

    ``funding`` entries are dicts ``{symbol, time_ms, position_side, amount, rate}``; ``events``
    entries are dicts ``{time_ms, kind, message, data_json}`` (``data_json`` already serialised,
    or a ``data`` key the store serialises).
    """

    run_id: str
    orders: list[Order] = field(default_factory=list)
    algo_orders: list[AlgoOrder] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    signals: list[SignalRecord] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    funding: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    plans: list[dict] = field(default_factory=list)
    """``{account, symbol, position_side, payload_json (None = the position is closed), updated_ms}``."""
    fill_marks: list[dict] = field(default_factory=list)
    """``{account, fills_complete_ms, updated_ms}``: every fill up to that exchange time is recorded."""

    def __len__(self) -> int:
        return (
            len(self.orders) + len(self.algo_orders) + len(self.fills) + len(self.positions)
            + len(self.signals) + len(self.trades) + len(self.candles) + len(self.funding)
            + len(self.events) + len(self.plans) + len(self.fill_marks)
        )  # fmt: skip


assert tuple(f.name for f in fields(JournalBatch))[1:] == _LISTS


class Journal:
    """Collects records for one run until :meth:`take` or :meth:`flush` hands them over."""

    def __init__(self, run_id: str, *, record_candles: bool = True) -> None:
        self.run_id = run_id
        self.record_candles = record_candles
        self._batch = JournalBatch(run_id)
        self._inflight: asyncio.Future[None] | None = None

    # ---------------------------------------------------------------- recording (sync, cheap)

    def order(self, o: Order) -> None:
        self._batch.orders.append(o)

    def algo_order(self, a: AlgoOrder) -> None:
        self._batch.algo_orders.append(a)

    def fill(self, f: Fill) -> None:
        self._batch.fills.append(f)

    def position(self, p: Position) -> None:
        self._batch.positions.append(p)

    def signal(self, s: SignalRecord) -> None:
        self._batch.signals.append(s)

    def trade(self, t: Trade) -> None:
        self._batch.trades.append(t)

    def candle(self, c: Candle) -> None:
        """Record a closed candle (unclosed ones are ignored: the table is insert-or-ignore, so a
        partial candle would stick forever). No-op when ``record_candles`` is False."""
        if self.record_candles and c.closed:
            self._batch.candles.append(c)

    def funding(
        self,
        symbol: str,
        time_ms: int,
        position_side: str,
        amount: Decimal,
        rate: Decimal | None,
    ) -> None:
        if isinstance(position_side, Enum):
            position_side = position_side.value
        self._batch.funding.append(
            {
                "symbol": symbol,
                "time_ms": time_ms,
                "position_side": position_side,
                "amount": amount,
                "rate": rate,
            }
        )

    def event(self, time_ms: int, kind: str, message: str, data: dict | None = None) -> None:
        """Journal a notable fact. ``data`` is serialised now (Decimals as strings), so a later
        change to the dict does not change what was recorded."""
        self._batch.events.append(
            {
                "time_ms": time_ms,
                "kind": kind,
                "message": message,
                "data_json": None if data is None else dumps(data),
            }
        )

    def fills_complete(self, account: str, up_to_ms: int, time_ms: int) -> None:
        """Every fill of ``account`` up to exchange time ``up_to_ms`` is recorded (in this batch or
        before it): a restart need not fetch older ones."""
        self._batch.fill_marks.append({"account": account, "fills_complete_ms": int(up_to_ms), "updated_ms": time_ms})

    def plan(self, account: str, symbol: str, position_side: str, payload: dict | None, time_ms: int) -> None:
        """Record the management plan of an open position (``None``: it is closed; forget it)."""
        if isinstance(position_side, Enum):
            position_side = position_side.value
        self._batch.plans.append({
            "account": account, "symbol": symbol, "position_side": position_side,
            "payload_json": None if payload is None else dumps(payload), "updated_ms": time_ms,
        })

    # ---------------------------------------------------------------- hand-over

    def pending(self) -> int:
        """Records recorded and not yet handed over (a write in flight does not count)."""
        return len(self._batch)

    def take(self) -> JournalBatch:
        """Hand over everything recorded so far; recording continues into a fresh batch."""
        batch, self._batch = self._batch, JournalBatch(self.run_id)
        return batch

    def put_back(self, batch: JournalBatch) -> None:
        """Return ``batch``'s records to the front of the journal (before anything recorded since
        it was taken), keeping arrival order."""
        current = self._batch
        for name in _LISTS:
            older: list[Any] = getattr(batch, name)
            older.extend(getattr(current, name))
            setattr(current, name, older)

    async def flush(self, store: Store) -> int:
        """Write everything pending in one transaction; return the number of records written.

        If the write fails the records go back to the front of the journal and the error is
        re-raised. If the flush is cancelled while the write runs, the write is left to finish
        (it is shielded) and its records are put back only if it fails; the next flush waits for
        it first, so records reach the database in arrival order.
        """
        previous = self._inflight
        if previous is not None and not previous.done():
            try:
                await asyncio.shield(previous)
            except asyncio.CancelledError:
                if not previous.done():
                    raise  # we ourselves were cancelled while waiting
            except Exception:
                pass  # its records were put back by its done-callback
        batch = self.take()
        count = len(batch)
        if count == 0:
            return 0
        task = asyncio.ensure_future(store.write_batch(batch))
        self._inflight = task
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                self._settle(batch, task)
            else:
                task.add_done_callback(lambda t: self._settle(batch, t))
            raise
        except BaseException:
            self._inflight = None
            self.put_back(batch)
            raise
        self._inflight = None
        return count

    def _settle(self, batch: JournalBatch, task: asyncio.Future[None]) -> None:
        """Finish a write whose flush was cancelled: put its records back unless it succeeded."""
        if self._inflight is task:
            self._inflight = None
        if task.cancelled() or task.exception() is not None:
            self.put_back(batch)
