"""The guard: runs the signal rules, sizes the entry, runs the intent rules. First denial wins."""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from engine.guard.base import Approved, Denied, GuardView, IntentRule, SignalRule, Verdict
from engine.guard.rules import (
    AutoTradingEnabled,
    BalanceSizer,
    EnoughMargin,
    KnownSymbol,
    MaxDailyLoss,
    MaxDailyTrades,
    MaxNotionalFromBracket,
    MaxPositionPct,
    MaxTotalExposure,
    MinNotional,
    NoExistingPosition,
    NoPendingEntry,
    NotHalted,
)
from engine.model import Signal


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
    ) -> "Guard":
        signal_rules: list[SignalRule] = [NotHalted(), AutoTradingEnabled(), KnownSymbol(), NoExistingPosition(),
                                          NoPendingEntry()]
        if max_daily_trades is not None:
            signal_rules.append(MaxDailyTrades(max_daily_trades))
        if max_daily_loss_pct is not None:
            signal_rules.append(MaxDailyLoss(max_daily_loss_pct))
        return cls(
            signal_rules=signal_rules,
            sizer=BalanceSizer(position_size_pct, stop_loss_pct, take_profit_pct),
            intent_rules=[MinNotional(), MaxNotionalFromBracket(), MaxPositionPct(max_position_pct),
                          MaxTotalExposure(max_total_exposure_pct), EnoughMargin()],
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
