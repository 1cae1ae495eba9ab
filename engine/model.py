"""Domain records. Money and prices are ``Decimal``; times are epoch milliseconds (UTC).

Every record here is a frozen value: the console and the journal receive these and can never
mutate engine state through them. Live, mutable order state lives in ``engine.orders`` and is
exported as these records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

ZERO = Decimal(0)
ONE = Decimal(1)


class Direction(str, Enum):
    """What a strategy wants: to be long or short."""

    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_side(self) -> Side:
        return Side.BUY if self is Direction.LONG else Side.SELL

    @property
    def exit_side(self) -> Side:
        return Side.SELL if self is Direction.LONG else Side.BUY

    @property
    def sign(self) -> int:
        return 1 if self is Direction.LONG else -1


class Side(str, Enum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class PositionSide(str, Enum):
    """Binance ``positionSide``: BOTH in one-way mode, LONG/SHORT in hedge mode."""

    BOTH = "BOTH"
    LONG = "LONG"
    SHORT = "SHORT"


class PositionMode(str, Enum):
    ONEWAY = "ONEWAY"
    HEDGE = "HEDGE"


class MarginType(str, Enum):
    ISOLATED = "ISOLATED"
    CROSSED = "CROSSED"


class WorkingType(str, Enum):
    MARK_PRICE = "MARK_PRICE"
    CONTRACT_PRICE = "CONTRACT_PRICE"


class OrderType(str, Enum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TRAILING_STOP_MARKET = "TRAILING_STOP_MARKET"
    LIQUIDATION = "LIQUIDATION"


#: Order types that Binance only accepts on ``/fapi/v1/algoOrder`` since 2025-12-09.
CONDITIONAL_TYPES = frozenset(
    {
        OrderType.STOP,
        OrderType.STOP_MARKET,
        OrderType.TAKE_PROFIT,
        OrderType.TAKE_PROFIT_MARKET,
        OrderType.TRAILING_STOP_MARKET,
    }
)


class OrderStatus(str, Enum):
    """Binance order statuses plus our own ``PENDING_NEW`` (created here, not yet acknowledged)."""

    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class AlgoStatus(str, Enum):
    """Binance algo (conditional) order statuses plus our own ``PENDING_NEW``."""

    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    TRIGGERING = "TRIGGERING"
    TRIGGERED = "TRIGGERED"
    FINISHED = "FINISHED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_open(self) -> bool:
        return self in (AlgoStatus.PENDING_NEW, AlgoStatus.NEW)


class OrderPurpose(str, Enum):
    """Why we sent an order; decides the exit reason of the trade it closes."""

    ENTRY = "entry"
    STOP_LOSS = "stop_loss"
    BREAK_EVEN_STOP = "break_even_stop"  # the stop after it was moved to entry plus fees
    TRAILING_STOP = "trailing_stop"  # a stop that follows price (engine-moved or TRAILING_STOP_MARKET)
    TAKE_PROFIT_1 = "take_profit_1"  # the partial take-profit
    TAKE_PROFIT = "take_profit"  # the final take-profit (TP2)
    BREAK_EVEN_TIMEOUT = "break_even_timeout"  # closed: break-even not reached in time
    EMERGENCY_CLOSE = "emergency_close"  # protection could not be placed
    FLATTEN = "flatten"
    END_OF_DATA = "end_of_data"
    EXTERNAL = "external"  # not ours (manual, liquidation, ADL)


class ExitReason(str, Enum):
    """Why a trade ended: the purpose of the order whose fill made it flat."""

    STOP_LOSS = "stop_loss"
    BREAK_EVEN_STOP = "break_even_stop"
    TRAILING = "trailing"
    TAKE_PROFIT_1 = "take_profit_1"
    TAKE_PROFIT_2 = "take_profit_2"
    TAKE_PROFIT = "take_profit"  # rows written before TP1/TP2 existed
    BREAK_EVEN_TIMEOUT = "break_even_timeout"
    NO_PROTECTION = "no_protection"
    FLATTEN = "flatten"
    END_OF_DATA = "end_of_data"
    LIQUIDATION = "liquidation"
    MANUAL = "manual"  # closed outside perpdeck (by hand on the exchange)
    EXTERNAL = "external"  # rows written before MANUAL existed


class Verdict(str, Enum):
    ACCEPTED = "accepted"
    DENIED = "denied"


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline. Only candles with ``closed=True`` reach strategies.

    OHLCV are exact Decimals. ``high_f``/``low_f``/``close_f`` are float views computed once at
    construction for indicator arithmetic (EMAs, ATR, volatility) in strategies; they never feed
    money, prices sent to the exchange, or PnL.
    """

    symbol: str
    open_time_ms: int
    close_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    closed: bool = True
    high_f: float = field(init=False, repr=False, compare=False)
    low_f: float = field(init=False, repr=False, compare=False)
    close_f: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "high_f", float(self.high))
        object.__setattr__(self, "low_f", float(self.low))
        object.__setattr__(self, "close_f", float(self.close))


@dataclass(frozen=True, slots=True)
class MarkPrice:
    symbol: str
    mark_price: Decimal
    funding_rate: Decimal
    next_funding_time_ms: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's wish. Never an order: sizing, risk and execution belong to guard and orders."""

    strategy: str
    symbol: str
    direction: Direction
    strength: float  # 0..1
    reason: str
    candle_open_time_ms: int
    price: Decimal  # close of the candle that produced it
    time_ms: int

    @property
    def signal_id(self) -> str:
        return f"{self.strategy}:{self.symbol}:{self.candle_open_time_ms}:{self.direction.value}"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """A sized, protected entry the guard approved (or is checking)."""

    signal_id: str
    strategy: str
    symbol: str
    direction: Direction
    position_side: PositionSide
    quantity: Decimal
    reference_price: Decimal
    stop_price: Decimal
    take_profit_price: Decimal | None
    created_ms: int

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.reference_price


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A plain order for ``/fapi/v1/order`` (MARKET or LIMIT)."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    purpose: OrderPurpose
    position_side: PositionSide = PositionSide.BOTH
    price: Decimal | None = None
    reduce_only: bool = False
    time_in_force: str | None = None
    signal_id: str | None = None


@dataclass(frozen=True, slots=True)
class AlgoOrderRequest:
    """A conditional order for ``/fapi/v1/algoOrder`` (STOP_MARKET, TAKE_PROFIT_MARKET, ...)."""

    client_algo_id: str
    symbol: str
    side: Side
    type: OrderType
    trigger_price: Decimal
    purpose: OrderPurpose
    position_side: PositionSide = PositionSide.BOTH
    close_position: bool = True
    quantity: Decimal | None = None
    reduce_only: bool = False
    working_type: WorkingType = WorkingType.MARK_PRICE
    price_protect: bool = False
    signal_id: str | None = None
    callback_rate: Decimal | None = None
    """TRAILING_STOP_MARKET only: callback in % (``trigger_price`` is then the activation price)."""


@dataclass(frozen=True, slots=True)
class Order:
    """Snapshot of a plain order as we know it."""

    client_order_id: str
    exchange_order_id: int | None
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    price: Decimal | None
    status: OrderStatus
    filled_qty: Decimal
    avg_price: Decimal
    position_side: PositionSide
    reduce_only: bool
    purpose: OrderPurpose
    signal_id: str | None
    created_ms: int
    updated_ms: int
    reject_reason: str = ""


@dataclass(frozen=True, slots=True)
class AlgoOrder:
    """Snapshot of a conditional order as we know it."""

    client_algo_id: str
    algo_id: int | None
    symbol: str
    side: Side
    type: OrderType
    trigger_price: Decimal
    status: AlgoStatus
    position_side: PositionSide
    close_position: bool
    working_type: WorkingType
    purpose: OrderPurpose
    signal_id: str | None
    actual_order_id: int | None
    created_ms: int
    updated_ms: int
    reject_reason: str = ""


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (a Binance trade). ``commission`` is positive when paid."""

    symbol: str
    trade_id: int
    exchange_order_id: int
    client_order_id: str
    side: Side
    position_side: PositionSide
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    is_maker: bool
    time_ms: int
    order_type: OrderType = OrderType.MARKET


@dataclass(frozen=True, slots=True)
class Position:
    """Exchange view of one position. ``amount`` is signed in one-way mode (BOTH)."""

    symbol: str
    position_side: PositionSide
    amount: Decimal
    entry_price: Decimal
    break_even_price: Decimal
    unrealized_pnl: Decimal
    margin_type: MarginType
    isolated_wallet: Decimal
    update_time_ms: int

    @property
    def is_flat(self) -> bool:
        return self.amount == 0

    @property
    def direction(self) -> Direction | None:
        if self.amount > 0:
            return Direction.LONG
        if self.amount < 0:
            return Direction.SHORT
        return None


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class Account:
    """Account totals as the exchange reports them (USDT, single-asset mode)."""

    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    available_balance: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class SignalRecord:
    """A signal and what the guard said about it."""

    signal: Signal
    verdict: Verdict
    reason: str
    quantity: Decimal | None
    time_ms: int


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip: from flat to flat on one (symbol, position side)."""

    trade_id: str
    signal_id: str | None
    strategy: str
    symbol: str
    direction: Direction
    position_side: PositionSide
    entry_time_ms: int
    entry_price: Decimal
    quantity: Decimal
    exit_time_ms: int | None
    exit_price: Decimal | None
    entry_reason: str
    exit_reason: ExitReason | None
    fees: Decimal
    funding: Decimal
    realized_pnl: Decimal  # gross, before fees and funding
    mfe: Decimal  # max favourable excursion, quote currency, >= 0
    mae: Decimal  # max adverse excursion, quote currency, >= 0
    stop_price: Decimal | None = None
    take_profit_price: Decimal | None = None

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees + self.funding

    @property
    def is_open(self) -> bool:
        return self.exit_time_ms is None
