"""The live runtime sends each symbol's commands in order, but a market close the engine decided
on never waits behind a stalled stop or cancel of the same symbol: it has a lane of its own."""

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
    """Every conditional order hangs until ``release`` is set; everything else answers at once.
    ``sent`` records the order in which requests reached the exchange."""

    def __init__(self):
        self.release = asyncio.Event()
        self.sent: list[str] = []

    def stream_status(self):
        return {}

    async def place_algo_order(self, req):
        self.sent.append(req.client_algo_id)
        await self.release.wait()
        return 1

    async def place_order(self, req):
        self.sent.append(req.client_order_id)
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
