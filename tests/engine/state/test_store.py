"""Store: schema, migrations, exact round trips, upserts, idempotent inserts, atomic batches,
export."""

from __future__ import annotations

import asyncio
import csv
import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import aiosqlite
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import (
    AlgoOrder,
    AlgoStatus,
    Candle,
    Direction,
    ExitReason,
    Fill,
    MarginType,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
    Signal,
    SignalRecord,
    Trade,
    Verdict,
    WorkingType,
)
from engine.state import store as store_mod
from engine.state.export import TRADE_CSV_HEADER, export_trades_csv
from engine.state.journal import JournalBatch
from engine.state.schema import MIGRATIONS, SCHEMA_VERSION
from engine.state.store import Store, StoreError

T0 = 1_746_403_200_000  # 2025-05-05T00:00:00Z


# --------------------------------------------------------------------------- factories


def make_order(coid: str = "pd-e-1", **kw) -> Order:
    base = dict(
        client_order_id=coid,
        exchange_order_id=4_000_000_001,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.MARKET,
        quantity=Decimal("0.010"),
        price=None,
        status=OrderStatus.NEW,
        filled_qty=Decimal("0"),
        avg_price=Decimal("0.00"),
        position_side=PositionSide.BOTH,
        reduce_only=False,
        purpose=OrderPurpose.ENTRY,
        signal_id="ema:BTCUSDT:1746403140000:LONG",
        created_ms=T0,
        updated_ms=T0,
    )
    base.update(kw)
    return Order(**base)


def make_algo(caid: str = "pd-sl-1", **kw) -> AlgoOrder:
    base = dict(
        client_algo_id=caid,
        algo_id=None,
        symbol="BTCUSDT",
        side=Side.SELL,
        type=OrderType.STOP_MARKET,
        trigger_price=Decimal("93500.10"),
        status=AlgoStatus.PENDING_NEW,
        position_side=PositionSide.BOTH,
        close_position=True,
        working_type=WorkingType.MARK_PRICE,
        purpose=OrderPurpose.STOP_LOSS,
        signal_id="ema:BTCUSDT:1746403140000:LONG",
        actual_order_id=None,
        created_ms=T0 + 5,
        updated_ms=T0 + 5,
    )
    base.update(kw)
    return AlgoOrder(**base)


def make_fill(trade_id: int = 1, **kw) -> Fill:
    base = dict(
        symbol="BTCUSDT",
        trade_id=trade_id,
        exchange_order_id=4_000_000_001,
        client_order_id="pd-e-1",
        side=Side.BUY,
        position_side=PositionSide.BOTH,
        price=Decimal("94000.10"),
        quantity=Decimal("0.010"),
        commission=Decimal("0.37600040"),
        commission_asset="USDT",
        realized_pnl=Decimal("0"),
        is_maker=False,
        time_ms=T0 + trade_id,
    )
    base.update(kw)
    return Fill(**base)


def make_position(**kw) -> Position:
    base = dict(
        symbol="BTCUSDT",
        position_side=PositionSide.BOTH,
        amount=Decimal("-0.010"),
        entry_price=Decimal("94000.1"),
        break_even_price=Decimal("94037.70004"),
        unrealized_pnl=Decimal("-1.23456789"),
        margin_type=MarginType.ISOLATED,
        isolated_wallet=Decimal("188.00020000"),
        update_time_ms=T0 + 10,
    )
    base.update(kw)
    return Position(**base)


def make_signal_record(**kw) -> SignalRecord:
    sig = Signal(
        strategy="ema",
        symbol="BTCUSDT",
        direction=Direction.SHORT,
        strength=0.7312345678901234,
        reason="ema 9 crossed below 21",
        candle_open_time_ms=T0 - 60_000,
        price=Decimal("94000.10"),
        time_ms=T0 - 1,
    )
    base = dict(
        signal=sig,
        verdict=Verdict.ACCEPTED,
        reason="ok",
        quantity=Decimal("0.010"),
        time_ms=T0,
    )
    base.update(kw)
    return SignalRecord(**base)


def make_trade(trade_id: str = "t-1", **kw) -> Trade:
    base = dict(
        trade_id=trade_id,
        signal_id="ema:BTCUSDT:1746403140000:LONG",
        strategy="ema",
        symbol="BTCUSDT",
        direction=Direction.LONG,
        position_side=PositionSide.BOTH,
        entry_time_ms=T0,
        entry_price=Decimal("94000.10"),
        quantity=Decimal("0.010"),
        exit_time_ms=None,
        exit_price=None,
        entry_reason="ema 9 crossed above 21",
        exit_reason=None,
        fees=Decimal("0.37600040"),
        funding=Decimal("0"),
        realized_pnl=Decimal("0"),
        mfe=Decimal("1.5"),
        mae=Decimal("0.25"),
        stop_price=Decimal("93500.1"),
        take_profit_price=None,
    )
    base.update(kw)
    return Trade(**base)


def close_trade(t: Trade) -> Trade:
    return replace(
        t,
        exit_time_ms=T0 + 3_600_000,
        exit_price=Decimal("95000.20"),
        exit_reason=ExitReason.TAKE_PROFIT,
        fees=Decimal("0.75600120"),
        funding=Decimal("-0.01234567"),
        realized_pnl=Decimal("10.001000"),
        mfe=Decimal("12.5"),
        mae=Decimal("0.25"),
        take_profit_price=Decimal("95000.2"),
    )


def make_candle(i: int = 0, symbol: str = "BTCUSDT", **kw) -> Candle:
    base = dict(
        symbol=symbol,
        open_time_ms=T0 + i * 60_000,
        close_time_ms=T0 + i * 60_000 + 59_999,
        open=Decimal("94000.10"),
        high=Decimal("94100.00"),
        low=Decimal("93900.5"),
        close=Decimal("94050.0"),
        volume=Decimal("12.345"),
    )
    base.update(kw)
    return Candle(**base)


def batch(run_id: str = "r1", **lists) -> JournalBatch:
    return JournalBatch(run_id, **lists)


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "db" / "perpdeck.db")
    await s.start_run("r1", T0, "backtest", "ema", '{"symbols":["BTCUSDT"]}')
    yield s
    await s.close()


async def count(s: Store, table: str) -> int:
    rows = await s._fetch(f"SELECT COUNT(*) FROM {table}")
    return rows[0][0]


RUN_TABLES = ("orders", "algo_orders", "fills", "positions", "signals", "trades", "funding",
              "events")  # fmt: skip


# --------------------------------------------------------------------------- open / schema


async def test_open_creates_parent_dir_wal_version_and_pragmas(tmp_path: Path):
    path = tmp_path / "a" / "b" / "perpdeck.db"
    s = await Store.open(path)
    try:
        assert path.exists()
        assert await s.schema_version() == SCHEMA_VERSION == len(MIGRATIONS) >= 1
        assert await s.journal_mode() == "wal"
        assert (await s._fetch("PRAGMA synchronous"))[0][0] == 1  # NORMAL
        assert (await s._fetch("PRAGMA foreign_keys"))[0][0] == 1
        assert (await s._fetch("PRAGMA busy_timeout"))[0][0] > 0
    finally:
        await s.close()
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "candles_1m", *RUN_TABLES} <= tables
    finally:
        raw.close()


async def test_reopen_keeps_data_and_does_not_rerun_migrations(tmp_path: Path):
    path = tmp_path / "p.db"
    s = await Store.open(path)
    await s.start_run("r1", T0, "paper", "ema", "{}")
    await s.write_batch(batch(orders=[make_order()]))
    await s.close()
    s = await Store.open(str(path))
    try:
        assert await s.orders("r1") == [make_order()]
        assert await s.schema_version() == SCHEMA_VERSION
    finally:
        await s.close()


async def test_newer_schema_version_is_refused_clearly(tmp_path: Path):
    path = tmp_path / "future.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 7}")
    raw.close()
    with pytest.raises(StoreError) as err:
        await Store.open(path)
    msg = str(err.value)
    assert str(path) in msg
    assert str(SCHEMA_VERSION + 7) in msg and str(SCHEMA_VERSION) in msg
    assert "newer" in msg
    raw = sqlite3.connect(path)  # left untouched
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 7
        assert raw.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
    finally:
        raw.close()


async def test_callable_migration_is_applied_after_sql_ones(tmp_path: Path, monkeypatch):
    path = tmp_path / "m.db"
    s = await Store.open(path)
    await s.close()

    async def v2(db: aiosqlite.Connection) -> None:
        await db.execute("ALTER TABLE runs ADD COLUMN note TEXT")
        await db.execute("UPDATE runs SET note = 'x'")

    monkeypatch.setattr(store_mod, "MIGRATIONS", [*MIGRATIONS, v2, "CREATE TABLE extra (a INT);"])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
    s = await Store.open(path)
    try:
        assert await s.schema_version() == SCHEMA_VERSION + 2
        cols = {r[1] for r in await s._fetch("PRAGMA table_info(runs)")}
        assert "note" in cols
        assert await s._fetch("SELECT COUNT(*) FROM extra") == [(0,)]
    finally:
        await s.close()


async def test_failed_migration_rolls_back_to_previous_version(tmp_path: Path, monkeypatch):
    path = tmp_path / "m.db"
    s = await Store.open(path)
    await s.close()
    bad = "CREATE TABLE half (a INT); ALTER TABLE no_such_table ADD COLUMN b INT;"
    monkeypatch.setattr(store_mod, "MIGRATIONS", [*MIGRATIONS, bad])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="migration from schema version"):
        await Store.open(path)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
        assert "half" not in names
    finally:
        raw.close()


# --------------------------------------------------------------------------- runs


async def test_runs_start_end_last(tmp_path: Path):
    s = await Store.open(tmp_path / "r.db")
    try:
        assert await s.last_run_id() is None
        assert await s.runs() == []
        await s.start_run("a", T0, "backtest", "ema", '{"k":1}')
        await s.start_run("b", T0 + 1, "paper", "rsi", "{}")
        assert await s.last_run_id() == "b"
        await s.end_run("a", T0 + 99, '{"trades":3}')
        runs = await s.runs()
        assert [r["run_id"] for r in runs] == ["a", "b"]
        assert runs[0] == {
            "run_id": "a",
            "started_ms": T0,
            "ended_ms": T0 + 99,
            "mode": "backtest",
            "strategy": "ema",
            "config_json": '{"k":1}',
            "summary_json": '{"trades":3}',
        }
        assert runs[1]["ended_ms"] is None and runs[1]["summary_json"] is None
        with pytest.raises(StoreError, match="already exists"):
            await s.start_run("a", T0, "backtest", "ema", "{}")
        with pytest.raises(StoreError, match="unknown run"):
            await s.end_run("zzz", T0, "{}")
    finally:
        await s.close()


# --------------------------------------------------------------------------- round trips


async def test_every_record_type_round_trips_exactly(store: Store):
    orders = [
        make_order("o1"),
        make_order(
            "o2",
            exchange_order_id=None,
            side=Side.SELL,
            type=OrderType.LIMIT,
            price=Decimal("95000.00"),
            status=OrderStatus.REJECTED,
            position_side=PositionSide.SHORT,
            reduce_only=True,
            purpose=OrderPurpose.FLATTEN,
            signal_id=None,
            created_ms=T0 + 1,
            updated_ms=T0 + 2,
            reject_reason="-2019 Margin is insufficient.",
        ),
    ]
    algos = [
        make_algo("a1"),
        make_algo(
            "a2",
            algo_id=123456789,
            type=OrderType.TAKE_PROFIT_MARKET,
            status=AlgoStatus.FINISHED,
            close_position=False,
            working_type=WorkingType.CONTRACT_PRICE,
            purpose=OrderPurpose.TAKE_PROFIT,
            signal_id=None,
            actual_order_id=4_000_000_777,
            created_ms=T0 + 6,
        ),
    ]
    fills = [
        make_fill(1),
        make_fill(
            2,
            side=Side.SELL,
            position_side=PositionSide.LONG,
            commission=Decimal("-0.00001"),
            commission_asset="BNB",
            realized_pnl=Decimal("-3.14159265"),
            is_maker=True,
            order_type=OrderType.LIQUIDATION,
        ),
    ]
    positions = [
        make_position(),
        make_position(symbol="ETHUSDT", position_side=PositionSide.LONG, amount=Decimal("1.000"),
                      margin_type=MarginType.CROSSED, isolated_wallet=Decimal("0")),
    ]
    signals = [
        make_signal_record(),
        make_signal_record(verdict=Verdict.DENIED, reason="max open positions", quantity=None),
    ]
    trades = [make_trade("t1"), close_trade(make_trade("t2", entry_time_ms=T0 + 1))]
    candles = [make_candle(0), make_candle(1, volume=Decimal("0E-8"))]

    await store.write_batch(
        batch(
            orders=orders,
            algo_orders=algos,
            fills=fills,
            positions=positions,
            signals=signals,
            trades=trades,
            candles=candles,
            funding=[
                {"symbol": "BTCUSDT", "time_ms": T0, "position_side": "BOTH",
                 "amount": Decimal("-0.00940001"), "rate": Decimal("0.00010000")},
                {"symbol": "BTCUSDT", "time_ms": T0 + 8 * 3_600_000,
                 "position_side": PositionSide.LONG, "amount": Decimal("0.5"), "rate": None},
            ],  # fmt: skip
            events=[
                {"time_ms": T0, "kind": "protection_failed", "message": "stop rejected",
                 "data": {"price": Decimal("93500.10"), "side": Side.SELL, "n": 1}},
                {"time_ms": T0 + 1, "kind": "halt", "message": "daily loss", "data_json": None},
            ],  # fmt: skip
        )
    )

    assert await store.orders("r1") == orders
    assert await store.algo_orders("r1") == algos
    assert await store.fills("r1") == fills
    assert await store.positions("r1") == sorted(positions, key=lambda p: p.symbol)
    assert await store.signals("r1") == signals
    got_trades = await store.trades("r1")
    assert got_trades == trades
    assert got_trades[1].net_pnl == Decimal("10.001000") - Decimal("0.75600120") - Decimal(
        "0.01234567"
    )
    assert await store.candles("BTCUSDT") == candles
    assert await store.candle_count() == 2 and await store.candle_count("BTCUSDT") == 2
    assert await store.candle_count("ETHUSDT") == 0
    assert await store.funding("r1") == [
        {"symbol": "BTCUSDT", "time_ms": T0, "position_side": "BOTH",
         "amount": Decimal("-0.00940001"), "rate": Decimal("0.00010000")},
        {"symbol": "BTCUSDT", "time_ms": T0 + 8 * 3_600_000, "position_side": "LONG",
         "amount": Decimal("0.5"), "rate": None},
    ]  # fmt: skip
    events = await store.events("r1")
    assert [(e["kind"], e["message"], e["data"]) for e in events] == [
        ("protection_failed", "stop rejected", {"price": "93500.10", "side": "SELL", "n": 1}),
        ("halt", "daily loss", None),
    ]
    # exactness down to the representation, not only numeric equality
    (o1, _) = await store.orders("r1")
    assert str(o1.quantity) == "0.010" and str(o1.avg_price) == "0.00"
    assert str((await store.candles("BTCUSDT"))[1].volume) == "0E-8"
    assert type(o1.side) is Side and type(o1.status) is OrderStatus


async def test_money_is_stored_as_text_not_real(store: Store):
    await store.write_batch(batch(fills=[make_fill(1)], trades=[make_trade()]))
    rows = await store._fetch(
        "SELECT typeof(price), typeof(quantity), typeof(commission) FROM fills"
    )
    assert rows == [("text", "text", "text")]
    rows = await store._fetch("SELECT typeof(entry_price), typeof(exit_price), net_pnl FROM trades")
    assert rows == [("text", "null", "-0.37600040")]


async def test_runs_are_scoped_and_none_means_all(store: Store):
    await store.start_run("r2", T0 + 5, "paper", "ema", "{}")
    await store.write_batch(batch("r1", fills=[make_fill(1)], trades=[make_trade("t")]))
    # same exchange trade id in another run is another row; same trade_id string too
    await store.write_batch(batch("r2", fills=[make_fill(1)], trades=[make_trade("t")]))
    assert len(await store.fills("r1")) == 1
    assert len(await store.fills("r2")) == 1
    assert len(await store.fills(None)) == 2
    assert len(await store.trades(None)) == 2
    assert await store.orders("r2") == []


# --------------------------------------------------------------------------- idempotence / upserts


async def test_fill_written_twice_is_stored_once(store: Store):
    f1, f2 = make_fill(1), make_fill(2)
    await store.write_batch(batch(fills=[f1, f2, f1]))
    await store.write_batch(batch(fills=[f2, replace(f1, price=Decimal("1"))]))
    assert await store.fills("r1") == [f1, f2]  # first write wins for an insert-or-ignore
    # another symbol may reuse the trade id
    await store.write_batch(batch(fills=[make_fill(1, symbol="ETHUSDT")]))
    assert await count(store, "fills") == 3


async def test_funding_and_candles_are_insert_or_ignore(store: Store):
    fund = {"symbol": "BTCUSDT", "time_ms": T0, "position_side": "BOTH",
            "amount": Decimal("-0.1"), "rate": Decimal("0.0001")}  # fmt: skip
    await store.write_batch(batch(funding=[fund, fund], candles=[make_candle(0), make_candle(0)]))
    await store.write_batch(
        batch(funding=[dict(fund, amount=Decimal("9"))],
              candles=[make_candle(0, close=Decimal("1"))])  # fmt: skip
    )
    assert [f["amount"] for f in await store.funding("r1")] == [Decimal("-0.1")]
    assert await store.candles("BTCUSDT") == [make_candle(0)]


async def test_unclosed_candle_is_not_stored(store: Store):
    await store.write_batch(batch(candles=[make_candle(0, closed=False)]))
    assert await store.candle_count() == 0
    assert await store.candles("BTCUSDT", T0, T0 + 60_000) == []


async def test_candles_range_query(store: Store):
    await store.write_batch(batch(candles=[make_candle(i) for i in range(5)]))
    got = await store.candles("BTCUSDT", T0 + 60_000, T0 + 3 * 60_000)
    assert [c.open_time_ms for c in got] == [T0 + 60_000, T0 + 120_000]


async def test_order_status_is_upserted(store: Store):
    new = make_order("o1")
    await store.write_batch(batch(orders=[new]))
    filled = replace(
        new,
        status=OrderStatus.FILLED,
        filled_qty=Decimal("0.010"),
        avg_price=Decimal("94000.10"),
        updated_ms=T0 + 50,
    )
    await store.write_batch(batch(orders=[filled]))
    assert await store.orders("r1") == [filled]
    # within one batch the last record of a key wins
    partial = replace(new, client_order_id="o2", status=OrderStatus.PARTIALLY_FILLED)
    done = replace(partial, status=OrderStatus.CANCELED, updated_ms=T0 + 60)
    await store.write_batch(batch(orders=[partial, done]))
    assert await store.orders("r1") == [filled, done]


async def test_algo_order_and_position_are_upserted(store: Store):
    a = make_algo("sl")
    await store.write_batch(batch(algo_orders=[a], positions=[make_position()]))
    a2 = replace(a, algo_id=99, status=AlgoStatus.NEW, updated_ms=T0 + 9)
    flat = make_position(amount=Decimal("0"), unrealized_pnl=Decimal("0"), update_time_ms=T0 + 99)
    await store.write_batch(batch(algo_orders=[a2], positions=[flat]))
    assert await store.algo_orders("r1") == [a2]
    assert await store.positions("r1") == [flat]


async def test_trade_close_is_upserted(store: Store):
    open_t = make_trade("t1")
    await store.write_batch(batch(trades=[open_t]))
    assert (await store.trades("r1"))[0].is_open
    closed = close_trade(open_t)
    await store.write_batch(batch(trades=[closed]))
    got = await store.trades("r1")
    assert got == [closed]
    assert not got[0].is_open
    rows = await store._fetch("SELECT net_pnl, exit_reason FROM trades")
    assert rows == [(str(closed.net_pnl), "take_profit")]


# --------------------------------------------------------------------------- atomicity


async def test_batch_with_constraint_violation_writes_nothing(store: Store):
    bad_trade = make_trade("bad", symbol=None)  # NOT NULL fails after earlier tables were written
    b = batch(
        orders=[make_order("o1")],
        fills=[make_fill(1)],
        positions=[make_position()],
        signals=[make_signal_record()],
        trades=[make_trade("ok"), bad_trade],
        candles=[make_candle(0)],
        events=[{"time_ms": T0, "kind": "k", "message": "m"}],
    )
    with pytest.raises(sqlite3.IntegrityError):
        await store.write_batch(b)
    for table in RUN_TABLES:
        assert await count(store, table) == 0, table
    assert await store.candle_count() == 0
    # the connection is usable afterwards (no transaction left open)
    assert not store._db.in_transaction
    await store.write_batch(batch(orders=[make_order("o1")]))
    assert len(await store.orders("r1")) == 1


async def test_batch_failing_midway_is_rolled_back(store: Store, monkeypatch):
    real = aiosqlite.Connection.executemany
    calls = 0

    async def flaky(self, sql, params):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("disk on fire")
        return await real(self, sql, params)

    monkeypatch.setattr(aiosqlite.Connection, "executemany", flaky)
    b = batch(
        orders=[make_order()],
        fills=[make_fill(1)],
        positions=[make_position()],
        trades=[make_trade()],
    )
    with pytest.raises(RuntimeError, match="disk on fire"):
        await store.write_batch(b)
    monkeypatch.setattr(aiosqlite.Connection, "executemany", real)
    assert calls == 3
    for table in RUN_TABLES:
        assert await count(store, table) == 0, table
    await store.write_batch(b)
    assert await count(store, "trades") == 1


async def test_float_money_is_refused_and_nothing_written(store: Store):
    with pytest.raises(TypeError, match="Decimal"):
        await store.write_batch(
            batch(orders=[make_order()], fills=[make_fill(1, price=94000.1)])
        )
    assert await count(store, "orders") == 0


async def test_batch_for_unknown_run_is_refused(store: Store):
    with pytest.raises(StoreError, match="never started"):
        await store.write_batch(batch("nope", orders=[make_order()], candles=[make_candle(0)]))
    assert await count(store, "orders") == 0 and await store.candle_count() == 0
    # candles alone are market data and need no run
    await store.write_batch(batch("nope", candles=[make_candle(0)]))
    assert await store.candle_count() == 1


async def test_large_batch(store: Store):
    n = 20_000
    fills = [make_fill(i) for i in range(n)]
    candles = [make_candle(i) for i in range(n)]
    await store.write_batch(batch(fills=fills, candles=candles))
    assert await count(store, "fills") == n
    assert await store.candle_count("BTCUSDT") == n


async def test_concurrent_reader_never_sees_half_a_batch(store: Store):
    b = batch(orders=[make_order(f"o{i}") for i in range(500)],
              fills=[make_fill(i) for i in range(500)])  # fmt: skip
    write = asyncio.ensure_future(store.write_batch(b))
    seen = []
    while not write.done():
        rows = await store._fetch(
            "SELECT (SELECT COUNT(*) FROM orders), (SELECT COUNT(*) FROM fills)"
        )
        seen.append(tuple(rows[0]))
    await write
    assert seen
    assert all(pair in ((0, 0), (500, 500)) for pair in seen)


# --------------------------------------------------------------------------- hypothesis

money = st.decimals(allow_nan=False, allow_infinity=False, places=8)
any_decimal = st.decimals(allow_nan=False, allow_infinity=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    prices=st.lists(st.tuples(money, money, any_decimal), min_size=1, max_size=8),
    path_seed=st.integers(0, 3),
)
def test_decimal_round_trip_is_exact(tmp_path_factory, prices, path_seed):
    path = tmp_path_factory.getbasetemp() / f"hyp-{path_seed}.db"

    async def go() -> None:
        s = await Store.open(path)
        try:
            run_id = f"run-{await count(s, 'runs')}"
            await s.start_run(run_id, T0, "backtest", "h", "{}")
            fills = [
                make_fill(i, price=p, quantity=q, commission=c, realized_pnl=-p)
                for i, (p, q, c) in enumerate(prices)
            ]
            trades = [
                make_trade(f"t{i}", entry_price=p, quantity=q, fees=c, mfe=q, mae=p)
                for i, (p, q, c) in enumerate(prices)
            ]
            await s.write_batch(JournalBatch(run_id, fills=fills, trades=trades))
            got_f = await s.fills(run_id)
            got_t = await s.trades(run_id)
            assert got_f == fills and got_t == trades
            for a, b in zip(got_f, fills, strict=True):
                assert str(a.price) == str(b.price) and str(a.commission) == str(b.commission)
            for a, b in zip(got_t, trades, strict=True):
                assert a.net_pnl == b.net_pnl
        finally:
            await s.close()

    asyncio.run(go())


# --------------------------------------------------------------------------- export


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


async def test_export_trades_csv(store: Store, tmp_path: Path):
    closed = close_trade(make_trade("t1", entry_reason='ema cross, "fast"'))
    open_t = make_trade("t2", entry_time_ms=T0 + 120_000, fees=Decimal("0E-8"))
    await store.write_batch(batch(trades=[open_t, closed]))
    out = tmp_path / "exports" / "trades.csv"
    n = await export_trades_csv(store, out, "r1")
    assert n == 2
    rows = read_csv(out)
    assert tuple(rows[0]) == TRADE_CSV_HEADER
    assert rows[1] == [
        "t1", "ema", "BTCUSDT", "LONG", "2025-05-05T00:00:00.000Z", "94000.10", "0.010",
        "2025-05-05T01:00:00.000Z", "95000.20", 'ema cross, "fast"', "take_profit",
        "0.75600120", "-0.01234567", "10.001000", "9.23265313", "12.5", "0.25",
    ]  # fmt: skip
    assert rows[2] == [
        "t2", "ema", "BTCUSDT", "LONG", "2025-05-05T00:02:00.000Z", "94000.10", "0.010",
        "", "", "ema 9 crossed above 21", "", "0.00000000", "0", "0", "0.00000000", "1.5", "0.25",
    ]  # fmt: skip
    assert Decimal(rows[1][14]) == closed.net_pnl
    assert sorted(p.name for p in out.parent.iterdir()) == ["trades.csv"]  # no temp file left


async def test_export_defaults_to_last_run_and_replaces_file(store: Store, tmp_path: Path):
    await store.write_batch(batch("r1", trades=[make_trade("old")]))
    await store.start_run("r2", T0 + 1, "paper", "ema", "{}")
    await store.write_batch(batch("r2", trades=[make_trade("new1"), make_trade("new2")]))
    out = tmp_path / "t.csv"
    out.write_text("stale\n")
    assert await export_trades_csv(store, str(out)) == 2
    assert [r[0] for r in read_csv(out)[1:]] == ["new1", "new2"]
    assert await export_trades_csv(store, out, "r1") == 1
    assert [r[0] for r in read_csv(out)[1:]] == ["old"]


async def test_export_with_no_runs_writes_header_only(tmp_path: Path):
    s = await Store.open(tmp_path / "empty.db")
    try:
        out = tmp_path / "t.csv"
        assert await export_trades_csv(s, out) == 0
        assert read_csv(out) == [list(TRADE_CSV_HEADER)]
    finally:
        await s.close()
