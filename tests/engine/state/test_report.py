"""``perpdeck report``: per-strategy statistics from a real journal database.

The database is written through the store's own API; every expected figure is computed here from
the trades the test inserts, independently of :mod:`engine.state.report`."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from engine.model import Direction, ExitReason, PositionSide, Trade
from engine.state.journal import JournalBatch
from engine.state.report import (
    TOTAL,
    ReportError,
    UnknownRunError,
    format_report,
    format_report_json,
    load_report,
    parse_day,
)
from engine.state.store import Store

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_746_403_200_000  # 2025-05-05T00:00:00Z
D0, D1, D2 = date(2025, 5, 5), date(2025, 5, 6), date(2025, 5, 7)
EQUITY_A = Decimal("1000.00")


def trade(trade_id: str, strategy: str, exit_ms: int | None, realized: str, fees: str, funding: str,
          mfe: str, mae: str, reason: ExitReason | None) -> Trade:
    return Trade(
        trade_id=trade_id, signal_id=None, strategy=strategy, symbol="BTCUSDT", direction=Direction.LONG,
        position_side=PositionSide.BOTH,
        entry_time_ms=(exit_ms if exit_ms is not None else T0 + 2 * DAY) - HOUR,
        entry_price=Decimal("94000.1"), quantity=Decimal("0.010"), exit_time_ms=exit_ms,
        exit_price=None if exit_ms is None else Decimal("94100.0"), entry_reason="test",
        exit_reason=reason, fees=Decimal(fees), funding=Decimal(funding), realized_pnl=Decimal(realized),
        mfe=Decimal(mfe), mae=Decimal(mae),
    )  # fmt: skip


# run A: two strategies over three UTC days (2025-05-05 … 07), one open trade; e2 closes exactly at
# 2025-05-06T00:00:00.000Z
RUN_A = [
    trade("e1", "ema", T0 + 10 * HOUR, "30", "1.5", "-0.5", "40", "5", ExitReason.TAKE_PROFIT),
    trade("e2", "ema", T0 + DAY, "-20", "1.2", "0.2", "3", "25", ExitReason.STOP_LOSS),
    trade("e3", "ema", T0 + 2 * DAY + 9 * HOUR, "15.5", "0.8", "0", "18", "2.5", ExitReason.END_OF_DATA),
    trade("e4", "ema", T0 + 2 * DAY + 11 * HOUR, "-7.25", "0.5", "0.05", "1", "8", ExitReason.STOP_LOSS),
    trade("r1", "rsi", T0 + 14 * HOUR, "-10", "0.6", "0.1", "2", "12", ExitReason.STOP_LOSS),
    trade("r2", "rsi", T0 + 2 * DAY + 20 * HOUR, "12", "0.7", "-0.3", "14", "1", ExitReason.TAKE_PROFIT),
    trade("r3", "rsi", None, "0", "0.4", "0", "1", "1", None),
    trade("r4", "rsi", T0 + DAY + 3 * HOUR, "0.5", "0.5", "0", "1", "1", ExitReason.FLATTEN),  # break-even
    trade("r5", "rsi", T0 + DAY + 5 * HOUR, "0.2", "0.6", "0", "1", "1", ExitReason.STOP_LOSS),  # -0.4
]
# run B (later, no recorded summary, testnet): trades on 2025-05-07, exactly at 2025-05-08T00:00Z
# and on 2025-05-10
RUN_B = [
    trade("b3", "ema", T0 + 3 * DAY, "2", "0.1", "0", "2", "0", ExitReason.TAKE_PROFIT),
    trade("b1", "ema", T0 + 2 * DAY + 22 * HOUR, "5", "0.25", "0", "6", "1", ExitReason.TAKE_PROFIT),
    trade("b2", "ema", T0 + 5 * DAY + HOUR, "-3", "0.25", "0", "1", "4", ExitReason.FLATTEN),
]


async def write_run(store: Store, run_id: str, started_ms: int, trades: list[Trade], *, mode: str = "sim",
                    config: dict | None = None, summary: dict | None = None, ended_ms: int | None = None) -> None:
    await store.start_run(run_id, started_ms, mode, "ema", json.dumps(config or {}))
    await store.write_batch(JournalBatch(run_id, trades=list(trades)))
    if summary is not None:
        await store.end_run(run_id, ended_ms if ended_ms is not None else started_ms, json.dumps(summary))


@pytest.fixture
async def db(tmp_path):
    store = await Store.open(tmp_path / "perpdeck.db")
    await write_run(store, "run-a", T0, RUN_A, summary={"starting_balance": str(EQUITY_A)},
                    ended_ms=T0 + 2 * DAY + 23 * HOUR)
    await write_run(store, "run-b", T0 + 2 * DAY + 21 * HOUR, RUN_B, mode="testnet")
    yield store
    await store.close()


# --------------------------------------------------------------------------- independent figures


def closed(trades):
    return [t for t in trades if t.exit_time_ms is not None]


def net(t: Trade) -> Decimal:
    return t.realized_pnl - t.fees + t.funding


def expected_drawdown(trades, start: Decimal):
    equity = peak = start
    worst = Decimal(0)
    worst_pct = Decimal(0)
    for t in sorted(trades, key=lambda t: t.exit_time_ms):
        equity += net(t)
        if equity > peak:
            peak = equity
        if peak - equity > worst:
            worst = peak - equity
        if (peak - equity) / peak * 100 > worst_pct:
            worst_pct = (peak - equity) / peak * 100
    return worst, worst_pct


def expected_sharpe(trades, days: list[date]):
    daily = []
    for d in days:
        lo = T0 + (d - D0).days * DAY
        daily.append(float(sum((net(t) for t in trades if lo <= t.exit_time_ms < lo + DAY), Decimal(0))))
    return statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(365)


def row(report, name):
    rows = {s.strategy: s for s in report.rows}
    return report.total if name == TOTAL else rows[name]


# --------------------------------------------------------------------------- tests


async def test_default_is_the_last_run(db):
    report = await load_report(db)
    assert report.run_id == "run-b" and report.runs == ["run-b"]
    assert report.total.trades == len(closed(RUN_B)) == 3


async def test_per_strategy_and_total_figures_of_one_run(db):
    report = await load_report(db, run_id="run-a")
    assert [s.strategy for s in report.rows] == ["ema", "rsi"]
    assert (report.first_day, report.last_day, report.days) == (D0, D2, 3)
    assert report.starting_equity == EQUITY_A
    groups = {"ema": [t for t in closed(RUN_A) if t.strategy == "ema"],
              "rsi": [t for t in closed(RUN_A) if t.strategy == "rsi"], TOTAL: closed(RUN_A)}
    for name, trades in groups.items():
        s = row(report, name)
        pnls = [net(t) for t in trades]
        wins = [p for p in pnls if p > 0]
        losses = [p for p in pnls if p < 0]
        assert s.trades == len(trades)
        assert s.wins == len(wins)
        assert s.win_rate_pct == Decimal(len(wins)) * 100 / len(trades)
        assert s.net_pnl == sum(pnls)
        assert s.fees == sum(t.fees for t in trades)
        assert s.funding == sum(t.funding for t in trades)
        assert s.return_pct == sum(pnls) / EQUITY_A * 100
        assert s.profit_factor == sum(wins) / -sum(losses)
        assert s.avg_mfe == sum(t.mfe for t in trades) / len(trades)
        assert s.avg_mae == sum(t.mae for t in trades) / len(trades)
        assert (s.max_drawdown, s.max_drawdown_pct) == expected_drawdown(trades, EQUITY_A)
        assert s.sharpe == pytest.approx(expected_sharpe(trades, [D0, D1, D2]), rel=1e-12)
        for reason in ExitReason:  # every value that exists, whatever it is
            assert s.exit_reasons[reason.value] == sum(1 for t in trades if t.exit_reason is reason)
    assert sum(row(report, TOTAL).exit_reasons.values()) == len(closed(RUN_A))
    assert report.open_trades == {"rsi": 1}


async def test_a_known_drawdown_and_profit_factor(db):
    # spelled out by hand for ema in run A: nets 28, -21, 14.7, -7.7
    s = row(await load_report(db, run_id="run-a"), "ema")
    assert [net(t) for t in closed(RUN_A) if t.strategy == "ema"] == [Decimal("28"), Decimal("-21"),
                                                                     Decimal("14.7"), Decimal("-7.70")]
    assert s.max_drawdown == Decimal("21")  # 1028 -> 1007
    assert s.max_drawdown_pct == Decimal("21") / Decimal("1028") * 100
    assert s.profit_factor == Decimal("42.7") / Decimal("28.7")
    assert s.win_rate_pct == 50


async def test_no_losses_gives_infinite_profit_factor_and_one_day_no_sharpe(db):
    report = await load_report(db, run_id="run-a", date_from=D0, date_to=D0, strategy="ema")
    s = report.total
    assert s.trades == 1 and s.gross_loss == 0 and s.profit_factor.is_infinite()
    assert s.sharpe is None  # one day
    assert "inf" in format_report(report)
    assert json.loads(format_report_json(report))["total"]["profit_factor"] == "inf"


async def test_date_range_spans_runs_and_filters_by_exit_day(db):
    report = await load_report(db, date_from=D1, date_to=D2)
    expected = [t for t in closed(RUN_A + RUN_B) if T0 + DAY <= t.exit_time_ms < T0 + 3 * DAY]
    assert {t.trade_id for t in expected} == {"e2", "e3", "e4", "r2", "r4", "r5", "b1"}  # not b3
    assert report.runs == ["run-a", "run-b"] and report.days == 2
    assert report.total.trades == len(expected)
    assert report.total.net_pnl == sum(net(t) for t in expected)
    # starting equity: the earliest contributing run's recorded balance
    assert report.starting_equity == EQUITY_A and report.equity_source == "run run-a"
    assert report.total.max_drawdown_pct == expected_drawdown(expected, EQUITY_A)[1]
    assert report.total.sharpe == pytest.approx(expected_sharpe(expected, [D1, D2]), rel=1e-12)
    # an open trade entered after the range ends is not listed
    assert (await load_report(db, date_from=D0, date_to=D0)).open_trades == {}
    assert (await load_report(db, date_from=D0, date_to=D2)).open_trades == {"rsi": 1}
    # within one run only
    only_a = await load_report(db, run_id="run-a", date_from=D1, date_to=D2)
    assert only_a.total.trades == len([t for t in expected if t.trade_id[0] != "b"])
    # open-ended range
    later = await load_report(db, date_from=date(2025, 5, 8))
    later_trades = [t for t in closed(RUN_A + RUN_B) if t.exit_time_ms >= T0 + 3 * DAY]
    assert [t.trade_id for t in later_trades] == ["b3", "b2"]
    assert later.total.trades == 2 and later.total.exit_reasons[ExitReason.FLATTEN.value] == 1
    # run-b has no recorded starting balance (testnet, never ended): return % is n/a ...
    assert later.starting_equity is None and later.total.return_pct is None
    assert later.total.max_drawdown_pct is None
    assert later.total.max_drawdown == Decimal("3.25")  # +1.9 then -3.25
    # ... unless an equity is given
    given = await load_report(db, date_from=date(2025, 5, 8), equity=Decimal("500"))
    assert given.total.return_pct == sum(net(t) for t in later_trades) / 500 * 100
    assert given.total.max_drawdown_pct == expected_drawdown(later_trades, Decimal("500"))[1]


async def test_days_without_trades_count_as_zero_returns(tmp_path):
    store = await Store.open(tmp_path / "p.db")
    try:
        # the run starts a day before its first exit and ends a day after its last
        cfg = {"sim": {"starting_balance": "2000"}}
        await write_run(store, "r", T0 - DAY, RUN_A, config=cfg)
        await store.end_run("r", T0 + 3 * DAY + HOUR, "{}")
        report = await load_report(store)
    finally:
        await store.close()
    days = [date(2025, 5, 4), D0, D1, D2, date(2025, 5, 8)]
    assert (report.first_day, report.last_day, report.days) == (days[0], days[-1], 5)
    assert report.total.sharpe == pytest.approx(expected_sharpe(closed(RUN_A), days), rel=1e-12)
    # a sim run without a summary balance: its configured sim starting balance
    assert report.starting_equity == Decimal("2000")
    assert report.total.return_pct == sum(net(t) for t in closed(RUN_A)) / 2000 * 100


async def test_strategy_filter_and_empty_selection(db):
    report = await load_report(db, run_id="run-a", strategy="rsi")
    assert [s.strategy for s in report.rows] == ["rsi"]
    assert report.total.trades == len([t for t in closed(RUN_A) if t.strategy == "rsi"]) == 4
    empty = await load_report(db, date_from=date(2025, 6, 1), date_to=date(2025, 6, 2))
    assert empty.empty and empty.rows == []
    assert format_report(empty).startswith("no closed trades in 2025-06-01 … 2025-06-02")
    assert json.loads(format_report_json(empty))["total"] is None
    nobody = await load_report(db, run_id="run-a", strategy="nobody")
    assert nobody.empty and "no closed trades in run run-a, strategy nobody" in format_report(nobody)


async def test_no_runs_at_all(tmp_path):
    store = await Store.open(tmp_path / "e.db")
    try:
        report = await load_report(store)
    finally:
        await store.close()
    assert report.empty and "no closed trades" in format_report(report)


async def test_unknown_run_and_bad_dates(db):
    with pytest.raises(UnknownRunError, match="nope"):
        await load_report(db, run_id="nope")
    with pytest.raises(ReportError, match="after"):
        await load_report(db, date_from=D2, date_to=D0)
    for bad in ("2025-13-01", "2025-5-5", "20250505", "yesterday", "2025-02-30"):
        with pytest.raises(ReportError, match="--from"):
            parse_day(bad, "--from")
    assert parse_day("2025-05-07", "--to") == D2


async def test_text_table_and_json_are_deterministic_and_agree(db):
    report = await load_report(db, run_id="run-a")
    text = format_report(report)
    assert text == format_report(await load_report(db, run_id="run-a"))
    lines = text.splitlines()
    table = [ln.split() for ln in lines if ln.split() and ln.split()[0] in ("ema", "rsi", TOTAL)]
    assert [r[0] for r in table] == ["ema", "rsi", TOTAL, "ema", "rsi", TOTAL]  # main table, exits
    total = table[2]
    all_closed = closed(RUN_A)
    assert total[1] == str(len(all_closed))
    assert total[4] == str(sum(net(t) for t in all_closed).quantize(Decimal("0.01")))
    doc = json.loads(format_report_json(report))
    assert list(doc["strategies"]) == ["ema", "rsi"]
    assert Decimal(doc["total"]["net_pnl"]) == sum(net(t) for t in all_closed)
    assert Decimal(doc["strategies"]["rsi"]["fees"]) == Decimal("2.4")
    assert doc["open_trades"] == {"total": 1, "by_strategy": {"rsi": 1}}
    assert set(doc["total"]["exit_reasons"]) >= {r.value for r in ExitReason}
    assert doc["total"]["sharpe"] == pytest.approx(expected_sharpe(all_closed, [D0, D1, D2]), abs=1e-4)


async def test_a_closed_trade_without_an_exit_reason_is_counted_as_unknown(db):
    # whatever ExitReason values exist are reported; a closed trade lacking one is "unknown"
    await db.write_batch(JournalBatch("run-a", trades=[replace(RUN_A[0], trade_id="e9", exit_reason=None)]))
    s = row(await load_report(db, run_id="run-a"), "ema")
    assert s.exit_reasons["unknown"] == 1 and s.trades == 5


# --------------------------------------------------------------------------- signals per strategy


def _sig(strategy: str, at_ms: int, accepted: bool, n: int):
    from engine.model import Signal, SignalRecord, Verdict

    s = Signal(strategy, "BTCUSDT", Direction.LONG, 0.5, f"test {n}", at_ms - 60_000, Decimal("94000"), at_ms)
    return SignalRecord(s, Verdict.ACCEPTED if accepted else Verdict.DENIED,
                        "accepted" if accepted else "max_daily_trades", Decimal("0.01") if accepted else None, at_ms)


# (strategy, day offset, accepted) in run A; "quiet" never trades
SIGNALS_A = [("ema", 0, True), ("ema", 0, False), ("ema", 1, True), ("ema", 2, False), ("ema", 2, False),
             ("rsi", 0, True), ("rsi", 1, False), ("quiet", 1, False), ("quiet", 2, False)]


@pytest.fixture
async def db_signals(db):
    recs = [_sig(name, T0 + day * DAY + HOUR + i, ok, i) for i, (name, day, ok) in enumerate(SIGNALS_A)]
    await db.write_batch(JournalBatch("run-a", signals=recs))
    await db.write_batch(JournalBatch("run-b", signals=[_sig("ema", T0 + 3 * DAY, True, 99)]))
    return db


def _expected(selection) -> dict:
    out: dict = {}
    for name, _day, ok in selection:
        c = out.setdefault(name, {"signals": 0, "accepted": 0, "denied": 0})
        c["signals"] += 1
        c["accepted" if ok else "denied"] += 1
    return dict(sorted(out.items()))


async def test_signal_counts_per_strategy_by_run_window_and_strategy(db_signals):
    assert await db_signals.signal_counts("run-a") == _expected(SIGNALS_A)
    assert await db_signals.signal_counts("run-b") == {"ema": {"signals": 1, "accepted": 1, "denied": 0}}
    day1 = [x for x in SIGNALS_A if x[1] == 1]
    assert await db_signals.signal_counts("run-a", since_ms=T0 + DAY, until_ms=T0 + 2 * DAY) == _expected(day1)
    assert await db_signals.signal_counts(strategy="ema") == {"ema": {"signals": 6, "accepted": 3, "denied": 3}}


async def test_strategy_summary_puts_signals_and_trades_side_by_side(db_signals):
    summary = await db_signals.strategy_summary("run-a")
    assert list(summary) == ["ema", "quiet", "rsi"]
    for name in ("ema", "rsi"):
        mine = [t for t in RUN_A if t.strategy == name]
        done = closed(mine)
        row = summary[name]
        assert row["trades"] == len(done) and row["open"] == len(mine) - len(done)
        assert row["net_pnl"] == sum((net(t) for t in done), Decimal(0))
        assert row["wins"] == sum(1 for t in done if net(t) > 0)
        assert row["win_rate_pct"] == Decimal(row["wins"]) * 100 / len(done)
        assert {k: row[k] for k in ("signals", "accepted", "denied")} == _expected(SIGNALS_A)[name]
    assert summary["quiet"]["trades"] == 0 and summary["quiet"]["win_rate_pct"] is None
    assert summary["quiet"]["denied"] == 2


async def test_report_shows_signal_counts_including_strategies_without_trades(db_signals):
    rep = await load_report(db_signals, run_id="run-a")
    assert rep.signals == _expected(SIGNALS_A)
    text = format_report(rep)
    table = text[text.index("signals judged by the guard"):].splitlines()
    rows = {ln.split()[0]: ln.split()[1:] for ln in table[3:] if ln.split() and not ln.startswith("-")}
    assert rows["ema"] == ["5", "2", "3", "40.00"] and rows["quiet"] == ["2", "0", "2", "0.00"]
    assert rows[TOTAL][:3] == [str(len(SIGNALS_A)), "3", str(len(SIGNALS_A) - 3)]
    doc = json.loads(format_report_json(rep))
    assert doc["signals"]["by_strategy"] == _expected(SIGNALS_A)
    assert doc["signals"]["total"] == {"signals": 9, "accepted": 3, "denied": 6}
    ranged = await load_report(db_signals, date_from=D2, date_to=D2, strategy="ema")  # all runs, one day
    assert ranged.signals == _expected([x for x in SIGNALS_A if x[0] == "ema" and x[1] == 2])
