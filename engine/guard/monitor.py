"""RiskMonitor: the stateful part of the guard that decides when trading must halt or resume.

Sans-I/O and clock-free: every input carries its time (epoch ms, exchange or replay time), and
every decision comes back as a value (:class:`HaltRequest`, :class:`ResumeRequest`,
:class:`StrategyDisabled`) for the engine to apply. Nothing here raises for a limit.

Halt kinds, strongest first (the monitor reports one halt at a time, the strongest active one):

====================  =====================================  =================================
kind                  trips when                             lifted by
====================  =====================================  =================================
consecutive_losses    ``max_consecutive_losses`` losing      the operator only (resume)
                      closed trades in a row (0 = off)
daily_loss            equity down ``max_daily_loss_pct``     the next UTC day (``on_new_day``)
                      from the day's start (None = off)      or the operator
market_shock          a closed candle's (high − low) / open  the monitor after the cool-down,
                      × 100 > ``shock_move_pct`` (0 = off)   or the operator
====================  =====================================  =================================

A weaker condition that trips while a stronger halt is active is remembered but not reported;
when the stronger one is lifted, the monitor reports the weaker one still in force as a new
:class:`HaltRequest` (e.g. the daily-loss halt ends at 00:00 UTC during a market-shock cool-down:
``HaltRequest(kind="market_shock")``) instead of a :class:`ResumeRequest`.

Contract with the engine (which owns the engine state and the operator's commands):

* The engine remembers who made its current halt: ``halt_source`` = the monitor's ``kind`` for a
  halt it applied from a :class:`HaltRequest`, or None for anything else (operator halt,
  flatten, ...).
* :class:`HaltRequest`: apply it (``HALTED`` with ``req.reason``, ``halt_source = req.kind``) when
  the engine is ACTIVE or its halt is the monitor's (any kind — the monitor already decided which
  of its halts is in force). Never replace an operator's halt or a REDUCING state.
* :class:`ResumeRequest`: apply it (``ACTIVE``) only when the engine is HALTED with
  ``halt_source == req.kind``; otherwise ignore it. So the monitor never lifts an operator's halt.
* :class:`StrategyDisabled`: log/publish it; the guard's ``StrategyEnabled`` rule enforces it
  through ``GuardView.disabled_strategies``.
* Operator resume: set ACTIVE, ``halt_source = None``, and call :meth:`RiskMonitor.on_operator_resume`.
  Operator halt: ``halt_source = None`` (the monitor's later requests then leave it alone).

:func:`should_apply` is that rule as a function.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Sequence

from engine.exchange.filters import fmt
from engine.model import Candle, Trade

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
ZERO = Decimal(0)

CONSECUTIVE_LOSSES = "consecutive_losses"
DAILY_LOSS = "daily_loss"
MARKET_SHOCK = "market_shock"
#: Halt strength: a stronger halt replaces a weaker one, never the other way round.
STRENGTH = {MARKET_SHOCK: 1, DAILY_LOSS: 2, CONSECUTIVE_LOSSES: 3}

#: What the hooks return when nothing happens: a shared, immutable empty sequence (no allocation
#: on the per-candle path). Iterate it; never mutate what a hook returns.
NOTHING: tuple = ()

# The float pre-check may only skip the exact Decimal check when the range is clearly below the
# threshold; this margin absorbs float rounding.
_FLOAT_MARGIN = 1 - 1e-9


def _utc(ms: int) -> str:
    """``HH:MM:SS UTC`` of an epoch-ms time."""
    seconds = ms // 1000 % 86_400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d} UTC"


@dataclass(frozen=True, slots=True)
class HaltRequest:
    reason: str
    kind: str  # "daily_loss" | "consecutive_losses" | "market_shock"


@dataclass(frozen=True, slots=True)
class ResumeRequest:
    reason: str
    kind: str  # the kind of the monitor halt being lifted


@dataclass(frozen=True, slots=True)
class StrategyDisabled:
    strategy: str
    reason: str


def should_apply(req: HaltRequest | ResumeRequest, *, engine_active: bool, halt_source: str | None) -> bool:
    """The engine side of the contract: whether the engine applies ``req`` given its state.

    ``engine_active``: the engine state is ACTIVE. ``halt_source``: the monitor kind that made the
    engine's current halt, or None (operator halt, flatten, REDUCING, or not halted). A
    HaltRequest applies when the engine is ACTIVE or halted by the monitor; a ResumeRequest only
    when the engine is halted by the monitor with the same kind."""
    if isinstance(req, HaltRequest):
        return engine_active or halt_source is not None
    return not engine_active and halt_source == req.kind


class RiskMonitor:
    """Halts and resumes trading from account and market facts; see the module docstring for the
    halt kinds, their priority and the contract with the engine.

    Public state (read it, don't write it):

    * ``consecutive_losses`` — losing closed trades in a row (net PnL < 0).
    * ``strategy_net_pnl`` — net PnL of closed trades per strategy since start.
    * ``disabled_strategies`` — strategies disabled for losses until the operator resumes.
    * ``halted_by`` — kind of the monitor's own halt in force, or None.
    * ``shock_until_ms`` — end of the market-shock cool-down, or None.
    """

    def __init__(
        self,
        *,
        max_daily_loss_pct: Decimal | None,
        max_consecutive_losses: int,
        strategy_loss_limit_pct: Decimal,
        shock_move_pct: Decimal,
        shock_cooldown_s: int,
    ) -> None:
        self.max_daily_loss_pct = max_daily_loss_pct
        self.max_consecutive_losses = max_consecutive_losses
        self.strategy_loss_limit_pct = strategy_loss_limit_pct
        self.shock_move_pct = shock_move_pct
        self.shock_cooldown_s = shock_cooldown_s
        self._shock_on = shock_move_pct > 0
        self._shock_lo = float(shock_move_pct) * _FLOAT_MARGIN
        self._cooldown_ms = shock_cooldown_s * 1000

        self.consecutive_losses = 0
        self.strategy_net_pnl: dict[str, Decimal] = {}
        self.disabled_strategies: set[str] = set()
        self.halted_by: str | None = None
        self.shock_until_ms: int | None = None

        self._consecutive_halt = False  # consecutive-loss condition in force (until operator)
        self._daily_halt = False  # daily-loss condition in force (until the next day or operator)
        self._daily_tripped = False  # the daily limit fired today: not again until on_new_day
        self._last_shock_ms: int | None = None
        self._reasons: dict[str, str] = {}  # kind -> reason of the condition in force
        # per strategy: net PnL when the operator last re-enabled it; the loss limit counts from here
        self._strategy_base: dict[str, Decimal] = {}

    # -- market shock --------------------------------------------------------------------------

    def on_candle(self, candle: Candle, now_ms: int) -> Sequence[HaltRequest | ResumeRequest]:
        """Every closed candle (any symbol). Returns :data:`NOTHING` on the common path."""
        if self._shock_on:
            # shock iff (high - low) * 100 > pct * open; open >= low, so a range below pct% of the
            # low cannot be a shock: floats decide the common case, Decimals the close calls.
            if (candle.high_f - candle.low_f) * 100.0 >= self._shock_lo * candle.low_f and (
                (candle.high - candle.low) * HUNDRED > self.shock_move_pct * candle.open
            ):
                return self._shock(candle, now_ms)
        su = self.shock_until_ms
        if su is not None and now_ms >= su:
            return self._shock_over(now_ms)
        return NOTHING

    def _shock(self, candle: Candle, now_ms: int) -> Sequence[HaltRequest | ResumeRequest]:
        until = now_ms + self._cooldown_ms
        old = self.shock_until_ms
        if old is not None and old >= until:
            self._last_shock_ms = now_ms
            return NOTHING  # same (or later) cool-down end: nothing new to say
        self.shock_until_ms = until
        self._last_shock_ms = now_ms
        move = (candle.high - candle.low) / candle.open * HUNDRED if candle.open else ZERO
        self._reasons[MARKET_SHOCK] = (
            f"market shock: {candle.symbol} 1m range {fmt(move.quantize(CENT))}% of open, above "
            f"shock_move_pct {fmt(self.shock_move_pct)}%; no new entries until {_utc(until)}, "
            "then re-evaluated"
        )
        if self.halted_by == MARKET_SHOCK:  # extended: report the new end
            return [HaltRequest(self._reasons[MARKET_SHOCK], MARKET_SHOCK)]
        return self._settle(now_ms)

    def _shock_over(self, now_ms: int) -> Sequence[HaltRequest | ResumeRequest]:
        self.shock_until_ms = None
        self._reasons.pop(MARKET_SHOCK, None)
        if self.halted_by != MARKET_SHOCK:
            return NOTHING
        since = self._last_shock_ms if self._last_shock_ms is not None else now_ms
        return self._settle(now_ms, resume_reason=f"re-evaluated after cool-down: no shock since {_utc(since)}")

    # -- daily loss ----------------------------------------------------------------------------

    def on_equity(
        self, equity: Decimal, day_start_equity: Decimal, now_ms: int
    ) -> Sequence[HaltRequest | ResumeRequest]:
        """Equity changed (or periodically). Trips the daily-loss halt at most once per UTC day."""
        limit = self.max_daily_loss_pct
        if limit is None or self._daily_tripped or day_start_equity <= 0:
            return NOTHING
        loss_pct = (day_start_equity - equity) / day_start_equity * HUNDRED
        if loss_pct < limit:
            return NOTHING
        self._daily_tripped = True
        self._daily_halt = True
        self._reasons[DAILY_LOSS] = (
            f"daily loss limit: down {fmt(loss_pct.quantize(CENT))}% today, max_daily_loss_pct "
            f"{fmt(limit)}%; no new entries until 00:00 UTC"
        )
        return self._settle(now_ms)

    def on_new_day(self, now_ms: int) -> Sequence[HaltRequest | ResumeRequest]:
        """00:00 UTC (exchange time): lifts a daily-loss halt, never any other halt."""
        self._daily_tripped = False
        if not self._daily_halt:
            return NOTHING
        self._daily_halt = False
        self._reasons.pop(DAILY_LOSS, None)
        su = self.shock_until_ms
        if su is not None and now_ms >= su:  # a cool-down that ended under the daily-loss halt
            self.shock_until_ms = None
            self._reasons.pop(MARKET_SHOCK, None)
        return self._settle(now_ms, resume_reason="new UTC day: daily loss limit reset")

    # -- closed trades -------------------------------------------------------------------------

    def on_trade_closed(self, trade: Trade, start_equity: Decimal) -> list[HaltRequest | StrategyDisabled]:
        """A round trip finished. ``start_equity`` = equity when the engine started."""
        out: list[HaltRequest | StrategyDisabled] = []
        net = trade.net_pnl
        if net < 0:
            self.consecutive_losses += 1
        else:
            self.consecutive_losses = 0
        strategy = trade.strategy
        total = self.strategy_net_pnl.get(strategy, ZERO) + net
        self.strategy_net_pnl[strategy] = total
        limit_pct = self.strategy_loss_limit_pct
        if limit_pct > 0 and start_equity > 0 and strategy not in self.disabled_strategies:
            limit = limit_pct * start_equity / HUNDRED
            lost = total - self._strategy_base.get(strategy, ZERO)
            if lost <= -limit:
                self.disabled_strategies.add(strategy)
                since = "since start" if strategy not in self._strategy_base else "since it was re-enabled"
                out.append(StrategyDisabled(
                    strategy,
                    f"strategy {strategy} disabled: closed trades net {fmt(lost.quantize(CENT))} USDT {since}, "
                    f"at or past strategy_loss_limit_pct {fmt(limit_pct)}% of starting equity "
                    f"{fmt(start_equity.quantize(CENT))} = -{fmt(limit.quantize(CENT))} USDT; resume re-enables it",
                ))
        n = self.max_consecutive_losses
        if n > 0 and self.consecutive_losses >= n and not self._consecutive_halt:
            self._consecutive_halt = True
            self._reasons[CONSECUTIVE_LOSSES] = (
                f"consecutive losses: {self.consecutive_losses} losing trades in a row, "
                f"max_consecutive_losses {n}; resume by hand"
            )
            out.extend(self._settle(trade.exit_time_ms or 0))
        return out

    # -- operator ------------------------------------------------------------------------------

    def on_operator_resume(self) -> None:
        """The operator resumed: every monitor halt is cleared, the loss streak restarts, disabled
        strategies are re-enabled (their loss limit counts afresh from their current net PnL) and
        any shock cool-down ends. A daily-loss limit that already fired today does not fire again
        before the next UTC day (the ``MaxDailyLoss`` guard rule still denies entries meanwhile)."""
        self.halted_by = None
        self.consecutive_losses = 0
        self._consecutive_halt = False
        self._daily_halt = False
        self.shock_until_ms = None
        self._reasons.clear()
        for s in self.disabled_strategies:
            self._strategy_base[s] = self.strategy_net_pnl.get(s, ZERO)
        self.disabled_strategies.clear()

    # -- views ---------------------------------------------------------------------------------

    def view_fields(self) -> dict:
        """The ``GuardView`` keyword arguments this monitor supplies."""
        return {
            "consecutive_losses": self.consecutive_losses,
            "strategy_net_pnl": self.strategy_net_pnl,
            "disabled_strategies": frozenset(self.disabled_strategies),
        }

    def status(self) -> dict:
        """JSON-able snapshot for the console/API."""
        return {
            "consecutive_losses": self.consecutive_losses,
            "disabled_strategies": sorted(self.disabled_strategies),
            "halted_by": self.halted_by,
            "halt_reason": self._reasons.get(self.halted_by, "") if self.halted_by else "",
            "shock_until_ms": self.shock_until_ms,
            "strategy_net_pnl": {k: str(v) for k, v in sorted(self.strategy_net_pnl.items())},
        }

    # -- internals -----------------------------------------------------------------------------

    def _strongest(self, now_ms: int) -> str | None:
        if self._consecutive_halt:
            return CONSECUTIVE_LOSSES
        if self._daily_halt:
            return DAILY_LOSS
        if self.shock_until_ms is not None:  # in force until on_candle sees the cool-down over
            return MARKET_SHOCK
        return None

    def _settle(self, now_ms: int, resume_reason: str = "") -> list[HaltRequest | ResumeRequest]:
        """Re-derive the halt in force after a condition tripped or cleared and report
        the difference: a stronger (or the only) halt → HaltRequest; the halt lifted with a
        weaker one still in force → HaltRequest for that one; nothing left → ResumeRequest."""
        old = self.halted_by
        new = self._strongest(now_ms)
        if new == old:
            return []
        self.halted_by = new
        if new is not None:
            return [HaltRequest(self._reasons[new], new)]
        assert old is not None
        return [ResumeRequest(resume_reason or f"{old} halt lifted", old)]
