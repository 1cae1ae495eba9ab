"""Intents → exchange orders: entries, exchange-side protection, closes, flatten.

Sans-I/O: the manager never talks to the exchange. It queues commands (``SubmitOrder``,
``SubmitAlgoOrder``, ``CancelOrder``, ``CancelAlgoOrder``) in ``outbox``; a driver (backtest
loop or asyncio runtime) executes them and feeds the results and the exchange's events back.

The rule this module exists for: a position never lives without a resting exchange-side stop.
When the entry fills, a STOP_MARKET ``closePosition`` algo order is sent at once (and a
TAKE_PROFIT_MARKET beside it). If the stop cannot be placed — rejected, or retries on transient
errors exhausted — the position is closed at market (reduce-only) and the reason recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal

from engine.clock import EventClock
from engine.events import ExAlgoUpdate, ExOrderUpdate
from engine.exchange.errors import ExchangeError
from engine.exchange.filters import SymbolRules
from engine.model import (
    ZERO,
    AlgoOrder,
    AlgoOrderRequest,
    AlgoStatus,
    Direction,
    Order,
    OrderIntent,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    PositionMode,
    PositionSide,
    Side,
    WorkingType,
)
from engine.orders.ids import client_id
from engine.orders.status import IllegalTransition, algo_transition, order_transition

log = logging.getLogger(__name__)

PositionKey = tuple[str, PositionSide]
HUNDRED = Decimal(100)


# -- commands for the driver --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    req: OrderRequest


@dataclass(frozen=True, slots=True)
class SubmitAlgoOrder:
    req: AlgoOrderRequest


@dataclass(frozen=True, slots=True)
class CancelOrder:
    symbol: str
    client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelAlgoOrder:
    symbol: str
    client_algo_id: str


ExchangeCommand = SubmitOrder | SubmitAlgoOrder | CancelOrder | CancelAlgoOrder


# -- mutable state ------------------------------------------------------------------------------


@dataclass(slots=True)
class _OrderState:
    req: OrderRequest
    status: OrderStatus
    created_ms: int
    updated_ms: int
    exchange_order_id: int | None = None
    filled_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    reject_reason: str = ""
    attempts: int = 1

    def snapshot(self) -> Order:
        r = self.req
        return Order(
            client_order_id=r.client_order_id,
            exchange_order_id=self.exchange_order_id,
            symbol=r.symbol,
            side=r.side,
            type=r.type,
            quantity=r.quantity,
            price=r.price,
            status=self.status,
            filled_qty=self.filled_qty,
            avg_price=self.avg_price,
            position_side=r.position_side,
            reduce_only=r.reduce_only,
            purpose=r.purpose,
            signal_id=r.signal_id,
            created_ms=self.created_ms,
            updated_ms=self.updated_ms,
            reject_reason=self.reject_reason,
        )


@dataclass(slots=True)
class _AlgoState:
    req: AlgoOrderRequest
    status: AlgoStatus
    created_ms: int
    updated_ms: int
    algo_id: int | None = None
    actual_order_id: int | None = None
    reject_reason: str = ""
    attempts: int = 1

    def snapshot(self) -> AlgoOrder:
        r = self.req
        return AlgoOrder(
            client_algo_id=r.client_algo_id,
            algo_id=self.algo_id,
            symbol=r.symbol,
            side=r.side,
            type=r.type,
            trigger_price=r.trigger_price,
            status=self.status,
            position_side=r.position_side,
            close_position=r.close_position,
            working_type=r.working_type,
            purpose=r.purpose,
            signal_id=r.signal_id,
            actual_order_id=self.actual_order_id,
            created_ms=self.created_ms,
            updated_ms=self.updated_ms,
            reject_reason=self.reject_reason,
        )


@dataclass(slots=True)
class Bracket:
    """The protection plan of one position (entry → stop + take-profit)."""

    key: PositionKey
    direction: Direction
    signal_id: str
    strategy: str
    entry_client_id: str
    stop_pct: Decimal
    take_profit_pct: Decimal | None
    stop_client_id: str | None = None
    take_profit_client_id: str | None = None
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None
    stop_attempt: int = 0
    closing: bool = False
    entry_done: bool = False


@dataclass(slots=True)
class OrderEffects:
    """What the engine must know after the manager handled something."""

    protection_failed: list[tuple[PositionKey, str]] = field(default_factory=list)


class OrderManager:
    def __init__(
        self,
        *,
        namespace: str,
        rules: dict[str, SymbolRules],
        position_mode: PositionMode,
        working_type: WorkingType = WorkingType.MARK_PRICE,
        max_protection_retries: int = 3,
        strict: bool = False,
        journal=None,
        on_order=None,
        on_algo=None,
        clock=None,
    ) -> None:
        self.namespace = namespace
        self.rules = rules
        self.position_mode = position_mode
        self.working_type = working_type
        self.max_protection_retries = max_protection_retries
        self.strict = strict
        self.journal = journal
        self._on_order = on_order
        self._on_algo = on_algo
        self.outbox: list[ExchangeCommand] = []
        self.orders: dict[str, _OrderState] = {}
        self.algos: dict[str, _AlgoState] = {}
        self._by_exchange_id: dict[int, str] = {}
        self._algo_by_actual: dict[int, str] = {}
        self.brackets: dict[PositionKey, Bracket] = {}
        self.pending_entries: dict[PositionKey, str] = {}
        self.position_amounts: dict[PositionKey, Decimal] = {}
        self.effects = OrderEffects()
        self.clock = clock if clock is not None else EventClock()
        self.illegal_transitions = 0

    # -- helpers ------------------------------------------------------------------------------

    def key_for(self, symbol: str, direction: Direction) -> PositionKey:
        if self.position_mode is PositionMode.HEDGE:
            return (symbol, PositionSide.LONG if direction is Direction.LONG else PositionSide.SHORT)
        return (symbol, PositionSide.BOTH)

    def take_outbox(self) -> list[ExchangeCommand]:
        out, self.outbox = self.outbox, []
        return out

    def take_effects(self) -> OrderEffects:
        eff, self.effects = self.effects, OrderEffects()
        return eff

    def _record_order(self, st: _OrderState) -> None:
        snap = st.snapshot()
        if self.journal is not None:
            self.journal.order(snap)
        if self._on_order is not None:
            self._on_order(snap)

    def _record_algo(self, st: _AlgoState) -> None:
        snap = st.snapshot()
        if self.journal is not None:
            self.journal.algo_order(snap)
        if self._on_algo is not None:
            self._on_algo(snap)

    def _submit(self, req: OrderRequest) -> None:
        existing = self.orders.get(req.client_order_id)
        if existing is not None and existing.status.is_open:
            return  # already in flight with this id: never send a second one
        st = _OrderState(req=req, status=OrderStatus.PENDING_NEW, created_ms=self.clock.now_ms(), updated_ms=self.clock.now_ms())
        self.orders[req.client_order_id] = st
        self._record_order(st)
        self.outbox.append(SubmitOrder(req))

    def _submit_algo(self, req: AlgoOrderRequest) -> None:
        existing = self.algos.get(req.client_algo_id)
        if existing is not None and existing.status.is_open:
            return
        st = _AlgoState(req=req, status=AlgoStatus.PENDING_NEW, created_ms=self.clock.now_ms(), updated_ms=self.clock.now_ms())
        self.algos[req.client_algo_id] = st
        self._record_algo(st)
        self.outbox.append(SubmitAlgoOrder(req))

    def _set_order_status(self, st: _OrderState, new: OrderStatus) -> None:
        try:
            st.status = order_transition(st.status, new)
        except IllegalTransition:
            self.illegal_transitions += 1
            if self.strict:
                raise
            log.error("illegal order transition %s -> %s for %s; keeping the exchange's word",
                      st.status.value, new.value, st.req.client_order_id)
            st.status = new

    def _set_algo_status(self, st: _AlgoState, new: AlgoStatus) -> None:
        try:
            st.status = algo_transition(st.status, new)
        except IllegalTransition:
            self.illegal_transitions += 1
            if self.strict:
                raise
            log.error("illegal algo transition %s -> %s for %s; keeping the exchange's word",
                      st.status.value, new.value, st.req.client_algo_id)
            st.status = new

    # -- entries ------------------------------------------------------------------------------

    def open(self, intent: OrderIntent, stop_pct: Decimal, take_profit_pct: Decimal | None) -> str:
        """Queue a MARKET entry for an approved intent; protection follows its first fill."""
        key = (intent.symbol, intent.position_side)
        coid = client_id(self.namespace, intent.signal_id, "entry")
        self.brackets[key] = Bracket(
            key=key,
            direction=intent.direction,
            signal_id=intent.signal_id,
            strategy=intent.strategy,
            entry_client_id=coid,
            stop_pct=stop_pct,
            take_profit_pct=take_profit_pct,
        )
        self.pending_entries[key] = coid
        self._submit(
            OrderRequest(
                client_order_id=coid,
                symbol=intent.symbol,
                side=intent.direction.entry_side,
                type=OrderType.MARKET,
                quantity=intent.quantity,
                purpose=OrderPurpose.ENTRY,
                position_side=intent.position_side,
                signal_id=intent.signal_id,
            )
        )
        return coid

    # -- protection ---------------------------------------------------------------------------

    def _protect(self, br: Bracket, entry_price: Decimal) -> None:
        """Place the stop (and take-profit) for a bracket whose entry has (partly) filled."""
        if br.closing:
            return
        rules = self.rules[br.key[0]]
        long = br.direction is Direction.LONG
        exit_side = br.direction.exit_side
        if br.stop_client_id is None or not self._algo_alive(br.stop_client_id):
            f = br.stop_pct / HUNDRED
            raw = entry_price * (1 - f) if long else entry_price * (1 + f)
            # round the stop outward by at most one tick (never inside the requested distance)
            stop = rules.round_price_down(raw) if long else rules.round_price_up(raw)
            br.stop_price = stop
            br.stop_client_id = client_id(self.namespace, br.signal_id, "stop_loss", br.stop_attempt)
            self._submit_algo(self._protective(br, OrderType.STOP_MARKET, exit_side, stop, OrderPurpose.STOP_LOSS,
                                               br.stop_client_id))
        if br.take_profit_pct is not None and br.take_profit_client_id is None:
            f = br.take_profit_pct / HUNDRED
            raw = entry_price * (1 + f) if long else entry_price * (1 - f)
            tp = rules.round_price_up(raw) if long else rules.round_price_down(raw)
            br.take_profit_price = tp
            br.take_profit_client_id = client_id(self.namespace, br.signal_id, "take_profit")
            self._submit_algo(self._protective(br, OrderType.TAKE_PROFIT_MARKET, exit_side, tp,
                                               OrderPurpose.TAKE_PROFIT, br.take_profit_client_id))

    def _protective(self, br: Bracket, otype: OrderType, side: Side, trigger: Decimal, purpose: OrderPurpose,
                    caid: str) -> AlgoOrderRequest:
        return AlgoOrderRequest(
            client_algo_id=caid,
            symbol=br.key[0],
            side=side,
            type=otype,
            trigger_price=trigger,
            purpose=purpose,
            position_side=br.key[1],
            close_position=True,
            working_type=self.working_type,
            signal_id=br.signal_id,
        )

    def _algo_alive(self, caid: str) -> bool:
        st = self.algos.get(caid)
        return st is not None and st.status in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW, AlgoStatus.TRIGGERING,
                                                 AlgoStatus.TRIGGERED)

    def is_protected(self, key: PositionKey) -> bool:
        """True when the position's stop is acknowledged by the exchange (or has triggered)."""
        br = self.brackets.get(key)
        if br is None or br.stop_client_id is None:
            return False
        st = self.algos.get(br.stop_client_id)
        return st is not None and st.status in (AlgoStatus.NEW, AlgoStatus.TRIGGERING, AlgoStatus.TRIGGERED,
                                                 AlgoStatus.FINISHED)

    def _protection_failed(self, key: PositionKey, reason: str) -> None:
        br = self.brackets.get(key)
        self.effects.protection_failed.append((key, reason))
        log.error("no exchange-side stop for %s %s: %s — closing at market", key[0], key[1].value, reason)
        if br is not None:
            br.closing = True
            if br.take_profit_client_id and self._algo_alive(br.take_profit_client_id):
                self.outbox.append(CancelAlgoOrder(key[0], br.take_profit_client_id))
        self.close_position(key, OrderPurpose.EMERGENCY_CLOSE)

    # -- closes -------------------------------------------------------------------------------

    def close_position(self, key: PositionKey, purpose: OrderPurpose, amount: Decimal | None = None) -> str | None:
        """Close a position at market, reduce-only (one-way) or on its side (hedge)."""
        symbol, ps = key
        amt = amount if amount is not None else self.position_amounts.get(key, ZERO)
        if amt == 0:
            br = self.brackets.get(key)
            entry = self.orders.get(br.entry_client_id) if br else None
            if entry is not None and entry.filled_qty > 0:
                amt = entry.filled_qty if br.direction is Direction.LONG else -entry.filled_qty
        if amt == 0:
            return None
        if ps is PositionSide.SHORT or (ps is PositionSide.BOTH and amt < 0):
            side = Side.BUY
        else:
            side = Side.SELL
        br = self.brackets.get(key)
        base = br.signal_id if br else f"{symbol}:{ps.value}"
        attempt = 0
        coid = client_id(self.namespace, base, purpose.value, attempt)
        while coid in self.orders and not self.orders[coid].status.is_open and attempt < 9:
            attempt += 1
            coid = client_id(self.namespace, base, purpose.value, attempt)
        if coid in self.orders and self.orders[coid].status.is_open:
            return coid  # a close is already in flight
        self._submit(
            OrderRequest(
                client_order_id=coid,
                symbol=symbol,
                side=side,
                type=OrderType.MARKET,
                quantity=abs(amt),
                purpose=purpose,
                position_side=ps,
                reduce_only=ps is PositionSide.BOTH,
                signal_id=br.signal_id if br else None,
            )
        )
        return coid

    def cancel_all(self, symbol: str | None = None) -> None:
        for caid, st in self.algos.items():
            if st.status in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW) and (symbol is None or st.req.symbol == symbol):
                self.outbox.append(CancelAlgoOrder(st.req.symbol, caid))
        for coid, st in self.orders.items():
            if st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) and (
                symbol is None or st.req.symbol == symbol
            ) and st.req.type is not OrderType.MARKET:
                self.outbox.append(CancelOrder(st.req.symbol, coid))

    def flatten_all(self, purpose: OrderPurpose = OrderPurpose.FLATTEN) -> None:
        """Cancel every open and conditional order, then close every position at market."""
        self.cancel_all()
        for br in self.brackets.values():
            br.closing = True
        for key, amt in list(self.position_amounts.items()):
            if amt != 0:
                self.close_position(key, purpose, amt)

    # -- results of commands ------------------------------------------------------------------

    def on_order_accepted(self, coid: str, exchange_order_id: int) -> None:
        st = self.orders.get(coid)
        if st is None:
            return
        st.exchange_order_id = exchange_order_id
        self._by_exchange_id[exchange_order_id] = coid
        if st.status is OrderStatus.PENDING_NEW:
            self._set_order_status(st, OrderStatus.NEW)
            st.updated_ms = self.clock.now_ms()
            self._record_order(st)

    def on_order_rejected(self, coid: str, err: ExchangeError) -> None:
        st = self.orders.get(coid)
        if st is None:
            return
        st.reject_reason = f"{err.code}: {err.msg}"
        st.updated_ms = self.clock.now_ms()
        if err.retryable and st.attempts <= self.max_protection_retries and st.req.purpose is not OrderPurpose.ENTRY:
            st.attempts += 1
            self.outbox.append(SubmitOrder(st.req))  # same client id: cannot double-execute
            return
        self._set_order_status(st, OrderStatus.REJECTED)
        self._record_order(st)
        key = (st.req.symbol, st.req.position_side)
        if st.req.purpose is OrderPurpose.ENTRY:
            if self.pending_entries.get(key) == coid:
                del self.pending_entries[key]
            br = self.brackets.get(key)
            if br is not None and br.entry_client_id == coid and self.position_amounts.get(key, ZERO) == 0:
                del self.brackets[key]
        elif st.req.purpose in (OrderPurpose.EMERGENCY_CLOSE, OrderPurpose.FLATTEN, OrderPurpose.END_OF_DATA):
            if err.code == -2022:  # reduce-only rejected: already flat
                return
            log.critical("close order %s for %s rejected: %s", coid, st.req.symbol, err)

    def on_algo_accepted(self, caid: str, algo_id: int) -> None:
        st = self.algos.get(caid)
        if st is None:
            return
        st.algo_id = algo_id
        if st.status is AlgoStatus.PENDING_NEW:
            self._set_algo_status(st, AlgoStatus.NEW)
            st.updated_ms = self.clock.now_ms()
            self._record_algo(st)

    def on_algo_rejected(self, caid: str, err: ExchangeError) -> None:
        st = self.algos.get(caid)
        if st is None:
            return
        st.reject_reason = f"{err.code}: {err.msg}"
        st.updated_ms = self.clock.now_ms()
        key = (st.req.symbol, st.req.position_side)
        is_stop = st.req.purpose is OrderPurpose.STOP_LOSS
        if err.retryable and st.attempts <= self.max_protection_retries:
            st.attempts += 1
            self.outbox.append(SubmitAlgoOrder(st.req))
            return
        self._set_algo_status(st, AlgoStatus.REJECTED)
        self._record_algo(st)
        if is_stop:
            self._protection_failed(key, f"stop order rejected ({err.code}: {err.msg})")
        else:
            log.warning("take-profit for %s rejected: %s (stop still protects the position)", key[0], err)

    def on_cancel_failed(self, symbol: str, client_id_: str, err: ExchangeError, algo: bool) -> None:
        if err.code in (-2011, -2013):
            return  # already gone (filled, triggered or cancelled): the events will say which
        log.warning("cancel of %s on %s failed: %s", client_id_, symbol, err)

    # -- exchange events ----------------------------------------------------------------------

    def purpose_of(self, client_order_id: str, exchange_order_id: int, order_type: OrderType) -> OrderPurpose:
        st = self.orders.get(client_order_id)
        if st is not None:
            return st.req.purpose
        a = self.algos.get(client_order_id)  # a triggered algo's child may carry the clientAlgoId
        if a is None:
            caid = self._algo_by_actual.get(exchange_order_id)
            a = self.algos.get(caid) if caid else None
        if a is not None:
            return a.req.purpose
        if order_type is OrderType.STOP_MARKET:
            return OrderPurpose.STOP_LOSS
        if order_type is OrderType.TAKE_PROFIT_MARKET:
            return OrderPurpose.TAKE_PROFIT
        return OrderPurpose.EXTERNAL

    def on_order_update(self, ev: ExOrderUpdate) -> None:
        st = self.orders.get(ev.client_order_id)
        if st is None:
            coid = self._by_exchange_id.get(ev.exchange_order_id)
            st = self.orders.get(coid) if coid else None
        if st is None:
            return  # a triggered algo child or an external order: fills are tracked by the engine
        if st.exchange_order_id is None:
            st.exchange_order_id = ev.exchange_order_id
            self._by_exchange_id[ev.exchange_order_id] = st.req.client_order_id
        if ev.status is OrderStatus.PARTIALLY_FILLED and st.status is OrderStatus.PARTIALLY_FILLED and ev.filled_qty <= st.filled_qty:
            return  # duplicate/reordered partial fill
        if not st.status.is_open and ev.status is not st.status:
            # a late NEW after FILLED (reordered events) must not reopen the order
            if ev.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                return
        self._set_order_status(st, ev.status)
        if ev.filled_qty > st.filled_qty:
            st.filled_qty = ev.filled_qty
            st.avg_price = ev.avg_price
        st.updated_ms = ev.time_ms
        self._record_order(st)
        key = (st.req.symbol, st.req.position_side)
        if st.req.purpose is OrderPurpose.ENTRY:
            br = self.brackets.get(key)
            if st.filled_qty > 0 and br is not None and br.entry_client_id == st.req.client_order_id:
                self._protect(br, st.avg_price if st.avg_price > 0 else (ev.fill.price if ev.fill else ZERO))
            if not st.status.is_open:
                if self.pending_entries.get(key) == st.req.client_order_id:
                    del self.pending_entries[key]
                if br is not None:
                    br.entry_done = True
                    if st.filled_qty == 0 and br.entry_client_id == st.req.client_order_id:
                        del self.brackets[key]

    def on_algo_update(self, ev: ExAlgoUpdate) -> None:
        st = self.algos.get(ev.client_algo_id)
        if st is None:
            return
        if st.algo_id is None:
            st.algo_id = ev.algo_id
        if ev.actual_order_id is not None:
            st.actual_order_id = ev.actual_order_id
            self._algo_by_actual[ev.actual_order_id] = ev.client_algo_id
        if not st.status.is_open and ev.status in (AlgoStatus.NEW,):
            return  # late NEW after a terminal state
        self._set_algo_status(st, ev.status)
        st.updated_ms = ev.time_ms
        if ev.reason:
            st.reject_reason = ev.reason
        self._record_algo(st)
        key = (st.req.symbol, st.req.position_side)
        if st.req.purpose is OrderPurpose.STOP_LOSS and ev.status in (AlgoStatus.REJECTED, AlgoStatus.EXPIRED):
            if self.position_amounts.get(key, ZERO) != 0:
                self._protection_failed(key, f"stop order {ev.status.value.lower()} ({ev.reason or 'no reason given'})")

    def on_position(self, key: PositionKey, amount: Decimal) -> None:
        """The exchange reported this position's amount (ACCOUNT_UPDATE or a positions query)."""
        prev = self.position_amounts.get(key, ZERO)
        if amount == 0:
            self.position_amounts.pop(key, None)
        else:
            self.position_amounts[key] = amount
        if amount == 0 and prev != 0:
            # flat: the remaining protective orders of this position must not linger
            br = self.brackets.pop(key, None)
            if br is not None:
                for caid in (br.stop_client_id, br.take_profit_client_id):
                    if caid and self.algos.get(caid) and self.algos[caid].status in (AlgoStatus.PENDING_NEW,
                                                                                      AlgoStatus.NEW):
                        self.outbox.append(CancelAlgoOrder(key[0], caid))
        elif amount != 0:
            br = self.brackets.get(key)
            if br is None:
                return  # not ours (external/adopted positions are a reconciliation concern)
            if not br.closing and (br.stop_client_id is None or not self._algo_alive(br.stop_client_id)):
                if br.stop_client_id is not None:
                    br.stop_attempt += 1  # the old stop is dead: a new one needs a new id
                    br.stop_client_id = None
                entry = self.orders.get(br.entry_client_id)
                price = entry.avg_price if entry is not None and entry.avg_price > 0 else None
                if price is not None:
                    self._protect(br, price)

    # -- views ----------------------------------------------------------------------------------

    def open_orders(self) -> list[Order]:
        return [st.snapshot() for st in self.orders.values() if st.status.is_open]

    def open_algo_orders(self) -> list[AlgoOrder]:
        return [st.snapshot() for st in self.algos.values() if st.status.is_open]
