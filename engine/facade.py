"""The one door between the engine and any console: frozen snapshots out, commands in.

The Textual console and ``perpdeck ctl`` read :class:`EngineSnapshot` values (plain frozen records,
no live engine objects, no SQL) and send the commands of ``engine.events`` (Halt, Resume,
FlattenAll, SwitchStrategy, StartTraining, StopTraining). :class:`RuntimeFacade` implements it over a
running runtime; tests can implement :class:`Facade` with canned snapshots.

A snapshot stays cheap (up to ten a second): per-strategy statistics and the last external signals
are kept from bus facts as they arrive (``SignalJudged``, ``TradeClosed``, ``ExternalSignalIngested``)
and handed out as cached tuples; the active strategy's regimes, switches and ensemble weights and the
held confluences are read from the strategies duck-typed (``regimes()``, ``recent_switches()``,
``weights()``/``member_stats()``, ``held()``) — a handful of symbols and members. Training commands
go to the ``TrainingControl`` a facade is given; without one they raise :class:`TrainingUnavailable`.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from engine.model import ZERO, AlgoOrder, Order, SignalRecord, Verdict

log = logging.getLogger("engine.facade")

LOG_LINES = 500
SIGNALS_KEPT = 200

STOP_LOSS, BREAK_EVEN, TRAILING = "stop_loss", "break_even", "trailing"
"""What a position's resting stop is (``PositionView.stop_kind``)."""


@dataclass(frozen=True, slots=True)
class PositionView:
    symbol: str
    side: str  # LONG | SHORT
    size: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    stop_price: Decimal | None
    take_profit_price: Decimal | None
    liquidation_price: Decimal | None
    opened_ms: int | None  # exchange time of the entry
    tp1_price: Decimal | None = None
    """The partial take-profit (TP1) level; ``take_profit_price`` is then the final one (TP2)."""
    tp1_qty: Decimal | None = None
    """What TP1 closes."""
    tp1_done: bool = False
    """TP1 has filled (``size`` is what is left for TP2)."""
    stop_kind: str = STOP_LOSS
    """What the resting stop is now: ``stop_loss`` (as placed), ``break_even`` (moved to entry plus
    fees) or ``trailing`` (following the best price)."""
    trailing_activated: bool | None = None
    """The exchange trailing stop (TRAILING_STOP_MARKET): ``None`` when there is none, ``False`` while
    it is placed and waiting for its activation price, ``True`` once activated (following price)."""


@dataclass(frozen=True, slots=True)
class TimerView:
    """The break-even plan of one open position.

    States: running (``deadline_ms`` set, not reached), reached (``break_even_reached``), closing
    (``closing``: the deadline passed or the plan ended; the position is being closed), or waiting
    without a deadline (no timeout configured: only the trigger moves the stop).
    """

    symbol: str
    side: str
    deadline_ms: int | None
    """Exchange ms at which the position is closed unless break-even is reached; None once reached,
    once it ran out, or when no timeout is configured."""
    break_even_reached: bool
    trigger_price: Decimal | None = None
    """Price that moves the stop to break-even (None: only the timeout applies)."""
    break_even_price: Decimal | None = None
    """Where the stop goes: entry plus the entry's and the exit's fee."""
    closing: bool = False
    """The plan ended without break-even (timed out): the position is being closed at market."""


@dataclass(frozen=True, slots=True)
class StatusView:
    """The guard's state and today's counts (seed note 002), for the header and ``perpdeck ctl status``.

    ``None`` where the engine does not report a figure (an older engine, or the limit is off).
    """

    positions_opened_today: int | None = None
    max_positions_per_day: int | None = None
    consecutive_losses: int | None = None
    max_consecutive_losses: int | None = None
    """None or 0: the losing-streak halt is off."""
    disabled_strategies: tuple[str, ...] = ()
    """Strategies the guard disabled for losses (until the operator resumes)."""
    halted_by: str | None = None
    """The guard's own halt in force: ``consecutive_losses`` | ``daily_loss`` | ``market_shock``."""
    guard_halt_reason: str = ""
    shock_until_ms: int | None = None
    """End of a market-shock cool-down (exchange ms)."""
    strategy_net_pnl: tuple[tuple[str, Decimal], ...] = ()
    """Net PnL of closed trades per strategy since start, by name."""


@dataclass(frozen=True, slots=True)
class StreamView:
    state: str  # connected | reconnecting | down | in-process
    last_message_ms: int | None  # wall ms of the last message, None if unknown


@dataclass(frozen=True, slots=True)
class LogLine:
    time_ms: int  # wall ms
    level: str
    message: str


@dataclass(frozen=True, slots=True)
class FlattenReport:
    """Progress and outcome of an emergency flatten."""

    state: str  # running | flat | failed
    attempts: int
    open_positions: tuple[str, ...] = ()  # "BTCUSDT LONG 0.010" still open
    open_orders: tuple[str, ...] = ()  # "BTCUSDT STOP_MARKET pdS0-…" still resting
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TrainingView:
    """The background RL trainer, as the console's training pane shows it.

    States: ``idle`` (never started), ``starting``, ``running``, ``stopping``, ``stopped``
    (by the operator; resumable from its checkpoint), ``finished`` (reached ``total_steps``),
    ``failed`` (``detail`` says why). Figures are ``None`` until known.
    """

    state: str = "idle"
    device: str = ""  # "cpu" | "cuda:0 (NVIDIA H100 …)"; chosen explicitly, shown as chosen
    steps: int = 0
    total_steps: int = 0
    steps_per_s: float | None = None
    episode_reward: float | None = None  # mean reward of the last finished episodes
    actor_loss: float | None = None
    critic_loss: float | None = None
    ent_coef: float | None = None
    eta_s: float | None = None
    best_val_return_pct: float | None = None  # best validation return so far (checkpoint choice)
    checkpoint: str = ""  # path of the last checkpoint saved
    detail: str = ""  # error or last event, one line


class TrainingControl(Protocol):
    """What the console needs from a trainer (``rl.worker`` provides one; engine/ never imports it)."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def view(self) -> TrainingView: ...


@dataclass(frozen=True, slots=True)
class StrategyStatsView:
    """One strategy's record since the process started (from ``SignalJudged`` and ``TradeClosed``).

    ``name`` is the name a signal carries (``Signal.strategy``): a regime switch's or an
    ensemble's members appear under their own names unless they sign as the container."""

    name: str
    accepted: int = 0
    """Signals the guard accepted."""
    denied: int = 0
    """Signals the guard denied."""
    trades: int = 0
    """Closed round trips."""
    wins: int = 0
    """Closed round trips with a net PnL above zero."""
    net_pnl: Decimal = ZERO
    """Net PnL of the closed round trips (after fees and funding), quote currency."""

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None


@dataclass(frozen=True, slots=True)
class RegimeView:
    """A symbol's market regime and the strategy it puts in charge (regime switching)."""

    symbol: str
    regime: str  # trending_up | trending_down | ranging | volatility_spike | crash | unknown
    strategy: str | None
    """The member trading the symbol now; None = flat."""
    since_ms: int | None = None
    """Exchange ms of the candle close that started the regime (None while warming up)."""
    adx: float | None = None


@dataclass(frozen=True, slots=True)
class RegimeSwitchView:
    """One switch of a symbol's strategy and the regime change that caused it."""

    symbol: str
    time_ms: int
    previous_regime: str
    regime: str
    from_strategy: str | None  # None = flat
    to_strategy: str | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MemberWeightView:
    """An ensemble member's weight and the virtual-trade record it is computed from."""

    name: str
    weight: float
    signals: int = 0
    virtual_trades: int = 0
    win_rate: float | None = None
    performance_pct: float = 0.0
    """The shrunk mean net return per virtual trade (%), the weight's input."""
    total_pnl_pct: float = 0.0


@dataclass(frozen=True, slots=True)
class ExternalSignalView:
    """An ingested external signal (note 002) and what the active strategy made of it."""

    time_ms: int  # event clock when ingested
    message_type: str  # "110" | "112" | "113" (as sent when it could not be read)
    message_id: str
    symbol: str  # normalised (BTCUSDT) when it could be read
    status: str
    """``confluence`` | ``below_threshold`` | ``pending`` | ``duplicate`` | ``ignored`` | ``rejected``
    (bad input: ``detail`` names the field) | ``unused`` (no strategy takes external signals)."""
    score: float | None = None
    """The best pair's score (confluence or below threshold)."""
    source: str = ""  # http | file | cli | python | simulate
    detail: str = ""


@dataclass(frozen=True, slots=True)
class ConfluenceView:
    """A FOMO + Alpha confluence held until its symbol's next closed candle."""

    strategy: str
    symbol: str
    time_ms: int  # when it became true (the later signal)
    score: float
    fomo: str  # "FOMO(113) m-12"
    alpha: str  # "m-13"
    gap_ms: int


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    mode: str  # sim | testnet | mainnet
    run_id: str
    state: str  # ACTIVE | REDUCING | HALTED
    halt_reason: str
    strategy: str
    strategies: tuple[str, ...]
    exchange_time_ms: int
    equity: Decimal
    wallet_balance: Decimal
    available_balance: Decimal
    unrealized_pnl: Decimal
    today_pnl: Decimal
    trades_today: int
    max_daily_trades: int | None
    market_stream: StreamView
    user_stream: StreamView
    positions: tuple[PositionView, ...]
    signals: tuple[SignalRecord, ...]  # newest last
    timers: tuple[TimerView, ...]
    orders: tuple[Order, ...]
    algo_orders: tuple[AlgoOrder, ...]
    log: tuple[LogLine, ...]  # newest last
    replay_position: int | None = None
    replay_total: int | None = None
    finished: bool = False
    flatten: FlattenReport | None = None
    status: StatusView = field(default_factory=StatusView)
    training: TrainingView | None = None
    """The RL trainer, when one is attached (``None``: training not available in this process)."""
    strategy_stats: tuple[StrategyStatsView, ...] = ()
    """Per-strategy signals, trades, wins and net PnL since start, by name."""
    regimes: tuple[RegimeView, ...] | None = None
    """Regime per symbol when the active strategy switches by regime (None: it does not)."""
    regime_switches: tuple[RegimeSwitchView, ...] = ()
    """The active regime switcher's last switches, newest last."""
    ensemble_weights: tuple[MemberWeightView, ...] | None = None
    """Member weights when the active strategy is an ensemble (None: it is not)."""
    external_signals: tuple[ExternalSignalView, ...] = ()
    """The last external signals ingested, newest last."""
    confluences: tuple[ConfluenceView, ...] = ()
    """Confluences held by strategies that take external signals, by strategy and symbol."""
    extra: dict[str, Any] = field(default_factory=dict)


class Facade(Protocol):
    def snapshot(self) -> EngineSnapshot: ...
    def submit(self, command: object) -> None: ...


class LogRing(logging.Handler):
    """Keeps the last log lines for the console's log pane (already redacted by the root filters)."""

    def __init__(self, maxlen: int = LOG_LINES) -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[LogLine] = deque(maxlen=maxlen)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(LogLine(int(record.created * 1000), record.levelname, record.getMessage()))
        except Exception:  # noqa: BLE001 - logging must never raise
            pass


class RuntimeFacade:
    """A :class:`Facade` over a running runtime (in-process sim or live)."""

    def __init__(self, runtime, log_ring: LogRing | None = None, *, trainer: TrainingControl | None = None) -> None:
        """``trainer``: the background RL trainer the training commands go to (None: not available)."""
        self.rt = runtime
        self.log_ring = log_ring or LogRing()
        self.trainer = trainer
        self.signals: deque[SignalRecord] = deque(maxlen=SIGNALS_KEPT)
        self.stats = StrategyStatsBook()
        self.external = ExternalSignalLog()
        self._switches = _SwitchCache()
        from engine.events import ExternalSignalIngested, SignalJudged, TradeClosed

        bus = runtime.run_.engine.bus
        bus.subscribe(SignalJudged, self._on_judged)
        bus.subscribe(TradeClosed, lambda f: self.stats.on_trade_closed(f.trade))
        bus.subscribe(ExternalSignalIngested, self.external.on_ingested)

    def _on_judged(self, fact) -> None:
        self.signals.append(fact.record)
        self.stats.on_signal(fact.record)

    def submit(self, command: object) -> None:
        if route_training(self.trainer, command):
            return
        self.rt.submit(command)

    def snapshot(self) -> EngineSnapshot:
        """The engine now, as frozen values. Called up to ten times a second by the console: it
        only walks open positions and their brackets (never the trade or order history)."""
        rt = self.rt
        eng = rt.run_.engine
        now = eng.clock.now_ms()
        brackets = eng.orders.brackets
        positions = []
        timers = []
        for (sym, _ps), p in eng.positions.items():
            mark = eng.marks.get(sym, p.entry_price)
            br = brackets.get((sym, _ps))
            trade = eng.trades.open.get((sym, _ps))
            side = "LONG" if p.amount > 0 else "SHORT"
            positions.append(PositionView(
                symbol=sym,
                side=side,
                size=abs(p.amount),
                entry_price=p.entry_price,
                mark_price=mark,
                unrealized_pnl=(mark - p.entry_price) * p.amount,
                stop_price=br.stop_price if br else None,
                take_profit_price=br.take_profit_price if br else None,
                liquidation_price=liquidation_price(eng.rules.get(sym), p, eng.wallet_balance),
                opened_ms=trade.entry_time_ms if trade else None,
                tp1_price=getattr(br, "tp1_price", None),
                tp1_qty=getattr(br, "tp1_qty", None),
                tp1_done=bool(getattr(br, "tp1_done", False)),
                stop_kind=_stop_kind(br),
                trailing_activated=getattr(br, "trailing_activated", None),
            ))
            timer = _timer(sym, side, br, eng.rules.get(sym))
            if timer is not None:
                timers.append(timer)
        streams = rt.streams_status()
        wallet = eng.wallet_balance
        upnl = eng.unrealized_pnl()
        day_start = eng.day_start_equity if eng.day_start_equity else (eng.starting_wallet or ZERO)
        return EngineSnapshot(
            mode=rt.run_.mode,
            run_id=rt.run_.run_id,
            state=eng.state.value,
            halt_reason=eng.halt_reason,
            strategy=eng.active_name,
            strategies=tuple(sorted(eng.strategies)),
            exchange_time_ms=now,
            equity=wallet + upnl,
            wallet_balance=wallet,
            available_balance=eng.available_balance(),
            unrealized_pnl=upnl,
            today_pnl=wallet + upnl - day_start,
            trades_today=eng.entries_today,
            max_daily_trades=eng.params.max_daily_trades,
            market_stream=_stream(streams.get("market")),
            user_stream=_stream(streams.get("user")),
            positions=tuple(sorted(positions, key=lambda v: v.symbol)),
            signals=tuple(self.signals),
            timers=tuple(sorted(timers, key=lambda t: (t.symbol, t.side))),
            orders=tuple(eng.orders.open_orders()),
            algo_orders=tuple(eng.orders.open_algo_orders()),
            log=tuple(self.log_ring.lines),
            replay_position=getattr(rt, "position", getattr(rt, "candles_received", None)),
            replay_total=len(rt.run_.candles) if rt.run_.candles else None,
            finished=rt.finished,
            flatten=getattr(rt, "flatten_report", None),
            status=status_view(eng),
            training=training_view(self.trainer),
            strategy_stats=self.stats.view(),
            external_signals=self.external.view(),
            confluences=confluence_views(eng.strategies),
            **self._strategy_panel(eng),
        )

    def _strategy_panel(self, eng) -> dict[str, Any]:
        """Regimes and switches, or ensemble weights, of the active strategy (duck-typed)."""
        active = eng.strategies.get(eng.active_name)
        inner = getattr(active, "inner", active)
        out: dict[str, Any] = {}
        try:
            if callable(getattr(inner, "regimes", None)):
                out["regimes"] = regime_views(inner)
                recent = getattr(inner, "recent_switches", None)
                out["regime_switches"] = self._switches.view(recent() if callable(recent) else ())
            member_stats = getattr(inner, "member_stats", None)
            if callable(getattr(inner, "weights", None)) and callable(member_stats):
                out["ensemble_weights"] = weight_views(member_stats())
        except Exception:  # noqa: BLE001 - a strategy's display read must never break the console
            log.debug("strategy panel read failed", exc_info=True)
        return out


TRAINING_UNAVAILABLE = ("training is not available in this process: the rl extra is not installed "
                        "or [rl] enabled = false")
EXTERNAL_KEPT = 100
"""External signals kept for the console."""
SWITCHES_SHOWN = 20
"""Regime switches shown (newest)."""


class TrainingUnavailable(RuntimeError):
    """A training command reached a facade without a trainer."""


def route_training(trainer: TrainingControl | None, command: object) -> bool:
    """Carry out StartTraining/StopTraining on ``trainer``; True when ``command`` was one of them.

    Raises :class:`TrainingUnavailable` when there is no trainer (the console says so)."""
    from engine.events import StartTraining, StopTraining

    if not isinstance(command, StartTraining | StopTraining):
        return False
    if trainer is None:
        raise TrainingUnavailable(TRAINING_UNAVAILABLE)
    if isinstance(command, StartTraining):
        trainer.start()
    else:
        trainer.stop()
    return True


def training_view(trainer: TrainingControl | None) -> TrainingView | None:
    """The trainer's view; a failed read is shown as such, never raised."""
    if trainer is None:
        return None
    try:
        return trainer.view()
    except Exception as exc:  # noqa: BLE001 - the console must outlive a bad read
        return TrainingView(state="failed", detail=f"trainer view failed: {type(exc).__name__}: {exc}")


class StrategyStatsBook:
    """Per-strategy counts kept from bus facts as they come (O(1) each); :meth:`view` is cached."""

    def __init__(self) -> None:
        self._rows: dict[str, list] = {}  # name -> [accepted, denied, trades, wins, net pnl]
        self._view: tuple[StrategyStatsView, ...] | None = ()

    def _row(self, name: str) -> list:
        row = self._rows.get(name)
        if row is None:
            row = self._rows[name] = [0, 0, 0, 0, ZERO]
        self._view = None
        return row

    def on_signal(self, record: SignalRecord) -> None:
        row = self._row(record.signal.strategy)
        row[0 if record.verdict is Verdict.ACCEPTED else 1] += 1

    def on_trade_closed(self, trade) -> None:
        row = self._row(trade.strategy)
        net = trade.net_pnl
        row[2] += 1
        row[3] += net > 0
        row[4] += net

    def view(self) -> tuple[StrategyStatsView, ...]:
        if self._view is None:
            self._view = tuple(StrategyStatsView(name, *row) for name, row in sorted(self._rows.items()))
        return self._view


class ExternalSignalLog:
    """The last ingested external signals (``ExternalSignalIngested`` facts) as views."""

    def __init__(self, maxlen: int = EXTERNAL_KEPT) -> None:
        self._items: deque[ExternalSignalView] = deque(maxlen=maxlen)
        self._view: tuple[ExternalSignalView, ...] | None = ()

    def on_ingested(self, fact) -> None:
        self._items.append(external_view(fact))
        self._view = None

    def view(self) -> tuple[ExternalSignalView, ...]:
        if self._view is None:
            self._view = tuple(self._items)
        return self._view


def external_view(fact) -> ExternalSignalView:
    """An ``ExternalSignalIngested`` fact as a view (its outcome is a plain dict, or None)."""
    outcome = fact.outcome if isinstance(fact.outcome, dict) else None
    sig = (outcome or {}).get("signal") or {}
    conf = (outcome or {}).get("confluence") or {}
    if fact.error:
        status, detail = "rejected", fact.error
    elif outcome is None:
        status, detail = "unused", "no strategy takes external signals"
    else:
        status, detail = str(outcome.get("status", "?")), str(outcome.get("reason") or "")
    score = conf.get("score")
    return ExternalSignalView(
        time_ms=fact.time_ms,
        message_type=str(sig.get("message_type", fact.message_type)),
        message_id=str(fact.message_id),
        symbol=str(sig.get("symbol", fact.symbol)),
        status=status,
        score=float(score) if isinstance(score, int | float) else None,
        source=fact.source,
        detail=detail,
    )


def confluence_views(strategies: dict[str, Any]) -> tuple[ConfluenceView, ...]:
    """Confluences held by every strategy that holds them (``held()``), by strategy then symbol."""
    out: list[ConfluenceView] = []
    for name, s in strategies.items():
        held = getattr(getattr(s, "inner", s), "held", None)
        if not callable(held):
            continue
        try:
            for c in held():
                fomo = c.fomo
                out.append(ConfluenceView(
                    strategy=name, symbol=c.symbol, time_ms=c.time_ms, score=float(c.score),
                    fomo=f"{fomo.kind.label}({int(fomo.kind)}) {fomo.message_id}",
                    alpha=str(c.alpha.message_id), gap_ms=int(c.gap_ms),
                ))
        except Exception:  # noqa: BLE001 - a display read must never break the console
            log.debug("held confluences of %s unreadable", name, exc_info=True)
    return tuple(sorted(out, key=lambda v: (v.strategy, v.symbol)))


def regime_views(strategy) -> tuple[RegimeView, ...]:
    """``strategy.regimes()`` with the member in charge (``active_by_symbol``) and the figures
    behind each regime (``regime_state``), when the strategy offers them."""
    regimes = strategy.regimes()
    active_fn = getattr(strategy, "active_by_symbol", None)
    active = active_fn() if callable(active_fn) else {}
    state_fn = getattr(strategy, "regime_state", None)
    out = []
    for sym, regime in regimes.items():
        st = state_fn(sym) if callable(state_fn) else None
        out.append(RegimeView(
            symbol=sym,
            regime=str(getattr(regime, "value", regime)),
            strategy=active.get(sym),
            since_ms=getattr(st, "since_ms", None),
            adx=getattr(st, "adx", None),
        ))
    return tuple(out)


def switch_view(sw) -> RegimeSwitchView:
    return RegimeSwitchView(
        symbol=sw.symbol, time_ms=sw.time_ms,
        previous_regime=str(getattr(sw.previous_regime, "value", sw.previous_regime)),
        regime=str(getattr(sw.regime, "value", sw.regime)),
        from_strategy=sw.from_strategy, to_strategy=sw.to_strategy, reason=sw.reason,
    )


class _SwitchCache:
    """The newest switches as views, converted again only when a new one arrived."""

    def __init__(self) -> None:
        self._key: tuple[int, int] | None = None
        self._view: tuple[RegimeSwitchView, ...] = ()

    def view(self, recent) -> tuple[RegimeSwitchView, ...]:
        recent = tuple(recent)
        key = (len(recent), id(recent[-1])) if recent else (0, 0)
        if key != self._key:
            self._key = key
            self._view = tuple(switch_view(sw) for sw in recent[-SWITCHES_SHOWN:])
        return self._view


def weight_views(member_stats) -> tuple[MemberWeightView, ...]:
    """An ensemble's ``member_stats()`` as views."""
    out = []
    for m in member_stats:
        trades = int(getattr(m, "virtual_trades", 0))
        wins = int(getattr(m, "wins", 0))
        out.append(MemberWeightView(
            name=m.name, weight=float(m.weight), signals=int(getattr(m, "signals", 0)), virtual_trades=trades,
            win_rate=wins / trades if trades else None,
            performance_pct=float(getattr(m, "performance", 0.0)),
            total_pnl_pct=float(getattr(m, "total_pnl_pct", 0.0)),
        ))
    return tuple(out)


def _stop_kind(br) -> str:
    """``PositionView.stop_kind`` from a bracket's stop purpose."""
    purpose = getattr(getattr(br, "stop_purpose", None), "value", None)
    if purpose == "break_even_stop":
        return BREAK_EVEN
    if purpose == "trailing_stop":
        return TRAILING
    return STOP_LOSS


def _timer(symbol: str, side: str, br, rules=None) -> TimerView | None:
    """The break-even timer of a bracket with a break-even plan, else None.

    The trigger is shown as the first price on the symbol's tick grid that reaches it (up for a
    long, down for a short): the engine keeps it unrounded (entry × 1.01 has more digits)."""
    if br is None:
        return None
    trigger = getattr(br, "be_trigger", None)
    if trigger is not None and rules is not None:
        trigger = rules.round_price_up(trigger) if side == "LONG" else rules.round_price_down(trigger)
    deadline = getattr(br, "be_deadline_ms", None)
    be_price = getattr(br, "be_price", None)
    if trigger is None and deadline is None and be_price is None:
        return None  # no break-even plan (or not armed yet: the entry has not filled)
    reached = bool(getattr(br, "be_reached", False))
    return TimerView(
        symbol=symbol,
        side=side,
        deadline_ms=None if reached else deadline,
        break_even_reached=reached,
        trigger_price=trigger,
        break_even_price=be_price,
        closing=not reached and bool(getattr(br, "closing", False)),
    )


def status_view(eng) -> StatusView:
    """The guard's state from the engine's risk monitor and limits (absent parts stay None)."""
    params = eng.params
    monitor = getattr(eng, "monitor", None)
    st: dict[str, Any] = {}
    if monitor is not None:
        try:
            st = monitor.status()
        except Exception:  # noqa: BLE001 - a status read must never break the console (10 reads/s: no log spam)
            log.debug("risk monitor status failed", exc_info=True)
            st = {}
    max_losses = getattr(params, "max_consecutive_losses", None)
    if max_losses is None and monitor is not None:
        max_losses = getattr(monitor, "max_consecutive_losses", None)
    opened = getattr(eng, "positions_opened_today", None)
    pnl = st.get("strategy_net_pnl") or {}
    return StatusView(
        positions_opened_today=opened if isinstance(opened, int) else None,
        max_positions_per_day=_max_positions_per_day(eng),
        consecutive_losses=st.get("consecutive_losses"),
        max_consecutive_losses=max_losses,
        disabled_strategies=tuple(st.get("disabled_strategies") or ()),
        halted_by=st.get("halted_by"),
        guard_halt_reason=st.get("halt_reason") or "",
        shock_until_ms=st.get("shock_until_ms"),
        strategy_net_pnl=tuple((str(k), Decimal(str(v))) for k, v in pnl.items()),
    )


def _max_positions_per_day(eng) -> int | None:
    limit = getattr(eng.params, "max_positions_per_day", None)
    if limit is not None:
        return limit
    for rule in getattr(getattr(eng, "guard", None), "signal_rules", ()):  # a handful of rules
        limit = getattr(rule, "max_positions_per_day", None)
        if limit is not None:
            return limit
    return None


def liquidation_price(rules, p, wallet_balance: Decimal) -> Decimal | None:
    """Binance's liquidation price for one position: exact for isolated margin (its isolated
    wallet); for cross margin with the whole wallet behind this one position (others ignored)."""
    if rules is None or p.amount == 0:
        return None
    size = abs(p.amount)
    side = 1 if p.amount > 0 else -1
    bracket = rules.bracket_for(size * p.entry_price)
    if bracket is None:
        return None
    wb = p.isolated_wallet if p.margin_type.value == "ISOLATED" else wallet_balance
    denom = size * bracket.maint_margin_ratio - side * size
    if denom == 0:
        return None
    lp = (wb + bracket.cum - side * size * p.entry_price) / denom
    return rules.round_price(lp) if lp > 0 else None


def _stream(v: Any) -> StreamView:
    if isinstance(v, dict):
        last = v.get("last_message_ms")
        return StreamView(str(v.get("state", "unknown")), last if last else None)  # 0 = nothing received yet
    return StreamView(str(v) if v else "unknown", None)
