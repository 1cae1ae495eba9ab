"""Round trips built from fills: entry and exit reasons, fees, funding, realised PnL, MFE and MAE.

A trade opens with the first fill on a flat (symbol, position side) and closes when fills bring
it back to flat. Fees and realised PnL come from the fills themselves and funding from the
exchange's FUNDING_FEE balance changes, so the sum of all trades' net PnL equals the wallet's
change exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.model import ZERO, Direction, ExitReason, Fill, OrderPurpose, PositionSide, Side, Trade

PURPOSE_TO_EXIT = {
    OrderPurpose.STOP_LOSS: ExitReason.STOP_LOSS,
    OrderPurpose.BREAK_EVEN_STOP: ExitReason.BREAK_EVEN_STOP,
    OrderPurpose.TRAILING_STOP: ExitReason.TRAILING,
    OrderPurpose.TAKE_PROFIT_1: ExitReason.TAKE_PROFIT_1,
    OrderPurpose.TAKE_PROFIT: ExitReason.TAKE_PROFIT_2,
    OrderPurpose.BREAK_EVEN_TIMEOUT: ExitReason.BREAK_EVEN_TIMEOUT,
    OrderPurpose.EMERGENCY_CLOSE: ExitReason.NO_PROTECTION,
    OrderPurpose.FLATTEN: ExitReason.FLATTEN,
    OrderPurpose.END_OF_DATA: ExitReason.END_OF_DATA,
    OrderPurpose.EXTERNAL: ExitReason.MANUAL,
}


@dataclass(slots=True)
class _Open:
    trade_id: str
    signal_id: str | None
    strategy: str
    symbol: str
    direction: Direction
    position_side: PositionSide
    entry_time_ms: int
    entry_reason: str
    amount: Decimal  # signed
    entry_cost: Decimal  # Σ qty × price of the entry fills
    entry_qty: Decimal
    exit_cost: Decimal
    exit_qty: Decimal
    fees: Decimal
    funding: Decimal
    realized: Decimal
    mfe: Decimal
    mae: Decimal
    high: Decimal = ZERO  # highest price seen while open (seeded with the entry fill price)
    low: Decimal = ZERO  # lowest price seen while open
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    last_exit_time_ms: int = 0
    last_exit_reason: ExitReason | None = None

    @property
    def entry_price(self) -> Decimal:
        return self.entry_cost / self.entry_qty if self.entry_qty else ZERO

    def excursions(self) -> tuple[Decimal, Decimal]:
        """(MFE, MAE) in quote currency: best/worst price excursion since entry × entry quantity."""
        ep, q = self.entry_price, self.entry_qty
        hi, lo = self.high, self.low
        if self.direction is Direction.LONG:
            fav, adv = (hi - ep) * q, (ep - lo) * q
        else:
            fav, adv = (ep - lo) * q, (hi - ep) * q
        return max(fav, self.mfe, ZERO), max(adv, self.mae, ZERO)

    def to_trade(self, closed: bool) -> Trade:
        mfe, mae = self.excursions()
        return Trade(
            trade_id=self.trade_id,
            signal_id=self.signal_id,
            strategy=self.strategy,
            symbol=self.symbol,
            direction=self.direction,
            position_side=self.position_side,
            entry_time_ms=self.entry_time_ms,
            entry_price=self.entry_price,
            quantity=self.entry_qty,
            exit_time_ms=self.last_exit_time_ms if closed else None,
            exit_price=(self.exit_cost / self.exit_qty) if closed and self.exit_qty else None,
            entry_reason=self.entry_reason,
            exit_reason=self.last_exit_reason if closed else None,
            fees=self.fees,
            funding=self.funding,
            realized_pnl=self.realized,
            mfe=mfe,
            mae=mae,
            stop_price=self.stop_price,
            take_profit_price=self.take_profit_price,
        )


class TradeBook:
    def __init__(self, on_open=None, on_close=None, on_update=None) -> None:
        self.open: dict[tuple[str, PositionSide], _Open] = {}
        self.open_by_symbol: dict[str, list[_Open]] = {}
        self.closed: list[Trade] = []
        self._seq = 0
        self._on_open = on_open
        self._on_close = on_close
        self._on_update = on_update
        self.unattributed_funding = ZERO

    def _new(self, fill: Fill, signed_qty: Decimal, meta: dict) -> _Open:
        self._seq += 1
        direction = Direction.LONG if signed_qty > 0 else Direction.SHORT
        t = _Open(
            trade_id=meta.get("trade_id") or f"{fill.symbol}-{fill.time_ms}-{self._seq}",
            signal_id=meta.get("signal_id"),
            strategy=meta.get("strategy", ""),
            symbol=fill.symbol,
            direction=direction,
            position_side=fill.position_side,
            entry_time_ms=fill.time_ms,
            entry_reason=meta.get("entry_reason", ""),
            amount=ZERO,
            entry_cost=ZERO,
            entry_qty=ZERO,
            exit_cost=ZERO,
            exit_qty=ZERO,
            fees=ZERO,
            funding=ZERO,
            realized=ZERO,
            mfe=ZERO,
            mae=ZERO,
            high=fill.price,
            low=fill.price,
        )
        key = (fill.symbol, fill.position_side)
        self.open[key] = t
        self.open_by_symbol.setdefault(fill.symbol, []).append(t)
        return t

    def _close(self, key: tuple[str, PositionSide], t: _Open) -> Trade:
        del self.open[key]
        lst = self.open_by_symbol.get(t.symbol)
        if lst is not None:
            lst.remove(t)
            if not lst:
                del self.open_by_symbol[t.symbol]
        trade = t.to_trade(closed=True)
        self.closed.append(trade)
        if self._on_close:
            self._on_close(trade)
        return trade

    def on_fill(self, fill: Fill, purpose: OrderPurpose, meta: dict | None = None) -> None:
        """Apply one fill. ``meta`` (signal id, strategy, entry reason) is used when it opens a trade."""
        meta = meta or {}
        key = (fill.symbol, fill.position_side)
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        t = self.open.get(key)
        if t is None:
            t = self._new(fill, signed, meta)
            if self._on_open:
                self._on_open(t.to_trade(closed=False))
        remaining = signed
        # portion that reduces the current position
        if t.amount != 0 and (t.amount > 0) != (signed > 0):
            closing = min(abs(signed), abs(t.amount))
            remaining = signed - (closing if signed > 0 else -closing)
            # a flip's fee is split by quantity; the two parts add up to the fill's fee exactly
            flip_fee = fill.commission * abs(remaining) / abs(signed) if remaining else ZERO
            t.exit_cost += closing * fill.price
            t.exit_qty += closing
            t.amount += closing if signed > 0 else -closing
            t.fees += fill.commission - flip_fee
            t.realized += fill.realized_pnl
            t.last_exit_time_ms = fill.time_ms
            if fill.order_type.value == "LIQUIDATION" or fill.client_order_id.startswith("autoclose"):
                t.last_exit_reason = ExitReason.LIQUIDATION
            else:
                t.last_exit_reason = PURPOSE_TO_EXIT.get(purpose, ExitReason.MANUAL)
            if t.amount != 0:
                if self._on_update:
                    self._on_update(t.to_trade(closed=False))
                return
            strategy = t.strategy
            self._close(key, t)
            if remaining == 0:
                return
            # one-way flip: the remainder opens a new trade
            t = self._new(fill, remaining, {"entry_reason": "flip", "strategy": strategy})
            t.entry_cost += abs(remaining) * fill.price
            t.entry_qty += abs(remaining)
            t.amount = remaining
            t.fees += flip_fee
            if self._on_open:
                self._on_open(t.to_trade(closed=False))
            return
        t.entry_cost += abs(remaining) * fill.price
        t.entry_qty += abs(remaining)
        t.amount += remaining
        t.fees += fill.commission
        if fill.price > t.high:
            t.high = fill.price
        if fill.price < t.low:
            t.low = fill.price
        t.realized += fill.realized_pnl
        if self._on_update:
            self._on_update(t.to_trade(closed=False))

    def restore(self, t: _Open) -> None:
        """Take over a trade an earlier process left open (a restart continues it)."""
        key = (t.symbol, t.position_side)
        if key in self.open:
            return
        self.open[key] = t
        self.open_by_symbol.setdefault(t.symbol, []).append(t)

    def on_funding(self, symbol: str, position_side: PositionSide | None, amount: Decimal) -> bool:
        """Attribute a funding payment; returns False if no open trade could take it."""
        if position_side is not None:
            t = self.open.get((symbol, position_side))
            if t is not None:
                t.funding += amount
                return True
        lst = self.open_by_symbol.get(symbol)
        if lst:
            lst[0].funding += amount
            return True
        self.unattributed_funding += amount
        return False

    def set_protection(self, symbol: str, position_side: PositionSide, stop: Decimal | None,
                       take_profit: Decimal | None) -> None:
        t = self.open.get((symbol, position_side))
        if t is not None:
            t.stop_price = stop
            t.take_profit_price = take_profit

    def on_candle(self, symbol: str, high: Decimal, low: Decimal) -> None:
        """Track the price extremes of open trades on this symbol (for MFE/MAE)."""
        for t in self.open_by_symbol.get(symbol, ()):
            if high > t.high:
                t.high = high
            if low < t.low:
                t.low = low

    def snapshot_open(self) -> list[Trade]:
        return [t.to_trade(closed=False) for t in self.open.values()]

    def all_trades(self) -> list[Trade]:
        return self.closed + self.snapshot_open()
