"""One rule per check. Each is a small object with a ``name`` and ``check`` → Approved | Denied.

Signal rules run first (cheap state checks); then the sizer turns the signal into an intent;
then intent rules check what would actually be sent.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal
from typing import Mapping

from engine.exchange.filters import fmt
from engine.guard.base import Approved, Denied, EngineState, GuardView, Verdict
from engine.model import Direction, OrderIntent, PositionMode, PositionSide, Signal

APPROVED = Approved()
HUNDRED = Decimal(100)
CENT = Decimal("0.01")
SCALE_QUANTUM = Decimal("0.000001")  # volatility scale as shown in a reason
FUNDING_INTERVAL_MS = 8 * 3_600_000  # funding at 00:00, 08:00 and 16:00 UTC


def hhmm(ms: int) -> str:
    """``HH:MM`` (UTC) of an epoch-ms time, without touching the wall clock."""
    minutes = ms // 60_000 % 1440
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


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
    away from the reference price, rounded to the tick.

    Volatility sizing: with ``atr_max_pct`` > 0, when the symbol's latest 1m ATR
    (``view.atr_pct``, % of price) is above ``atr_max_pct`` the notional is scaled by
    ``atr_max_pct / ATR%`` (see :meth:`volatility_scale`) before the quantity is rounded. An
    unknown ATR (symbol missing from ``view.atr_pct``) leaves the size alone."""

    name = "size"

    def __init__(
        self,
        position_size_pct: Decimal,
        stop_loss_pct: Decimal,
        take_profit_pct: Decimal | None,
        atr_max_pct: Decimal = Decimal(0),
    ) -> None:
        self.position_size_pct = position_size_pct
        self.stop_loss_pct = stop_loss_pct
        self.take_profit_pct = take_profit_pct
        self.atr_max_pct = atr_max_pct
        self._atr_max_f = float(atr_max_pct)

    def atr_above_max(self, symbol: str, view: GuardView) -> Decimal | None:
        """The symbol's ATR% (as a Decimal) when it is above ``atr_max_pct`` and sizing is on,
        else None (sizing off, ATR unknown, at or below the max, or NaN)."""
        if self._atr_max_f <= 0:
            return None
        atr = view.atr_pct.get(symbol)
        if atr is None or not atr > self._atr_max_f:  # "not >" also skips NaN
            return None
        return Decimal(repr(atr))

    def volatility_scale(self, symbol: str, view: GuardView) -> Decimal | None:
        """``atr_max_pct / ATR%`` (0 < scale < 1) when the entry on ``symbol`` is scaled down for
        volatility, else None. For logging/display; :meth:`size` applies it."""
        atr = self.atr_above_max(symbol, view)
        return None if atr is None else self.atr_max_pct / atr

    def size(self, signal: Signal, view: GuardView) -> OrderIntent | Denied:
        rules = view.rules[signal.symbol]
        price = view.marks.get(signal.symbol) or signal.price
        if view.equity <= 0:
            return Denied("no equity")
        margin = view.equity * self.position_size_pct / HUNDRED
        notional = margin * view.leverage
        atr = self.atr_above_max(signal.symbol, view) if self._atr_max_f > 0 else None
        if atr is not None:
            notional = notional * self.atr_max_pct / atr  # divide last: 3000 × 0.5 / 1.5 is exactly 1000
        qty = rules.round_qty(notional / price, market=True)
        if qty <= 0:
            why = ""
            if atr is not None:
                scale = (self.atr_max_pct / atr).quantize(SCALE_QUANTUM, rounding=ROUND_DOWN)
                why = (f", scaled by {fmt(scale)} for ATR {float(atr):.3g}% "
                       f"above atr_max_pct {fmt(self.atr_max_pct)}%")
            return Denied(
                f"size rounds to zero: {fmt(notional.quantize(CENT))} USDT notional{why} "
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


class MaxSymbolNotional:
    """Cap on one symbol's notional: the entry plus whatever is already open on that symbol (both
    sides in hedge mode, valued at the mark, or the entry's reference price when no mark is known).
    The cap is ``by_symbol[symbol]`` when set, else ``default_usdt``; 0 = no cap."""

    name = "max_symbol_notional"

    def __init__(self, default_usdt: Decimal, by_symbol: Mapping[str, Decimal] | None = None) -> None:
        self.default_usdt = default_usdt
        self.by_symbol = dict(by_symbol or {})

    def cap_for(self, symbol: str) -> Decimal:
        return self.by_symbol.get(symbol, self.default_usdt)

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        symbol = intent.symbol
        cap = self.by_symbol.get(symbol, self.default_usdt)
        if cap <= 0:
            return APPROVED
        held = Decimal(0)
        for (sym, _), amount in view.positions.items():
            if sym == symbol and amount:
                held += abs(amount)
        entry = intent.notional
        mark = view.marks.get(symbol) or intent.reference_price
        open_notional = held * mark
        total = entry + open_notional
        if total > cap:
            source = "max_notional_by_symbol" if symbol in self.by_symbol else "max_notional_usdt"
            held_txt = f" + {fmt(open_notional.quantize(CENT))} USDT already open" if held else ""
            return Denied(
                f"symbol notional cap: {symbol} would hold {fmt(total.quantize(CENT))} USDT, "
                f"entry {fmt(entry.quantize(CENT))}{held_txt}, above {source} {fmt(cap)} USDT"
            )
        return APPROVED


class MaxPositionsPerDay:
    """No more than ``max_positions_per_day`` positions opened (entry filled) per UTC day; 0 blocks
    all entries."""

    name = "max_positions_per_day"

    def __init__(self, max_positions_per_day: int) -> None:
        self.max_positions_per_day = max_positions_per_day

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        n = view.positions_opened_today
        if n >= self.max_positions_per_day:
            return Denied(
                f"daily position limit: {n} of max_positions_per_day {self.max_positions_per_day} "
                "positions opened today (UTC)"
            )
        return APPROVED


class StrategyEnabled:
    """A strategy the RiskMonitor disabled (its closed trades lost too much) sends nothing until
    the operator resumes."""

    name = "strategy_enabled"

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        if signal.strategy in view.disabled_strategies:
            pnl = view.strategy_net_pnl.get(signal.strategy)
            if pnl is None:
                why = "loss limit reached"
            else:
                why = f"closed trades net {fmt(pnl.quantize(CENT))} USDT since start"
                if view.start_equity > 0:
                    pct = pnl / view.start_equity * HUNDRED
                    why += f", {fmt(pct.quantize(CENT))}% of starting equity {fmt(view.start_equity.quantize(CENT))}"
            return Denied(f"strategy {signal.strategy} disabled ({why}; resume re-enables it)")
        return APPROVED


class FundingBlackout:
    """No new entries within ``minutes`` before or after a funding time (00:00, 08:00, 16:00 UTC).
    The window is closed: exactly ``minutes`` before or after is still inside. 0 = off."""

    name = "funding_blackout"

    def __init__(self, minutes: int) -> None:
        self.minutes = minutes
        self._window_ms = minutes * 60_000

    def funding_near(self, now_ms: int) -> int | None:
        """The funding time (epoch ms) whose blackout window holds ``now_ms``, else None."""
        w = self._window_ms
        if w <= 0:
            return None
        since = now_ms % FUNDING_INTERVAL_MS
        if since <= w:
            return now_ms - since
        until = FUNDING_INTERVAL_MS - since
        if until <= w:
            return now_ms + until
        return None

    def check(self, signal: Signal, view: GuardView) -> Verdict:
        t = self.funding_near(view.now_ms)
        if t is None:
            return APPROVED
        w = self._window_ms
        return Denied(
            f"funding blackout: {hhmm(view.now_ms)} UTC is within {self.minutes} min of the "
            f"{hhmm(t)} UTC funding, no entries {hhmm(t - w)}-{hhmm(t + w)} UTC"
        )


class MinTradeSize:
    """An entry smaller than ``min_trade_size`` USDT notional is not worth sending. 0 = off."""

    name = "min_trade_size"

    def __init__(self, min_usdt: Decimal) -> None:
        self.min_usdt = min_usdt

    def check(self, intent: OrderIntent, view: GuardView) -> Verdict:
        n = intent.notional
        if n < self.min_usdt:
            return Denied(
                f"trade too small: notional {fmt(n.quantize(CENT))} USDT below min_trade_size "
                f"{fmt(self.min_usdt)} USDT"
            )
        return APPROVED
