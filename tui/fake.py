"""A deterministic stand-in for the engine facade, for tests, demos and snapshot baselines.

:class:`FakeFacade` serves canned :class:`~engine.facade.EngineSnapshot` values built from fixed
times (no wall clock anywhere), records every command it is sent in ``.commands`` and reacts to
them about the way the engine does, so the console can be driven end to end without an engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from engine.events import FlattenAll, Halt, Resume, StartTraining, StopTraining, SwitchStrategy
from engine.facade import (
    BREAK_EVEN,
    STOP_LOSS,
    ConfluenceView,
    EngineSnapshot,
    ExternalSignalView,
    FlattenReport,
    LogLine,
    MemberWeightView,
    PositionView,
    RegimeSwitchView,
    RegimeView,
    StatusView,
    StrategyStatsView,
    StreamView,
    TimerView,
    TrainingView,
    route_training,
)
from engine.model import (
    ZERO,
    AlgoOrder,
    AlgoStatus,
    Direction,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    PositionSide,
    Side,
    Signal,
    SignalRecord,
    Verdict,
    WorkingType,
)

NOW_MS = 1_736_944_496_000
"""Exchange time of every seeded snapshot: 2025-01-15 12:34:56 UTC."""
WALL_MS = NOW_MS + 180
"""The wall clock the fake stands at (the exchange clock runs 180 ms behind it)."""
MINUTE_MS = 60_000
STRATEGIES = ("donchian_breakout", "ema_trend", "rl_policy")
"""Strategies the fake engine knows; ``ema_trend`` is active."""


def at(hh: int, mm: int, ss: int = 0) -> int:
    """Epoch ms of a time of day on the seeded date (2025-01-15, UTC)."""
    return NOW_MS - ((12 * 60 + 34) * 60 + 56) * 1000 + ((hh * 60 + mm) * 60 + ss) * 1000


def client_id(role: str, key: str) -> str:
    """An id shaped like the engine's (``pdS0-`` + 22 hex chars), derived from ``key``."""
    return f"pd{role}0-" + hashlib.blake2b(key.encode(), digest_size=16).hexdigest()[:22]


def D(text: str) -> Decimal:  # noqa: N802 - reads like a literal
    return Decimal(text)


# -- builders ----------------------------------------------------------------------------------


def position(
    symbol: str,
    side: str,
    size: str,
    entry: str,
    mark: str,
    *,
    stop: str | None = None,
    take_profit: str | None = None,
    liquidation: str | None = None,
    opened_ms: int | None = None,
    tp1: str | None = None,
    tp1_qty: str | None = None,
    tp1_done: bool = False,
    stop_kind: str = STOP_LOSS,
    trailing_activated: bool | None = None,
) -> PositionView:
    """A position view; unrealised PnL is computed from entry, mark, size and side."""
    sign = 1 if side == "LONG" else -1
    return PositionView(
        symbol=symbol,
        side=side,
        size=D(size),
        entry_price=D(entry),
        mark_price=D(mark),
        unrealized_pnl=(D(mark) - D(entry)) * D(size) * sign,
        stop_price=D(stop) if stop else None,
        take_profit_price=D(take_profit) if take_profit else None,
        liquidation_price=D(liquidation) if liquidation else None,
        opened_ms=opened_ms,
        tp1_price=D(tp1) if tp1 else None,
        tp1_qty=D(tp1_qty) if tp1_qty else None,
        tp1_done=tp1_done,
        stop_kind=stop_kind,
        trailing_activated=trailing_activated,
    )


def seeded_positions() -> tuple[PositionView, ...]:
    """Three open positions.

    - BTC long in profit: TP1 filled (half of 0.030 closed), break-even reached, stop moved there.
    - ETH short at a loss: TP1 and TP2 resting, break-even timer running.
    - SOL long without take-profit: original stop, break-even timer running.
    """
    return (
        position("BTCUSDT", "LONG", "0.015", "97250.10", "97812.40", stop="97347.40", stop_kind=BREAK_EVEN,
                 tp1="97736.40", tp1_qty="0.015", tp1_done=True, take_profit="99500.00",
                 liquidation="81234.50", opened_ms=at(10, 21)),
        position("ETHUSDT", "SHORT", "1.250", "3310.25", "3342.80", stop="3390.00",
                 tp1="3260.00", tp1_qty="0.625", take_profit="3180.00", liquidation="3912.60",
                 opened_ms=at(11, 47)),
        position("SOLUSDT", "LONG", "12", "187.432", "188.105", stop="183.900", opened_ms=at(12, 28)),
    )


def signal(
    symbol: str,
    direction: Direction,
    strength: float,
    time_ms: int,
    verdict: Verdict,
    reason: str = "",
    quantity: str | None = None,
    price: str = "0",
    strategy: str = "ema_trend",
) -> SignalRecord:
    """A judged signal on a 15-minute candle that closed at ``time_ms``."""
    sig = Signal(
        strategy=strategy,
        symbol=symbol,
        direction=direction,
        strength=strength,
        reason="ema cross",
        candle_open_time_ms=time_ms - 15 * MINUTE_MS,
        price=D(price),
        time_ms=time_ms,
    )
    return SignalRecord(sig, verdict, reason, D(quantity) if quantity else None, time_ms)


def seeded_signals() -> tuple[SignalRecord, ...]:
    """Five signals, oldest first: three accepted, two denied with their reasons."""
    long, short = Direction.LONG, Direction.SHORT
    ok, no = Verdict.ACCEPTED, Verdict.DENIED
    return (
        signal("BTCUSDT", long, 0.81, at(10, 21), ok, quantity="0.030", price="97250.10"),
        signal("ETHUSDT", short, 0.66, at(11, 47), ok, quantity="1.250", price="3310.25"),
        signal("BNBUSDT", long, 0.42, at(12, 5), no, "stop too close to mark", price="688.40"),
        signal("SOLUSDT", long, 0.74, at(12, 28), ok, quantity="12", price="187.432"),
        signal("XRPUSDT", short, 0.58, at(12, 33), no, "max open positions (3)", price="3.1122"),
    )


def seeded_timers() -> tuple[TimerView, ...]:
    """Break-even plans (trigger 0.4% from entry, stop at entry plus two taker fees, one-hour
    timeout): BTC reached break-even (no deadline any more), ETH and SOL still running."""
    return (
        TimerView("BTCUSDT", "LONG", None, True, trigger_price=D("97639.10"), break_even_price=D("97347.40")),
        TimerView("ETHUSDT", "SHORT", NOW_MS + 12 * MINUTE_MS + 30_000, False,
                  trigger_price=D("3297.01"), break_even_price=D("3306.93")),
        TimerView("SOLUSDT", "LONG", NOW_MS + 53 * MINUTE_MS + 4_000, False,
                  trigger_price=D("188.182"), break_even_price=D("187.620")),
    )


def seeded_status() -> StatusView:
    """The guard: 3 of 10 positions opened today, one loss in a row of 4 allowed, ``rl_policy``
    disabled for its losses, no guard halt."""
    return StatusView(
        positions_opened_today=3,
        max_positions_per_day=10,
        consecutive_losses=1,
        max_consecutive_losses=4,
        disabled_strategies=("rl_policy",),
        strategy_net_pnl=(("donchian_breakout", D("-12.40")), ("ema_trend", D("144.88")),
                          ("rl_policy", D("-318.05"))),
    )


def trailing_positions() -> tuple[PositionView, ...]:
    """Exchange trailing stops (issue 5): BTC's activated and following the price, ETH's placed and
    waiting for its activation price, SOL without one."""
    btc, eth, sol = seeded_positions()
    return (
        replace(btc, stop_price=D("97519.60"), trailing_activated=True),
        replace(eth, trailing_activated=False),
        sol,
    )


def seeded_strategy_stats() -> tuple[StrategyStatsView, ...]:
    """Since start: ``ema_trend`` 5 accepted, 2 denied, 4 trades (3 wins); members of the regime
    switch under their own names; ``rl_policy`` losing (the guard disabled it)."""
    return (
        StrategyStatsView("adx_trend", accepted=3, denied=1, trades=3, wins=2, net_pnl=D("41.27")),
        StrategyStatsView("bollinger_reversion", accepted=2, denied=0, trades=2, wins=0, net_pnl=D("-18.90")),
        StrategyStatsView("confluence", accepted=1, denied=1, trades=0, wins=0, net_pnl=ZERO),
        StrategyStatsView("ema_trend", accepted=5, denied=2, trades=4, wins=3, net_pnl=D("144.88")),
        StrategyStatsView("rl_policy", accepted=6, denied=0, trades=6, wins=1, net_pnl=D("-318.05")),
    )


def seeded_regimes() -> tuple[RegimeView, ...]:
    """Four symbols: an up-trend, a range, a crash (flat) and one still warming up."""
    return (
        RegimeView("BTCUSDT", "trending_up", "adx_trend", since_ms=at(11, 52), adx=31.4),
        RegimeView("ETHUSDT", "ranging", "bollinger_reversion", since_ms=at(9, 7), adx=14.2),
        RegimeView("SOLUSDT", "crash", None, since_ms=at(12, 31), adx=38.9),
        RegimeView("XRPUSDT", "unknown", None),
    )


def seeded_switches() -> tuple[RegimeSwitchView, ...]:
    """The last switches, oldest first, each with the regime change that caused it."""
    return (
        RegimeSwitchView("ETHUSDT", at(9, 7), "unknown", "ranging", None, "bollinger_reversion",
                         "warmed up: ADX 14.2 < 18"),
        RegimeSwitchView("BTCUSDT", at(10, 3), "ranging", "volatility_spike", "bollinger_reversion",
                         "donchian_breakout", "ATR 2.4× baseline"),
        RegimeSwitchView("BTCUSDT", at(11, 52), "volatility_spike", "trending_up", "donchian_breakout",
                         "adx_trend", "ADX 27.0 >= 25, EMA50 > EMA200"),
        RegimeSwitchView("SOLUSDT", at(12, 31), "trending_up", "crash", "adx_trend", None,
                         "close -5.2% in 60 candles"),
    )


def seeded_weights() -> tuple[MemberWeightView, ...]:
    """Ensemble members: weights shifted towards the two whose signals have been paying."""
    return (
        MemberWeightView("ema_trend", 0.34, signals=14, virtual_trades=12, win_rate=7 / 12, performance_pct=0.21,
                         total_pnl_pct=2.57),
        MemberWeightView("adx_trend", 0.29, signals=9, virtual_trades=8, win_rate=5 / 8, performance_pct=0.13,
                         total_pnl_pct=1.06),
        MemberWeightView("bollinger_reversion", 0.19, signals=11, virtual_trades=10, win_rate=0.4,
                         performance_pct=-0.08, total_pnl_pct=-1.17),
        MemberWeightView("donchian_breakout", 0.18, signals=3, virtual_trades=1, win_rate=0.0,
                         performance_pct=-0.10, total_pnl_pct=-0.62),
    )


def seeded_external() -> tuple[ExternalSignalView, ...]:
    """External signals as ``perpdeck signal --simulate`` sends them, oldest first: a confluence on
    BTC, a duplicate, a pair too far apart to score, a bad symbol, and a FOMO waiting on ETH."""
    return (
        ExternalSignalView(at(12, 30, 5), "113", "sim-0041", "BTCUSDT", "pending", source="simulate"),
        ExternalSignalView(at(12, 31, 40), "110", "sim-0042", "BTCUSDT", "confluence", score=0.92,
                           source="simulate"),
        ExternalSignalView(at(12, 31, 44), "110", "sim-0042", "BTCUSDT", "duplicate", source="simulate"),
        ExternalSignalView(at(12, 32, 10), "110", "sim-0043", "SOLUSDT", "pending", source="simulate"),
        ExternalSignalView(at(12, 33, 2), "112", "sim-0044", "SOLUSDT", "below_threshold", score=0.54,
                           source="simulate"),
        ExternalSignalView(at(12, 33, 30), "113", "cli-7", "USDT", "rejected", source="cli",
                           detail="symbol: 'USDT' is only a quote asset; expected e.g. 'BTC' or 'BTCUSDT'"),
        ExternalSignalView(at(12, 34, 12), "112", "sim-0045", "ETHUSDT", "pending", source="simulate"),
    )


def seeded_confluences() -> tuple[ConfluenceView, ...]:
    """One confluence held until BTC's next closed candle."""
    return (ConfluenceView("confluence", "BTCUSDT", at(12, 31, 40), 0.92, "FOMO(113) sim-0041", "sim-0042",
                           95_000),)


def with_regimes(snap: EngineSnapshot) -> EngineSnapshot:
    """``snap`` with the regime switch active: regimes per symbol and the last switches."""
    return replace(snap, strategy="regime_switch", strategies=tuple(sorted({*snap.strategies, "regime_switch"})),
                   regimes=seeded_regimes(), regime_switches=seeded_switches())


def with_ensemble(snap: EngineSnapshot) -> EngineSnapshot:
    """``snap`` with the ensemble active: its members' weights."""
    return replace(snap, strategy="ensemble", strategies=tuple(sorted({*snap.strategies, "ensemble"})),
                   ensemble_weights=seeded_weights())


def seeded_training() -> TrainingView:
    """A trainer half way through: on a GPU, 48,200 of 100,000 steps, a checkpoint at 48,000."""
    return TrainingView(
        state="running",
        device="cuda:0 (NVIDIA H100 80GB HBM3)",
        steps=48_200,
        total_steps=100_000,
        steps_per_s=412.5,
        episode_reward=0.0123,
        actor_loss=-12.3456,
        critic_loss=0.0456,
        ent_coef=0.0123,
        eta_s=125.0,
        best_val_return_pct=3.41,
        checkpoint="state/rl/sac-20250115/ckpt-048000.zip",
        detail="checkpoint saved at step 48,000 (validation return +3.41%)",
    )


class FakeTrainer:
    """A :class:`~engine.facade.TrainingControl` stand-in: ``start()`` runs it (from where it stood),
    ``stop()`` stops it (resumable). ``calls`` records ``"start"``/``"stop"`` in order."""

    def __init__(self, view: TrainingView | None = None) -> None:
        self.calls: list[str] = []
        self._view = view or TrainingView(state="idle", device="cpu", total_steps=100_000)

    def start(self) -> None:
        self.calls.append("start")
        self._view = replace(self._view, state="running", detail="started by the operator")

    def stop(self) -> None:
        self.calls.append("stop")
        self._view = replace(self._view, state="stopped", eta_s=None,
                             detail=f"stopped by the operator at step {self._view.steps:,}; checkpoint saved")

    def view(self) -> TrainingView:
        return self._view


def order(
    symbol: str,
    side: Side,
    qty: str,
    price: str,
    *,
    status: OrderStatus = OrderStatus.NEW,
    filled: str = "0",
    client_order_id: str,
    reduce_only: bool = False,
    created_ms: int = NOW_MS,
) -> Order:
    """A resting LIMIT order."""
    return Order(
        client_order_id=client_order_id,
        exchange_order_id=None,
        symbol=symbol,
        side=side,
        type=OrderType.LIMIT,
        quantity=D(qty),
        price=D(price),
        status=status,
        filled_qty=D(filled),
        avg_price=ZERO,
        position_side=PositionSide.BOTH,
        reduce_only=reduce_only,
        purpose=OrderPurpose.EXTERNAL,
        signal_id=None,
        created_ms=created_ms,
        updated_ms=created_ms,
    )


def algo(
    symbol: str,
    side: Side,
    type_: OrderType,
    trigger: str,
    key: str,
    created_ms: int,
    *,
    purpose: OrderPurpose | None = None,
    close_position: bool = True,
    variant: str = "",
) -> AlgoOrder:
    """A resting conditional order: by default a close-position stop-loss or take-profit.
    ``variant`` tells apart orders of the same position and kind (a moved stop, TP1 beside TP2)."""
    stop = type_ is OrderType.STOP_MARKET
    return AlgoOrder(
        client_algo_id=client_id("S" if stop else "T", f"{key}#{variant}" if variant else key),
        algo_id=None,
        symbol=symbol,
        side=side,
        type=type_,
        trigger_price=D(trigger),
        status=AlgoStatus.NEW,
        position_side=PositionSide.BOTH,
        close_position=close_position,
        working_type=WorkingType.MARK_PRICE,
        purpose=purpose or (OrderPurpose.STOP_LOSS if stop else OrderPurpose.TAKE_PROFIT),
        signal_id=key,
        actual_order_id=None,
        created_ms=created_ms,
        updated_ms=created_ms,
    )


def seeded_orders() -> tuple[Order, ...]:
    """One open order: a manual reduce-only take-profit, partly filled."""
    return (
        order("BTCUSDT", Side.SELL, "0.005", "99000.00", status=OrderStatus.PARTIALLY_FILLED,
              filled="0.002", client_order_id="web_8cKq2Lm0TzQ", reduce_only=True, created_ms=at(11, 2)),
    )


def seeded_algo_orders() -> tuple[AlgoOrder, ...]:
    """The exchange-side protection of the seeded positions: BTC's stop moved to break-even after
    its TP1 filled; ETH's TP1 (a part of the position) and TP2 resting."""
    stop, tp = OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET
    btc, eth, sol = "ema_trend:BTCUSDT:LONG", "ema_trend:ETHUSDT:SHORT", "ema_trend:SOLUSDT:LONG"
    return (
        algo("BTCUSDT", Side.SELL, stop, "97347.40", btc, at(12, 2), purpose=OrderPurpose.BREAK_EVEN_STOP, variant="1"),
        algo("BTCUSDT", Side.SELL, tp, "99500.00", btc, at(10, 21)),
        algo("ETHUSDT", Side.BUY, stop, "3390.00", eth, at(11, 47)),
        algo("ETHUSDT", Side.BUY, tp, "3260.00", eth, at(11, 47), purpose=OrderPurpose.TAKE_PROFIT_1,
             close_position=False, variant="tp1"),
        algo("ETHUSDT", Side.BUY, tp, "3180.00", eth, at(11, 47)),
        algo("SOLUSDT", Side.SELL, stop, "183.900", sol, at(12, 28)),
    )


def seeded_log() -> tuple[LogLine, ...]:
    """Engine log lines, oldest first, of every level."""
    lines = (
        (at(12, 28, 0), "INFO", "signal SOLUSDT LONG 0.74 accepted: qty 12"),
        (at(12, 28, 1), "INFO", "SOLUSDT entry filled 12 @ 187.432"),
        (at(12, 28, 1), "INFO", "SOLUSDT stop-loss resting at 183.900"),
        (at(12, 28, 2), "WARNING", "SOLUSDT take-profit skipped: below min notional"),
        (at(12, 30, 0), "DEBUG", "reconcile: 3 positions, 7 orders match the exchange"),
        (at(12, 31, 14), "WARNING", "user stream reconnecting (ping timeout)"),
        (at(12, 31, 16), "INFO", "user stream connected; backfilled 0 events"),
        (at(12, 33, 0), "INFO", "signal XRPUSDT SHORT 0.58 denied: max open positions (3)"),
        (at(12, 33, 40), "ERROR", "BNBUSDT exchangeInfo refresh failed: HTTP 503 (retrying)"),
        (at(12, 34, 10), "INFO", "exchangeInfo refreshed: 4 symbols"),
        (at(12, 34, 55), "INFO", "heartbeat: loop lag 0.8 ms, queue depth 0"),
    )
    return tuple(LogLine(t, level, msg) for t, level, msg in lines)


def seeded_snapshot(
    *,
    mode: str = "sim",
    state: str = "ACTIVE",
    halt_reason: str = "",
    with_positions: bool = True,
) -> EngineSnapshot:
    """A busy engine: open positions, accepted and denied signals, open and algo orders, a log."""
    positions = seeded_positions() if with_positions else ()
    wallet = D("10482.37")
    upnl = sum((p.unrealized_pnl for p in positions), ZERO)
    return EngineSnapshot(
        mode=mode,
        run_id="run-20250115-0915",
        state=state,
        halt_reason=halt_reason,
        strategy="ema_trend",
        strategies=STRATEGIES,
        exchange_time_ms=NOW_MS,
        equity=wallet + upnl,
        wallet_balance=wallet,
        available_balance=D("7915.62") if with_positions else wallet,
        unrealized_pnl=upnl,
        today_pnl=D("132.48"),
        trades_today=3,
        max_daily_trades=10,
        market_stream=StreamView("connected", WALL_MS - 400),
        user_stream=StreamView("connected", WALL_MS - 12_300),
        positions=positions,
        signals=seeded_signals(),
        timers=seeded_timers() if with_positions else (),
        orders=seeded_orders() if with_positions else (),
        algo_orders=seeded_algo_orders() if with_positions else (),
        log=seeded_log(),
        status=seeded_status(),
        strategy_stats=seeded_strategy_stats(),
        external_signals=seeded_external(),
        confluences=seeded_confluences(),
    )


def flat(snapshot: EngineSnapshot, report: FlattenReport | None = None) -> EngineSnapshot:
    """The same engine with every position closed and every order gone."""
    return replace(
        snapshot,
        positions=(),
        timers=(),
        orders=(),
        algo_orders=(),
        unrealized_pnl=ZERO,
        equity=snapshot.wallet_balance,
        available_balance=snapshot.wallet_balance,
        flatten=report,
    )


# -- the fake ----------------------------------------------------------------------------------


class FakeFacade:
    """A :class:`~engine.facade.Facade` serving canned snapshots and recording commands.

    Reactions, visible from the next ``snapshot()``:

    - ``Halt(reason)``: state HALTED with that reason; ``Resume()``: ACTIVE.
    - ``FlattenAll``: HALTED and a running flatten (attempt 1); the snapshot after that one is flat
      (attempt 2, no positions or orders) — or, with ``flatten_fails=True``, a failed flatten that
      names what is still open.
    - ``SwitchStrategy(name)``: ``strategy`` becomes ``name``.
    - ``StartTraining`` / ``StopTraining``: go to ``trainer`` (a :class:`FakeTrainer`), whose view
      every snapshot carries; without one they raise ``TrainingUnavailable`` like the real facades.
    """

    def __init__(
        self,
        snapshot: EngineSnapshot | None = None,
        *,
        mode: str = "sim",
        state: str = "ACTIVE",
        halt_reason: str = "",
        with_positions: bool = True,
        flatten_fails: bool = False,
        trainer: FakeTrainer | None = None,
    ) -> None:
        self.trainer = trainer
        """The training commands' target (None: training not available)."""
        self.commands: list[object] = []
        """Every command submitted, in order."""
        self.snapshots_served = 0
        """How many snapshots were read."""
        self.flatten_fails = flatten_fails
        self._current = snapshot or seeded_snapshot(
            mode=mode, state=state, halt_reason=halt_reason, with_positions=with_positions
        )
        self._queued: list[EngineSnapshot] = []

    # Facade ---------------------------------------------------------------------------------

    def snapshot(self) -> EngineSnapshot:
        self.snapshots_served += 1
        served = self._current
        if self._queued:
            self._current = self._queued.pop(0)
        if self.trainer is not None:
            served = replace(served, training=self.trainer.view())
        return served

    def submit(self, command: object) -> None:
        if isinstance(command, StartTraining | StopTraining):
            route_training(self.trainer, command)  # raises TrainingUnavailable without a trainer
        self.commands.append(command)
        snap = self._current
        match command:
            case Halt(reason=reason):
                self._set(replace(snap, state="HALTED", halt_reason=reason),
                          "WARNING", f"engine halted: {reason}")
            case Resume():
                self._set(replace(snap, state="ACTIVE", halt_reason=""), "INFO", "engine resumed")
            case SwitchStrategy(name=name):
                self._set(replace(snap, strategy=name), "INFO",
                          f"strategy {name} selected; applies on the next closed candle")
            case FlattenAll(reason=reason):
                self._flatten(snap, reason)

    # helpers --------------------------------------------------------------------------------

    def wall_ms(self) -> int:
        """The fake's wall clock (fixed), for stream ages."""
        return WALL_MS

    def advance(self, ms: int) -> None:
        """Move the exchange clock on by ``ms`` (break-even timers count down); nothing else changes."""
        self._current = replace(self._current, exchange_time_ms=self._current.exchange_time_ms + ms)

    def _set(self, snap: EngineSnapshot, level: str, message: str) -> None:
        self._current = _logged(snap, [(level, message)])

    def _flatten(self, snap: EngineSnapshot, reason: str) -> None:
        halted = replace(snap, state="HALTED", halt_reason=f"flatten: {reason}")
        running = _logged(replace(halted, flatten=FlattenReport("running", 1)),
                          [("WARNING", f"flatten requested ({reason}): cancelling orders, closing positions")])
        if not self.flatten_fails:
            done = _logged(flat(running, FlattenReport("flat", 2)), [("INFO", "flatten complete: flat")])
        else:
            eth = [p for p in snap.positions if p.symbol == "ETHUSDT"]
            stops = [a for a in snap.algo_orders if a.symbol == "ETHUSDT" and a.type is OrderType.STOP_MARKET]
            report = FlattenReport(
                "failed",
                3,
                open_positions=tuple(f"{p.symbol} {p.side} {p.size}" for p in eth),
                open_orders=tuple(f"{a.symbol} {a.type.value} {a.client_algo_id}" for a in stops),
                detail="ETHUSDT close rejected 3 times: -2022 ReduceOnly Order is rejected",
            )
            done = replace(flat(running, report), positions=tuple(eth), algo_orders=tuple(stops))
            done = _logged(done, [("ERROR", "flatten failed: ETHUSDT still open")])
        self._current = running
        self._queued = [done]


def _logged(snap: EngineSnapshot, lines: Iterable[tuple[str, str]]) -> EngineSnapshot:
    """``snap`` with log lines appended, stamped one second apart after its last line."""
    log = list(snap.log)
    t = log[-1].time_ms if log else snap.exchange_time_ms
    for level, message in lines:
        t += 1000
        log.append(LogLine(t, level, message))
    return replace(snap, log=tuple(log))
