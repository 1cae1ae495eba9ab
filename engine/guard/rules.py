"""One rule per check. Each is a small object with a ``name`` and ``check`` → Approved | Denied.

Signal rules run first (cheap state checks); then the sizer turns the signal into an intent;
then intent rules check what would actually be sent.
"""

from __future__ import annotations

from decimal import Decimal

from engine.exchange.filters import fmt
from engine.guard.base import Approved, Denied, EngineState, GuardView, Verdict
from engine.model import Direction, OrderIntent, PositionMode, PositionSide, Signal

APPROVED = Approved()
HUNDRED = Decimal(100)


class NotHalted:
    name = "halted"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if view.state is EngineState.HALTED:
            return Denied(f"halted ({view.halt_reason})" if view.halt_reason else "halted")
        if view.state is EngineState.REDUCING:
            return Denied("reducing: only closing orders are allowed")
        return APPROVED


class AutoTradingEnabled:
    name = "auto_trading"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if not view.auto_trading_enabled:
            return Denied("auto-trading disabled (observe only)")
        return APPROVED


class KnownSymbol:
    name = "symbol"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        rules = view.rules.get(signal.symbol)
        if rules is None:
            return Denied(f"unknown symbol {signal.symbol}")
        if rules.status != "TRADING":
            return Denied(f"{signal.symbol} is not trading (status {rules.status})")
        return APPROVED


class NoExistingPosition:
    """One position per symbol (one-way) or per symbol and side (hedge)."""

    name = "existing_position"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if view.position_mode is PositionMode.HEDGE:
            key = view.key_for(signal)
            if view.positions.get(key):
                return Denied(f"position already open on {signal.symbol} {key[1].value}")
            return APPROVED
        if view.positions.get((signal.symbol, PositionSide.BOTH)):
            return Denied(f"position already open on {signal.symbol}")
        return APPROVED


class NoPendingEntry:
    name = "pending_entry"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if view.position_mode is PositionMode.HEDGE:
            if view.key_for(signal) in view.pending_entries:
                return Denied(f"entry already pending on {signal.symbol} {signal.direction.value}")
            return APPROVED
        if any(k[0] == signal.symbol for k in view.pending_entries):
            return Denied(f"entry already pending on {signal.symbol}")
        return APPROVED


class BalanceSizer:
    """Size = equity × ``position_size_pct`` as initial margin, × leverage as notional, rounded
    down to the step; the stop and take-profit are placed ``stop_loss_pct``/``take_profit_pct``
    away from the reference price, rounded to the tick."""

    name = "size"

    def __init__(self, position_size_pct: Decimal, stop_loss_pct: Decimal, take_profit_pct: Decimal | None) -> None:
        self.position_size_pct = position_size_pct
        self.stop_loss_pct = stop_loss_pct
        self.take_profit_pct = take_profit_pct

    def size(self, signal: Signal, view: GuardView) -> OrderIntent | Denied:
        rules = view.rules[signal.symbol]
        price = view.marks.get(signal.symbol) or signal.price
        if view.equity <= 0:
            return Denied("no equity")
        margin = view.equity * self.position_size_pct / HUNDRED
        notional = margin * view.leverage
        qty = rules.round_qty(notional / price, market=True)
        if qty <= 0:
            return Denied(
                f"size rounds to zero: {fmt(notional.quantize(Decimal('0.01')))} USDT notional "
                f"< one step of {fmt(rules.market_lot_size.step_size)} at {fmt(price)}"
            )
        sl = self.stop_loss_pct / HUNDRED
        long = signal.direction is Direction.LONG
        stop = rules.round_price(price * (1 - sl) if long else price * (1 + sl))
        tp = None
        if self.take_profit_pct is not None:
            f = self.take_profit_pct / HUNDRED
            tp = rules.round_price(price * (1 + f) if long else price * (1 - f))
        return OrderIntent(
            signal_id=signal.signal_id,
            strategy=signal.strategy,
            symbol=signal.symbol,
            direction=signal.direction,
            position_side=view.key_for(signal)[1],
            quantity=qty,
            reference_price=price,
            stop_price=stop,
            take_profit_price=tp,
            created_ms=view.now_ms,
        )


class MinNotional:
    name = "min_notional"

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        rules = view.rules[intent.symbol]
        if rules.min_qty_ok(intent.quantity) is False:
            return Denied(f"quantity {fmt(intent.quantity)} below min qty {fmt(rules.market_lot_size.min_qty)}")
        if intent.notional < rules.min_notional:
            return Denied(
                f"notional {fmt(intent.notional.quantize(Decimal('0.01')))} below the symbol minimum "
                f"{fmt(rules.min_notional)} USDT"
            )
        return APPROVED


class MaxNotionalFromBracket:
    name = "max_notional"

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        rules = view.rules[intent.symbol]
        cap = rules.max_notional_for_leverage(view.leverage)
        if cap is not None and intent.notional > cap:
            return Denied(
                f"notional {fmt(intent.notional.quantize(Decimal('0.01')))} above {fmt(cap)} USDT, "
                f"the bracket maximum at {view.leverage}x"
            )
        if intent.quantity > rules.market_lot_size.max_qty > 0:
            return Denied(f"quantity {fmt(intent.quantity)} above market max qty {fmt(rules.market_lot_size.max_qty)}")
        return APPROVED


class EnoughMargin:
    """Initial margin + the entry's taker fee + a slippage allowance must fit the available balance."""

    name = "margin"
    SLIPPAGE_ALLOWANCE = Decimal("0.002")  # 0.2% of notional: the market fill may be worse than the mark

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        n = intent.notional
        need = n / view.leverage + n * (view.taker_fee_rate + self.SLIPPAGE_ALLOWANCE)
        if need > view.available_balance:
            return Denied(
                f"insufficient margin: needs {fmt(need.quantize(Decimal('0.01')))} USDT, "
                f"available {fmt(view.available_balance.quantize(Decimal('0.01')))}"
            )
        return APPROVED


class MaxDailyTrades:
    """No more than ``max_daily_trades`` entries per UTC day (0 blocks all entries)."""

    name = "max_daily_trades"

    def __init__(self, max_daily_trades: int) -> None:
        self.max_daily_trades = max_daily_trades

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if view.entries_today >= self.max_daily_trades:
            return Denied(f"daily trade limit: {view.entries_today} of {self.max_daily_trades} entries today (UTC)")
        return APPROVED


class MaxDailyLoss:
    """No new entries for the rest of the UTC day once equity is down ``max_daily_loss_pct`` from
    where it started the day (realised and unrealised, fees and funding included)."""

    name = "max_daily_loss"

    def __init__(self, max_daily_loss_pct: Decimal) -> None:
        self.max_daily_loss_pct = max_daily_loss_pct

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        start = view.day_start_equity
        if start <= 0:
            return APPROVED
        loss_pct = (start - view.equity) / start * HUNDRED
        if loss_pct >= self.max_daily_loss_pct:
            return Denied(
                f"daily loss limit: down {fmt(loss_pct.quantize(Decimal('0.01')))}% today "
                f"(limit {fmt(self.max_daily_loss_pct)}%); no new entries until 00:00 UTC"
            )
        return APPROVED


class MaxPositionPct:
    """One position's initial margin may not exceed ``max_position_pct`` of equity."""

    name = "max_position_pct"

    def __init__(self, max_position_pct: Decimal) -> None:
        self.max_position_pct = max_position_pct

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        margin = intent.notional / view.leverage
        cap = view.equity * self.max_position_pct / HUNDRED
        if margin > cap:
            return Denied(
                f"position margin {fmt(margin.quantize(Decimal('0.01')))} USDT above "
                f"max_position_pct {fmt(self.max_position_pct)}% of equity ({fmt(cap.quantize(Decimal('0.01')))})"
            )
        return APPROVED


class MaxTotalExposure:
    """All positions' initial margin, this entry included, may not exceed ``max_total_exposure_pct`` of equity."""

    name = "max_total_exposure"

    def __init__(self, max_total_exposure_pct: Decimal) -> None:
        self.max_total_exposure_pct = max_total_exposure_pct

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        total = view.used_margin + intent.notional / view.leverage
        cap = view.equity * self.max_total_exposure_pct / HUNDRED
        if total > cap:
            return Denied(
                f"total exposure: margin {fmt(total.quantize(Decimal('0.01')))} USDT would exceed "
                f"max_total_exposure_pct {fmt(self.max_total_exposure_pct)}% of equity ({fmt(cap.quantize(Decimal('0.01')))})"
            )
        return APPROVED
