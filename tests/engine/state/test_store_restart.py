"""What outlives a process in the database: plans, intents, account-wide fill keys, open trades."""

from __future__ import annotations

from decimal import Decimal

from engine.model import Direction, Fill, OrderType, PositionSide, Side, Trade
from engine.state.journal import Journal
from engine.state.store import Store


def _fill(tid: int, t: int = 1000) -> Fill:
    return Fill("BTCUSDT", tid, 7, "pdE0-x", Side.BUY, PositionSide.BOTH, Decimal("100"), Decimal("1"),
                Decimal("0.05"), "USDT", Decimal(0), False, t, OrderType.MARKET)


def _trade(tid: str, closed: bool) -> Trade:
    return Trade(trade_id=tid, signal_id="s", strategy="x", symbol="BTCUSDT", direction=Direction.LONG,
                 position_side=PositionSide.BOTH, entry_time_ms=1, entry_price=Decimal(100), quantity=Decimal(1),
                 exit_time_ms=5 if closed else None, exit_price=Decimal(101) if closed else None, entry_reason="r",
                 exit_reason=None, fees=Decimal(0), funding=Decimal(0), realized_pnl=Decimal(0),
                 mfe=Decimal(0), mae=Decimal(0))


async def test_plans_are_replaced_as_they_change_and_deleted_when_closed(tmp_path):
    async with await Store.open(tmp_path / "db.sqlite") as st:
        await st.start_run("r1", 0, "testnet", "x", "{}")
        j = Journal("r1")
        j.plan("acct", "BTCUSDT", PositionSide.BOTH, {"bracket": {"stop_price": "1"}}, 1)
        j.plan("acct", "BTCUSDT", PositionSide.BOTH, {"bracket": {"stop_price": "2"}}, 2)
        j.plan("acct", "ETHUSDT", PositionSide.BOTH, {"bracket": {"stop_price": "3"}}, 2)
        j.plan("other", "BTCUSDT", PositionSide.BOTH, {"bracket": {}}, 2)
        await j.flush(st)
        rows = await st.plans("acct")
        assert [(r["symbol"], r["payload"]["bracket"]["stop_price"]) for r in rows] == [("BTCUSDT", "2"), ("ETHUSDT", "3")]
        j.plan("acct", "BTCUSDT", PositionSide.BOTH, None, 3)
        await j.flush(st)
        assert [r["symbol"] for r in await st.plans("acct")] == ["ETHUSDT"]


async def test_an_intent_is_stored_once_and_a_second_store_says_so(tmp_path):
    async with await Store.open(tmp_path / "db.sqlite") as st:
        assert await st.record_intent("a", "r1", "pdE0-1", symbol="BTCUSDT", kind="order", role="entry",
                                      payload={"signal_id": "s"}, time_ms=1)
        assert not await st.record_intent("a", "r2", "pdE0-1", symbol="BTCUSDT", kind="order", role="entry",
                                          payload={"signal_id": "s"}, time_ms=2)
        assert await st.record_intent("b", "r3", "pdE0-1", symbol="BTCUSDT", kind="order", role="entry",
                                      payload={}, time_ms=2)  # another account: its own ids
        [it] = await st.intents("a", ("pending",))
        assert it["run_id"] == "r1" and it["payload"] == {"signal_id": "s"}
        await st.set_intent_state("a", "pdE0-1", "acked", 3)
        assert await st.intents("a", ("pending",)) == []
        assert await st.intent_ids("a", "entry") == {"pdE0-1"}


async def test_fill_keys_and_open_trades_span_the_runs_of_one_account(tmp_path):
    async with await Store.open(tmp_path / "db.sqlite") as st:
        for run, acct in (("r1", "a"), ("r2", "a"), ("x", "b")):
            await st.start_run(run, 0, "testnet", "x", "{}")
            await st.set_run_account(run, acct)
        j1 = Journal("r1")
        j1.fill(_fill(1, 1000))
        j1.trade(_trade("t-open", closed=False))
        j1.trade(_trade("t-done", closed=True))
        await j1.flush(st)
        jx = Journal("x")
        jx.fill(_fill(2, 5000))
        await jx.flush(st)
        assert await st.account_fill_keys("a") == {("BTCUSDT", 1)}
        assert await st.last_fill_ms("a") == 1000 and await st.last_fill_ms("b") == 5000
        moved = await st.take_open_trades("a", "r2")
        assert [t.trade_id for t in moved] == ["t-open"]
        assert [t.trade_id for t in await st.trades("r2")] == ["t-open"]  # one row, now the new run's
        assert [t.trade_id for t in await st.trades("r1")] == ["t-done"]
        assert await st.run_count("a") == 2
