"""The live runtime sends each symbol's commands in order, but a market close the engine decided
on never waits behind a stalled stop or cancel of the same symbol, and a stop never waits behind
an entry whose answer has stalled: each has a lane of its own."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from engine.backtest import build_sim_run
from engine.config import Settings
from engine.data import KlineFile
from engine.live import LiveRuntime
from engine.model import AlgoOrderRequest, OrderPurpose, OrderRequest, OrderType, Side
from engine.orders.manager import CancelAlgoOrder, SubmitAlgoOrder, SubmitOrder
from engine.runtime import RunPaths
from tests.engine.orders.scenario import flat


class StallingAdapter:
    """Every conditional order hangs until ``release`` is set, entries (with ``hang_entries``)
    until ``release_entries`` is; everything else answers at once.
    ``sent`` records the order in which requests reached the exchange."""

    def __init__(self):
        self.release = asyncio.Event()
        self.release_entries = asyncio.Event()
        self.hang_entries = False
        self.sent: list[str] = []

    def stream_status(self):
        return {}

    async def place_algo_order(self, req):
        self.sent.append(req.client_algo_id)
        await self.release.wait()
        return 1

    async def place_order(self, req):
        self.sent.append(req.client_order_id)
        if req.purpose is OrderPurpose.ENTRY and self.hang_entries:
            await self.release_entries.wait()
        return 2

    async def cancel_algo_order(self, symbol, caid):
        self.sent.append("cancel " + caid)
        return None


def runtime(tmp_path: Path):
    s = Settings(symbols=["BTCUSDT"])
    run = build_sim_run(s, run_id="l", files=[KlineFile("BTCUSDT", Path("x"), tuple(flat(3)))], funding={})
    ad = StallingAdapter()
    return LiveRuntime(run, ad, None, RunPaths.for_run(tmp_path, tmp_path / "db", "l")), ad


def stop(caid: str) -> SubmitAlgoOrder:
    return SubmitAlgoOrder(AlgoOrderRequest(caid, "BTCUSDT", Side.SELL, OrderType.STOP_MARKET, Decimal(90_000),
                                            OrderPurpose.STOP_LOSS))


def market(coid: str, purpose: OrderPurpose) -> SubmitOrder:
    return SubmitOrder(OrderRequest(coid, "BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"), purpose,
                                    reduce_only=True))


async def test_a_close_goes_out_while_a_stop_of_the_same_symbol_hangs(tmp_path):
    rt, ad = runtime(tmp_path)
    om = rt.engine.orders
    om.outbox += [stop("s1"), CancelAlgoOrder("BTCUSDT", "t1"), market("x1", OrderPurpose.EMERGENCY_CLOSE)]
    rt._kick()
    for _ in range(20):  # let the tasks run (no wall-clock sleeping: each turn is one loop pass)
        await asyncio.sleep(0)
    assert ad.sent == ["s1", "x1"]  # the close went out; the cancel waits for the stop, in order
    assert rt._busy_symbols() == {"BTCUSDT"}
    ad.release.set()
    await asyncio.wait_for(rt._idle.wait(), 5)
    assert ad.sent == ["s1", "x1", "cancel t1"]
    assert rt._busy_symbols() == set()


async def test_an_entry_still_waits_behind_the_stop_of_its_symbol(tmp_path):
    rt, ad = runtime(tmp_path)
    rt.engine.orders.outbox += [stop("s1"), market("e1", OrderPurpose.ENTRY)]
    rt._kick()
    for _ in range(20):
        await asyncio.sleep(0)
    assert ad.sent == ["s1"]
    ad.release.set()
    await asyncio.wait_for(rt._idle.wait(), 5)
    assert ad.sent == ["s1", "e1"]


async def test_a_stop_goes_out_while_the_post_of_its_entry_hangs(tmp_path):
    """The entry was applied but its answer stalls; the fill is known from the stream, so the stop
    must go out now, not after the entry's request times out."""
    rt, ad = runtime(tmp_path)
    ad.hang_entries = True
    ad.release.set()  # conditional orders answer at once here
    rt.engine.orders.outbox.append(market("e1", OrderPurpose.ENTRY))
    rt._kick()
    for _ in range(20):
        await asyncio.sleep(0)
    assert ad.sent == ["e1"]
    rt.engine.orders.outbox += [stop("s1"), SubmitOrder(OrderRequest("tp1", "BTCUSDT", Side.SELL, OrderType.LIMIT,
                                                                     Decimal("0.01"), OrderPurpose.TAKE_PROFIT,
                                                                     price=Decimal(110_000), reduce_only=True))]
    rt._kick()
    for _ in range(20):
        await asyncio.sleep(0)
    assert ad.sent == ["e1", "s1", "tp1"]  # protection went out while the entry still hangs
    assert rt._busy_symbols() == {"BTCUSDT"}
    ad.release_entries.set()
    await asyncio.wait_for(rt._idle.wait(), 5)
    assert rt._busy_symbols() == set()


async def test_a_second_entry_waits_until_the_stop_placed_meanwhile_is_answered(tmp_path):
    rt, ad = runtime(tmp_path)
    rt.engine.orders.outbox += [stop("s1")]
    rt._kick()
    for _ in range(5):
        await asyncio.sleep(0)
    rt.engine.orders.outbox += [market("e2", OrderPurpose.ENTRY), stop("s2")]
    rt._kick()
    for _ in range(20):
        await asyncio.sleep(0)
    assert ad.sent == ["s1"]  # s2 queues behind s1, e2 behind both
    ad.release.set()
    await asyncio.wait_for(rt._idle.wait(), 5)
    assert ad.sent == ["s1", "s2", "e2"]
