"""Guard vocabulary: a rule looks at a signal (or the sized intent) and a read-only view of the
account, and answers ``Approved`` or ``Denied(reason)``. Denials are values, not exceptions."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Mapping, Protocol

from engine.exchange.filters import SymbolRules
from engine.model import OrderIntent, PositionMode, PositionSide, Signal


class EngineState(str, Enum):
    """NautilusTrader-style trading state: ACTIVE trades, REDUCING only closes, HALTED does nothing new."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True)
class Approved:
    intent: OrderIntent | None = None


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str


Verdict = Approved | Denied


@dataclass(frozen=True, slots=True)
class GuardView:
    """Everything a rule may look at, frozen at the moment of the decision."""

    now_ms: int
    state: EngineState
    halt_reason: str
    auto_trading_enabled: bool
    position_mode: PositionMode
    leverage: int
    equity: Decimal
    available_balance: Decimal
    positions: Mapping[tuple[str, PositionSide], Decimal]  # signed amounts, non-zero only
    pending_entries: frozenset[tuple[str, PositionSide]]
    rules: Mapping[str, SymbolRules]
    marks: Mapping[str, Decimal] = field(default_factory=dict)
    taker_fee_rate: Decimal = Decimal("0.0005")
    used_margin: Decimal = Decimal(0)  # initial margin held by open positions
    entries_today: int = 0  # entries accepted since 00:00 UTC (exchange time)
    day_start_equity: Decimal = Decimal(0)  # equity at 00:00 UTC (or at start)
    positions_opened_today: int = 0  # positions whose entry filled since 00:00 UTC (exchange time)
    consecutive_losses: int = 0  # closed trades in a row with net PnL < 0 (RiskMonitor)
    strategy_net_pnl: Mapping[str, Decimal] = field(default_factory=dict)  # closed trades, since start
    disabled_strategies: frozenset[str] = frozenset()  # disabled by the RiskMonitor until resume
    start_equity: Decimal = Decimal(0)  # equity when the engine started
    atr_pct: Mapping[str, float] = field(default_factory=dict)  # symbol -> latest 1m ATR, % of price

    def key_for(self, signal: Signal) -> tuple[str, PositionSide]:
        if self.position_mode is PositionMode.HEDGE:
            return (signal.symbol, PositionSide(signal.direction.value))
        return (signal.symbol, PositionSide.BOTH)


class SignalRule(Protocol):
    name: str

    def check(self, signal: Signal, view: GuardView) -> Verdict: ...


class IntentRule(Protocol):
    name: str

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict: ...
