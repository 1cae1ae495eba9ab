"""The guard: runs the signal rules, sizes the entry, runs the intent rules. First denial wins."""

from __future__ import annotations

from decimal import Decimal
from typing import Mapping, Sequence

from engine.guard.base import Approved, Denied, GuardView, IntentRule, SignalRule, Verdict
from engine.guard.rules import (
    AutoTradingEnabled,
    BalanceSizer,
    EnoughMargin,
    FundingBlackout,
    KnownSymbol,
    MaxDailyLoss,
    MaxDailyTrades,
    MaxNotionalFromBracket,
    MaxPositionPct,
    MaxPositionsPerDay,
    MaxSymbolNotional,
    MaxTotalExposure,
    MinNotional,
    MinTradeSize,
    NoExistingPosition,
    NoPendingEntry,
    NotHalted,
    StrategyEnabled,
)
from engine.model import Signal

ZERO = Decimal(0)


class Guard:
    def __init__(self, signal_rules: Sequence[SignalRule], sizer: BalanceSizer, intent_rules: Sequence[IntentRule]):
        self.signal_rules = list(signal_rules)
        self.sizer = sizer
        self.intent_rules = list(intent_rules)

    @classmethod
    def default(
        cls,
        *,
        position_size_pct: Decimal,
        stop_loss_pct: Decimal,
        take_profit_pct: Decimal | None,
        max_position_pct: Decimal = Decimal(100),
        max_total_exposure_pct: Decimal = Decimal(100),
        max_daily_trades: int | None = None,
        max_daily_loss_pct: Decimal | None = None,
        max_notional_usdt: Decimal = ZERO,
        max_notional_by_symbol: Mapping[str, Decimal] | None = None,
        max_positions_per_day: int | None = None,
        funding_blackout_min: int = 0,
        atr_max_pct: Decimal = ZERO,
        min_trade_size: Decimal = ZERO,
    ) -> "Guard":
        """The standard rule chain. Every optional limit is off by default (``None``/0); note that
        ``max_daily_trades=0`` and ``max_positions_per_day=0`` are limits that block all entries.

        Signal rules, in order: engine state and auto-trading (attribute reads), strategy not
        disabled (set lookup), known/trading symbol (dict lookup), one position and one pending
        entry per symbol (or side), funding blackout (integer arithmetic), daily entry and
        position counts (int compares), daily loss (Decimal arithmetic, last). Then the sizer
        (with volatility scaling when ``atr_max_pct`` > 0). Intent rules: exchange minimum
        notional, min_trade_size, bracket maximum, per-symbol notional cap, position margin %,
        total exposure %, available margin.
        """
        signal_rules: list[SignalRule] = [NotHalted(), AutoTradingEnabled(), StrategyEnabled(), KnownSymbol(),
                                          NoExistingPosition(), NoPendingEntry()]
        if funding_blackout_min > 0:
            signal_rules.append(FundingBlackout(funding_blackout_min))
        if max_daily_trades is not None:
            signal_rules.append(MaxDailyTrades(max_daily_trades))
        if max_positions_per_day is not None:
            signal_rules.append(MaxPositionsPerDay(max_positions_per_day))
        if max_daily_loss_pct is not None:
            signal_rules.append(MaxDailyLoss(max_daily_loss_pct))
        intent_rules: list[IntentRule] = [MinNotional()]
        if min_trade_size > 0:
            intent_rules.append(MinTradeSize(min_trade_size))
        intent_rules.append(MaxNotionalFromBracket())
        if max_notional_usdt > 0 or max_notional_by_symbol:
            intent_rules.append(MaxSymbolNotional(max_notional_usdt, max_notional_by_symbol or {}))
        intent_rules += [MaxPositionPct(max_position_pct), MaxTotalExposure(max_total_exposure_pct), EnoughMargin()]
        return cls(
            signal_rules=signal_rules,
            sizer=BalanceSizer(position_size_pct, stop_loss_pct, take_profit_pct, atr_max_pct),
            intent_rules=intent_rules,
        )

    def evaluate(self, signal: Signal, view: GuardView) -> Verdict:
        for rule in self.signal_rules:
            v = rule.check(signal, view)
            if isinstance(v, Denied):
                return v
        intent = self.sizer.size(signal, view)
        if isinstance(intent, Denied):
            return intent
        for rule in self.intent_rules:
            v = rule.check(intent, view)
            if isinstance(v, Denied):
                return v
        return Approved(intent)
