"""Facts (past tense) and commands (imperative) that flow through the engine.

Facts describe what happened and are published on the bus for the journal, the console and
tests. Commands ask the engine to do something; the engine answers with facts. A denial is a
fact with a reason (``SignalJudged`` carrying a denied ``SignalRecord``), never an exception.

The ``Ex*`` facts are what the exchange told us, already parsed from Binance payloads into
domain values by ``engine.exchange.binance.parse``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from engine.model import (
    Account,
    AlgoOrder,
    AlgoStatus,
    Candle,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
    SignalRecord,
    Trade,
)

# -- exchange facts (parsed user-data stream / REST results) -------------------------------


@dataclass(frozen=True, slots=True)
class ExOrderUpdate:
    """ORDER_TRADE_UPDATE: an order changed; ``fill`` is set when this update is a trade."""

    symbol: str
    client_order_id: str
    exchange_order_id: int
    side: Side
    type: OrderType
    orig_type: OrderType
    status: OrderStatus
    exec_type: str
    quantity: Decimal
    filled_qty: Decimal
    avg_price: Decimal
    position_side: PositionSide
    reduce_only: bool
    close_position: bool
    time_ms: int
    fill: Fill | None = None
    expiry_reason: str = "0"


@dataclass(frozen=True, slots=True)
class ExAlgoUpdate:
    """ALGO_UPDATE: a conditional order changed state."""

    symbol: str
    client_algo_id: str
    algo_id: int
    type: OrderType
    side: Side
    position_side: PositionSide
    status: AlgoStatus
    trigger_price: Decimal
    actual_order_id: int | None
    close_position: bool
    time_ms: int
    reason: str = ""
    activated: bool | None = None
    """TRAILING_STOP_MARKET only (field ``ia``): its activation price was reached and it now
    follows price. None when the exchange did not say (other types, older messages)."""


@dataclass(frozen=True, slots=True)
class ExPositionState:
    symbol: str
    position_side: PositionSide
    amount: Decimal
    entry_price: Decimal
    break_even_price: Decimal
    unrealized_pnl: Decimal
    margin_type: str
    isolated_wallet: Decimal


@dataclass(frozen=True, slots=True)
class ExAccountUpdate:
    """ACCOUNT_UPDATE: balances and/or positions changed, with Binance's reason (ORDER, FUNDING_FEE, …)."""

    reason: str
    wallet_balance: Decimal | None
    balance_change: Decimal
    positions: tuple[ExPositionState, ...]
    time_ms: int


@dataclass(frozen=True, slots=True)
class ExStreamExpired:
    """listenKeyExpired: the user stream stopped; a new key is needed."""

    time_ms: int


# -- engine facts -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CandleClosed:
    candle: Candle


@dataclass(frozen=True, slots=True)
class SignalJudged:
    """Every signal ends with exactly one of these (accepted or denied, with the reason)."""

    record: SignalRecord


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    order: Order


@dataclass(frozen=True, slots=True)
class AlgoOrderUpdated:
    algo_order: AlgoOrder


@dataclass(frozen=True, slots=True)
class OrderFilled:
    fill: Fill


@dataclass(frozen=True, slots=True)
class PositionChanged:
    position: Position


@dataclass(frozen=True, slots=True)
class AccountChanged:
    account: Account


@dataclass(frozen=True, slots=True)
class FundingPaid:
    symbol: str
    position_side: PositionSide
    amount: Decimal
    time_ms: int


@dataclass(frozen=True, slots=True)
class TradeOpened:
    trade: Trade


@dataclass(frozen=True, slots=True)
class TradeClosed:
    trade: Trade


@dataclass(frozen=True, slots=True)
class ProtectionFailed:
    """A position could not get its exchange-side stop; it is being closed at market."""

    symbol: str
    position_side: PositionSide
    reason: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class EngineStateChanged:
    state: str  # ACTIVE | REDUCING | HALTED
    reason: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class StrategySwitched:
    old: str
    new: str
    time_ms: int


@dataclass(frozen=True, slots=True)
class ExternalSignalIngested:
    """An external signal (note 002: 110 Alpha, 112/113 FOMO) reached the strategies.

    ``outcome`` is what the active strategy made of it (``IngestResult.as_dict()``: status
    ``confluence`` | ``below_threshold`` | ``waiting`` | ``duplicate`` | …), or None when no
    strategy takes external signals; ``error`` names the bad field when the input was rejected.
    """

    message_type: object
    message_id: object
    symbol: object
    time_ms: int
    outcome: dict | None = None
    error: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class EngineLogged:
    """A human-readable engine message (for the console's log pane)."""

    level: str
    message: str
    time_ms: int


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Halt:
    reason: str = "manual"


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class FlattenAll:
    reason: str = "manual"


@dataclass(frozen=True, slots=True)
class SwitchStrategy:
    name: str


@dataclass(frozen=True, slots=True)
class IngestSignal:
    """Hand an external signal to every strategy that takes them (``process_signal``).

    Stamped with the engine's event clock when it is handled. ``source`` says where it came from
    (``http``, ``file``, ``cli``, ``python``, ``simulate``) for the log.
    """

    message_type: object
    message_id: object
    symbol: object
    data: object = None
    source: str = "python"


@dataclass(frozen=True, slots=True)
class StartTraining:
    """Start (or resume) the background RL trainer."""


@dataclass(frozen=True, slots=True)
class StopTraining:
    """Stop the background RL trainer after its current step (a checkpoint is saved)."""


Command = Halt | Resume | FlattenAll | SwitchStrategy | IngestSignal | StartTraining | StopTraining
