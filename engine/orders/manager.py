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
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from engine.clock import EventClock
from engine.events import ExAlgoUpdate, ExOrderUpdate
from engine.exchange.errors import ExchangeError, RateLimited
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
from engine.orders.ids import client_id, role_of
from engine.orders.status import IllegalTransition, algo_transition, order_transition

log = logging.getLogger(__name__)

PositionKey = tuple[str, PositionSide]

ROLE_PURPOSE = {
    "entry": OrderPurpose.ENTRY,
    "stop_loss": OrderPurpose.STOP_LOSS,
    "take_profit": OrderPurpose.TAKE_PROFIT,
    "take_profit_1": OrderPurpose.TAKE_PROFIT_1,
    "trailing_stop": OrderPurpose.TRAILING_STOP,
    "break_even_timeout": OrderPurpose.BREAK_EVEN_TIMEOUT,
    "break_even_stop": OrderPurpose.BREAK_EVEN_STOP,
    "emergency_close": OrderPurpose.EMERGENCY_CLOSE,
    "flatten": OrderPurpose.FLATTEN,
    "end_of_data": OrderPurpose.END_OF_DATA,
}
"""The purpose of an order of ours, from the role its client id encodes (``ids.ROLE_CODES``)."""
HUNDRED = Decimal(100)
TEN_THOUSAND = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class ExitPolicy:
    """How a position is managed after entry. Percentages are of price (3 = 3%)."""

    take_profit_1_pct: Decimal | None = None
    """TP1 distance; None = no partial take-profit."""
    take_profit_1_close_pct: Decimal = Decimal(50)
    break_even_trigger_pct: Decimal = Decimal(0)
    break_even_trigger_r: Decimal = Decimal(0)
    """Trigger as a multiple of the stop distance, when ``break_even_trigger_pct`` is 0."""
    break_even_timeout_ms: int = 0
    """Close at market when break-even is not reached this long after the entry; 0 = never."""
    fee_rate: Decimal = Decimal("0.0005")
    """Taker fee rate: the break-even stop sits at entry plus the entry's and the exit's fee."""
    trailing: str = "off"
    """``off`` | ``exchange`` (TRAILING_STOP_MARKET) | ``engine`` (the stop follows the best price)."""
    trailing_activation_pct: Decimal = Decimal(2)
    trailing_callback_pct: Decimal = Decimal(1)

    @property
    def break_even(self) -> bool:
        return bool(self.break_even_trigger_pct or self.break_even_trigger_r)


@dataclass(frozen=True, slots=True)
class EntryPolicy:
    """How entries are sent."""

    order: str = "market"
    """``market`` | ``limit`` (GTC at the signal price less ``limit_offset_bps``, cancelled after ``ttl_ms``)."""
    limit_offset_bps: Decimal = Decimal(0)
    ttl_ms: int = 120_000
    split: str = "off"
    """``off`` | ``twap`` (equal slices) | ``vwap`` (slices weighted by the recent volume profile)."""
    split_min_notional: Decimal = Decimal(20_000)
    split_slices: int = 5
    split_duration_ms: int = 300_000
    position_wait_ms: int = 5_000
    """After an entry fill, how long to wait for the exchange to report the position."""
    retry_attempts: int = 3
    retry_backoff_ms: int = 500


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
    unknown: bool = False  # sent; whether the exchange has it is unknown (resolved by client id)
    refused: bool = False  # its last send was certainly not applied; waiting to be resent

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
    """The management plan of one position: entry (maybe sliced), stop, take-profits, timers."""

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
    stop_purpose: OrderPurpose = OrderPurpose.STOP_LOSS
    closing: bool = False
    entry_done: bool = False
    entry_ids: list[str] = field(default_factory=list)
    """Every entry order (one, or one per slice)."""
    slices: list[tuple[int, Decimal]] = field(default_factory=list)
    """Slices still to send: (due exchange ms, quantity)."""
    entry_deadline_ms: int | None = None
    """A resting limit entry is cancelled at this exchange time."""
    entry_price: Decimal = ZERO
    """Average fill price of the entry so far."""
    filled_qty: Decimal = ZERO
    opened_ms: int | None = None
    await_position_until: int | None = None
    """Protection waits for the exchange to report the position until this time."""
    protection_placed: bool = False
    targets_placed: bool = False
    """Take-profits (and an exchange trailing stop) placed for the completed entry."""
    tp1_client_id: str | None = None
    tp1_price: Decimal | None = None
    tp1_qty: Decimal | None = None
    tp1_done: bool = False
    trail_client_id: str | None = None
    be_trigger: Decimal | None = None
    be_price: Decimal | None = None
    be_deadline_ms: int | None = None
    be_reached: bool = False
    trail_active: bool = False
    trail_extreme: Decimal | None = None
    trail_exchange_active: bool = False
    """The exchange trailing stop (``trail_client_id``) reported its activation (ALGO_UPDATE ``ia``)."""
    pending_stop: tuple[str, Decimal, OrderPurpose] | None = None
    """A replacement stop sent but not yet acknowledged: (client algo id, trigger, purpose)."""

    @property
    def long(self) -> bool:
        return self.direction is Direction.LONG

    @property
    def trailing_activated(self) -> bool | None:
        """For the console: None without an exchange trailing stop; False while it waits for its
        activation price; True once it follows price."""
        return None if self.trail_client_id is None else self.trail_exchange_active


@dataclass(slots=True)
class OrderEffects:
    """What the engine must know after the manager handled something."""

    protection_failed: list[tuple[PositionKey, str]] = field(default_factory=list)


MAX_RETRY_BACKOFF_MS = 30_000
"""Resends of protective and closing orders wait at most this long between tries."""

CLOSE_PURPOSES = frozenset({OrderPurpose.EMERGENCY_CLOSE, OrderPurpose.FLATTEN, OrderPurpose.END_OF_DATA,
                            OrderPurpose.BREAK_EVEN_TIMEOUT})
"""Market closes the engine decided on: resent until they go through."""
STOP_PURPOSES = frozenset({OrderPurpose.STOP_LOSS, OrderPurpose.BREAK_EVEN_STOP, OrderPurpose.TRAILING_STOP})
"""Conditional orders that protect a position (a stop, moved or trailing)."""


def _wait_and_resend(err: ExchangeError) -> bool:
    """The exchange certainly did not apply the request and will take it later: an overload,
    a timestamp outside recvWindow (-1021; the clock is re-synced), a 429 or a 418 ban."""
    return err.retryable or isinstance(err, RateLimited) or err.code in (-1021, -5028)


def stale_entry_orders(open_orders: list[dict], *, now_ms: int, ttl_ms: int) -> list[tuple[str, str]]:
    """Entry orders of ours (by client id) still open on the exchange past their TTL — left by an
    earlier run that could not cancel them (note 000: clean stale orders before trading).
    ``open_orders`` are ``GET /fapi/v1/openOrders`` rows. Conditional orders are not touched here:
    a resting stop may be protecting a position (reconciliation decides about those)."""
    out = []
    for o in open_orders:
        coid = str(o.get("clientOrderId", ""))
        if role_of(coid) != "entry":
            continue
        placed = int(o.get("time") or o.get("updateTime") or 0)
        if placed + ttl_ms <= now_ms:
            out.append((str(o.get("symbol", "")), coid))
    return out


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
        exits: ExitPolicy | None = None,
        entries: EntryPolicy | None = None,
        volume_profile=None,
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
        self.exits = exits or ExitPolicy()
        self.entries = entries or EntryPolicy(retry_attempts=max_protection_retries, retry_backoff_ms=0)
        self.volume_profile = volume_profile
        """``(symbol, start_ms, slices, slice_ms) -> weights`` for VWAP slicing (None = equal)."""
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
        self._retries: list[tuple[int, ExchangeCommand]] = []
        """Commands waiting out a backoff: (due exchange ms, command)."""
        self._next_due_ms: int | None = None
        """The earliest time anything time-driven (timers, slices, TTLs, retries) is due."""
        self._by_symbol: dict[str, list[Bracket]] = {}

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

    def _due(self, when_ms: int | None) -> None:
        if when_ms is not None and (self._next_due_ms is None or when_ms < self._next_due_ms):
            self._next_due_ms = when_ms

    def _index(self, br: Bracket) -> None:
        self._by_symbol.setdefault(br.key[0], []).append(br)

    def _drop_bracket(self, key: PositionKey) -> Bracket | None:
        br = self.brackets.pop(key, None)
        if br is not None:
            lst = self._by_symbol.get(key[0])
            if lst is not None and br in lst:
                lst.remove(br)
                if not lst:
                    del self._by_symbol[key[0]]
        return br

    # -- entries ------------------------------------------------------------------------------

    def open(self, intent: OrderIntent, stop_pct: Decimal, take_profit_pct: Decimal | None) -> str:
        """Queue the entry for an approved intent; protection follows its first fill.

        MARKET by default; a LIMIT (GTC, cancelled after the TTL) when the entry policy says so;
        sliced (TWAP/VWAP) when the notional is at least ``split_min_notional``.
        """
        key = (intent.symbol, intent.position_side)
        coid = client_id(self.namespace, intent.signal_id, "entry")
        br = Bracket(
            key=key,
            direction=intent.direction,
            signal_id=intent.signal_id,
            strategy=intent.strategy,
            entry_client_id=coid,
            stop_pct=stop_pct,
            take_profit_pct=take_profit_pct,
        )
        self.brackets[key] = br
        self._index(br)
        self.pending_entries[key] = coid
        pol = self.entries
        slices = self._plan_slices(intent) if pol.split != "off" and intent.notional >= pol.split_min_notional else None
        if slices:
            br.slices = slices
            log.info("%s entry of %s split %s into %d slices over %ds", intent.symbol, intent.quantity,
                     pol.split.upper(), len(slices), pol.split_duration_ms // 1000)
            self._send_due_slices(br, self.clock.now_ms())
            return coid
        self._send_entry(br, coid, intent.quantity, limit_price=self._limit_price(intent))
        return coid

    def _limit_price(self, intent: OrderIntent) -> Decimal | None:
        if self.entries.order != "limit":
            return None
        rules = self.rules[intent.symbol]
        off = self.entries.limit_offset_bps / TEN_THOUSAND
        if intent.direction is Direction.LONG:
            return rules.round_price_down(intent.reference_price * (1 - off))
        return rules.round_price_up(intent.reference_price * (1 + off))

    def _send_entry(self, br: Bracket, coid: str, qty: Decimal, limit_price: Decimal | None = None) -> None:
        br.entry_ids.append(coid)
        self.pending_entries[br.key] = coid
        if limit_price is not None:
            br.entry_deadline_ms = self.clock.now_ms() + self.entries.ttl_ms
            self._due(br.entry_deadline_ms)
        self._submit(
            OrderRequest(
                client_order_id=coid,
                symbol=br.key[0],
                side=br.direction.entry_side,
                type=OrderType.LIMIT if limit_price is not None else OrderType.MARKET,
                quantity=qty,
                purpose=OrderPurpose.ENTRY,
                position_side=br.key[1],
                price=limit_price,
                time_in_force="GTC" if limit_price is not None else None,
                signal_id=br.signal_id,
            )
        )

    def _plan_slices(self, intent: OrderIntent) -> list[tuple[int, Decimal]]:
        """Split the intent's quantity into timed slices (TWAP equal, VWAP by volume profile).

        Every slice is a whole number of steps and at least the symbol's minimum quantity and
        notional; a slice that would be smaller is merged into the next one."""
        pol = self.entries
        n = pol.split_slices
        rules = self.rules[intent.symbol]
        now = self.clock.now_ms()
        step_ms = pol.split_duration_ms // n
        weights: list[float] | None = None
        if pol.split == "vwap" and self.volume_profile is not None:
            weights = self.volume_profile(intent.symbol, now, n, step_ms)
        if not weights or len(weights) != n or sum(weights) <= 0:
            weights = [1.0] * n
        total_w = sum(weights)
        qty = intent.quantity
        price = intent.reference_price
        out: list[tuple[int, Decimal]] = []
        given = ZERO
        carry = ZERO
        for i, w in enumerate(weights):
            if i == n - 1:
                q = qty - given
            else:
                # multiply before dividing: qty × (1/3) as a float share rounds 0.01 down to 0.009
                q = rules.round_qty(qty * Decimal(repr(w)) / Decimal(repr(total_w)), market=True) + carry
                carry = ZERO
                if q <= 0 or not rules.min_qty_ok(q) or q * price < rules.min_notional:
                    carry = q  # too small to send on its own: merged into the next slice
                    continue
                if given + q > qty:
                    q = qty - given
            if q > 0:
                out.append((now + i * step_ms, q))
                given += q
        if not out:
            return []
        return out if len(out) > 1 else []

    def _send_due_slices(self, br: Bracket, now_ms: int) -> None:
        while br.slices and br.slices[0][0] <= now_ms and not br.closing:
            _, q = br.slices.pop(0)
            idx = len(br.entry_ids)
            self._send_entry(br, client_id(self.namespace, br.signal_id, "entry", idx), q)
        if br.slices:
            self._due(br.slices[0][0])

    def _entry_open(self, br: Bracket) -> bool:
        """Whether any entry order of the bracket is still working (or slices are left)."""
        if br.slices:
            return True
        return any(self.orders[c].status.is_open for c in br.entry_ids if c in self.orders)

    def _entry_fills(self, br: Bracket) -> tuple[Decimal, Decimal]:
        """(filled quantity, average price) over all entry orders of the bracket."""
        qty = cost = ZERO
        for c in br.entry_ids:
            st = self.orders.get(c)
            if st is not None and st.filled_qty > 0:
                qty += st.filled_qty
                cost += st.filled_qty * st.avg_price
        return qty, (cost / qty if qty else ZERO)

    # -- protection ---------------------------------------------------------------------------

    def _protect(self, br: Bracket, entry_price: Decimal) -> None:
        """Place the stop for a bracket whose entry has (partly) filled; the take-profits (and an
        exchange trailing stop) follow once the whole entry is in."""
        if br.closing:
            return
        rules = self.rules[br.key[0]]
        long = br.long
        exit_side = br.direction.exit_side
        br.protection_placed = True
        if br.stop_client_id is None or not self._algo_alive(br.stop_client_id):
            if br.stop_price is None or br.stop_purpose is OrderPurpose.STOP_LOSS:
                f = br.stop_pct / HUNDRED
                raw = entry_price * (1 - f) if long else entry_price * (1 + f)
                # round the stop outward by at most one tick (never inside the requested distance)
                br.stop_price = rules.round_price_down(raw) if long else rules.round_price_up(raw)
            br.stop_client_id = client_id(self.namespace, br.signal_id, "stop_loss", br.stop_attempt)
            self._submit_algo(self._protective(br, OrderType.STOP_MARKET, exit_side, br.stop_price, br.stop_purpose,
                                               br.stop_client_id))
        self._arm_break_even(br, entry_price)
        if not br.entry_done or br.targets_placed:
            return
        br.targets_placed = True
        self._place_targets(br, entry_price)

    def _place_targets(self, br: Bracket, entry_price: Decimal) -> None:
        """TP1 (partial), TP2 (the rest) and, in exchange mode, the trailing stop, sized to the fill."""
        rules = self.rules[br.key[0]]
        long = br.long
        exit_side = br.direction.exit_side
        filled = br.filled_qty
        if br.take_profit_pct is not None:
            f = br.take_profit_pct / HUNDRED
            raw = entry_price * (1 + f) if long else entry_price * (1 - f)
            tp2 = rules.round_price_up(raw) if long else rules.round_price_down(raw)
            tp1 = None
            q1 = ZERO
            pct1 = self.exits.take_profit_1_pct
            if pct1:
                f1 = pct1 / HUNDRED
                raw1 = entry_price * (1 + f1) if long else entry_price * (1 - f1)
                tp1 = rules.round_price_up(raw1) if long else rules.round_price_down(raw1)
                q1 = rules.round_qty(filled * self.exits.take_profit_1_close_pct / HUNDRED, market=True)
                rest = filled - q1
                if not self._sendable(rules, q1, tp1):
                    log.info("%s TP1 merged into TP2: %s at %s is below the symbol minimum", br.key[0], q1, tp1)
                    tp1 = None
                elif rest <= 0 or not self._sendable(rules, rest, tp2):
                    log.info("%s TP2 merged into TP1: the remaining %s is below the symbol minimum", br.key[0], rest)
                    tp2, tp1 = tp1, None  # one level: everything closes at TP1
                    br.take_profit_price = tp2
                    br.take_profit_client_id = client_id(self.namespace, br.signal_id, "take_profit")
                    self._submit_algo(self._protective(br, OrderType.TAKE_PROFIT_MARKET, exit_side, tp2,
                                                       OrderPurpose.TAKE_PROFIT_1, br.take_profit_client_id))
                    tp2 = None
            if tp1 is not None:
                br.tp1_price, br.tp1_qty = tp1, q1
                self._send_tp1(br, q1, 0)
            if tp2 is not None:
                br.take_profit_price = tp2
                br.take_profit_client_id = client_id(self.namespace, br.signal_id, "take_profit")
                self._submit_algo(self._protective(br, OrderType.TAKE_PROFIT_MARKET, exit_side, tp2,
                                                   OrderPurpose.TAKE_PROFIT, br.take_profit_client_id))
        if self.exits.trailing == "exchange":
            self._send_trailing(br, entry_price, filled, 0)

    def _send_tp1(self, br: Bracket, qty: Decimal, attempt: int) -> None:
        """TP1: a reduce-only TAKE_PROFIT_MARKET for part of the position at ``br.tp1_price``."""
        br.tp1_client_id = client_id(self.namespace, br.signal_id, "take_profit_1", attempt)
        self._submit_algo(AlgoOrderRequest(
            client_algo_id=br.tp1_client_id, symbol=br.key[0], side=br.direction.exit_side,
            type=OrderType.TAKE_PROFIT_MARKET, trigger_price=br.tp1_price, purpose=OrderPurpose.TAKE_PROFIT_1,
            position_side=br.key[1], close_position=False, quantity=qty,
            reduce_only=br.key[1] is PositionSide.BOTH, working_type=self.working_type,
            signal_id=br.signal_id))

    def _send_trailing(self, br: Bracket, entry_price: Decimal, qty: Decimal, attempt: int) -> None:
        """The exchange trailing stop: activation at ``trailing_activation_pct`` from the entry."""
        rules = self.rules[br.key[0]]
        f = self.exits.trailing_activation_pct / HUNDRED
        raw = entry_price * (1 + f) if br.long else entry_price * (1 - f)
        act = rules.round_price_up(raw) if br.long else rules.round_price_down(raw)
        br.trail_client_id = client_id(self.namespace, br.signal_id, "trailing_stop", attempt)
        self._submit_algo(AlgoOrderRequest(
            client_algo_id=br.trail_client_id, symbol=br.key[0], side=br.direction.exit_side,
            type=OrderType.TRAILING_STOP_MARKET, trigger_price=act, purpose=OrderPurpose.TRAILING_STOP,
            position_side=br.key[1], close_position=False, quantity=qty,
            reduce_only=br.key[1] is PositionSide.BOTH, working_type=self.working_type,
            signal_id=br.signal_id, callback_rate=self.exits.trailing_callback_pct))

    @staticmethod
    def _sendable(rules: SymbolRules, qty: Decimal, price: Decimal) -> bool:
        return qty > 0 and rules.min_qty_ok(qty) and qty * price >= rules.min_notional

    def _arm_break_even(self, br: Bracket, entry_price: Decimal) -> None:
        """Set the break-even trigger, stop level and deadline from the entry price (once)."""
        ex = self.exits
        if br.be_price is not None or not (ex.break_even or ex.break_even_timeout_ms) or entry_price <= 0:
            return
        rules = self.rules[br.key[0]]
        long = br.long
        if ex.break_even_trigger_pct:
            f = ex.break_even_trigger_pct / HUNDRED
            br.be_trigger = entry_price * (1 + f) if long else entry_price * (1 - f)
        elif ex.break_even_trigger_r and br.stop_price is not None:
            dist = abs(entry_price - br.stop_price) * ex.break_even_trigger_r
            br.be_trigger = entry_price + dist if long else entry_price - dist
        fees = entry_price * ex.fee_rate * 2  # the entry's and the exit's taker fee
        br.be_price = rules.round_price_up(entry_price + fees) if long else rules.round_price_down(entry_price - fees)
        if ex.break_even_timeout_ms:
            start = br.opened_ms if br.opened_ms is not None else self.clock.now_ms()
            br.be_deadline_ms = start + ex.break_even_timeout_ms
            self._due(br.be_deadline_ms)

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
            self._cancel_targets(br)
        self.close_position(key, OrderPurpose.EMERGENCY_CLOSE)

    def _cancel_targets(self, br: Bracket) -> None:
        for caid in (br.take_profit_client_id, br.tp1_client_id, br.trail_client_id):
            if caid and self.algos.get(caid) and self.algos[caid].status in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW):
                self.outbox.append(CancelAlgoOrder(br.key[0], caid))

    # -- moving the stop ----------------------------------------------------------------------

    def _move_stop(self, br: Bracket, price: Decimal, purpose: OrderPurpose) -> None:
        """Replace the resting stop by one at ``price``: the new one is placed first and the old one
        cancelled once the new one is acknowledged, so the position is never without a stop."""
        if br.closing or br.pending_stop is not None or br.stop_client_id is None:
            return
        br.stop_attempt += 1
        caid = client_id(self.namespace, br.signal_id, "stop_loss", br.stop_attempt)
        br.pending_stop = (caid, price, purpose)
        self._submit_algo(self._protective(br, OrderType.STOP_MARKET, br.direction.exit_side, price, purpose, caid))

    def _stop_replaced(self, br: Bracket) -> None:
        caid, price, purpose = br.pending_stop  # type: ignore[misc]
        br.pending_stop = None
        old = br.stop_client_id
        br.stop_client_id, br.stop_price, br.stop_purpose = caid, price, purpose
        if old and self.algos.get(old) and self.algos[old].status in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW):
            self.outbox.append(CancelAlgoOrder(br.key[0], old))
        log.info("%s %s stop moved to %s (%s)", br.key[0], br.key[1].value, price, purpose.value)

    def on_price(self, symbol: str, high: Decimal, low: Decimal, last: Decimal, *, candle: bool) -> None:
        """Price moved (a closed candle's range, or a mark price with high = low = last): break-even
        triggers and the engine's trailing stop. ``last`` is where price is now."""
        brs = self._by_symbol.get(symbol)
        if not brs:
            return
        for br in tuple(brs):
            if br.closing or not br.protection_placed or br.stop_client_id is None:
                continue
            long = br.long
            if br.be_trigger is not None and not br.be_reached:
                if (high >= br.be_trigger) if long else (low <= br.be_trigger):
                    self._reach_break_even(br, last)
            if candle and self.exits.trailing == "engine" and br.entry_price > 0:
                self._trail(br, high, low, last)

    def _reach_break_even(self, br: Bracket, last: Decimal) -> None:
        br.be_reached = True
        br.be_deadline_ms = None
        be = br.be_price
        if be is None:
            return
        long = br.long
        if br.stop_price is not None and ((br.stop_price >= be) if long else (br.stop_price <= be)):
            return  # the stop already protects break-even (e.g. trailing moved it further)
        if (last > be) if long else (last < be):
            log.info("%s %s reached break-even trigger: stop to entry plus fees", br.key[0], br.key[1].value)
            self._move_stop(br, be, OrderPurpose.BREAK_EVEN_STOP)
        else:
            # Price touched the trigger and fell back through break-even already: a stop there would
            # trigger at once (-2021), which is what the plan wants — close now.
            log.info("%s %s touched break-even trigger and fell back below entry plus fees: closing",
                     br.key[0], br.key[1].value)
            self._close_plan(br, OrderPurpose.BREAK_EVEN_STOP)

    def _trail(self, br: Bracket, high: Decimal, low: Decimal, last: Decimal) -> None:
        ex = self.exits
        long = br.long
        rules = self.rules[br.key[0]]
        if not br.trail_active:
            f = ex.trailing_activation_pct / HUNDRED
            act = br.entry_price * (1 + f) if long else br.entry_price * (1 - f)
            if not ((high >= act) if long else (low <= act)):
                return
            br.trail_active = True
            br.trail_extreme = high if long else low
        else:
            br.trail_extreme = max(br.trail_extreme, high) if long else min(br.trail_extreme, low)  # type: ignore[type-var]
        cb = ex.trailing_callback_pct / HUNDRED
        ext = br.trail_extreme
        target = rules.round_price_down(ext * (1 - cb)) if long else rules.round_price_up(ext * (1 + cb))  # type: ignore[operator]
        current = br.pending_stop[1] if br.pending_stop else br.stop_price
        better = current is None or ((target > current) if long else (target < current))
        valid = (target < last) if long else (target > last)
        if better and valid:
            self._move_stop(br, target, OrderPurpose.TRAILING_STOP)

    def _close_plan(self, br: Bracket, purpose: OrderPurpose) -> None:
        """End the plan: cancel what is left of the entry and the take-profits, close at market.
        The stop stays until the position is flat (then it is cancelled like any leftover)."""
        br.closing = True
        br.slices.clear()
        for c in br.entry_ids:
            st = self.orders.get(c)
            if st is not None and st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                self.outbox.append(CancelOrder(br.key[0], c))
        self._cancel_targets(br)
        self.close_position(br.key, purpose)

    # -- time -----------------------------------------------------------------------------------

    def on_time(self, now_ms: int) -> None:
        """Exchange time moved on: send due slices and retries, expire limit entries past their
        TTL, close positions whose break-even deadline passed, protect positions the exchange has
        not reported in time. Cheap when nothing is due."""
        due = self._next_due_ms
        if due is None or now_ms < due:
            return
        self._next_due_ms = None
        if self._retries:
            keep = []
            for when, cmd in self._retries:
                if when <= now_ms:
                    if not self._moot_refused_close(cmd):
                        self.outbox.append(cmd)
                else:
                    keep.append((when, cmd))
                    self._due(when)
            self._retries = keep
        for br in list(self.brackets.values()):
            if br.slices:
                self._send_due_slices(br, now_ms)
            if br.entry_deadline_ms is not None:
                if now_ms >= br.entry_deadline_ms:
                    br.entry_deadline_ms = None
                    self._expire_entry(br)
                else:
                    self._due(br.entry_deadline_ms)
            if br.await_position_until is not None:
                if now_ms >= br.await_position_until:
                    br.await_position_until = None
                    log.warning("%s %s: the exchange has not reported the position %.1fs after the entry "
                                "fill; placing protection anyway", br.key[0], br.key[1].value,
                                self.entries.position_wait_ms / 1000)
                    self._protect(br, br.entry_price)
                else:
                    self._due(br.await_position_until)
            if br.be_deadline_ms is not None and not br.be_reached and not br.closing:
                if now_ms >= br.be_deadline_ms:
                    log.info("%s %s: break-even not reached within %ds of entry: closing at market",
                             br.key[0], br.key[1].value, self.exits.break_even_timeout_ms // 1000)
                    br.be_deadline_ms = None
                    self._close_plan(br, OrderPurpose.BREAK_EVEN_TIMEOUT)
                else:
                    self._due(br.be_deadline_ms)

    def _expire_entry(self, br: Bracket) -> None:
        for c in br.entry_ids:
            st = self.orders.get(c)
            if st is not None and st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) \
                    and st.req.type is OrderType.LIMIT:
                log.info("%s limit entry %s unfilled after %ds: cancelled", br.key[0], c, self.entries.ttl_ms // 1000)
                self.outbox.append(CancelOrder(br.key[0], c))

    def _retry(self, st_attempts: int, cmd: ExchangeCommand, err: ExchangeError) -> None:
        """Resend ``cmd`` (same client id: it cannot execute twice) after a backoff (at most
        :data:`MAX_RETRY_BACKOFF_MS`), or once the exchange's Retry-After or ban has passed."""
        delay = min(self.entries.retry_backoff_ms * (2 ** max(0, st_attempts - 2)), MAX_RETRY_BACKOFF_MS)
        retry_after = getattr(err, "retry_after_s", None)
        if retry_after:
            delay = max(delay, int(Decimal(str(retry_after)) * 1000))
        if delay <= 0:
            self.outbox.append(cmd)
            return
        when = self.clock.now_ms() + delay
        self._retries.append((when, cmd))
        self._due(when)

    @property
    def next_due_ms(self) -> int | None:
        """When :meth:`on_time` next has work (None = nothing scheduled)."""
        return self._next_due_ms

    # -- closes -------------------------------------------------------------------------------

    def _close_moot(self, st: _OrderState) -> bool:
        """A close with nothing left to close: its position is flat by the exchange's report and no
        plan of ours holds it, or its plan is over and another one holds the symbol now (resent, it
        would close that one)."""
        key = (st.req.symbol, st.req.position_side)
        br = self.brackets.get(key)
        if br is None:
            return key not in self.position_amounts
        return st.req.signal_id is not None and br.signal_id != st.req.signal_id

    def _expire_unneeded_close(self, st: _OrderState) -> None:
        """A close the exchange certainly refused (so never placed) with nothing left to close: not
        resent. Recorded EXPIRED so nothing shows it waiting."""
        log.info("%s: close %s not resent: its position is already closed", st.req.symbol, st.req.client_order_id)
        self._set_order_status(st, OrderStatus.EXPIRED)
        st.reject_reason = f"not resent: its position is already closed (last answer {st.reject_reason})"
        st.updated_ms = self.clock.now_ms()
        self._record_order(st)

    def _moot_refused_close(self, cmd: ExchangeCommand) -> bool:
        """``cmd`` is a close waiting to be resent with nothing left to close: not resent. One the
        exchange certainly refused is expired here. One of unknown status may have executed (a
        filled order's client id is free again on the exchange, so a resend would be a new order
        and could close the next plan's position): it is resolved by client id instead."""
        st = self.orders.get(cmd.req.client_order_id) if isinstance(cmd, SubmitOrder) else None
        if st is None or st.req.purpose not in CLOSE_PURPOSES \
                or st.status is not OrderStatus.PENDING_NEW or not self._close_moot(st):
            return False
        if st.refused:
            self._expire_unneeded_close(st)
        else:
            self._hold_unknown_close(st)
        return True

    def _hold_unknown_close(self, st: _OrderState) -> None:
        st.unknown = True
        log.warning("%s: close %s status unknown and its position is closed or held by another plan: "
                    "not resent, resolved by client id", st.req.symbol, st.req.client_order_id)

    def _drop_refused_closes(self) -> None:
        """A position went flat: closes waiting to be resent that have nothing left to close go nowhere."""
        self._retries = [(w, c) for w, c in self._retries if not self._moot_refused_close(c)]

    def close_position(self, key: PositionKey, purpose: OrderPurpose, amount: Decimal | None = None) -> str | None:
        """Close a position at market, reduce-only (one-way) or on its side (hedge)."""
        symbol, ps = key
        amt = amount if amount is not None else self.position_amounts.get(key, ZERO)
        br = self.brackets.get(key)
        if amt == 0 and br is not None:
            filled, _ = self._entry_fills(br)
            if filled > 0:
                amt = filled if br.long else -filled
        if amt == 0:
            return None
        if ps is PositionSide.SHORT or (ps is PositionSide.BOTH and amt < 0):
            side = Side.BUY
        else:
            side = Side.SELL
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
        for br in self.brackets.values():
            if symbol is None or br.key[0] == symbol:
                br.slices.clear()
        for caid, st in self.algos.items():
            if st.status in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW) and (symbol is None or st.req.symbol == symbol):
                self.outbox.append(CancelAlgoOrder(st.req.symbol, caid))
        for coid, st in self.orders.items():
            if st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) and (
                symbol is None or st.req.symbol == symbol
            ) and st.req.type is not OrderType.MARKET:
                self.outbox.append(CancelOrder(st.req.symbol, coid))

    def stop_new_slices(self) -> int:
        """Drop the slices of split entries not sent yet (halted: no new exposure). Returns how many."""
        n = 0
        for br in self.brackets.values():
            n += len(br.slices)
            br.slices.clear()
        return n

    def flatten_all(self, purpose: OrderPurpose = OrderPurpose.FLATTEN) -> None:
        """Cancel every open and conditional order, then close every position at market."""
        self.cancel_all()
        # queued retries of protective orders are moot now; only close orders may still be retried
        self._retries = [(w, c) for w, c in self._retries if isinstance(c, SubmitOrder)]
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
        if err.unknown_status:
            # Maybe placed, maybe not, and it could not be looked up (a ban, no answers).
            if st.req.purpose in CLOSE_PURPOSES:
                # Resent with the same client id while it is needed: if the first one rests, the
                # exchange refuses the copy; reduce-only, it cannot flip the position.
                st.refused = False
                if self._close_moot(st):
                    self._hold_unknown_close(st)  # it may have executed: resolved by client id
                    return
                st.attempts += 1
                self._retry(st.attempts, SubmitOrder(st.req), err)
                return
            # Never resent blindly (an entry could open a second position): it stays in flight,
            # marked unknown, until reconciliation finds it by client id (or learns it never arrived).
            st.unknown = True
            log.warning("%s: order %s status unknown (%s); resolving it by client id before anything else",
                        st.req.symbol, coid, err)
            return
        if st.req.purpose is not OrderPurpose.ENTRY and _wait_and_resend(err) and (
                st.attempts <= self.entries.retry_attempts or st.req.purpose in CLOSE_PURPOSES
                or isinstance(err, RateLimited)):
            # A close is resent until it goes through: reduce-only with the same client id, it can
            # neither flip the position nor execute twice. A rate limit or ban is waited out.
            st.refused = True
            if st.req.purpose in CLOSE_PURPOSES and self._close_moot(st):
                self._expire_unneeded_close(st)  # its stop (or another close) got there first
                return
            st.attempts += 1
            self._retry(st.attempts, SubmitOrder(st.req), err)  # same client id: cannot double-execute
            return
        self._set_order_status(st, OrderStatus.REJECTED)
        self._record_order(st)
        key = (st.req.symbol, st.req.position_side)
        if st.req.purpose is OrderPurpose.ENTRY:
            br = self.brackets.get(key)
            if br is not None and coid in br.entry_ids:
                br.slices.clear()  # a rejected slice ends the split: the rest would fail alike
                self._entry_finished(br)
            elif self.pending_entries.get(key) == coid:
                del self.pending_entries[key]
        elif st.req.purpose in (OrderPurpose.EMERGENCY_CLOSE, OrderPurpose.FLATTEN, OrderPurpose.END_OF_DATA,
                                OrderPurpose.BREAK_EVEN_TIMEOUT, OrderPurpose.BREAK_EVEN_STOP):
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
        br = self.brackets.get((st.req.symbol, st.req.position_side))
        if br is not None and br.pending_stop is not None and br.pending_stop[0] == caid:
            self._stop_replaced(br)

    def on_algo_rejected(self, caid: str, err: ExchangeError) -> None:
        st = self.algos.get(caid)
        if st is None:
            return
        st.reject_reason = f"{err.code}: {err.msg}"
        st.updated_ms = self.clock.now_ms()
        key = (st.req.symbol, st.req.position_side)
        br = self.brackets.get(key)
        if err.unknown_status:
            # Maybe placed, and it could not be looked up (a ban, no answers). Not rejected: the
            # same request goes again after a pause; the exchange knows the client id, so a stop
            # already resting is found, never doubled. A protective stop is sent until it is known.
            if st.req.purpose in STOP_PURPOSES or st.attempts <= self.entries.retry_attempts:
                st.attempts += 1
                log.warning("%s: %s status unknown (%s); asking again with the same client id", key[0], caid, err)
                self._retry(st.attempts, SubmitAlgoOrder(st.req), err)
                return
        if _wait_and_resend(err) and (st.attempts <= self.entries.retry_attempts or isinstance(err, RateLimited)):
            st.attempts += 1
            self._retry(st.attempts, SubmitAlgoOrder(st.req), err)
            return
        self._set_algo_status(st, AlgoStatus.REJECTED)
        self._record_algo(st)
        if br is not None and st.req.signal_id is not None and br.signal_id != st.req.signal_id:
            # The answer of a plan that is over (its position closed and a new entry opened while
            # the request was out): it says nothing about the current plan's protection.
            log.warning("%s: %s of an earlier plan rejected (%s); the current plan is not affected", key[0], caid, err)
            return
        if br is not None and br.pending_stop is not None and br.pending_stop[0] == caid:
            br.pending_stop = None
            if err.code == -4130 and br.stop_client_id is not None:
                # One closePosition stop per direction: cancel the old one, then place the new one.
                log.warning("%s: exchange allows one closing stop per side; replacing it (cancel, then place)",
                            key[0])
                old = br.stop_client_id
                self.outbox.append(CancelAlgoOrder(key[0], old))
                br.stop_attempt += 1
                new = client_id(self.namespace, br.signal_id, "stop_loss", br.stop_attempt)
                br.stop_client_id, br.stop_price, br.stop_purpose = new, st.req.trigger_price, st.req.purpose
                self._submit_algo(self._protective(br, OrderType.STOP_MARKET, br.direction.exit_side,
                                                   st.req.trigger_price, st.req.purpose, new))
            else:
                log.warning("%s: moving the stop to %s failed (%s); the stop at %s stays", key[0],
                            st.req.trigger_price, err, br.stop_price)
            return
        if st.req.purpose in (OrderPurpose.STOP_LOSS, OrderPurpose.BREAK_EVEN_STOP) or (
                st.req.purpose is OrderPurpose.TRAILING_STOP and st.req.close_position):
            if br is not None and br.stop_client_id not in (None, caid) and self.is_protected(key):
                # a replacement whose move was no longer tracked as pending (e.g. re-sent after an
                # unknown status): the stop it was to replace still rests, so nothing is bare
                log.warning("%s: replacement stop %s rejected (%s); the stop %s at %s stays", key[0], caid, err,
                            br.stop_client_id, br.stop_price)
                return
            self._protection_failed(key, f"stop order rejected ({err.code}: {err.msg})")
        else:
            log.warning("%s for %s rejected: %s (the stop still protects the position)", st.req.purpose.value, key[0],
                        err)

    def on_cancel_ok(self, client_id_: str, algo: bool) -> None:
        """The exchange confirmed a cancel: the order is CANCELED now, whether or not its update
        arrives on the stream (a stream not open yet at startup, or a dropped one, loses it)."""
        now = self.clock.now_ms()
        if algo:
            ast = self.algos.get(client_id_)
            if ast is not None and ast.status.is_open:
                self._set_algo_status(ast, AlgoStatus.CANCELED)
                ast.updated_ms = now
                self._record_algo(ast)
        else:
            st = self.orders.get(client_id_)
            if st is not None and st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                self._set_order_status(st, OrderStatus.CANCELED)
                st.updated_ms = now
                self._record_order(st)

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
        if order_type is OrderType.TRAILING_STOP_MARKET:
            return OrderPurpose.TRAILING_STOP
        return OrderPurpose.EXTERNAL

    def on_order_update(self, ev: ExOrderUpdate) -> None:
        st = self.orders.get(ev.client_order_id)
        if st is None:
            coid = self._by_exchange_id.get(ev.exchange_order_id)
            st = self.orders.get(coid) if coid else None
        if st is None:
            self._on_child_fill(ev)
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
            if br is None or st.req.client_order_id not in br.entry_ids:
                if not st.status.is_open and self.pending_entries.get(key) == st.req.client_order_id:
                    del self.pending_entries[key]
                return
            filled, avg = self._entry_fills(br)
            if filled > br.filled_qty:
                if br.opened_ms is None:
                    br.opened_ms = ev.time_ms
                br.filled_qty, br.entry_price = filled, avg
            if not self._entry_open(br):
                self._entry_finished(br)
            if br.filled_qty > 0 and key in self.brackets:
                if self.position_amounts.get(key, ZERO) != 0 or br.protection_placed:
                    self._protect(br, br.entry_price)
                elif br.await_position_until is None:
                    # the fill is in but the exchange has not reported the position yet (note 000):
                    # protection goes on when it does, or when the wait runs out
                    br.await_position_until = self.clock.now_ms() + self.entries.position_wait_ms
                    self._due(br.await_position_until)

    def _entry_finished(self, br: Bracket) -> None:
        """Every entry order of the bracket is done (filled, cancelled, expired or rejected)."""
        key = br.key
        br.entry_done = True
        br.entry_deadline_ms = None
        if self.pending_entries.get(key) in br.entry_ids:
            del self.pending_entries[key]
        if br.filled_qty == 0 and self.position_amounts.get(key, ZERO) == 0:
            self._drop_bracket(key)
        elif br.protection_placed and not br.targets_placed and not br.closing:
            br.targets_placed = True
            self._place_targets(br, br.entry_price)

    def _on_child_fill(self, ev: ExOrderUpdate) -> None:
        """A fill of an order we did not send directly: a triggered TP1 marks its step done."""
        if ev.fill is None:
            return
        caid = ev.client_order_id if ev.client_order_id in self.algos else self._algo_by_actual.get(ev.exchange_order_id)
        a = self.algos.get(caid) if caid else None
        if a is None:
            return
        br = self.brackets.get((a.req.symbol, a.req.position_side))
        if br is not None and caid == br.tp1_client_id and not ev.status.is_open:
            br.tp1_done = True

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
        br = self.brackets.get(key)
        if br is not None and br.pending_stop is not None and br.pending_stop[0] == ev.client_algo_id \
                and ev.status is AlgoStatus.NEW:
            self._stop_replaced(br)
        if br is not None and ev.client_algo_id == br.trail_client_id and ev.activated is not None \
                and ev.status is AlgoStatus.NEW:
            br.trail_exchange_active = ev.activated
        if br is not None and ev.client_algo_id == br.tp1_client_id and ev.status in (AlgoStatus.TRIGGERED,
                                                                                     AlgoStatus.FINISHED):
            br.tp1_done = True
        if ev.status in (AlgoStatus.REJECTED, AlgoStatus.EXPIRED) and br is not None \
                and ev.client_algo_id == br.stop_client_id:
            if self.position_amounts.get(key, ZERO) != 0:
                self._protection_failed(key, f"stop order {ev.status.value.lower()} ({ev.reason or 'no reason given'})")

    def on_position(self, key: PositionKey, amount: Decimal, entry_price: Decimal | None = None) -> None:
        """The exchange reported this position's amount (ACCOUNT_UPDATE or a positions query) and,
        where known, its average entry price."""
        prev = self.position_amounts.get(key, ZERO)
        if amount == 0:
            self.position_amounts.pop(key, None)
        else:
            self.position_amounts[key] = amount
        br = self.brackets.get(key)
        # A position our entry filled is open even if the exchange never reported it (its
        # ACCOUNT_UPDATE lost: protection went on after position_wait_ms); its flat report must
        # still clear the bracket and its leftover take-profits.
        if amount == 0 and (prev != 0 or (br is not None and br.filled_qty > 0)):
            if br is not None and self._entry_open(br) and not br.closing:
                return  # flat between slices of an entry still being sent: the plan goes on
            # flat: the remaining orders of this position must not linger
            br = self._drop_bracket(key)
            self._drop_refused_closes()
            if br is not None:
                br.slices.clear()
                for caid in (br.stop_client_id, br.take_profit_client_id, br.tp1_client_id, br.trail_client_id,
                             br.pending_stop[0] if br.pending_stop else None):
                    if caid and self.algos.get(caid) and self.algos[caid].status in (AlgoStatus.PENDING_NEW,
                                                                                      AlgoStatus.NEW):
                        self.outbox.append(CancelAlgoOrder(key[0], caid))
                for c in br.entry_ids:
                    st = self.orders.get(c)
                    if st is not None and st.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                        self.outbox.append(CancelOrder(key[0], c))
        elif amount != 0:
            br = self.brackets.get(key)
            if br is None:
                return  # not ours (external/adopted positions are a reconciliation concern)
            br.await_position_until = None
            if not br.closing and (br.stop_client_id is None or not self._algo_alive(br.stop_client_id)):
                if br.stop_client_id is not None:
                    br.stop_attempt += 1  # the old stop is dead: a new one needs a new id
                    br.stop_client_id = None
                if br.entry_price > 0:
                    self._protect(br, br.entry_price)
                elif entry_price is not None and entry_price > 0 and (amount > 0) == br.long \
                        and self._entry_open(br):
                    # The position our entry opened is reported before the entry's own fill (its
                    # answer stalled, its stream event late): protect it now, priced from the
                    # position's entry price, not seconds later when the fill comes.
                    log.warning("%s %s: position %s reported before its entry's fill; stop placed from its "
                                "entry price %s", key[0], key[1].value, amount, entry_price)
                    self._protect(br, entry_price)

    # -- restart and reconciliation ------------------------------------------------------------

    def register_resting_algo(self, row: dict, purpose: OrderPurpose | None = None,
                              signal_id: str | None = None) -> str:
        """Take one of our conditional orders found resting on the exchange (a
        ``GET /fapi/v1/openAlgoOrders`` row) under management, as acknowledged (NEW)."""
        caid = str(row["clientAlgoId"])
        if caid in self.algos:
            return caid
        qty = Decimal(str(row.get("quantity") or "0"))
        cb = str(row.get("callbackRate") or "")
        req = AlgoOrderRequest(
            client_algo_id=caid,
            symbol=str(row["symbol"]),
            side=Side(row["side"]),
            type=OrderType(row["orderType"]),
            trigger_price=Decimal(str(row.get("triggerPrice") or row.get("activatePrice") or "0")),
            purpose=purpose or ROLE_PURPOSE.get(role_of(caid) or "", OrderPurpose.STOP_LOSS),
            position_side=PositionSide(row.get("positionSide") or "BOTH"),
            close_position=bool(row.get("closePosition", False)),
            quantity=qty if qty > 0 else None,
            reduce_only=bool(row.get("reduceOnly", False)),
            working_type=WorkingType(row.get("workingType") or "MARK_PRICE"),
            signal_id=signal_id,
            callback_rate=Decimal(cb) if cb else None,
        )
        now = int(row.get("updateTime") or row.get("createTime") or self.clock.now_ms())
        st = _AlgoState(req=req, status=AlgoStatus.NEW, created_ms=int(row.get("createTime") or now),
                        updated_ms=now, algo_id=int(row["algoId"]) if row.get("algoId") is not None else None)
        self.algos[caid] = st
        self._record_algo(st)  # this run's row: the one that placed it may have died before writing its own
        return caid

    def restore_bracket(self, br: Bracket, amount: Decimal, resting: dict[str, dict], *, restart: int,
                        protect: bool = True) -> list[str]:
        """Continue the plan of a position that outlived the process that made it.

        ``amount`` is the position the exchange reports now; ``resting`` our conditional orders it
        reports open (by client algo id). The plan's orders still resting are taken over; a missing
        stop is replaced at once (``protect``; else the caller closes the position); missing
        take-profits are re-placed under new ids (``restart`` makes them unique); an entry that was
        still working is over (its rest is not sent again). Returns notes of what was corrected."""
        notes: list[str] = []
        key = br.key
        self.brackets[key] = br
        self._index(br)
        self.position_amounts[key] = amount
        br.closing = False
        br.await_position_until = None
        br.entry_deadline_ms = None
        if br.slices:
            notes.append(f"{len(br.slices)} unsent entry slice(s) dropped")
            br.slices.clear()
        br.entry_done = True
        br.protection_placed = True
        if abs(amount) < br.filled_qty and br.tp1_client_id is not None and not br.tp1_done:
            br.tp1_done = True  # the position shrank while we were away: TP1 did its job
        if br.pending_stop is not None:
            caid, price, purpose = br.pending_stop
            br.pending_stop = None
            if caid in resting:  # the replacement made it: it is the stop now
                old = br.stop_client_id
                br.stop_client_id, br.stop_price, br.stop_purpose = caid, price, purpose
                if old and old in resting:
                    self.register_resting_algo(resting[old], signal_id=br.signal_id)
                    self.outbox.append(CancelAlgoOrder(key[0], old))
                    notes.append(f"old stop {old} cancelled (its replacement was already resting)")
        for attr, purpose in (("stop_client_id", br.stop_purpose), ("take_profit_client_id", OrderPurpose.TAKE_PROFIT),
                              ("tp1_client_id", OrderPurpose.TAKE_PROFIT_1),
                              ("trail_client_id", OrderPurpose.TRAILING_STOP)):
            caid = getattr(br, attr)
            if caid and caid in resting:
                self.register_resting_algo(resting[caid], purpose, br.signal_id)
        if br.stop_client_id is None or br.stop_client_id not in resting:
            notes.append("no resting stop" + (": placing one now" if protect else ""))
            if br.stop_client_id is not None:
                br.stop_attempt += 1
                br.stop_client_id = None
            if protect:
                self._protect(br, br.entry_price)
        if br.targets_placed:
            self._replace_missing_targets(br, amount, resting, restart, notes)
        elif protect and br.stop_client_id is not None:
            br.targets_placed = True
            self._place_targets(br, br.entry_price)
        if br.be_deadline_ms is not None and not br.be_reached:
            self._due(br.be_deadline_ms)
        return notes

    def _replace_missing_targets(self, br: Bracket, amount: Decimal, resting: dict[str, dict], restart: int,
                                 notes: list[str]) -> None:
        rules = self.rules[br.key[0]]
        exit_side = br.direction.exit_side
        remaining = abs(amount)
        if br.take_profit_client_id and br.take_profit_client_id not in resting and br.take_profit_price:
            br.take_profit_client_id = client_id(self.namespace, br.signal_id, "take_profit", restart)
            self._submit_algo(self._protective(br, OrderType.TAKE_PROFIT_MARKET, exit_side, br.take_profit_price,
                                               OrderPurpose.TAKE_PROFIT, br.take_profit_client_id))
            notes.append("take-profit re-placed")
        if br.tp1_client_id and not br.tp1_done and br.tp1_client_id not in resting and br.tp1_price:
            q1 = rules.round_qty(min(br.tp1_qty or remaining, remaining), market=True)
            if self._sendable(rules, q1, br.tp1_price) and q1 < remaining:
                self._send_tp1(br, q1, restart)
                notes.append("TP1 re-placed")
        if br.trail_client_id and br.trail_client_id not in resting and self.exits.trailing == "exchange":
            self._send_trailing(br, br.entry_price, remaining, restart)
            notes.append("trailing stop re-placed")

    def adopt_position(self, key: PositionKey, amount: Decimal, entry_price: Decimal, *, signal_id: str,
                       strategy: str, stop_pct: Decimal, take_profit_pct: Decimal | None, opened_ms: int,
                       resting: dict[str, dict] | None = None, protect: bool = True) -> Bracket:
        """Put a position with no stored plan under management: one of ours whose plan was never
        written (the process died between the entry fill and the stop), or one opened outside
        perpdeck that the configuration says to adopt. A stop at ``stop_pct`` from the entry price
        and the take-profits are placed (unless one of our stops for it is already resting)."""
        direction = Direction.LONG if amount > 0 else Direction.SHORT
        br = Bracket(key=key, direction=direction, signal_id=signal_id, strategy=strategy,
                     entry_client_id=client_id(self.namespace, signal_id, "entry"), stop_pct=stop_pct,
                     take_profit_pct=take_profit_pct, entry_done=True, entry_price=entry_price,
                     filled_qty=abs(amount), opened_ms=opened_ms)
        self.brackets[key] = br
        self._index(br)
        self.position_amounts[key] = amount
        resting = resting or {}
        stop = next((c for c, r in resting.items() if role_of(c) == "stop_loss"
                     and (r.get("positionSide") or "BOTH") == key[1].value and r.get("symbol") == key[0]), None)
        if stop is not None:
            self.register_resting_algo(resting[stop], signal_id=signal_id)
            br.stop_client_id = stop
            br.stop_price = Decimal(str(resting[stop].get("triggerPrice") or "0")) or None
            br.protection_placed = True
        if protect:
            br.stop_attempt = 1 if stop is None else 0  # never reuse an id an earlier run may have used
            self._protect(br, entry_price)
        return br

    def stop_lost(self, key: PositionKey, reason: str) -> bool:
        """Reconciliation found no resting stop for a position we believed protected: forget the
        dead one and protect again at once. Returns False when there was nothing to do."""
        br = self.brackets.get(key)
        if br is None or br.closing or br.stop_client_id is None:
            return False
        st = self.algos.get(br.stop_client_id)
        if st is None or st.status is not AlgoStatus.NEW:
            return False  # in flight or already known dead: the normal paths handle it
        self._set_algo_status(st, AlgoStatus.EXPIRED)
        st.reject_reason = reason
        st.updated_ms = self.clock.now_ms()
        self._record_algo(st)
        br.stop_attempt += 1
        br.stop_client_id = None
        if br.entry_price > 0:
            self._protect(br, br.entry_price)
        return True

    def ensure_protected(self, key: PositionKey, amount: Decimal, entry_price: Decimal) -> str | None:
        """Reconciliation found this managed position on the exchange with no stop resting. If no
        stop and no close is on its way (sent, or queued for a resend), act: a plan that is closing
        is closed at market again, any other gets its stop. Returns what was done (None: nothing,
        something is already on its way)."""
        br = self.brackets.get(key)
        if br is None or amount == 0:
            return None
        for st in self.algos.values():
            if st.status is AlgoStatus.PENDING_NEW and (st.req.symbol, st.req.position_side) == key \
                    and st.req.purpose in STOP_PURPOSES:
                return None  # a stop is on its way
        for st in self.orders.values():
            if st.status in (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED) \
                    and (st.req.symbol, st.req.position_side) == key and st.req.purpose in CLOSE_PURPOSES:
                return None  # a close is on its way
        if br.closing:
            coid = self.close_position(key, OrderPurpose.EMERGENCY_CLOSE, amount)
            return f"closing with no close order working: closing at market ({coid})"
        if br.stop_client_id is not None:
            if self._algo_alive(br.stop_client_id):
                return None  # believed resting: a lost stop is stop_lost's case
            br.stop_client_id = None
        while client_id(self.namespace, br.signal_id, "stop_loss", br.stop_attempt) in self.algos:
            br.stop_attempt += 1  # a new order: never reuse a dead stop's client id
        price = br.entry_price if br.entry_price > 0 else entry_price
        if price <= 0:
            return None
        self._protect(br, price)
        return f"no stop resting or on its way: stop {br.stop_client_id} placed"

    def abandon_unsent(self, also: Iterable[ExchangeCommand] = (),
                       reason: str = "not sent: stopped while waiting to resend") -> int:
        """The process is stopping: requests queued for a resend, never taken from the outbox, or
        still waiting in the runtime's queues (``also``) will not go out. Their orders are recorded
        EXPIRED with ``reason`` so the database does not show them open; a restart continues the
        plan (and sends a new close if one is still due)."""
        queued = [c for _w, c in self._retries] + list(self.outbox) + list(also)
        self._retries.clear()
        self.outbox.clear()
        n = 0
        for cmd in queued:
            if isinstance(cmd, SubmitOrder):
                st = self.orders.get(cmd.req.client_order_id)
                if st is not None and st.status is OrderStatus.PENDING_NEW:
                    self._set_order_status(st, OrderStatus.EXPIRED)
                    st.reject_reason, st.updated_ms = reason, self.clock.now_ms()
                    self._record_order(st)
                    n += 1
            elif isinstance(cmd, SubmitAlgoOrder):
                ast = self.algos.get(cmd.req.client_algo_id)
                if ast is not None and ast.status is AlgoStatus.PENDING_NEW:
                    self._set_algo_status(ast, AlgoStatus.EXPIRED)
                    ast.reject_reason, ast.updated_ms = reason, self.clock.now_ms()
                    self._record_algo(ast)
                    n += 1
        return n

    def inflight(self, older_than_ms: int) -> list[tuple[str, str, bool]]:
        """(symbol, client id, is_algo) of orders sent but not acknowledged before ``older_than_ms``."""
        out = [(st.req.symbol, c, False) for c, st in self.orders.items()
               if st.status is OrderStatus.PENDING_NEW and st.updated_ms <= older_than_ms]
        out += [(st.req.symbol, c, True) for c, st in self.algos.items()
                if st.status is AlgoStatus.PENDING_NEW and st.updated_ms <= older_than_ms]
        return out

    # -- views ----------------------------------------------------------------------------------

    def open_orders(self) -> list[Order]:
        return [st.snapshot() for st in self.orders.values() if st.status.is_open]

    def open_algo_orders(self) -> list[AlgoOrder]:
        return [st.snapshot() for st in self.algos.values() if st.status.is_open]
