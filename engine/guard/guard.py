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
    MaxNotionalFromBracket,
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
    def default(cls, *, position_size_pct: Decimal, stop_loss_pct: Decimal, take_profit_pct: Decimal | None) -> "Guard":
        return cls(
            signal_rules=[NotHalted(), AutoTradingEnabled(), KnownSymbol(), NoExistingPosition(), NoPendingEntry()],
            sizer=BalanceSizer(position_size_pct, stop_loss_pct, take_profit_pct),
            intent_rules=[MinNotional(), MaxNotionalFromBracket(), EnoughMargin()],
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
