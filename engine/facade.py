"""The one door between the engine and any console: frozen snapshots out, commands in.

The Textual console and ``perpdeck ctl`` read :class:`EngineSnapshot` values (plain frozen records,
no live engine objects, no SQL) and send the commands of ``engine.events`` (Halt, Resume,
FlattenAll, SwitchStrategy). :class:`RuntimeFacade` implements it over a running runtime;
tests can implement :class:`Facade` with canned snapshots.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from engine.model import ZERO, AlgoOrder, Order, SignalRecord

LOG_LINES = 500
SIGNALS_KEPT = 200


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


@dataclass(frozen=True, slots=True)
class TimerView:
    """A break-even timer (the trade-management issue fills these in)."""

    symbol: str
    side: str
    deadline_ms: int
    break_even_reached: bool


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

    def __init__(self, runtime, log_ring: LogRing | None = None) -> None:
        self.rt = runtime
        self.log_ring = log_ring or LogRing()
        self.signals: deque[SignalRecord] = deque(maxlen=SIGNALS_KEPT)
        from engine.events import SignalJudged

        runtime.run_.engine.bus.subscribe(SignalJudged, lambda f: self.signals.append(f.record))

    def submit(self, command: object) -> None:
        self.rt.submit(command)

    def snapshot(self) -> EngineSnapshot:
        rt = self.rt
        eng = rt.run_.engine
        now = eng.clock.now_ms()
        positions = []
        for (sym, _ps), p in eng.positions.items():
            mark = eng.marks.get(sym, p.entry_price)
            br = eng.orders.brackets.get((sym, _ps))
            trade = eng.trades.open.get((sym, _ps))
            positions.append(PositionView(
                symbol=sym,
                side="LONG" if p.amount > 0 else "SHORT",
                size=abs(p.amount),
                entry_price=p.entry_price,
                mark_price=mark,
                unrealized_pnl=(mark - p.entry_price) * p.amount,
                stop_price=br.stop_price if br else None,
                take_profit_price=br.take_profit_price if br else None,
                liquidation_price=liquidation_price(eng.rules.get(sym), p, eng.wallet_balance),
                opened_ms=trade.entry_time_ms if trade else None,
            ))
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
            timers=(),
            orders=tuple(eng.orders.open_orders()),
            algo_orders=tuple(eng.orders.open_algo_orders()),
            log=tuple(self.log_ring.lines),
            replay_position=getattr(rt, "position", getattr(rt, "candles_received", None)),
            replay_total=len(rt.run_.candles) if rt.run_.candles else None,
            finished=rt.finished,
            flatten=getattr(rt, "flatten_report", None),
        )


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
