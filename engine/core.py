"""The pipeline step, sans-I/O: closed candle → strategy → guard → orders, and exchange facts in.

Nothing here awaits, sleeps, or reads the wall clock. The backtest loop and the asyncio runtime
both drive this same object:

* ``on_candle(candle)`` — a closed candle arrived;
* ``on_exchange_event(fact)`` — the exchange told us something (parsed ``Ex*`` facts);
* ``take_commands()`` — exchange commands to execute, whose outcomes go back through
  ``on_order_accepted`` / ``on_order_rejected`` / … (see :func:`execute_sync`);
* ``handle(command)`` — Halt, Resume, FlattenAll, SwitchStrategy from the operator.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Iterable

from engine.bus import Bus
from engine.clock import EventClock
from engine.events import (
    AccountChanged,
    CandleClosed,
    EngineLogged,
    EngineStateChanged,
    ExAccountUpdate,
    ExAlgoUpdate,
    ExOrderUpdate,
    ExStreamExpired,
    FlattenAll,
    FundingPaid,
    ExternalSignalIngested,
    Halt,
    IngestSignal,
    OrderFilled,
    PositionChanged,
    ProtectionFailed,
    Resume,
    SignalJudged,
    StrategySwitched,
    SwitchStrategy,
    TradeClosed,
    TradeOpened,
)
from engine.exchange.errors import ExchangeError
from engine.exchange.filters import SymbolRules
from engine.guard.base import Denied, EngineState, GuardView
from engine.guard.guard import Guard
from engine.guard.monitor import HaltRequest, ResumeRequest, RiskMonitor, StrategyDisabled, should_apply
from engine.guard.volatility import AtrTracker
from engine.model import (
    ZERO,
    Account,
    AlgoStatus,
    Candle,
    Fill,
    MarginType,
    OrderPurpose,
    OrderType,
    Position,
    PositionMode,
    PositionSide,
    Signal,
    SignalRecord,
    Trade,
    Verdict,
)
from engine.orders.manager import (
    CancelAlgoOrder,
    CancelOrder,
    EntryPolicy,
    ExchangeCommand,
    ExitPolicy,
    OrderManager,
    SubmitAlgoOrder,
    SubmitOrder,
)
from engine.orders.persist import bracket_from_dict, bracket_to_dict, trade_from_dict, trade_to_dict
from engine.orders.trades import TradeBook
from engine.state.reconcile import Correction, RunningDiff, StartupPlan
from engine.strategies.base import SafeStrategy, Strategy

log = logging.getLogger("engine")


class _MarkSlot:
    """One open position's float mark-to-market state and its trade (for MFE/MAE extremes)."""

    __slots__ = ("ef", "af", "u", "trade")

    def __init__(self, ef: float, af: float, trade) -> None:
        self.ef = ef
        self.af = af
        self.u = 0.0
        self.trade = trade


@dataclass(frozen=True)
class EngineParams:
    leverage: int = 3
    position_mode: PositionMode = PositionMode.ONEWAY
    margin_type: MarginType = MarginType.ISOLATED
    auto_trading_enabled: bool = True
    position_size_pct: Decimal = Decimal(10)
    stop_loss_pct: Decimal = Decimal(3)
    take_profit_pct: Decimal | None = Decimal(5)
    taker_fee_rate: Decimal = Decimal("0.0005")
    max_position_pct: Decimal = Decimal(10)
    max_total_exposure_pct: Decimal = Decimal(50)
    max_daily_trades: int | None = 20
    max_daily_loss_pct: Decimal | None = Decimal(5)
    exits: ExitPolicy = field(default_factory=ExitPolicy)
    entries: EntryPolicy | None = None
    vwap_lookback: int = 1440
    max_notional_usdt: Decimal = ZERO
    max_notional_by_symbol: dict[str, Decimal] = field(default_factory=dict)
    max_positions_per_day: int | None = None
    max_consecutive_losses: int = 0
    strategy_loss_limit_pct: Decimal = ZERO
    funding_blackout_min: int = 0
    atr_period: int = 14
    atr_max_pct: Decimal = ZERO
    shock_move_pct: Decimal = ZERO
    shock_cooldown_s: int = 0
    min_trade_size: Decimal = ZERO


@dataclass
class EngineStats:
    signals: int = 0
    accepted: int = 0
    denials: Counter = field(default_factory=Counter)
    fills: int = 0
    duplicate_fills: int = 0
    protection_failures: int = 0
    unprotected_checks: int = 0  # settled states (after each pump) in which an open position had no live stop
    strategy_errors: int = 0
    stale_updates: int = 0  # ACCOUNT_UPDATE parts older than what the engine already knows (delayed or replayed)


class Engine:
    def __init__(
        self,
        *,
        namespace: str,
        rules: dict[str, SymbolRules],
        strategies: dict[str, Strategy],
        active_strategy: str,
        params: EngineParams,
        guard: Guard | None = None,
        bus: Bus | None = None,
        journal=None,
        clock: EventClock | None = None,
        strict: bool = False,
    ) -> None:
        if active_strategy not in strategies:
            raise ValueError(f"active strategy {active_strategy!r} is not among {sorted(strategies)}")
        self.namespace = namespace
        self.rules = rules
        self.params = params
        self.strategies = {k: SafeStrategy(v) for k, v in strategies.items()}
        self.active_name = active_strategy
        self._strategy = self.strategies[active_strategy]
        self._strategy_fn = self._strategy.inner.on_candle
        self._pending_switch: str | None = None
        self.guard = guard or Guard.default(
            position_size_pct=params.position_size_pct,
            stop_loss_pct=params.stop_loss_pct,
            take_profit_pct=params.take_profit_pct,
            max_position_pct=params.max_position_pct,
            max_total_exposure_pct=params.max_total_exposure_pct,
            max_daily_trades=params.max_daily_trades,
            max_daily_loss_pct=params.max_daily_loss_pct,
            max_notional_usdt=params.max_notional_usdt,
            max_notional_by_symbol=params.max_notional_by_symbol,
            max_positions_per_day=params.max_positions_per_day,
            funding_blackout_min=params.funding_blackout_min,
            atr_max_pct=params.atr_max_pct,
            min_trade_size=params.min_trade_size,
        )
        self.monitor = RiskMonitor(
            max_daily_loss_pct=params.max_daily_loss_pct,
            max_consecutive_losses=params.max_consecutive_losses,
            strategy_loss_limit_pct=params.strategy_loss_limit_pct,
            shock_move_pct=params.shock_move_pct,
            shock_cooldown_s=params.shock_cooldown_s,
        )
        """Halts and resumes on account and market facts (daily loss, losing streak, market shock)."""
        self.halt_source: str | None = None
        """The monitor kind that made the current halt; None for the operator's (never lifted by the monitor)."""
        self.atr = AtrTracker(params.atr_period) if params.atr_max_pct > 0 else None
        self.positions_opened_today = 0
        self.start_equity = ZERO
        self._daily_floor_f = float("-inf")
        """Equity (float) below which the daily loss limit is reached; checked on every marked candle."""
        self.bus = bus or Bus()
        self.journal = journal
        self.clock = clock or EventClock()
        self.state = EngineState.ACTIVE
        self.halt_reason = ""
        self.utc_day = -1  # exchange-time day number of the last candle
        self._next_day_ms = 0  # 00:00 UTC after utc_day
        self.entries_today = 0
        self.day_start_equity = ZERO
        self.stats = EngineStats()
        self.marks: dict[str, Decimal] = {}
        self.positions: dict[tuple[str, PositionSide], Position] = {}
        # Exchange time of the newest position state applied per key, and the time of the last
        # reconciliation snapshot per symbol: an ACCOUNT_UPDATE older than either (delayed, or
        # replayed after a reconnect) describes a past the engine has moved beyond and is ignored.
        self._pos_asof_ms: dict[tuple[str, PositionSide], int] = {}
        self._sym_asof_ms: dict[str, int] = {}
        self._wallet_asof_ms = 0
        self.wallet_balance = ZERO
        self.starting_wallet: Decimal | None = None
        self.funding_total = ZERO
        self._signal_reasons: dict[str, str] = {}
        self._seen_fills: set[tuple[str, int]] = set()
        self.fill_window_start_ms: int | None = None
        """Exchange ms from which fills were last fetched at startup (timer reconciliation goes on from it)."""
        self._plans_sent: dict = {}
        self.external_keys: set[tuple[str, PositionSide]] = set()
        """Positions opened outside perpdeck and left alone (shown, never traded against)."""
        self._want_candles = False
        self._journal_candles = bool(journal is not None and getattr(journal, "record_candles", False))
        self._candle_taps = self._journal_candles
        self.candle_count = 0
        # Equity curve for the drawdown statistic, marked to market on every candle of a symbol with
        # a position. Floats: it is a statistic reported to cents; money (wallet, PnL, sizing) is
        # Decimal and unrealized_pnl() is computed exactly on demand.
        self._mtm: dict[str, list[_MarkSlot]] = {}
        self._upnl_f_total = 0.0
        self._wallet_f = 0.0
        self._peak_f = 0.0
        self._max_dd_f = 0.0
        self._max_dd_pct_f = 0.0
        self.orders = OrderManager(
            namespace=namespace,
            rules=rules,
            position_mode=params.position_mode,
            strict=strict,
            journal=journal,
            clock=self.clock,
            exits=params.exits,
            entries=params.entries,
            volume_profile=self.volume_profile,
        )
        self._volumes: dict[str, deque] | None = {} if params.entries is not None and params.entries.split == "vwap" else None
        self.trades = TradeBook(on_open=self._trade_opened, on_close=self._trade_closed,
                                on_update=self._trade_updated)

    # -- setup --------------------------------------------------------------------------------

    def bootstrap(self, account: Account, positions: Iterable[Position]) -> None:
        """Take the exchange's account and positions as the starting truth."""
        self.wallet_balance = account.wallet_balance
        if self.starting_wallet is None:
            self.starting_wallet = account.wallet_balance
        self._peak_f = float(account.wallet_balance)
        for p in positions:
            if p.amount != 0:
                key = (p.symbol, p.position_side)
                self.positions[key] = p
                self.orders.on_position(key, p.amount, p.entry_price)
        self._revalue()
        if not self.start_equity:
            self.start_equity = self.equity()
        self._want_candles = self.bus.wants(CandleClosed)
        self._candle_taps = self._journal_candles or self._want_candles

    # -- views ----------------------------------------------------------------------------------

    def unrealized_pnl(self) -> Decimal:
        """Exact unrealised PnL of all positions at the latest marks."""
        total = ZERO
        for (sym, _), p in self.positions.items():
            mark = self.marks.get(sym)
            if mark is not None:
                total += (mark - p.entry_price) * p.amount
        return total

    def _revalue(self) -> None:
        """Rebuild the per-symbol mark-to-market slots after a position change."""
        mtm: dict[str, list[_MarkSlot]] = {}
        total = 0.0
        open_trades = self.trades.open
        for key, p in self.positions.items():
            mark = self.marks.get(key[0], p.entry_price)
            slot = _MarkSlot(float(p.entry_price), float(p.amount), open_trades.get(key))
            slot.u = (float(mark) - slot.ef) * slot.af
            total += slot.u
            mtm.setdefault(key[0], []).append(slot)
        self._upnl_f_total = total
        self._wallet_f = float(self.wallet_balance)
        self._mtm = mtm

    @property
    def max_drawdown(self) -> Decimal:
        return Decimal(repr(round(self._max_dd_f, 8)))

    @property
    def max_drawdown_pct(self) -> Decimal:
        return Decimal(repr(round(self._max_dd_pct_f, 8)))

    def equity(self) -> Decimal:
        return self.wallet_balance + self.unrealized_pnl()

    def used_margin(self) -> Decimal:
        """Initial margin held by positions: the isolated wallet, or |amount| × mark / leverage (cross)."""
        lev = self.params.leverage
        total = ZERO
        for (sym, _), p in self.positions.items():
            if p.margin_type is MarginType.ISOLATED:
                total += p.isolated_wallet
            else:
                total += abs(p.amount) * self.marks.get(sym, p.entry_price) / lev
        return total

    def available_balance(self) -> Decimal:
        """Binance's rule: wallet − isolated wallets + cross unrealised PnL − cross initial margin.
        (Unrealised profit of an isolated position is not available to open others.)"""
        avail = self.wallet_balance
        lev = self.params.leverage
        for (sym, _), p in self.positions.items():
            if p.margin_type is MarginType.ISOLATED:
                avail -= p.isolated_wallet
            else:
                mark = self.marks.get(sym, p.entry_price)
                avail += (mark - p.entry_price) * p.amount - abs(p.amount) * mark / lev
        return max(ZERO, avail)

    def guard_view(self) -> GuardView:
        return GuardView(
            now_ms=self.clock.now_ms(),
            state=self.state,
            halt_reason=self.halt_reason,
            auto_trading_enabled=self.params.auto_trading_enabled,
            position_mode=self.params.position_mode,
            leverage=self.params.leverage,
            equity=self.equity(),
            available_balance=self.available_balance(),
            positions={k: p.amount for k, p in self.positions.items() if p.amount},
            # a plan still alive (entry in flight, or filled but not yet reported) counts as pending
            pending_entries=frozenset(self.orders.pending_entries).union(self.orders.brackets),
            rules=self.rules,
            marks=self.marks,
            taker_fee_rate=self.params.taker_fee_rate,
            used_margin=self.used_margin(),
            entries_today=self.entries_today,
            day_start_equity=self.day_start_equity,
            positions_opened_today=self.positions_opened_today,
            consecutive_losses=self.monitor.consecutive_losses,
            strategy_net_pnl=self.monitor.strategy_net_pnl,
            disabled_strategies=frozenset(self.monitor.disabled_strategies),
            start_equity=self.start_equity,
            atr_pct=self.atr.pcts if self.atr is not None else {},
        )

    # -- the pipeline step ----------------------------------------------------------------------

    def on_candle(self, candle: Candle) -> None:
        if not candle.closed:
            return  # only closed candles reach strategies (and nothing else here needs open ones)
        self.clock.advance(candle.close_time_ms)
        if candle.close_time_ms >= self._next_day_ms:
            self._new_day(candle.close_time_ms // 86_400_000)
        sym = candle.symbol
        close = candle.close
        self.marks[sym] = close
        self.candle_count += 1
        if self._candle_taps:
            if self._journal_candles:
                self.journal.candle(candle)
            if self._want_candles:
                self.bus.publish(CandleClosed(candle))
        if self._volumes is not None:
            hist = self._volumes.get(sym)
            if hist is None:
                hist = self._volumes[sym] = deque(maxlen=self.params.vwap_lookback)
            hist.append((candle.open_time_ms, float(candle.volume)))
        orders = self.orders
        if orders._by_symbol:
            orders.on_price(sym, candle.high, candle.low, close, candle=True)
        if orders._next_due_ms is not None:
            orders.on_time(candle.close_time_ms)
        slots = self._mtm.get(sym)
        if slots is not None:
            high, low, f = candle.high, candle.low, candle.close_f
            total = self._upnl_f_total
            for m in slots:
                tr = m.trade
                if tr is not None:  # price extremes for MFE/MAE
                    if high > tr.high:
                        tr.high = high
                    if low < tr.low:
                        tr.low = low
                u = (f - m.ef) * m.af
                total += u - m.u
                m.u = u
            self._upnl_f_total = total
            eq = self._wallet_f + total
            if eq < self._daily_floor_f:  # down the daily loss limit, unrealised losses included
                reqs = self.monitor.on_equity(self.equity(), self.day_start_equity, self.clock.now_ms())
                if reqs:
                    self._apply_risk(reqs)
            if eq > self._peak_f:
                self._peak_f = eq
            elif self._peak_f - eq > self._max_dd_f:
                self._max_dd_f = self._peak_f - eq
                self._max_dd_pct_f = self._max_dd_f / self._peak_f * 100 if self._peak_f > 0 else 0.0
        if self.atr is not None:
            self.atr.update(candle)
        reqs = self.monitor.on_candle(candle, candle.close_time_ms)
        if reqs:
            self._apply_risk(reqs)
        if self._pending_switch is not None:
            self._apply_switch()
        try:
            sig = self._strategy_fn(candle)
        except Exception:
            self._strategy_failed(candle)
            return
        if sig is not None:
            self._judge(sig)

    def _strategy_failed(self, candle: Candle) -> None:
        self.stats.strategy_errors += 1
        n = self.stats.strategy_errors
        if n <= 10 or n % 1000 == 0:
            log.exception("strategy %s failed on %s %d (error #%d)", self.active_name, candle.symbol,
                          candle.open_time_ms, n)

    def _new_day(self, day: int) -> None:
        """00:00 UTC (exchange time): daily counters restart from the current equity."""
        self.utc_day = day
        self._next_day_ms = (day + 1) * 86_400_000
        self.entries_today = 0
        self.positions_opened_today = 0
        self.day_start_equity = self.equity()
        limit = self.params.max_daily_loss_pct
        self._daily_floor_f = float(self.day_start_equity * (1 - limit / 100)) if limit else float("-inf")
        reqs = self.monitor.on_new_day(self._next_day_ms - 86_400_000)
        if reqs:
            self._apply_risk(reqs)

    def audit_protection(self) -> int:
        """Count open positions without a live exchange-side stop (called when the exchange and
        engine have settled; protection only changes with commands and events)."""
        bad = 0
        for key in self.positions:
            if not self.orders.is_protected(key):
                bad += 1
                self.stats.unprotected_checks += 1
                log.error("position %s %s has no live exchange-side stop", key[0], key[1].value)
        return bad

    def _mark_equity(self) -> None:
        eq = self._wallet_f + self._upnl_f_total
        if eq > self._peak_f:
            self._peak_f = eq
        elif self._peak_f - eq > self._max_dd_f:
            self._max_dd_f = self._peak_f - eq
            self._max_dd_pct_f = self._max_dd_f / self._peak_f * 100 if self._peak_f > 0 else 0.0

    def _judge(self, sig: Signal) -> None:
        self.stats.signals += 1
        verdict = self.guard.evaluate(sig, self.guard_view())
        now = self.clock.now_ms()
        if isinstance(verdict, Denied):
            self.stats.denials[_reason_kind(verdict.reason)] += 1
            rec = SignalRecord(sig, Verdict.DENIED, verdict.reason, None, now)
        else:
            intent = verdict.intent
            self.stats.accepted += 1
            self.entries_today += 1
            self._signal_reasons[sig.signal_id] = sig.reason
            self.orders.open(intent, self.params.stop_loss_pct, self.params.take_profit_pct)
            rec = SignalRecord(sig, Verdict.ACCEPTED, "accepted", intent.quantity, now)
        if self.journal is not None:
            self.journal.signal(rec)
        self.bus.publish(SignalJudged(rec))

    # -- exchange facts -------------------------------------------------------------------------

    def on_mark(self, symbol: str, mark_price: Decimal, time_ms: int | None = None) -> None:
        """A mark price from the exchange's stream (between candles): break-even triggers and
        timers react to it without waiting for the candle to close."""
        self.marks[symbol] = mark_price
        if time_ms is not None:
            self.clock.advance(time_ms)
        self.orders.on_price(symbol, mark_price, mark_price, mark_price, candle=False)
        self.orders.on_time(self.clock.now_ms())

    def on_tick(self, now_ms: int) -> None:
        """Exchange time moved on with no event (the runtime's timer): timers, TTLs, slices, retries."""
        self.clock.advance(now_ms)
        self.orders.on_time(self.clock.now_ms())

    def volume_profile(self, symbol: str, start_ms: int, slices: int, slice_ms: int) -> list[float] | None:
        """VWAP weights: the mean volume of past candles in each slice's minutes of the day."""
        hist = self._volumes.get(symbol) if self._volumes else None
        if not hist:
            return None
        day = 86_400_000
        sums = [0.0] * slices
        counts = [0] * slices
        span = slices * slice_ms
        for t, v in hist:
            off = (t - start_ms) % day
            if off < span:
                i = off // slice_ms
                sums[i] += v
                counts[i] += 1
        if not all(counts):
            return None
        return [sums[i] / counts[i] for i in range(slices)]

    def on_exchange_event(self, ev: object) -> None:
        if isinstance(ev, ExOrderUpdate):
            self._on_order_update(ev)
        elif isinstance(ev, ExAlgoUpdate):
            self.clock.advance(ev.time_ms)
            self.orders.on_algo_update(ev)
        elif isinstance(ev, ExAccountUpdate):
            self._on_account_update(ev)
        elif isinstance(ev, ExStreamExpired):
            self._log("WARNING", "user data stream expired (listenKey); a new one is needed")
        if self.orders._next_due_ms is not None:
            self.orders.on_time(self.clock.now_ms())
        self._after_orders()

    def _on_order_update(self, ev: ExOrderUpdate) -> None:
        self.clock.advance(ev.time_ms)
        self.orders.on_order_update(ev)
        fill = ev.fill
        if fill is None:
            return
        self._apply_fill(fill, ev.orig_type)

    def _apply_fill(self, fill: Fill, orig_type: OrderType, purpose: OrderPurpose | None = None) -> bool:
        """Record one execution once (journal, trade book, bus); False if it was seen before."""
        fid = (fill.symbol, fill.trade_id)
        if fid in self._seen_fills:
            self.stats.duplicate_fills += 1
            return False  # the same execution reported twice: count it once
        self._seen_fills.add(fid)
        self.stats.fills += 1
        if self.journal is not None:
            self.journal.fill(fill)
        if purpose is None:
            purpose = self.orders.purpose_of(fill.client_order_id, fill.exchange_order_id, orig_type)
        key = (fill.symbol, fill.position_side)
        br = self.orders.brackets.get(key)
        meta = {}
        if br is not None and purpose is OrderPurpose.ENTRY:
            meta = {
                "signal_id": br.signal_id,
                "strategy": br.strategy,
                "entry_reason": self._signal_reasons.get(br.signal_id, ""),
                "trade_id": br.entry_client_id,
            }
        self.trades.on_fill(fill, purpose, meta)
        if br is not None:
            self.trades.set_protection(fill.symbol, fill.position_side, br.stop_price, br.take_profit_price)
        self.bus.publish(OrderFilled(fill))
        return True

    def position_stale(self, key: tuple[str, PositionSide], time_ms: int) -> bool:
        """True when a position state stamped ``time_ms`` is older than what the engine already applied
        for ``key`` (a later update, or a reconciliation snapshot of its symbol)."""
        return time_ms < max(self._pos_asof_ms.get(key, 0), self._sym_asof_ms.get(key[0], 0))

    def _on_account_update(self, ev: ExAccountUpdate) -> None:
        self.clock.advance(ev.time_ms)
        if ev.wallet_balance is not None:
            if ev.time_ms < self._wallet_asof_ms:
                self.stats.stale_updates += 1
                if ev.reason == "FUNDING_FEE" and ev.balance_change != 0:
                    self._on_funding(ev, ev.balance_change)  # the balance already includes it; attribute it
            else:
                self._wallet_asof_ms = ev.time_ms
                delta = ev.wallet_balance - self.wallet_balance
                self.wallet_balance = ev.wallet_balance
                self._wallet_f = float(ev.wallet_balance)
                if ev.reason == "FUNDING_FEE" and delta != 0:
                    self._on_funding(ev, delta)
        applied = False
        for ps in ev.positions:
            key = (ps.symbol, ps.position_side)
            if self.position_stale(key, ev.time_ms):
                # A delayed or replayed update: applying it would undo a newer fill (a position the
                # engine would then believe closed, cancelling its stop and entering again).
                self.stats.stale_updates += 1
                self._log("WARNING", f"{ps.symbol} {ps.position_side.value}: position update of "
                                     f"{ev.time_ms} is older than the state already applied; ignored")
                continue
            applied = True
            self._pos_asof_ms[key] = ev.time_ms
            pos = Position(
                symbol=ps.symbol,
                position_side=ps.position_side,
                amount=ps.amount,
                entry_price=ps.entry_price,
                break_even_price=ps.break_even_price,
                unrealized_pnl=ps.unrealized_pnl,
                margin_type=MarginType.ISOLATED if ps.margin_type.lower().startswith("iso") else MarginType.CROSSED,
                isolated_wallet=ps.isolated_wallet,
                update_time_ms=ev.time_ms,
            )
            if ps.amount == 0:
                self.positions.pop(key, None)
            else:
                self.positions[key] = pos
            self.orders.on_position(key, ps.amount, ps.entry_price)
            if self.journal is not None:
                self.journal.position(pos)
            self.bus.publish(PositionChanged(pos))
        if applied:
            self._revalue()
        if self.bus.wants(AccountChanged):
            self.bus.publish(AccountChanged(self.account_snapshot()))
        self._mark_equity()
        if self.day_start_equity > 0:
            reqs = self.monitor.on_equity(self.equity(), self.day_start_equity, self.clock.now_ms())
            if reqs:
                self._apply_risk(reqs)

    def _on_funding(self, ev: ExAccountUpdate, delta: Decimal) -> None:
        self.funding_total += delta
        if ev.positions:
            targets = [(p.symbol, p.position_side) for p in ev.positions]
        else:  # cross margin: Binance names no position; split by notional (exact in total)
            targets = [k for k, p in self.positions.items() if p.amount]
        if not targets:
            self.trades.on_funding("", None, delta)
            return
        weights = []
        for sym, ps in targets:
            p = self.positions.get((sym, ps))
            mark = self.marks.get(sym, p.entry_price if p else ZERO)
            weights.append(abs(p.amount) * mark if p else ZERO)
        total_w = sum(weights, ZERO)
        given = ZERO
        last = len(targets) - 1
        for i, (sym, ps) in enumerate(targets):
            if i == last:
                share = delta - given  # the last share takes the remainder: the total is exact
            else:
                share = delta * weights[i] / total_w if total_w else delta / len(targets)
                given += share
            self.trades.on_funding(sym, ps, share)
            if self.journal is not None:
                self.journal.funding(sym, ev.time_ms, ps.value, share, None)
            self.bus.publish(FundingPaid(sym, ps, share, ev.time_ms))

    def _after_orders(self) -> None:
        eff = self.orders.take_effects()
        for key, reason in eff.protection_failed:
            self.stats.protection_failures += 1
            now = self.clock.now_ms()
            if self.journal is not None:
                self.journal.event(now, "protection_failed", f"{key[0]} {key[1].value}: {reason}",
                                   {"symbol": key[0], "position_side": key[1].value, "reason": reason})
            self.bus.publish(ProtectionFailed(key[0], key[1], reason, now))

    # -- command results ------------------------------------------------------------------------

    def take_commands(self) -> list[ExchangeCommand]:
        return self.orders.take_outbox()

    def has_commands(self) -> bool:
        return bool(self.orders.outbox)

    def on_command_ok(self, cmd: ExchangeCommand, exchange_id: int | None) -> None:
        if isinstance(cmd, SubmitOrder):
            self.orders.on_order_accepted(cmd.req.client_order_id, exchange_id or 0)
        elif isinstance(cmd, SubmitAlgoOrder):
            self.orders.on_algo_accepted(cmd.req.client_algo_id, exchange_id or 0)
        elif isinstance(cmd, CancelOrder):
            self.orders.on_cancel_ok(cmd.client_order_id, algo=False)
        elif isinstance(cmd, CancelAlgoOrder):
            self.orders.on_cancel_ok(cmd.client_algo_id, algo=True)
        self._after_orders()

    def on_command_failed(self, cmd: ExchangeCommand, err: ExchangeError) -> None:
        if isinstance(cmd, SubmitOrder):
            self._log("WARNING", f"order {cmd.req.client_order_id} {cmd.req.symbol} rejected: {err}")
            self.orders.on_order_rejected(cmd.req.client_order_id, err)
        elif isinstance(cmd, SubmitAlgoOrder):
            self._log("WARNING", f"algo order {cmd.req.client_algo_id} {cmd.req.symbol} rejected: {err}")
            self.orders.on_algo_rejected(cmd.req.client_algo_id, err)
        elif isinstance(cmd, CancelOrder):
            self.orders.on_cancel_failed(cmd.symbol, cmd.client_order_id, err, algo=False)
        elif isinstance(cmd, CancelAlgoOrder):
            self.orders.on_cancel_failed(cmd.symbol, cmd.client_algo_id, err, algo=True)
        self._after_orders()

    # -- operator commands ----------------------------------------------------------------------

    def handle(self, cmd: object) -> None:
        if isinstance(cmd, Halt):
            self.halt_source = None
            self.set_state(EngineState.HALTED, cmd.reason)
            dropped = self.orders.stop_new_slices()
            if dropped:
                self._log("WARNING", f"halted: {dropped} unsent entry slice(s) dropped")
        elif isinstance(cmd, Resume):
            self.halt_source = None
            self.monitor.on_operator_resume()
            self.set_state(EngineState.ACTIVE, "resumed")
        elif isinstance(cmd, FlattenAll):
            self.halt_source = None
            self.set_state(EngineState.HALTED, f"flatten: {cmd.reason}")
            self.orders.flatten_all(OrderPurpose.FLATTEN)
        elif isinstance(cmd, SwitchStrategy):
            if cmd.name not in self.strategies:
                self._log("ERROR", f"unknown strategy {cmd.name!r}; keeping {self.active_name}")
                return
            self._pending_switch = cmd.name  # takes effect on the next closed candle
            self._log("INFO", f"strategy switch to {cmd.name} requested; applies on the next closed candle")
        elif isinstance(cmd, IngestSignal):
            self.ingest_signal(cmd)
        else:
            raise TypeError(f"unknown command {cmd!r}")

    def ingest_signal(self, cmd: IngestSignal) -> ExternalSignalIngested:
        """Give an external signal to every strategy that takes them, stamped with the event clock.

        Every such strategy sees it (so a switch to one of them finds its window already filled);
        the active strategy's outcome is what is reported. Bad input is reported with the field it
        names, never raised: the signal came from outside.
        """
        now = self.clock.now_ms()
        outcome: dict | None = None
        error = ""
        takers = [(name, s.inner) for name, s in self.strategies.items()
                  if callable(getattr(s.inner, "process_signal", None))]
        for name, strat in takers:
            try:
                res = strat.process_signal(cmd.message_type, cmd.message_id, cmd.symbol, cmd.data, now)
            except ValueError as exc:  # ExternalSignalError names the field
                error = str(exc)
                break
            except Exception:  # noqa: BLE001 - a strategy bug must not stop the engine
                log.exception("strategy %s failed on external signal %r", name, cmd.message_id)
                continue
            if name == self.active_name or outcome is None:
                outcome = _ingest_outcome(res)
        fact = ExternalSignalIngested(cmd.message_type, cmd.message_id, cmd.symbol, now, outcome, error,
                                      cmd.source)
        if error:
            self._log("WARNING", f"external signal rejected ({cmd.source}): {error}")
        elif not takers:
            self._log("INFO", f"external signal {cmd.message_id!r} ignored: no strategy takes external signals")
        else:
            status = (outcome or {}).get("status", "?")
            self._log("INFO", f"external signal {cmd.message_type} {cmd.symbol} id={cmd.message_id!r} "
                              f"({cmd.source}): {status}")
        self.bus.publish(fact)
        return fact

    def end_of_data(self) -> None:
        """Replay finished: close what is open so the run's result is complete."""
        self.orders.flatten_all(OrderPurpose.END_OF_DATA)

    def set_state(self, state: EngineState, reason: str) -> None:
        if state is self.state and reason == self.halt_reason:
            return
        self.state = state
        self.halt_reason = "" if state is EngineState.ACTIVE else reason
        now = self.clock.now_ms()
        self._log("WARNING" if state is not EngineState.ACTIVE else "INFO", f"engine {state.value}: {reason}")
        if self.journal is not None:
            self.journal.event(now, "state", f"{state.value}: {reason}", {"state": state.value, "reason": reason})
        self.bus.publish(EngineStateChanged(state.value, reason, now))

    def _apply_switch(self) -> None:
        new = self._pending_switch
        self._pending_switch = None
        if new is None or new == self.active_name:
            return
        old = self.active_name
        self.active_name = new
        self._strategy = self.strategies[new]
        self._strategy_fn = self._strategy.inner.on_candle
        now = self.clock.now_ms()
        self._log("INFO", f"strategy switched {old} -> {new}")
        if self.journal is not None:
            self.journal.event(now, "strategy_switched", f"{old} -> {new}", {"old": old, "new": new})
        self.bus.publish(StrategySwitched(old, new, now))

    # -- trades ---------------------------------------------------------------------------------

    def _trade_opened(self, t: Trade) -> None:
        self.positions_opened_today += 1
        if self.journal is not None:
            self.journal.trade(t)
        self.bus.publish(TradeOpened(t))

    def _trade_updated(self, t: Trade) -> None:
        if self.journal is not None:
            self.journal.trade(t)

    def _trade_closed(self, t: Trade) -> None:
        if self.journal is not None:
            self.journal.trade(t)
        self.bus.publish(TradeClosed(t))
        reqs = self.monitor.on_trade_closed(t, self.start_equity)
        if reqs:
            self._apply_risk(reqs)

    def _apply_risk(self, reqs) -> None:
        """Apply the risk monitor's decisions (see the contract in ``engine.guard.monitor``)."""
        for r in reqs:
            now = self.clock.now_ms()
            if isinstance(r, StrategyDisabled):
                self._log("WARNING", f"strategy {r.strategy} disabled: {r.reason}")
                if self.journal is not None:
                    self.journal.event(now, "strategy_disabled", r.reason, {"strategy": r.strategy})
                continue
            if not should_apply(r, engine_active=self.state is EngineState.ACTIVE, halt_source=self.halt_source):
                continue
            if isinstance(r, HaltRequest):
                self.halt_source = r.kind
                self.set_state(EngineState.HALTED, r.reason)
                dropped = self.orders.stop_new_slices()
                if dropped:
                    self._log("WARNING", f"halted: {dropped} unsent entry slice(s) dropped")
            elif isinstance(r, ResumeRequest):
                self.halt_source = None
                self.set_state(EngineState.ACTIVE, r.reason)

    # -- restart and reconciliation ---------------------------------------------------------------

    def plan_updates(self) -> list[tuple[tuple[str, PositionSide], dict | None]]:
        """The management plans that changed since the last call (``None``: the position is
        closed). The runtime journals them with the fills in the same flush, so what is stored is
        always one consistent moment: a restart continues from exactly there."""
        out: list[tuple[tuple[str, PositionSide], dict | None]] = []
        live: dict = {}
        for key, br in self.orders.brackets.items():
            if br.filled_qty <= 0:
                continue  # nothing filled yet: a restart resolves the entry intent instead
            t = self.trades.open.get(key)
            payload = {"bracket": bracket_to_dict(br), "trade": trade_to_dict(t) if t is not None else None,
                       "entry_reason": self._signal_reasons.get(br.signal_id, "")}
            live[key] = payload
            if self._plans_sent.get(key) != payload:
                out.append((key, payload))
        for key in self._plans_sent:
            if key not in live:
                out.append((key, None))
        self._plans_sent = live
        return out

    @property
    def seen_fills(self) -> frozenset[tuple[str, int]]:
        """(symbol, trade id) of every fill applied (or known from earlier runs): a fill seen again
        is a duplicate."""
        return frozenset(self._seen_fills)

    def remember_fills(self, keys: Iterable[tuple[str, int]]) -> None:
        """Fills an earlier run of this account recorded: a late duplicate of one is recognised."""
        self._seen_fills.update(keys)

    def restore(self, sp: StartupPlan, *, unprotected: str = "protect", external: str = "ignore", restart: int = 1,
                recovered_fills: Iterable[tuple[Fill, OrderPurpose]] | None = ()) -> list[Correction]:
        """Continue after a restart: restore stored plans and their open trades, put our
        plan-less positions under protection, treat outside positions per ``external``, apply the
        fills that happened while we were down, cancel orphans. Returns the corrections (each is
        journaled as a ``reconcile.<kind>`` event). ``recovered_fills=None``: the fills come later,
        through :meth:`apply_recovered_fills` (protection need not wait for them)."""
        notes = list(sp.corrections)
        om = self.orders
        protect = unprotected == "protect"
        for key, payload, _p in sp.restore:
            if payload.get("trade"):
                self.trades.restore(trade_from_dict(payload["trade"]))
        for key, payload in sp.dropped_plans:
            if payload.get("trade"):
                self.trades.restore(trade_from_dict(payload["trade"]))
            self._plans_sent[key] = payload  # its stored row is replaced or deleted by the next flush
        for key, payload, p in sp.restore:
            br = bracket_from_dict(payload["bracket"])
            if payload.get("entry_reason"):
                self._signal_reasons[br.signal_id] = payload["entry_reason"]
            for n in om.restore_bracket(br, p.amount, sp.resting, restart=restart, protect=protect):
                notes.append(Correction("plan_note", key[0], f"{key[0]} {key[1].value}: {n}"))
            if not protect and not om.is_protected(key) and br.stop_client_id is None:
                br.closing = True
                om.close_position(key, OrderPurpose.EMERGENCY_CLOSE, p.amount)
                notes.append(Correction("unprotected_closed", key[0],
                                        f"{key[0]} {key[1].value}: no resting stop; closing (reconcile.unprotected = close)"))
        for key, p, it in sp.adopt_ours:
            tp = it.get("take_profit_pct")
            om.adopt_position(key, p.amount, p.entry_price, signal_id=it["signal_id"], strategy=it.get("strategy", ""),
                              stop_pct=Decimal(str(it.get("stop_pct", self.params.stop_loss_pct))),
                              take_profit_pct=Decimal(str(tp)) if tp is not None else None,
                              opened_ms=p.update_time_ms or self.clock.now_ms(), resting=sp.resting, protect=protect)
            if not protect and not om.is_protected(key):
                om.brackets[key].closing = True
                om.close_position(key, OrderPurpose.EMERGENCY_CLOSE, p.amount)
        for key, p in sp.external:
            if external == "adopt":
                notes.append(self._adopt_external(key, p, sp.resting))
            else:
                self.external_keys.add(key)
        if recovered_fills is not None:
            notes += self._recovered(sp, recovered_fills)
        for sym, caid in sp.cancel_algos:
            if caid in sp.resting:  # this run's row: the run that placed it may have died before writing
                om.register_resting_algo(sp.resting[caid])
            om.outbox.append(CancelAlgoOrder(sym, caid))
        for sym, coid in sp.cancel_orders:
            om.outbox.append(CancelOrder(sym, coid))
        self._revalue()
        self._record_corrections(notes)
        return notes

    def apply_recovered_fills(self, sp: StartupPlan, fills: Iterable[tuple[Fill, OrderPurpose]]) -> list[Correction]:
        """The second half of :meth:`restore`: the fills that happened while no process listened."""
        notes = self._recovered(sp, fills)
        self._revalue()
        self._record_corrections(notes)
        return notes

    def _recovered(self, sp: StartupPlan, fills: Iterable[tuple[Fill, OrderPurpose]]) -> list[Correction]:
        notes = []
        for fill, purpose in fills:
            if self._apply_fill(fill, fill.order_type, purpose):
                notes.append(Correction("fill_recovered", fill.symbol,
                                        f"{fill.symbol}: fill {fill.trade_id} ({purpose.value}) recovered from the exchange",
                                        {"trade_id": fill.trade_id, "client_order_id": fill.client_order_id}))
        for key, _payload in sp.dropped_plans:
            if key in self.trades.open and key not in self.positions:
                notes.append(Correction("trade_unclosed", key[0],
                                        f"{key[0]} {key[1].value}: flat on the exchange but the closing fills were not "
                                        "found; the trade stays open in the journal"))
        return notes

    def apply_running_diff(self, diff: RunningDiff, positions: Iterable[Position], *, external: str = "ignore",
                           as_of_ms: int | None = None, symbols: Iterable[str] = ()) -> None:
        """Apply a timer reconciliation (see :func:`engine.state.reconcile.diff_running`). ``as_of_ms``:
        the exchange time before the snapshot was taken; position updates of ``symbols`` stamped
        earlier are already reflected in it, so any that arrive later are stale and ignored."""
        by_key = {(p.symbol, p.position_side): p for p in positions}
        if as_of_ms is not None:
            for sym in symbols:
                self._sym_asof_ms[sym] = max(self._sym_asof_ms.get(sym, 0), as_of_ms)
        om = self.orders
        notes = list(diff.corrections)
        for key, _mine, theirs in diff.amounts:
            if theirs == 0:
                self.positions.pop(key, None)
            else:
                self.positions[key] = by_key[key]
            om.on_position(key, theirs, by_key[key].entry_price if theirs != 0 else None)
        for key, caid in diff.stops_lost:
            om.stop_lost(key, "not resting on the exchange (reconciliation)")
        for key, p in diff.unguarded:
            did = om.ensure_protected(key, p.amount, p.entry_price)
            if did:
                notes.append(Correction("unguarded", key[0], f"{key[0]} {key[1].value}: {did}",
                                        {"position_side": key[1].value, "amount": str(p.amount)}))
        for key, p in diff.new_external:
            if external == "adopt":
                notes.append(self._adopt_external(key, p))
            else:
                self.external_keys.add(key)
                notes.append(Correction("external_position", key[0],
                                        f"{key[0]} {key[1].value}: position {p.amount} was not opened by perpdeck",
                                        {"position_side": key[1].value, "amount": str(p.amount)}))
        for sym, caid in diff.cancel_algos:
            if caid in diff.orphan_rows and caid not in om.algos:
                # an earlier run's order: taken on, so the cancel's outcome is recorded by this run
                om.register_resting_algo(diff.orphan_rows[caid])
            om.outbox.append(CancelAlgoOrder(sym, caid))
        if diff.amounts:
            self._revalue()
        self._record_corrections(notes)
        self._after_orders()

    def restore_fills(self, fills: Iterable[tuple[Fill, OrderPurpose]]) -> int:
        """Apply fills the streams never delivered (found by reconciliation). Returns how many were new."""
        notes = []
        for fill, purpose in fills:
            if self._apply_fill(fill, fill.order_type, purpose):
                notes.append(Correction("fill_recovered", fill.symbol,
                                        f"{fill.symbol}: fill {fill.trade_id} ({purpose.value}) missed by the stream; "
                                        "recovered from the exchange",
                                        {"trade_id": fill.trade_id, "client_order_id": fill.client_order_id}))
        self._record_corrections(notes)
        return len(notes)

    def _adopt_external(self, key, p: Position, resting: dict | None = None) -> Correction:
        """Put a position opened outside perpdeck under a protective stop (``external_positions = adopt``)."""
        sid = f"ext-{key[0]}-{key[1].value}-{p.update_time_ms}"
        self.orders.adopt_position(key, p.amount, p.entry_price, signal_id=sid, strategy="external",
                                   stop_pct=self.params.stop_loss_pct, take_profit_pct=self.params.take_profit_pct,
                                   opened_ms=p.update_time_ms or self.clock.now_ms(), resting=resting)
        return Correction("external_adopted", key[0],
                          f"{key[0]} {key[1].value}: outside position adopted under a protective stop")

    def believed_stops(self) -> dict[tuple[str, PositionSide], str]:
        """Per managed position, the stop the engine believes acknowledged and resting."""
        out = {}
        for key, br in self.orders.brackets.items():
            caid = br.stop_client_id
            st = self.orders.algos.get(caid) if caid else None
            if st is not None and st.status is AlgoStatus.NEW and not br.closing:
                out[key] = caid
        return out

    def _record_corrections(self, notes: Iterable[Correction]) -> None:
        now = self.clock.now_ms()
        for c in notes:
            self._log("WARNING" if c.kind not in ("plan_restored", "plan_note", "fill_recovered") else "INFO",
                      f"reconcile: {c.message}")
            if self.journal is not None:
                self.journal.event(now, f"reconcile.{c.kind}", c.message, {"symbol": c.symbol, **c.data})

    # -- misc -----------------------------------------------------------------------------------

    def account_snapshot(self) -> Account:
        upnl = self.unrealized_pnl()
        return Account(
            wallet_balance=self.wallet_balance,
            unrealized_pnl=upnl,
            margin_balance=self.wallet_balance + upnl,
            available_balance=self.available_balance(),
            initial_margin=self.used_margin(),
            maint_margin=ZERO,
            update_time_ms=self.clock.now_ms(),
        )

    def _log(self, level: str, message: str) -> None:
        log.log(getattr(logging, level), message)
        if self.bus.wants(EngineLogged):
            self.bus.publish(EngineLogged(level, message, self.clock.now_ms()))


def _reason_kind(reason: str) -> str:
    """Group denial reasons for the summary ("position already open on BTCUSDT" → "position already open")."""
    for stop in (" on ", " (", ":", " below", " above"):
        i = reason.find(stop)
        if i > 0:
            return reason[:i]
    return reason


# -- the synchronous driver ---------------------------------------------------------------------


def _ingest_outcome(res: object) -> dict | None:
    """A strategy's ``process_signal`` result as a plain dict (an ``IngestResult``, or a list of them
    from a composite strategy: the most advanced one)."""
    if isinstance(res, list | tuple):
        outs = [_ingest_outcome(r) for r in res]
        outs = [o for o in outs if o]
        rank = {"confluence": 0, "below_threshold": 1}
        return min(outs, key=lambda o: rank.get(o.get("status"), 9)) if outs else None
    as_dict = getattr(res, "as_dict", None)
    return as_dict() if callable(as_dict) else None


def command_call(cmd: ExchangeCommand) -> tuple[str, tuple]:
    """The port method and arguments that carry out an exchange command (sync or async port)."""
    if isinstance(cmd, SubmitOrder):
        return "place_order", (cmd.req,)
    if isinstance(cmd, SubmitAlgoOrder):
        return "place_algo_order", (cmd.req,)
    if isinstance(cmd, CancelOrder):
        return "cancel_order", (cmd.symbol, cmd.client_order_id)
    if isinstance(cmd, CancelAlgoOrder):
        return "cancel_algo_order", (cmd.symbol, cmd.client_algo_id)
    raise TypeError(f"unknown exchange command {cmd!r}")


def execute_sync(engine: Engine, port, cmd: ExchangeCommand) -> None:
    """Execute one command against a ``SyncExchange`` and report the outcome to the engine."""
    name, args = command_call(cmd)
    try:
        result = getattr(port, name)(*args)
    except ExchangeError as err:
        engine.on_command_failed(cmd, err)
    else:
        engine.on_command_ok(cmd, result)


async def execute_async(engine: Engine, port, cmd: ExchangeCommand) -> None:
    """Execute one command against an async ``Exchange`` and report the outcome to the engine."""
    name, args = command_call(cmd)
    try:
        result = await getattr(port, name)(*args)
    except ExchangeError as err:
        engine.on_command_failed(cmd, err)
    else:
        engine.on_command_ok(cmd, result)


def pump(engine: Engine, port, max_rounds: int = 10_000) -> None:
    """Run commands and exchange events to quiescence (sync drivers: backtest, in-process sim)."""
    for _ in range(max_rounds):
        cmds = engine.take_commands()
        if cmds:
            for cmd in cmds:
                execute_sync(engine, port, cmd)
            continue
        if port.has_events():
            for ev in port.drain_events():
                engine.on_exchange_event(ev)
            continue
        if engine.positions:
            engine.audit_protection()
        return
    raise RuntimeError("engine and exchange did not settle (command/event loop)")
