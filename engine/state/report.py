"""Performance statistics per strategy, read from the journal (``perpdeck report``).

Selection: one run (default: the last one), or closed trades whose exit time falls on the UTC days
``date_from`` … ``date_to`` (inclusive) across all runs or within one run; optionally one
strategy. Only closed trades count; open trades are only counted.

Figures, per strategy and for the TOTAL of the selection:

* ``trades``, ``wins`` (net PnL > 0), ``win_rate_pct``;
* ``net_pnl`` (``realized_pnl - fees + funding``, USDT), ``fees``, ``funding``;
* ``return_pct`` = net PnL / starting equity × 100;
* ``profit_factor`` = gross profit / gross loss of the trades' net PnL: ``inf`` when there are
  winners but no losers, n/a (None) when there is neither (no trades, or only break-even ones);
* ``sharpe``: annualised, ``mean / stdev × sqrt(365)`` (sample standard deviation) of the daily
  net PnL returns on every UTC day of the period, days without a closed trade counting as 0.
  Daily returns are simple returns on the (constant) starting equity, so the ratio does not
  depend on it and is available even when the starting equity is unknown. n/a with fewer than
  2 days or when every day returned the same;
* ``max_drawdown`` (USDT) and ``max_drawdown_pct`` (of the running peak) on the equity curve of
  the row's closed trades in exit-time order, starting at the starting equity; the USDT figure
  does not depend on the starting equity, the % figure is n/a without one;
* ``avg_mfe`` / ``avg_mae`` (USDT), ``exit_reasons`` (count per :class:`ExitReason` value).

Next to the trades, the signals each strategy emitted that the guard judged in the selection
(``signals``, ``accepted``, ``denied``; by the time they were judged, from
:meth:`Store.signal_counts`), including strategies none of whose signals became a trade.

The period runs from ``date_from`` (or the earliest of the first exit and the start of the runs
that contributed trades) to ``date_to`` (or the latest of the last exit and the end of those
runs).

Starting equity: the ``equity`` given by the caller (``--equity``); otherwise that of the earliest
run that contributed trades, as recorded in the run's summary (``starting_balance``, written when
the run ends) or, for a sim run that never ended, the ``sim.starting_balance`` of its stored
configuration. Without any such record return % and drawdown % are n/a. The schema has no
column of its own for it.

Money is :class:`~decimal.Decimal` throughout; only the Sharpe ratio is a float. The text table
rounds to 2 decimals; the JSON gives sums exactly, averages to 8 decimals, percentages and the
profit factor to 2, the Sharpe ratio to 4.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.model import ExitReason, Trade
from engine.state.store import Store

DAY_MS = 86_400_000
TOTAL = "TOTAL"
UNKNOWN_EXIT = "unknown"  # a closed trade stored without an exit reason

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_INF = Decimal("Infinity")
_Q2 = Decimal("0.01")
_Q8 = Decimal("0.00000001")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)
_DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReportError(Exception):
    """The selection cannot be reported as asked (malformed date, unknown run...)."""


class UnknownRunError(ReportError):
    def __init__(self, run_id: str, known: Sequence[str]) -> None:
        self.run_id = run_id
        hint = f"; known runs: {', '.join(known[-5:])}" if known else "; the database has no runs"
        super().__init__(f"unknown run id {run_id!r}{hint}")


# --------------------------------------------------------------------------- days


def parse_day(text: str, option: str = "date") -> date:
    """``YYYY-MM-DD`` -> date; anything else raises :class:`ReportError` naming ``option``."""
    try:
        if not _DAY_RE.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ReportError(f"{option}: malformed date {text!r} (expected YYYY-MM-DD, a UTC day)") from None


def parse_equity(text: str, option: str = "--equity") -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0:
        raise ReportError(f"{option}: expected a positive amount in USDT, got {text!r}")
    return value


def utc_day(ms: int) -> date:
    """The UTC calendar day of epoch ``ms`` (exact: no float arithmetic)."""
    return (_EPOCH + timedelta(milliseconds=ms)).date()


def day_start_ms(d: date) -> int:
    return (d - _EPOCH_DAY).days * DAY_MS


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


# --------------------------------------------------------------------------- figures


@dataclass(frozen=True)
class StrategyStats:
    strategy: str
    trades: int
    wins: int
    win_rate_pct: Decimal | None
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal  # >= 0
    return_pct: Decimal | None
    profit_factor: Decimal | None  # Decimal("Infinity") when there are no losses
    sharpe: float | None
    max_drawdown: Decimal
    max_drawdown_pct: Decimal | None
    avg_mfe: Decimal | None
    avg_mae: Decimal | None
    fees: Decimal
    funding: Decimal
    exit_reasons: dict[str, int]


def _sum(values: Iterable[Decimal]) -> Decimal:
    return sum(values, _ZERO)


def exit_time_order(trades: Iterable[Trade]) -> list[Trade]:
    """Closed trades in exit-time order (ties broken by entry time, then trade id)."""
    return sorted(trades, key=lambda t: (t.exit_time_ms, t.entry_time_ms, t.trade_id))


def daily_pnl(trades: Iterable[Trade], days: Sequence[date]) -> list[Decimal]:
    """Net PnL closed on each of ``days`` (0 for days without a closed trade)."""
    by_day = {d: _ZERO for d in days}
    for t in trades:
        d = utc_day(t.exit_time_ms)
        if d in by_day:
            by_day[d] += t.net_pnl
    return [by_day[d] for d in days]


def sharpe_ratio(daily: Sequence[Decimal]) -> float | None:
    """``mean / stdev × sqrt(365)`` of daily returns; None with fewer than 2 days or no spread."""
    if len(daily) < 2:
        return None
    xs = [float(x) for x in daily]
    sd = statistics.stdev(xs)
    if sd == 0 or not math.isfinite(sd):
        return None
    return statistics.fmean(xs) / sd * math.sqrt(365)


def max_drawdown(trades: Sequence[Trade], starting_equity: Decimal | None) -> tuple[Decimal, Decimal | None]:
    """(largest peak-to-trough fall in USDT, largest fall as % of its peak) of the equity curve of
    ``trades`` (already in exit-time order) starting at ``starting_equity`` (0 when unknown: the
    USDT figure does not depend on it; the % figure is then None)."""
    equity = starting_equity if starting_equity is not None else _ZERO
    peak = equity
    worst = _ZERO
    worst_pct: Decimal | None = _ZERO if starting_equity is not None else None
    for t in trades:
        equity += t.net_pnl
        peak = max(peak, equity)
        dd = peak - equity
        worst = max(worst, dd)
        if worst_pct is not None and peak > 0:
            worst_pct = max(worst_pct, dd / peak * _HUNDRED)
    return worst, worst_pct


def exit_reason_counts(trades: Iterable[Trade]) -> dict[str, int]:
    """Count per :class:`ExitReason` value (every value, in declaration order, zeros included),
    plus ``unknown`` when a closed trade has no exit reason."""
    counts = {r.value: 0 for r in ExitReason}
    for t in trades:
        key = t.exit_reason.value if t.exit_reason is not None else UNKNOWN_EXIT
        counts[key] = counts.get(key, 0) + 1
    return counts


def strategy_stats(
    name: str, trades: Sequence[Trade], days: Sequence[date], starting_equity: Decimal | None
) -> StrategyStats:
    """All figures for one row from its closed ``trades`` (any order)."""
    ordered = exit_time_order(trades)
    n = len(ordered)
    pnls = [t.net_pnl for t in ordered]
    wins = sum(1 for p in pnls if p > 0)
    net = _sum(pnls)
    gross_profit = _sum(p for p in pnls if p > 0)
    gross_loss = -_sum(p for p in pnls if p < 0)
    if gross_loss > 0:
        pf: Decimal | None = gross_profit / gross_loss
    elif gross_profit > 0:
        pf = _INF
    else:
        pf = None
    dd, dd_pct = max_drawdown(ordered, starting_equity)
    return StrategyStats(
        strategy=name,
        trades=n,
        wins=wins,
        win_rate_pct=Decimal(wins) / n * _HUNDRED if n else None,
        net_pnl=net,
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        return_pct=net / starting_equity * _HUNDRED if starting_equity else None,
        profit_factor=pf,
        sharpe=sharpe_ratio(daily_pnl(ordered, days)),
        max_drawdown=dd,
        max_drawdown_pct=dd_pct,
        avg_mfe=_sum(t.mfe for t in ordered) / n if n else None,
        avg_mae=_sum(t.mae for t in ordered) / n if n else None,
        fees=_sum(t.fees for t in ordered),
        funding=_sum(t.funding for t in ordered),
        exit_reasons=exit_reason_counts(ordered),
    )


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class Report:
    scope: str  # "run 1a2b3c", "2025-05-05 … 2025-05-07, all runs", ...
    run_id: str | None
    date_from: date | None
    date_to: date | None
    strategy: str | None
    runs: list[str]  # runs that contributed closed trades, in start order
    first_day: date | None
    last_day: date | None
    starting_equity: Decimal | None
    equity_source: str | None
    rows: list[StrategyStats]  # sorted by strategy name
    total: StrategyStats | None
    open_trades: dict[str, int] = field(default_factory=dict)  # by strategy, sorted
    # judged signals by strategy (sorted): {"signals", "accepted", "denied"}; judged in the period
    signals: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def days(self) -> int:
        if self.first_day is None or self.last_day is None:
            return 0
        return (self.last_day - self.first_day).days + 1

    @property
    def open_count(self) -> int:
        return sum(self.open_trades.values())

    @property
    def empty(self) -> bool:
        return self.total is None


def describe_scope(
    run_id: str | None, date_from: date | None, date_to: date | None, strategy: str | None
) -> str:
    parts = []
    if run_id is not None:
        parts.append(f"run {run_id}")
    if date_from is not None and date_to is not None:
        parts.append(f"{date_from} … {date_to}" if date_from != date_to else f"{date_from}")
    elif date_from is not None:
        parts.append(f"{date_from} onwards")
    elif date_to is not None:
        parts.append(f"up to {date_to}")
    if run_id is None:
        parts.append("all runs")
    text = ", ".join(parts)
    if strategy is not None:
        text += f", strategy {strategy}"
    return text


def run_starting_equity(run: dict) -> Decimal | None:
    """The starting wallet a stored run recorded: its summary's ``starting_balance``, or for a sim
    run without a summary the ``sim.starting_balance`` of its configuration; else None."""

    def positive(value: Any) -> Decimal | None:
        try:
            d = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
        return d if d.is_finite() and d > 0 else None

    for key in ("summary_json", "config_json"):
        text = run.get(key)
        if not text:
            continue
        try:
            doc = json.loads(text)
        except (TypeError, ValueError):
            continue
        if not isinstance(doc, dict):
            continue
        if key == "summary_json" and doc.get("starting_balance") is not None:
            value = positive(doc["starting_balance"])
            if value is not None:
                return value
        if key == "config_json" and run.get("mode") == "sim" and isinstance(doc.get("sim"), dict):
            value = positive(doc["sim"].get("starting_balance"))
            if value is not None:
                return value
    return None


def build_report(
    runs: Sequence[tuple[dict, Sequence[Trade]]],
    *,
    run_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    strategy: str | None = None,
    equity: Decimal | None = None,
) -> Report:
    """The report over ``runs`` — (run record as :meth:`Store.runs` gives it, its trades) in start
    order — restricted to the selection. Pure: no I/O."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ReportError(f"--from {date_from} is after --to {date_to}")
    lo = day_start_ms(date_from) if date_from is not None else None
    hi = day_start_ms(date_to + timedelta(days=1)) if date_to is not None else None  # exclusive

    closed: list[Trade] = []
    open_by: dict[str, int] = {}
    contributing: list[dict] = []
    for run, trades in runs:
        took = False
        for t in trades:
            if strategy is not None and t.strategy != strategy:
                continue
            if t.exit_time_ms is None:
                if hi is None or t.entry_time_ms < hi:
                    open_by[t.strategy] = open_by.get(t.strategy, 0) + 1
                continue
            if (lo is not None and t.exit_time_ms < lo) or (hi is not None and t.exit_time_ms >= hi):
                continue
            closed.append(t)
            took = True
        if took:
            contributing.append(run)

    scope = describe_scope(run_id, date_from, date_to, strategy)
    starting_equity, source = equity, "--equity" if equity is not None else None
    if equity is None and contributing:
        first = contributing[0]
        starting_equity = run_starting_equity(first)
        source = f"run {first['run_id']}" if starting_equity is not None else None
    open_trades = dict(sorted(open_by.items()))
    if not closed:
        return Report(scope, run_id, date_from, date_to, strategy, [], date_from, date_to,
                      starting_equity, source, [], None, open_trades)  # fmt: skip

    exit_days = [utc_day(t.exit_time_ms) for t in closed]
    if date_from is not None:
        first_day = date_from
    else:
        starts = [utc_day(r["started_ms"]) for r in contributing if (r.get("started_ms") or 0) > 0]
        first_day = min([*exit_days, *starts])
    if date_to is not None:
        last_day = date_to
    else:
        ends = [utc_day(r["ended_ms"]) for r in contributing if (r.get("ended_ms") or 0) > 0]
        last_day = max([*exit_days, *ends])
    days = days_between(first_day, last_day)

    by_strategy: dict[str, list[Trade]] = {}
    for t in closed:
        by_strategy.setdefault(t.strategy, []).append(t)
    rows = [strategy_stats(name, by_strategy[name], days, starting_equity) for name in sorted(by_strategy)]
    total = strategy_stats(TOTAL, closed, days, starting_equity)
    return Report(scope, run_id, date_from, date_to, strategy, [r["run_id"] for r in contributing],
                  first_day, last_day, starting_equity, source, rows, total, open_trades)  # fmt: skip


async def load_report(
    store: Store,
    *,
    run_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    strategy: str | None = None,
    equity: Decimal | None = None,
) -> Report:
    """Read the selection from ``store`` and build its report. Without a run and without dates the
    last run is reported. Raises :class:`UnknownRunError` for a run id the database lacks and
    :class:`ReportError` for ``date_from`` after ``date_to``."""
    all_runs = await store.runs()
    if run_id is not None:
        chosen = [r for r in all_runs if r["run_id"] == run_id]
        if not chosen:
            raise UnknownRunError(run_id, [r["run_id"] for r in all_runs])
    elif date_from is None and date_to is None:
        last = await store.last_run_id()
        run_id = last
        chosen = [r for r in all_runs if r["run_id"] == last]
    else:
        chosen = list(all_runs)
    loaded = [(r, await store.trades(r["run_id"])) for r in chosen]
    report = build_report(loaded, run_id=run_id, date_from=date_from, date_to=date_to, strategy=strategy,
                          equity=equity)  # fmt: skip
    signals = await store.signal_counts(
        run_id, strategy=strategy,
        since_ms=day_start_ms(date_from) if date_from is not None else None,
        until_ms=day_start_ms(date_to + timedelta(days=1)) if date_to is not None else None,
    )  # fmt: skip
    report = replace(report, signals=signals)
    if not all_runs:
        report = replace(report, scope=f"{describe_scope(None, date_from, date_to, strategy)} "
                                       "(the database has no runs)")
    return report


# --------------------------------------------------------------------------- output


def _q(d: Decimal | None, q: Decimal = _Q2) -> str:
    if d is None:
        return "n/a"
    if d.is_infinite():
        return "inf"
    r = d.quantize(q)
    if r == 0:
        r = abs(r)  # no "-0.00"
    return format(r, "f")


def _exact(d: Decimal) -> str:
    """Exact plain text (no exponent, no "-0")."""
    return format(abs(d) if d == 0 else d, "f")


def _sharpe_text(s: float | None, places: int = 2) -> str:
    return "n/a" if s is None else f"{s:.{places}f}"


def empty_message(report: Report) -> str:
    msg = f"no closed trades in {report.scope}"
    if report.open_count:
        msg += f" ({report.open_count} open)"
    return msg


_MAIN_HEADERS = (
    "strategy", "trades", "wins", "win %", "net PnL", "return %", "PF", "Sharpe", "max DD",
    "max DD %", "avg MFE", "avg MAE", "fees", "funding",
)  # fmt: skip


def _main_cells(s: StrategyStats) -> list[str]:
    return [
        s.strategy, str(s.trades), str(s.wins), _q(s.win_rate_pct), _q(s.net_pnl), _q(s.return_pct),
        _q(s.profit_factor), _sharpe_text(s.sharpe), _q(s.max_drawdown), _q(s.max_drawdown_pct),
        _q(s.avg_mfe), _q(s.avg_mae), _q(s.fees), _q(s.funding),
    ]  # fmt: skip


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Plain-text table: first column left-aligned, the others right-aligned; a rule above the
    last row (the TOTAL)."""
    widths = [max(len(r[i]) for r in (headers, *rows)) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * w for w in widths)
    out = [line(headers), rule]
    out += [line(r) for r in rows[:-1]]
    out += [rule, line(rows[-1])]
    return out


def signal_total(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """The sum of per-strategy signal counts."""
    return {k: sum(c.get(k, 0) for c in counts.values()) for k in ("signals", "accepted", "denied")}


def _accept_pct(c: dict[str, int]) -> str:
    return _q(Decimal(c["accepted"]) * _HUNDRED / c["signals"]) if c.get("signals") else "n/a"


def signal_lines(counts: dict[str, dict[str, int]]) -> list[str]:
    """The signals table (strategy, signals, accepted, denied, accepted %), with a TOTAL row."""
    if not counts:
        return []
    rows = [[name, str(c["signals"]), str(c["accepted"]), str(c["denied"]), _accept_pct(c)]
            for name, c in counts.items()]
    total = signal_total(counts)
    rows.append([TOTAL, str(total["signals"]), str(total["accepted"]), str(total["denied"]), _accept_pct(total)])
    return ["signals judged by the guard", *_table(["strategy", "signals", "accepted", "denied", "accepted %"], rows)]


def format_report(report: Report) -> str:
    """The report as a plain-text table (deterministic: sorted strategies, fixed rounding)."""
    if report.empty:
        if report.signals:
            return "\n".join([empty_message(report), "", *signal_lines(report.signals)])
        return empty_message(report)
    assert report.total is not None
    lines = [f"perpdeck report — {report.scope}"]
    if report.run_id is None:
        lines.append(f"  runs              {', '.join(report.runs)}")
    lines.append(f"  period            {report.first_day} … {report.last_day} UTC ({report.days} days)")
    if report.starting_equity is not None:
        lines.append(f"  starting equity   {_q(report.starting_equity)} USDT ({report.equity_source})")
    else:
        lines.append("  starting equity   n/a (not recorded; pass --equity for return % and drawdown %)")
    lines.append(f"  closed trades     {report.total.trades}")
    open_text = str(report.open_count)
    if report.open_trades:
        open_text += " (" + ", ".join(f"{k} {v}" for k, v in report.open_trades.items()) + ")"
    lines.append(f"  open trades       {open_text}, not counted")
    lines.append("")
    every = [*report.rows, report.total]
    lines += _table(_MAIN_HEADERS, [_main_cells(s) for s in every])
    lines.append("")
    reasons = [k for k, v in report.total.exit_reasons.items() if v]
    lines.append("exit reasons")
    lines += _table(["strategy", *reasons], [[s.strategy, *(str(s.exit_reasons.get(k, 0)) for k in reasons)]
                                             for s in every])  # fmt: skip
    if report.signals:
        lines.append("")
        lines += signal_lines(report.signals)
    lines.append("")
    lines.append("PnL in USDT after fees and funding; PF = gross profit / gross loss;")
    lines.append("Sharpe annualised (√365) from daily returns; max DD on the closed-trade equity curve")
    return "\n".join(lines)


def _stats_json(s: StrategyStats) -> dict[str, Any]:
    return {
        "trades": s.trades,
        "wins": s.wins,
        "win_rate_pct": None if s.win_rate_pct is None else _q(s.win_rate_pct),
        "net_pnl": _exact(s.net_pnl),
        "gross_profit": _exact(s.gross_profit),
        "gross_loss": _exact(s.gross_loss),
        "return_pct": None if s.return_pct is None else _q(s.return_pct),
        "profit_factor": None if s.profit_factor is None else _q(s.profit_factor),
        "sharpe": None if s.sharpe is None else round(s.sharpe, 4),
        "max_drawdown": _exact(s.max_drawdown),
        "max_drawdown_pct": None if s.max_drawdown_pct is None else _q(s.max_drawdown_pct),
        "avg_mfe": None if s.avg_mfe is None else _q(s.avg_mfe, _Q8),
        "avg_mae": None if s.avg_mae is None else _q(s.avg_mae, _Q8),
        "fees": _exact(s.fees),
        "funding": _exact(s.funding),
        "exit_reasons": dict(s.exit_reasons),
    }


def report_dict(report: Report) -> dict[str, Any]:
    """The report's figures for JSON: Decimals as strings, n/a as null, ``inf`` as "inf"."""
    return {
        "scope": report.scope,
        "run_id": report.run_id,
        "from": None if report.date_from is None else report.date_from.isoformat(),
        "to": None if report.date_to is None else report.date_to.isoformat(),
        "strategy": report.strategy,
        "runs": list(report.runs),
        "period": {
            "first_day": None if report.first_day is None else report.first_day.isoformat(),
            "last_day": None if report.last_day is None else report.last_day.isoformat(),
            "days": report.days,
        },
        "starting_equity": None if report.starting_equity is None else _exact(report.starting_equity),
        "starting_equity_source": report.equity_source,
        "closed_trades": 0 if report.total is None else report.total.trades,
        "open_trades": {"total": report.open_count, "by_strategy": dict(report.open_trades)},
        "strategies": {s.strategy: _stats_json(s) for s in report.rows},
        "total": None if report.total is None else _stats_json(report.total),
        "message": empty_message(report) if report.empty else None,
        "signals": {"by_strategy": {k: dict(v) for k, v in report.signals.items()},
                    "total": signal_total(report.signals)},
    }


def format_report_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=1)


# --------------------------------------------------------------------------- side by side

_COMPARE_HEADERS = (
    "strategy", "trades", "win %", "net PnL", "return %", "PF", "Sharpe", "max DD", "max DD %", "avg MFE",
    "avg MAE", "signals", "accepted",
)  # fmt: skip


def _compare_cells(name: str, report: Report) -> list[str]:
    sig = signal_total(report.signals)
    s = report.total
    if s is None:
        return [name, "0", "n/a", "0.00", "0.00" if report.starting_equity else "n/a", "n/a", "n/a", "0.00",
                "0.00" if report.starting_equity else "n/a", "n/a", "n/a", str(sig["signals"]),
                str(sig["accepted"])]  # fmt: skip
    return [
        name, str(s.trades), _q(s.win_rate_pct), _q(s.net_pnl), _q(s.return_pct), _q(s.profit_factor),
        _sharpe_text(s.sharpe), _q(s.max_drawdown), _q(s.max_drawdown_pct), _q(s.avg_mfe), _q(s.avg_mae),
        str(sig["signals"]), str(sig["accepted"]),
    ]  # fmt: skip


def format_comparison(reports: Sequence[tuple[str, Report]]) -> str:
    """Several strategies' reports over the same data, one row each (their TOTAL figures and the
    signals the guard judged), in the order given."""
    rows = [_compare_cells(name, r) for name, r in reports]
    widths = [max(len(r[i]) for r in (_COMPARE_HEADERS, *rows)) for i in range(len(_COMPARE_HEADERS))]

    def line(cells: Sequence[str]) -> str:
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *rest]).rstrip()

    return "\n".join([line(_COMPARE_HEADERS), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
