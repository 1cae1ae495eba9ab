"""The promotion gate: a candidate goes live only if it beats the current strategy out of sample.

Every contender runs through **the engine's own backtest** on the holdout — the most recent period
of the data, which training and checkpoint choice never read (:class:`rl.data.TimeSplit`): the
matching engine built by :func:`engine.backtest.build_sim_exchange`, an :class:`engine.core.Engine`
with the parameters :func:`engine.backtest.build_engine` derives from the settings (guard, sizing,
stops, take-profits, break-even, funding), driven by :func:`engine.backtest.run_sync` and closed by
:func:`engine.backtest.finish`. Only the strategy differs:

* the **candidate** (any strategy object: the ``rl-sac`` policy, or a strategy with optimised
  parameters);
* the **incumbent**: the current strategy (``[rl] gate_incumbent``, default ``active_strategy``,
  built from the registry with its configured parameters);
* **buy & hold**: a LONG signal on every candle, so it is long whenever the engine lets it be (the
  engine's exits still apply: it re-enters after each);
* **flat**: no signals;
* the candidate again with fees and slippage multiplied by ``gate_cost_multiplier`` (stress run).

The halts that wait for an operator (``max_consecutive_losses``, ``strategy_loss_limit_pct``) are
off in these runs, as in ``perpdeck backtest``: nobody is there to resume.

Metrics per run: net return % (wallet after closing everything vs the start, so net of fees,
slippage and funding), Sharpe and Sortino of hourly equity returns (annualised with √8760; 0 when
the equity never moves), max drawdown % (the engine's, marked to market every candle), profit
factor (gross wins / gross losses of closed trades, net of fees and funding), win rate, trades,
fees paid and funding (signed: + received).

Promote only if **all** hold: (1) net return above the incumbent's, (2) Sharpe above the
incumbent's, (3) max drawdown ≤ ``gate_max_drawdown_pct``, (4) net return > 0 in the stress run,
(5) a higher return than the incumbent in most (more than half) of ``gate_sub_windows`` equal
slices of the holdout (returns of the same hourly equity curves, window by window).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from engine.backtest import SimRun, build_engine, build_sim_exchange, check_symbols, finish, run_sync
from engine.core import Engine
from engine.data import KlineFile, merged_candles
from engine.exchange.sim.matching import load_default_rules
from engine.exchange.sim.port import SimPort
from engine.model import Candle, Direction, Signal
from engine.strategies.base import build_strategy

__all__ = [
    "GateConfig", "RunMetrics", "Check", "GateReport", "BuyAndHold", "Flat", "backtest", "run_gate",
    "format_report", "holdout_files",
]

HOUR_MS = 3_600_000
ANNUAL = math.sqrt(24 * 365)
StrategyFactory = Callable[[], Any]


@dataclass(frozen=True)
class GateConfig:
    max_drawdown_pct: float = 20.0
    sub_windows: int = 4
    cost_multiplier: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.max_drawdown_pct <= 100:
            raise ValueError(f"rl.gate_max_drawdown_pct must be in (0, 100], got {self.max_drawdown_pct}")
        if self.sub_windows < 1:
            raise ValueError(f"rl.gate_sub_windows must be >= 1, got {self.sub_windows}")
        if self.cost_multiplier < 1:
            raise ValueError(f"rl.gate_cost_multiplier must be >= 1, got {self.cost_multiplier}")

    @classmethod
    def from_settings(cls, settings) -> "GateConfig":
        rl = settings.rl
        return cls(float(rl.gate_max_drawdown_pct), int(rl.gate_sub_windows), float(rl.gate_cost_multiplier))


class BuyAndHold:
    """A LONG signal on every candle: long whenever the engine allows (baseline)."""

    name = "buy_and_hold"

    def on_candle(self, candle: Candle) -> Signal | None:
        return Signal(self.name, candle.symbol, Direction.LONG, 1.0, "buy and hold", candle.open_time_ms,
                      candle.close, candle.close_time_ms)


class Flat:
    """Never signals (baseline)."""

    name = "flat"

    def on_candle(self, candle: Candle) -> Signal | None:
        return None


@dataclass(frozen=True)
class RunMetrics:
    name: str
    return_pct: float
    sharpe: float
    sortino: float
    max_drawdown_pct: float
    profit_factor: float
    win_rate_pct: float
    trades: int
    fees: float
    funding: float
    window_returns_pct: tuple[float, ...] = ()
    equity: tuple[float, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class GateReport:
    candidate: RunMetrics
    incumbent: RunMetrics
    buy_and_hold: RunMetrics
    flat: RunMetrics
    stressed: RunMetrics
    checks: tuple[Check, ...]
    period: tuple[int, int]
    symbols: tuple[str, ...]
    config: GateConfig

    @property
    def promote(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        def row(m: RunMetrics) -> dict[str, Any]:
            return {k: getattr(m, k) for k in ("name", "return_pct", "sharpe", "sortino", "max_drawdown_pct",
                                                "profit_factor", "win_rate_pct", "trades", "fees", "funding",
                                                "window_returns_pct")}
        return {"promote": self.promote, "period_ms": list(self.period), "symbols": list(self.symbols),
                "rows": [row(m) for m in (self.candidate, self.incumbent, self.buy_and_hold, self.flat, self.stressed)],
                "checks": [{"check": c.name, "passed": c.passed, "reason": c.reason} for c in self.checks]}


# -- the backtest ---------------------------------------------------------------------------------


def _ratios(equity: Sequence[float]) -> tuple[float, float]:
    rets = [b / a - 1.0 for a, b in zip(equity, equity[1:]) if a > 0]
    if len(rets) < 2:
        return 0.0, 0.0
    mean = sum(rets) / len(rets)
    var = sum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
    sd = math.sqrt(var)
    sharpe = mean / sd * ANNUAL if sd > 1e-15 else 0.0
    down = math.sqrt(sum(min(r, 0.0) ** 2 for r in rets) / len(rets))
    if down > 1e-15:
        sortino = mean / down * ANNUAL
    else:
        sortino = math.inf if mean > 0 else 0.0
    return sharpe, sortino


def _windows(equity: Sequence[float], n: int) -> tuple[float, ...]:
    """Returns % of ``n`` equal slices of the curve (sample 0 is the start)."""
    last = len(equity) - 1
    out = []
    for j in range(n):
        a, b = round(j * last / n), round((j + 1) * last / n)
        out.append(100.0 * (equity[b] / equity[a] - 1.0) if equity[a] > 0 else 0.0)
    return tuple(out)


def _with_costs(settings, mult: float):
    if mult == 1:
        return settings
    m = Decimal(repr(mult))
    sim = settings.sim.model_copy(update={
        "taker_fee_rate": settings.sim.taker_fee_rate * m, "maker_fee_rate": settings.sim.maker_fee_rate * m,
        "slippage_bps": settings.sim.slippage_bps * m})
    return settings.model_copy(update={"sim": sim})


#: Halts that wait for an operator's resume would freeze a contender for the rest of the holdout; as in
#: ``perpdeck backtest`` they are off in gate runs unless ``operator_halts=True``.
_OPERATOR_HALTS_OFF = {"max_consecutive_losses": 0, "strategy_loss_limit_pct": 0}


def backtest(settings, files: Sequence[KlineFile], funding: Mapping[str, Mapping[int, Decimal]], name: str,
             strategy: Any, *, sub_windows: int = 1, run_id: str = "gate", operator_halts: bool = False) -> RunMetrics:
    """One run of ``strategy`` through the engine's sim pipeline; equity sampled every hour."""
    if not operator_halts:
        settings = settings.model_copy(update={"risk": settings.risk.model_copy(update=_OPERATOR_HALTS_OFF)})
    rules = load_default_rules()
    files = list(files)
    check_symbols(files, rules)
    candles = merged_candles(files)
    if not candles:
        raise ValueError("no candles to backtest")
    sim = build_sim_exchange(settings, rules, candles, {k: dict(v) for k, v in funding.items()})
    port = SimPort(sim)
    params = build_engine(settings, rules, run_id=run_id).params
    engine = Engine(namespace=run_id, rules=rules, strategies={name: strategy}, active_strategy=name, params=params)
    engine.bootstrap(port.account(), port.positions())
    start = Decimal(settings.sim.starting_balance)
    run = SimRun(run_id, sim, port, engine, None, candles, files, start)
    equity = [float(start)]
    i = 0
    n = len(candles)
    while i < n:
        hour = candles[i].open_time_ms // HOUR_MS
        j = i
        while j < n and candles[j].open_time_ms // HOUR_MS == hour:
            j += 1
        run_sync(run, candles[i:j], close_at_end=False)
        equity.append(float(engine.equity()))
        i = j
    finish(run)
    end = float(sim.wallet_balance())
    equity.append(end)
    trades = engine.trades.closed
    wins = [float(t.net_pnl) for t in trades if t.net_pnl > 0]
    losses = [float(t.net_pnl) for t in trades if t.net_pnl <= 0]
    gl = -sum(losses)
    pf = (sum(wins) / gl) if gl > 0 else (math.inf if wins else 0.0)
    sharpe, sortino = _ratios(equity)
    return RunMetrics(
        name=name,
        return_pct=100.0 * (end / float(start) - 1.0),
        sharpe=sharpe,
        sortino=sortino,
        max_drawdown_pct=float(engine.max_drawdown_pct),
        profit_factor=pf,
        win_rate_pct=100.0 * len(wins) / len(trades) if trades else 0.0,
        trades=len(trades),
        fees=float(sum((t.fees for t in trades), Decimal(0))),
        funding=float(sum((t.funding for t in trades), Decimal(0))),
        window_returns_pct=_windows(equity, sub_windows),
        equity=tuple(equity),
    )


def run_gate(settings, files: Sequence[KlineFile], funding: Mapping[str, Mapping[int, Decimal]], *,
             candidate: tuple[str, StrategyFactory], incumbent: str | tuple[str, StrategyFactory] | None = None,
             config: GateConfig | None = None, operator_halts: bool = False) -> GateReport:
    """Run candidate, incumbent, buy & hold, flat and the stressed candidate on ``files`` (the holdout)
    and decide. ``incumbent`` is a registered strategy name (built with its configured parameters),
    a ``(label, factory)`` pair, or ``None`` for ``[rl] gate_incumbent`` / ``active_strategy``."""
    cfg = config or GateConfig.from_settings(settings)
    if incumbent is None:
        incumbent = settings.rl.gate_incumbent or settings.active_strategy
    if isinstance(incumbent, str):
        inc_name = incumbent
        raw = dict(settings.strategies.get(incumbent, {}))
        inc_factory: StrategyFactory = lambda: build_strategy(inc_name, raw)  # noqa: E731
    else:
        inc_name, inc_factory = incumbent
    cand_name, cand_factory = candidate
    w = cfg.sub_windows
    kw = {"sub_windows": w, "operator_halts": operator_halts}
    cand = backtest(settings, files, funding, cand_name, cand_factory(), **kw)
    inc = backtest(settings, files, funding, inc_name, inc_factory(), **kw)
    bh = backtest(settings, files, funding, "buy & hold", BuyAndHold(), **kw)
    flat = backtest(settings, files, funding, "flat", Flat(), **kw)
    m = cfg.cost_multiplier
    stressed = backtest(_with_costs(settings, m), files, funding, f"{cand_name} @{m:g}x costs", cand_factory(), **kw)
    wins = sum(1 for a, b in zip(cand.window_returns_pct, inc.window_returns_pct) if a > b)
    checks = (
        Check("net return beats the incumbent", cand.return_pct > inc.return_pct,
              f"{cand.return_pct:+.2f}% vs {inc.return_pct:+.2f}% ({inc_name})"),
        Check("Sharpe beats the incumbent", cand.sharpe > inc.sharpe, f"{cand.sharpe:.2f} vs {inc.sharpe:.2f}"),
        Check("max drawdown within the cap", cand.max_drawdown_pct <= cfg.max_drawdown_pct,
              f"{cand.max_drawdown_pct:.2f}% vs cap {cfg.max_drawdown_pct:g}%"),
        Check(f"profitable at {m:g}x fees and slippage", stressed.return_pct > 0, f"{stressed.return_pct:+.2f}%"),
        Check("wins most holdout sub-windows", wins * 2 > w,
              f"{wins} of {w} (" + ", ".join(f"{a:+.2f}/{b:+.2f}" for a, b in
                                             zip(cand.window_returns_pct, inc.window_returns_pct)) + ")"),
    )
    all_c = merged_candles(list(files))
    return GateReport(cand, inc, bh, flat, stressed, checks, (all_c[0].open_time_ms, all_c[-1].close_time_ms),
                      tuple(sorted({f.symbol for f in files})), cfg)


# -- the report -----------------------------------------------------------------------------------


def _num(x: float, fmt: str) -> str:
    if math.isinf(x):
        return "inf"
    return format(x, fmt)


def format_report(r: GateReport) -> str:
    import datetime as dt

    day = lambda ms: dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    head = (f"{'strategy':<38} {'return %':>9} {'Sharpe':>7} {'Sortino':>8} {'max DD %':>9} {'PF':>6} "
            f"{'win %':>6} {'trades':>6} {'fees':>9} {'funding':>8}")
    lines = [f"promotion gate — holdout {day(r.period[0])} → {day(r.period[1])} UTC, {', '.join(r.symbols)}",
             head, "-" * len(head)]
    for m, role in ((r.candidate, "candidate"), (r.incumbent, "incumbent"), (r.buy_and_hold, "baseline"),
                    (r.flat, "baseline"), (r.stressed, "stress")):
        label = f"{m.name} ({role})"
        lines.append(f"{label[:38]:<38} {m.return_pct:>+9.2f} {_num(m.sharpe, '.2f'):>7} {_num(m.sortino, '.2f'):>8} "
                     f"{m.max_drawdown_pct:>9.2f} {_num(m.profit_factor, '.2f'):>6} {m.win_rate_pct:>6.1f} "
                     f"{m.trades:>6} {m.fees:>9.2f} {m.funding:>+8.2f}")
    lines.append("")
    for c in r.checks:
        lines.append(f"  [{'pass' if c.passed else 'FAIL'}] {c.name}: {c.reason}")
    failed = [c.name for c in r.checks if not c.passed]
    lines.append("")
    lines.append("decision: PROMOTE" if r.promote else f"decision: REJECT ({'; '.join(failed)})")
    return "\n".join(lines)


def holdout_files(files: Sequence[KlineFile], train_fraction: float, validation_fraction: float) -> tuple[
        list[KlineFile], list[KlineFile], int]:
    """Cut files by **time** (one cut for all symbols): ``(before-holdout files, holdout files,
    holdout start ms)``. The cut is at the ``train + validation`` fraction of the common period."""
    lo = min(f.candles[0].open_time_ms for f in files)
    hi = max(f.candles[-1].close_time_ms for f in files)
    cut = lo + int((hi - lo) * (train_fraction + validation_fraction))
    cut -= cut % 60_000
    before, after = [], []
    for f in files:
        a = tuple(c for c in f.candles if c.open_time_ms < cut)
        b = tuple(c for c in f.candles if c.open_time_ms >= cut)
        if a:
            before.append(KlineFile(f.symbol, Path(f.path), a))
        if b:
            after.append(KlineFile(f.symbol, Path(f.path), b))
    return before, after, cut
