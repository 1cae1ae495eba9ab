"""Journal: in-memory recording, take(), flush() that never loses a record."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from engine.model import OrderStatus, PositionSide, Side, Verdict
from engine.state.journal import Journal, JournalBatch
from engine.state.store import DecimalJSONEncoder, Store, StoreError, dumps
from tests.engine.state.test_store import (
    T0,
    close_trade,
    make_algo,
    make_candle,
    make_fill,
    make_order,
    make_position,
    make_signal_record,
    make_trade,
)


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(tmp_path / "j.db")
    yield s
    await s.close()


def record_one_of_each(j: Journal) -> None:
    j.order(make_order("o1"))
    j.algo_order(make_algo("a1"))
    j.fill(make_fill(1))
    j.position(make_position())
    j.signal(make_signal_record())
    j.trade(make_trade("t1"))
    j.candle(make_candle(0))
    j.funding("BTCUSDT", T0, "BOTH", Decimal("-0.01"), Decimal("0.0001"))
    j.event(T0, "halt", "daily loss limit", {"loss": Decimal("-50.00")})


# --------------------------------------------------------------------------- in memory


def test_records_are_kept_in_arrival_order_and_take_starts_fresh():
    j = Journal("r1")
    assert j.pending() == 0
    record_one_of_each(j)
    j.order(replace(make_order("o1"), status=OrderStatus.FILLED))
    assert j.pending() == 10
    b = j.take()
    assert isinstance(b, JournalBatch) and b.run_id == "r1" and len(b) == 10
    assert [o.status for o in b.orders] == [OrderStatus.NEW, OrderStatus.FILLED]
    assert b.funding == [
        {"symbol": "BTCUSDT", "time_ms": T0, "position_side": "BOTH",
         "amount": Decimal("-0.01"), "rate": Decimal("0.0001")}
    ]  # fmt: skip
    assert j.pending() == 0
    assert len(j.take()) == 0
    j.fill(make_fill(2))
    assert j.pending() == 1 and len(b) == 10  # the handed-over batch is no longer shared


def test_candles_are_skipped_when_not_recorded_or_not_closed():
    j = Journal("r1", record_candles=False)
    j.candle(make_candle(0))
    assert j.pending() == 0
    j = Journal("r1")
    j.candle(make_candle(0, closed=False))
    assert j.pending() == 0
    j.candle(make_candle(0))
    assert j.pending() == 1


def test_funding_accepts_enum_position_side():
    j = Journal("r1")
    j.funding("BTCUSDT", T0, PositionSide.LONG, Decimal("1"), None)
    assert j.take().funding[0]["position_side"] == "LONG"


def test_event_data_is_serialised_at_record_time_with_decimal_strings():
    j = Journal("r1")
    data = {"price": Decimal("93500.10"), "side": Side.SELL, "tags": {"a"}, "rec": make_fill(1)}
    j.event(T0, "protection_failed", "stop rejected", data)
    data["price"] = Decimal("0")  # later mutation does not change the record
    j.event(T0 + 1, "note", "no data")
    ev = j.take().events
    payload = json.loads(ev[0]["data_json"])
    assert payload["price"] == "93500.10"
    assert payload["side"] == "SELL"
    assert payload["tags"] == ["a"]
    assert payload["rec"]["commission"] == "0.37600040"
    assert ev[1]["data_json"] is None


def test_json_encoder_never_fails():
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    assert json.loads(dumps({"x": Odd(), "b": b"\x01"})) == {"x": "odd!", "b": "01"}
    assert json.dumps(Decimal("1E+2"), cls=DecimalJSONEncoder) == '"1E+2"'


# --------------------------------------------------------------------------- flush


async def test_flush_writes_everything_and_round_trips(store: Store):
    await store.start_run("r1", T0, "backtest", "ema", "{}")
    j = Journal("r1")
    record_one_of_each(j)
    j.trade(close_trade(make_trade("t1")))
    assert await j.flush(store) == 10
    assert j.pending() == 0
    assert await store.orders("r1") == [make_order("o1")]
    assert await store.algo_orders("r1") == [make_algo("a1")]
    assert await store.fills("r1") == [make_fill(1)]
    assert await store.positions("r1") == [make_position()]
    assert [s.verdict for s in await store.signals("r1")] == [Verdict.ACCEPTED]
    assert await store.trades("r1") == [close_trade(make_trade("t1"))]
    assert await store.candle_count("BTCUSDT") == 1
    assert (await store.funding("r1"))[0]["amount"] == Decimal("-0.01")
    assert (await store.events("r1"))[0]["data"] == {"loss": "-50.00"}
    assert await j.flush(store) == 0


async def test_flush_of_nothing_does_not_touch_the_store():
    class Boom:
        async def write_batch(self, batch):
            raise AssertionError("must not be called")

    assert await Journal("r1").flush(Boom()) == 0  # type: ignore[arg-type]


async def test_failed_flush_puts_records_back_in_front_and_later_flush_writes_them(store: Store):
    j = Journal("r1")
    j.event(T0, "first", "a")
    j.fill(make_fill(1))
    with pytest.raises(StoreError, match="never started"):  # run not started yet: write fails
        await j.flush(store)
    assert j.pending() == 2
    j.event(T0 + 1, "second", "b")
    j.fill(make_fill(2))
    with pytest.raises(StoreError):
        await j.flush(store)
    assert j.pending() == 4
    await store.start_run("r1", T0, "live", "ema", "{}")
    assert await j.flush(store) == 4
    assert j.pending() == 0
    assert [e["kind"] for e in await store.events("r1")] == ["first", "second"]
    assert [f.trade_id for f in await store.fills("r1")] == [1, 2]


async def test_records_made_during_a_failing_write_stay_behind_the_put_back_ones():
    class Failing:
        def __init__(self, j: Journal) -> None:
            self.j = j

        async def write_batch(self, batch):
            await asyncio.sleep(0)
            self.j.event(T0 + 1, "during", "recorded while writing")
            raise OSError("disk full")

    j = Journal("r1")
    j.event(T0, "before", "x")
    with pytest.raises(OSError):
        await j.flush(Failing(j))  # type: ignore[arg-type]
    assert [e["kind"] for e in j.take().events] == ["before", "during"]


class GatedStore:
    """A store whose write waits for the test to open a gate, then succeeds or fails."""

    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.finished = asyncio.Event()
        self.written: list[JournalBatch] = []

    async def write_batch(self, batch: JournalBatch) -> None:
        self.started.set()
        try:
            await self.gate.wait()
            if self.fail:
                raise OSError("write failed")
            self.written.append(batch)
        finally:
            self.finished.set()


@pytest.mark.parametrize("fail", [False, True])
async def test_cancelled_flush_loses_nothing(fail: bool):
    j = Journal("r1")
    j.fill(make_fill(1))
    j.fill(make_fill(2))
    s = GatedStore(fail)
    flush = asyncio.ensure_future(j.flush(s))  # type: ignore[arg-type]
    await s.started.wait()
    flush.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flush
    j.fill(make_fill(3))  # recorded while the shielded write is still running
    s.gate.set()
    await s.finished.wait()
    await asyncio.sleep(0)  # let the write's done-callbacks run
    pending = j.take()
    if fail:
        assert [f.trade_id for f in pending.fills] == [1, 2, 3]
        assert s.written == []
    else:
        assert [f.trade_id for f in pending.fills] == [3]
        assert [f.trade_id for f in s.written[0].fills] == [1, 2]


async def test_next_flush_waits_for_a_cancelled_flushs_write():
    j = Journal("r1")
    j.fill(make_fill(1))
    s = GatedStore(fail=True)
    first = asyncio.ensure_future(j.flush(s))  # type: ignore[arg-type]
    await s.started.wait()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    j.fill(make_fill(2))

    class Recording:
        def __init__(self) -> None:
            self.batches: list[JournalBatch] = []

        async def write_batch(self, batch: JournalBatch) -> None:
            self.batches.append(batch)

    rec = Recording()
    second = asyncio.ensure_future(j.flush(rec))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert not second.done()  # waiting for the first write to settle
    s.gate.set()
    assert await second == 2
    assert [f.trade_id for f in rec.batches[0].fills] == [1, 2]  # original order kept
    assert j.pending() == 0
