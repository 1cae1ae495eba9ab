"""Assemble a sim run from settings, and drive it in a tight synchronous loop.

``build_sim_run`` is the composition root for sim mode: it loads and validates the data, builds
the matching engine, the in-process port, the engine with its strategies, guard and order manager,
and the journal. Constructor arguments only — no globals.

``run_sync`` is the backtest loop: per candle, the exchange sees it first (resting stops and
take-profits trigger on its path), then the engine (the strategy sees the closed candle and may
enter at its close). The asyncio runtime calls :func:`step` with exactly the same code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Sequence

from engine.core import Engine, EngineParams, pump
from engine.data import (
    DataError,
    KlineFile,
    load_funding,
    load_klines,
    merged_candles,
    sample_funding_files,
    sample_kline_files,
)
from engine.exchange.sim.matching import SimExchange, load_default_rules
from engine.exchange.sim.port import SimPort
from engine.orders.manager import EntryPolicy, ExitPolicy
from engine.model import Candle, MarginType, PositionMode
from engine.strategies.base import StrategyError, available, build_strategy

Q2 = Decimal("0.01")


@dataclass
class SimRun:
    run_id: str
    sim: SimExchange
    port: SimPort
    engine: Engine
    journal: Any
    candles: list[Candle]
    files: list[KlineFile]
    starting_balance: Decimal
    mode: str = "sim"


def load_market_data(settings) -> tuple[list[KlineFile], dict[str, dict[int, Decimal]]]:
    """Load and fully validate the kline and funding files a sim run will replay."""
    symbols = [s.upper() for s in settings.symbols]
    paths = [Path(p) for p in settings.sim.data_files] or sample_kline_files(symbols)
    files = [load_klines(p) for p in paths]
    if not settings.sim.data_files:
        files = [f for f in files if f.symbol in symbols]
    funding_paths = [Path(p) for p in settings.sim.funding_files]
    if not funding_paths and not settings.sim.data_files:
        funding_paths = sample_funding_files(symbols)
    funding: dict[str, dict[int, Decimal]] = {}
    for p in funding_paths:
        for sym, rates in load_funding(p).items():
            funding.setdefault(sym, {}).update(rates)
    return files, funding


def build_sim_exchange(settings, rules, candles: Sequence[Candle], funding) -> SimExchange:
    """The matching engine configured from ``[sim]`` and the account settings."""
    return SimExchange(
        rules,
        starting_balance=Decimal(settings.sim.starting_balance),
        taker_fee_rate=Decimal(settings.sim.taker_fee_rate),
        maker_fee_rate=Decimal(settings.sim.maker_fee_rate),
        slippage_bps=Decimal(settings.sim.slippage_bps),
        funding_rates=funding or {},
        default_funding_rate=Decimal(settings.sim.default_funding_rate),
        position_mode=PositionMode(settings.position_mode),
        default_leverage=int(settings.leverage),
        default_margin_type=MarginType(settings.margin_type),
        start_time_ms=candles[0].open_time_ms if candles else 0,
    )


def check_symbols(files: Sequence[KlineFile], rules) -> None:
    unknown = sorted({f.symbol for f in files} - set(rules))
    if unknown:
        raise DataError(f"no exchange rules for symbol(s) {unknown} in the sim; known: {sorted(rules)}")


def build_sim_run(
    settings,
    *,
    run_id: str,
    files: Sequence[KlineFile] | None = None,
    funding: dict[str, dict[int, Decimal]] | None = None,
    journal=None,
    bus=None,
    strict: bool = False,
) -> SimRun:
    if files is None:
        files, funding = load_market_data(settings)
    files = list(files)
    rules = load_default_rules()
    check_symbols(files, rules)
    candles = merged_candles(files)
    sim = build_sim_exchange(settings, rules, candles, funding)
    port = SimPort(sim)
    engine = build_engine(settings, rules, run_id=run_id, journal=journal, bus=bus, strict=strict)
    engine.bootstrap(port.account(), port.positions())
    return SimRun(run_id, sim, port, engine, journal, candles, files, Decimal(settings.sim.starting_balance))


def exit_policy(settings) -> ExitPolicy:
    """The order manager's trade-management plan from ``[risk]`` and ``[exits]``."""
    risk, ex = settings.risk, settings.exits
    return ExitPolicy(
        take_profit_1_pct=Decimal(risk.take_profit_1_pct) if risk.take_profit_1_pct else None,
        take_profit_1_close_pct=Decimal(risk.take_profit_1_close_pct),
        break_even_trigger_pct=Decimal(ex.break_even_trigger_pct),
        break_even_trigger_r=Decimal(ex.break_even_trigger_r),
        break_even_timeout_ms=int(ex.break_even_timeout_s) * 1000,
        fee_rate=Decimal(settings.sim.taker_fee_rate),
        trailing=ex.trailing,
        trailing_activation_pct=Decimal(ex.trailing_activation_pct),
        trailing_callback_pct=Decimal(ex.trailing_callback_pct),
    )


def entry_policy(settings) -> EntryPolicy:
    """How entries are sent, from ``[execution]``."""
    x = settings.execution
    return EntryPolicy(
        order=x.entry_order,
        limit_offset_bps=Decimal(x.limit_offset_bps),
        ttl_ms=int(x.order_ttl_s) * 1000,
        split=x.split,
        split_min_notional=Decimal(x.split_min_notional),
        split_slices=int(x.split_slices),
        split_duration_ms=int(x.split_duration_s) * 1000,
        position_wait_ms=int(float(x.position_wait_s) * 1000),
        retry_attempts=int(x.retry_attempts),
        retry_backoff_ms=int(float(x.retry_backoff_s) * 1000),
    )


def build_engine(settings, rules, *, run_id: str, journal=None, bus=None, strict: bool = False,
                 namespace: str | None = None) -> Engine:
    """The engine with every registered strategy, the configured guard and order manager."""
    if settings.active_strategy not in available():
        raise StrategyError(f"active_strategy: unknown strategy {settings.active_strategy!r}; "
                            f"expected one of {sorted(available())}")
    strategies = {}
    for name in available():  # composites build their members with the members' own overrides
        strategies[name] = build_strategy(name, dict(settings.strategies.get(name, {})),
                                          member_params=settings.strategies)
    risk = settings.risk
    params = EngineParams(
        leverage=int(settings.leverage),
        position_mode=PositionMode(settings.position_mode),
        margin_type=MarginType(settings.margin_type),
        auto_trading_enabled=bool(settings.auto_trading_enabled),
        position_size_pct=Decimal(risk.position_size_pct),
        stop_loss_pct=Decimal(risk.stop_loss_pct),
        take_profit_pct=Decimal(risk.take_profit_2_pct),
        taker_fee_rate=Decimal(settings.sim.taker_fee_rate),
        max_position_pct=Decimal(risk.max_position_pct),
        max_total_exposure_pct=Decimal(risk.max_total_exposure_pct),
        max_daily_trades=int(risk.max_daily_trades),
        max_daily_loss_pct=Decimal(risk.max_daily_loss_pct),
        max_notional_usdt=Decimal(risk.max_notional_usdt),
        max_notional_by_symbol={k: Decimal(v) for k, v in risk.max_notional_by_symbol.items()},
        max_positions_per_day=int(risk.max_positions_per_day),
        max_consecutive_losses=int(risk.max_consecutive_losses),
        strategy_loss_limit_pct=Decimal(risk.strategy_loss_limit_pct),
        funding_blackout_min=int(risk.funding_blackout_min),
        atr_period=int(risk.atr_period),
        atr_max_pct=Decimal(risk.atr_max_pct),
        shock_move_pct=Decimal(risk.shock_move_pct),
        shock_cooldown_s=int(risk.shock_cooldown_s),
        min_trade_size=Decimal(risk.min_trade_size),
        exits=exit_policy(settings),
        entries=entry_policy(settings),
        vwap_lookback=int(settings.execution.vwap_lookback),
    )
    return Engine(
        namespace=namespace or run_id,
        rules=rules,
        strategies=strategies,
        active_strategy=settings.active_strategy,
        params=params,
        bus=bus,
        journal=journal,
        strict=strict,
    )


def step(run: SimRun, candle: Candle) -> None:
    """One closed candle through exchange and engine (the shared pipeline step)."""
    sim, port, engine = run.sim, run.port, run.engine
    sim.on_candle(candle)
    if port.has_events():
        pump(engine, port)
    engine.on_candle(candle)
    if engine.has_commands():
        pump(engine, port)


def finish(run: SimRun) -> None:
    """End of data: close open positions at the last price and settle."""
    run.engine.end_of_data()
    pump(run.engine, run.port)


def run_sync(run: SimRun, candles: Iterable[Candle] | None = None, *, close_at_end: bool = True) -> None:
    """The backtest loop: tight, synchronous, no sockets."""
    sim_on_candle = run.sim.on_candle
    port, engine = run.port, run.engine
    sim = run.sim
    eng_on_candle = engine.on_candle
    orders = engine.orders
    for candle in run.candles if candles is None else candles:
        sim_on_candle(candle)
        if sim.pending_events:
            pump(engine, port)
        eng_on_candle(candle)
        if orders.outbox:
            pump(engine, port)
    if close_at_end:
        finish(run)


# -- summary ------------------------------------------------------------------------------------


def _utc(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def summarize(run: SimRun, *, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    eng = run.engine
    trades = eng.trades.closed
    wins = [t for t in trades if t.net_pnl > 0]
    net = sum((t.net_pnl for t in trades), Decimal(0))
    fees = sum((t.fees for t in trades), Decimal(0))
    funding = sum((t.funding for t in trades), Decimal(0))
    gross = sum((t.realized_pnl for t in trades), Decimal(0))
    start = run.starting_balance
    end = run.sim.wallet_balance() if run.sim is not None else eng.wallet_balance
    exits: dict[str, int] = {}
    for t in trades:
        k = t.exit_reason.value if t.exit_reason else "open"
        exits[k] = exits.get(k, 0) + 1
    out: dict[str, Any] = {
        "mode": run.mode,
        "strategy": eng.active_name,
        "symbols": sorted({f.symbol for f in run.files}),
        "period": [_utc(run.candles[0].open_time_ms) if run.candles else None,
                   _utc(run.candles[-1].close_time_ms) if run.candles else None],
        "candles": eng.candle_count,
        "signals": eng.stats.signals,
        "accepted": eng.stats.accepted,
        "denials": dict(sorted(eng.stats.denials.items())),
        "trades": len(trades),
        "open_trades": len(eng.trades.open),
        "wins": len(wins),
        "win_rate_pct": str((Decimal(len(wins)) / len(trades) * 100).quantize(Q2)) if trades else "0",
        "exit_reasons": dict(sorted(exits.items())),
        "gross_pnl": str(gross.quantize(Q2)),
        "fees": str(fees.quantize(Q2)),
        "funding": str(funding.quantize(Q2)),
        "net_pnl": str(net.quantize(Q2)),
        "starting_balance": str(start.quantize(Q2)),
        "ending_balance": str(end.quantize(Q2)),
        "return_pct": str(((end - start) / start * 100).quantize(Q2)) if start else "0",
        "max_drawdown": str(eng.max_drawdown.quantize(Q2)),
        "max_drawdown_pct": str(eng.max_drawdown_pct.quantize(Q2)),
        "protection_failures": eng.stats.protection_failures,
        "unprotected_checks": eng.stats.unprotected_checks,
    }
    if extra:
        out.update(extra)
    return out


def format_summary(s: dict[str, Any]) -> str:
    denials = ", ".join(f"{k}: {v}" for k, v in s["denials"].items()) or "none"
    exits = ", ".join(f"{k}: {v}" for k, v in s["exit_reasons"].items()) or "none"
    mode = s["mode"].upper()
    if mode == "MAINNET":
        mode = "*** MAINNET — REAL MONEY ***"
    lines = [
        f"perpdeck run summary — {mode} — strategy {s['strategy']}",
        f"  symbols            {', '.join(s['symbols'])}",
        f"  period             {s['period'][0]} → {s['period'][1]}",
        f"  candles processed  {s['candles']:,}",
        f"  signals            {s['signals']} ({s['accepted']} accepted)",
        f"  denials by reason  {denials}",
        f"  trades             {s['trades']} closed ({s['wins']} won, win rate {s['win_rate_pct']}%)",
        f"  exits              {exits}",
        f"  gross PnL          {s['gross_pnl']} USDT",
        f"  fees / funding     -{s['fees']} / {s['funding']} USDT",
        f"  net PnL            {s['net_pnl']} USDT (after fees and funding)",
        f"  balance            {s['starting_balance']} → {s['ending_balance']} USDT ({s['return_pct']}%)",
        f"  max drawdown       {s['max_drawdown']} USDT ({s['max_drawdown_pct']}%)",
        f"  protection         {s['protection_failures']} failures, {s['unprotected_checks']} unprotected checks",
    ]
    for key, label in (("database", "database"), ("log_file", "log (JSON lines)"), ("heartbeat", "heartbeat"),
                       ("run_id", "run id")):
        if key in s:
            lines.append(f"  {label:<18} {s[key]}")
    return "\n".join(lines)


# -- the backtest command -----------------------------------------------------------------------

#: Guard rules that halt until an operator resumes: a backtest would stop trading for good at the
#: first losing streak, so ``perpdeck backtest`` turns them off unless asked to keep them.
OPERATOR_HALTS = {"max_consecutive_losses": 0, "strategy_loss_limit_pct": 0}


@dataclass
class BacktestResult:
    """One strategy's backtest: the ``perpdeck report`` figures, its signals, one summary per period."""

    strategy: str
    summaries: list[dict[str, Any]]  # one per contiguous period (see :func:`contiguous_periods`)
    report: Any  # engine.state.report.Report over every period's trades
    signals: dict[str, dict[str, int]]  # by Signal.strategy: {"signals", "accepted", "denied"}
    wall_s: float


def contiguous_periods(files: Sequence[KlineFile], max_gap_ms: int = 86_400_000) -> list[list[KlineFile]]:
    """The files grouped into periods whose time ranges overlap or lie at most ``max_gap_ms`` apart,
    in time order. A backtest runs each period from a fresh account, so no position is ever carried
    across a gap in the data (a stop would trigger at a price from months later)."""
    spans = sorted((f.candles[0].open_time_ms, f.candles[-1].open_time_ms, i) for i, f in enumerate(files) if f.candles)
    groups: list[list[KlineFile]] = []
    end = None
    for first, last, i in spans:
        if end is None or first > end + max_gap_ms:
            groups.append([])
            end = last
        groups[-1].append(files[i])
        end = max(end, last)
    return groups


def select_candles(files: Sequence[KlineFile], *, date_from: dt.date | None = None, date_to: dt.date | None = None,
                   symbols: Sequence[str] | None = None) -> list[KlineFile]:
    """``files`` restricted to ``symbols`` and to candles opening on the UTC days ``date_from`` …
    ``date_to`` (inclusive); files left without candles are dropped."""
    lo = _day_ms(date_from) if date_from is not None else None
    hi = _day_ms(date_to + dt.timedelta(days=1)) if date_to is not None else None
    wanted = {s.upper() for s in symbols} if symbols else None
    out = []
    for f in files:
        if wanted is not None and f.symbol not in wanted:
            continue
        candles = f.candles
        if lo is not None or hi is not None:
            candles = tuple(c for c in candles if (lo is None or c.open_time_ms >= lo)
                            and (hi is None or c.open_time_ms < hi))
        if candles:
            out.append(KlineFile(f.symbol, f.path, candles))
    return out


def _day_ms(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days * 86_400_000


def backtest_settings(settings, strategy: str, files: Sequence[KlineFile], *, operator_halts: bool = False):
    """The settings one backtest runs with: ``strategy`` active, the files' symbols traded, and (unless
    ``operator_halts``) the halts that wait for an operator turned off (:data:`OPERATOR_HALTS`)."""
    update: dict[str, Any] = {"active_strategy": strategy, "symbols": sorted({f.symbol for f in files})}
    if not operator_halts:
        update["risk"] = settings.risk.model_copy(update=OPERATOR_HALTS)
    return settings.model_copy(update=update)


def run_backtest(settings, strategy: str, files: Sequence[KlineFile],
                 funding: dict[str, dict[int, Decimal]] | None = None, *, operator_halts: bool = False,
                 run_id: str | None = None) -> BacktestResult:
    """Drive the pipeline over ``files`` with ``strategy`` active in the tight loop (no sockets, no
    database) — each contiguous period from a fresh account — and compute the ``perpdeck report``
    figures from all their trades (return % on one starting balance)."""
    import time

    from engine.bus import Bus
    from engine.events import SignalJudged
    from engine.state.report import build_report

    counts: dict[str, dict[str, int]] = {}

    def judged(ev: SignalJudged) -> None:
        rec = ev.record
        c = counts.setdefault(rec.signal.strategy, {"signals": 0, "accepted": 0, "denied": 0})
        c["signals"] += 1
        c[rec.verdict.value] += 1

    run_id = run_id or f"backtest-{strategy}"
    runs: list[tuple[dict, list]] = []
    summaries: list[dict[str, Any]] = []
    wall_s = 0.0
    starting = Decimal(settings.sim.starting_balance)
    for k, period in enumerate(contiguous_periods(files)):
        bus = Bus()
        bus.subscribe(SignalJudged, judged)
        s = backtest_settings(settings, strategy, period, operator_halts=operator_halts)
        run = build_sim_run(s, run_id=f"{run_id}-{k + 1}", files=period, funding=funding or {}, bus=bus)
        t0 = time.perf_counter()
        run_sync(run)
        wall_s += time.perf_counter() - t0
        summaries.append(summarize(run))
        eng = run.engine
        record = {"run_id": run.run_id, "mode": "sim", "started_ms": run.candles[0].open_time_ms,
                  "ended_ms": run.candles[-1].close_time_ms}
        runs.append((record, [*eng.trades.closed, *(t.to_trade(closed=False) for t in eng.trades.open.values())]))
        starting = run.starting_balance
    signals = dict(sorted(counts.items()))
    report = replace(build_report(runs, run_id=run_id, equity=starting), signals=signals)
    return BacktestResult(strategy, summaries, report, signals, wall_s)
