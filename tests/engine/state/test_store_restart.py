"""What outlives a process in the database: plans, intents, account-wide fill keys, open trades."""

from __future__ import annotations

from decimal import Decimal

from engine.exchange.errors import ExchangeError
from engine.model import (
    AlgoOrder,
    AlgoStatus,
    Direction,
    Fill,
    MarginType,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    Side,
    Trade,
    WorkingType,
)
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


# -- rows of killed runs are brought to the exchange's truth ------------------------------------


class _Exchange:
    """The REST answers ``sync_rows`` asks for (the adapter itself is tested over HTTP elsewhere)."""

    def __init__(self, orders: dict, algos: dict, positions: list, open_algos: list | None = None):
        self.orders, self.algos, self.pos, self.open_algos = orders, algos, positions, open_algos or []
        self.asked: list[str] = []

    async def open_orders(self):
        return []

    async def open_algo_orders(self):
        return list(self.open_algos)

    async def positions(self):
        return list(self.pos)

    async def query_order(self, symbol, cid):
        self.asked.append(cid)
        if cid not in self.orders:
            raise ExchangeError(-2013, "Order does not exist.", 400)
        return self.orders[cid]

    async def query_algo_order(self, cid):
        self.asked.append(cid)
        if cid not in self.algos:
            raise ExchangeError(-2013, "Order does not exist.", 400)
        return self.algos[cid]


def _order(cid: str, status: OrderStatus, purpose=OrderPurpose.ENTRY) -> Order:
    return Order(cid, None, "BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.03"), None, status, Decimal(0),
                 Decimal(0), PositionSide.BOTH, False, purpose, "sig", 1000, 1000)


def _algo(cid: str, status: AlgoStatus = AlgoStatus.NEW) -> AlgoOrder:
    return AlgoOrder(cid, 77, "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, Decimal("97000"), status,
                     PositionSide.BOTH, True, WorkingType.MARK_PRICE, OrderPurpose.STOP_LOSS, "sig", None, 1000, 1000)


def _pos(amount: str, t: int = 1000) -> Position:
    return Position("BTCUSDT", PositionSide.BOTH, Decimal(amount), Decimal("100000"), Decimal("100000"), Decimal(0),
                    MarginType.CROSSED, Decimal(0), t)


async def test_sync_rows_closes_what_a_killed_run_left_open(tmp_path):
    """A run killed mid-trade left an entry PENDING_NEW, a stop and a take-profit NEW and a long
    position row; meanwhile the entry filled, the stop triggered and the position is flat. After
    ``sync_rows`` the newest rows equal the exchange, each correction is an event, and a second
    round changes nothing."""
    from engine.backtest import build_engine
    from engine.config import Settings
    from engine.exchange.sim.matching import load_default_rules
    from engine.restart import sync_rows

    async with await Store.open(tmp_path / "db.sqlite") as st:
        for run in ("r1", "r2"):
            await st.start_run(run, 0, "testnet", "x", "{}")
            await st.set_run_account(run, "acct")
        j1 = Journal("r1")
        j1.order(_order("pdE0-a", OrderStatus.PENDING_NEW))
        j1.algo_order(_algo("pdS0-a"))
        j1.algo_order(_algo("pdT0-a"))
        j1.algo_order(_algo("pdS0-old", AlgoStatus.CANCELED))  # already final: never asked about
        j1.position(_pos("0.03"))
        await j1.flush(st)

        j2 = Journal("r2")
        eng = build_engine(Settings(symbols=["BTCUSDT"]), load_default_rules(), run_id="r2", journal=j2)
        eng.clock.advance(5000)
        ex = _Exchange(orders={"pdE0-a": {"status": "FILLED", "orderId": 9, "executedQty": "0.030",
                                          "avgPrice": "100010"}},
                       algos={"pdS0-a": {"algoStatus": "FINISHED"}},  # pdT0-a: the exchange never heard of it
                       positions=[])
        notes = await sync_rows(eng, ex, st, "acct")
        await j2.flush(st)
        assert sorted(ex.asked) == ["pdE0-a", "pdS0-a", "pdT0-a"]
        orders, algos, positions = await st.latest_rows("acct")
        by_id = {o.client_order_id: o for o in orders}
        assert by_id["pdE0-a"].status is OrderStatus.FILLED and by_id["pdE0-a"].filled_qty == Decimal("0.03")
        assert by_id["pdE0-a"].exchange_order_id == 9
        states = {a.client_algo_id: a.status for a in algos}
        assert states == {"pdS0-a": AlgoStatus.FINISHED, "pdT0-a": AlgoStatus.EXPIRED, "pdS0-old": AlgoStatus.CANCELED}
        assert [(run, p.amount) for run, p in positions] == [("r2", Decimal(0))]
        assert sorted(n.kind for n in notes) == ["algo_row_closed", "algo_row_closed", "order_row_closed", "position_row"]
        events = await st.events("r2")
        assert sum(e["kind"].startswith("reconcile.") for e in events) == 4

        ex.asked.clear()
        assert await sync_rows(eng, ex, st, "acct") == [] and ex.asked == []

        # a row the exchange could not answer for (a transient error) is left, and named
        j2.algo_order(_algo("pdS1-b"))
        await j2.flush(st)

        async def busy(cid):
            raise ExchangeError(-1001, "Internal error; unable to process your request.", 503)

        ex.query_algo_order = busy
        left: list[str] = []
        assert await sync_rows(eng, ex, st, "acct", left=left) == [] and left == ["pdS1-b"]


async def test_sync_rows_leaves_what_is_open_or_managed_and_waits_for_the_engine(tmp_path):
    """An algo still resting on the exchange is left alone; a position the engine does not yet
    agree with the exchange on is not written (events in flight); once it agrees, it is."""
    from engine.backtest import build_engine
    from engine.config import Settings
    from engine.exchange.sim.matching import load_default_rules
    from engine.restart import sync_rows

    async with await Store.open(tmp_path / "db.sqlite") as st:
        await st.start_run("r1", 0, "testnet", "x", "{}")
        await st.set_run_account("r1", "acct")
        j1 = Journal("r1")
        j1.algo_order(_algo("pdS0-a"))
        await j1.flush(st)
        j2 = Journal("r1")
        eng = build_engine(Settings(symbols=["BTCUSDT"]), load_default_rules(), run_id="r1", journal=j2)
        ex = _Exchange({}, {}, positions=[_pos("0.03")], open_algos=[{"clientAlgoId": "pdS0-a"}])
        left: list[str] = []
        assert await sync_rows(eng, ex, st, "acct", left=left) == [] and ex.asked == []
        assert left == ["BTCUSDT BOTH"]  # the caller is told to come back soon
        eng.positions[("BTCUSDT", PositionSide.BOTH)] = _pos("0.03", 2000)
        left = []
        [note] = await sync_rows(eng, ex, st, "acct", left=left)
        await j2.flush(st)
        assert note.kind == "position_row" and left == []
        [(_run, p)] = (await st.latest_rows("acct"))[2]
        assert p.amount == Decimal("0.03") and p.update_time_ms == 2000


async def test_fill_window_starts_at_the_fills_complete_mark_not_the_newest_fill(tmp_path):
    """A fill missed long before the newest recorded one must still be fetched: the window starts
    a minute before the account's fills-complete mark, which only ever moves forward."""
    from engine.restart import FILL_LOOKBACK_MS, fill_window_start

    async with await Store.open(tmp_path / "db.sqlite") as st:
        await st.start_run("r1", 0, "testnet", "x", "{}")
        await st.set_run_account("r1", "a")
        assert await fill_window_start(st, "a", []) is None  # never traded
        assert await fill_window_start(st, "a", [{"created_ms": 5_000}]) == 5_000 - FILL_LOOKBACK_MS
        j = Journal("r1")
        j.fill(_fill(1, 900_000))
        await j.flush(st)
        assert await fill_window_start(st, "a", []) == 900_000 - FILL_LOOKBACK_MS  # no mark yet
        j.fills_complete("a", 300_000, 1)
        await j.flush(st)
        assert await fill_window_start(st, "a", []) == 300_000 - FILL_LOOKBACK_MS
        j.fills_complete("a", 200_000, 2)  # an older mark never moves it back
        j.fills_complete("b", 999_000, 2)
        await j.flush(st)
        assert await st.fills_complete_ms("a") == 300_000 and await st.fills_complete_ms("b") == 999_000


async def test_a_hung_intent_query_does_not_hold_back_startup(tmp_path):
    """Intent queries run at once, each for at most the timeout: one that hangs stays pending
    (asked again next start) while the others are resolved."""
    import asyncio

    from engine.restart import resolve_intents

    class Hung:
        async def query_order(self, symbol, cid):
            if cid == "pdE0-hung":
                await asyncio.Event().wait()  # never answers
            if cid == "pdE0-gone":
                raise ExchangeError(-2013, "Order does not exist.", 400)
            return {"orderId": 1}

        async def query_algo_order(self, cid):
            return {"algoId": 2}

    async with await Store.open(tmp_path / "db.sqlite") as st:
        for cid, kind in (("pdE0-hung", "order"), ("pdE0-gone", "order"), ("pdE0-here", "order"), ("pdS0-a", "algo")):
            await st.record_intent("a", "r1", cid, symbol="BTCUSDT", kind=kind, role="entry", payload={}, time_ms=1)
        notes = await resolve_intents(Hung(), st, "a", 5, timeout_s=0.05)
        states = {it["client_id"]: it["state"] for it in await st.intents("a")}
        assert states == {"pdE0-hung": "pending", "pdE0-gone": "missing", "pdE0-here": "resolved", "pdS0-a": "resolved"}
        assert len(notes) == 3


async def test_an_intent_query_lost_on_the_way_is_asked_again_beside_it(tmp_path):
    """The first query of an intent never answers (lost); a copy sent beside it after half the
    timeout does, so the intent is resolved at this start instead of being left pending."""
    import asyncio

    from engine.restart import resolve_intents

    class LosesFirst:
        def __init__(self):
            self.asked = 0

        async def query_order(self, symbol, cid):
            self.asked += 1
            if self.asked == 1:
                await asyncio.Event().wait()  # lost: never answers
            return {"orderId": 1}

    ad = LosesFirst()
    async with await Store.open(tmp_path / "db.sqlite") as st:
        await st.record_intent("a", "r1", "pdE0-lost", symbol="BTCUSDT", kind="order", role="entry", payload={},
                               time_ms=1)
        notes = await resolve_intents(ad, st, "a", 5, timeout_s=0.4)
        assert [it["state"] for it in await st.intents("a")] == ["resolved"] and len(notes) == 1
        assert ad.asked == 2
