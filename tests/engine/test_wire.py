"""The real Binance adapter against our local Binance-compatible server, over real sockets on
127.0.0.1: orders and algo orders, their events, faults (429, -1021, 503 unknown status, dropped
streams), and the whole sim run over the wire matching the in-process run."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from engine.backtest import build_sim_exchange, build_sim_run, run_sync, summarize
from engine.config import Settings
from engine.data import KlineFile, load_klines, merged_candles, sample_kline_files
from engine.events import ExAlgoUpdate, ExOrderUpdate
from engine.exchange.binance.adapter import BinanceAdapter
from engine.exchange.binance.endpoints import Credentials, Endpoints
from engine.exchange.binance.rest import BinanceRest
from engine.exchange.errors import ExchangeError
from engine.exchange.sim.matching import load_default_rules
from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, LocalExchange, SimControl
from engine.live import run_sim_over_wire
from engine.model import (
    AlgoOrderRequest,
    AlgoStatus,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
)
from engine.runtime import RunPaths
from engine.state.journal import Journal

DAY = 1440


def sample(symbols=("BTCUSDT",), days=2):
    files = [load_klines(p) for p in sample_kline_files(list(symbols))]
    return [KlineFile(f.symbol, f.path, f.candles[: days * DAY]) for f in files]


class Harness:
    """A local exchange replaying real candles, and the real adapter connected to it."""

    def __init__(self, files, **adapter_kw):
        self.settings = Settings(symbols=[f.symbol for f in files])
        self.candles = merged_candles(files)
        self.sim = build_sim_exchange(self.settings, load_default_rules(), self.candles, {})
        self.server = LocalExchange(self.sim, self.candles, speed=0)
        self.closed: list = []
        self.user: list = []
        self.adapter_kw = adapter_kw

    async def __aenter__(self):
        await self.server.start()
        self.endpoints = Endpoints.local(self.server.rest_url, self.server.ws_url)
        self.rest = BinanceRest(self.endpoints, Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET))
        self.adapter = BinanceAdapter(
            self.rest, self.endpoints, symbols=self.settings.symbols, ws_max_backoff_s=0.05,
            on_candle=self.closed.append, on_mark=lambda m: None, on_user_event=self.user.append,
            backoff=lambda attempt: 0.0, **self.adapter_kw)
        await self.adapter.start()
        await self.adapter.start_streams()
        self.control = await SimControl.connect(self.server.ws_url)
        return self

    async def __aexit__(self, *exc):
        await self.control.close()
        await self.adapter.stop()
        await self.server.stop()

    async def advance(self, n=1):
        r = None
        for _ in range(n):
            r = await self.control.advance()
            await self.adapter.wait_user_events(r["userEventSeq"])
        await wait_for(lambda: len(self.closed) >= self.server.replay_position)
        return r


async def wait_for(cond, timeout_s=10.0):
    """Wait for a condition the sockets will make true (bounded; not a sleep for time to pass)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def market(coid, side=Side.BUY, qty="0.010"):
    return OrderRequest(coid, "BTCUSDT", side, OrderType.MARKET, Decimal(qty), OrderPurpose.ENTRY)


def stop(caid, trigger, side=Side.SELL, otype=OrderType.STOP_MARKET, purpose=OrderPurpose.STOP_LOSS):
    return AlgoOrderRequest(caid, "BTCUSDT", side, otype, Decimal(trigger), purpose)


async def test_entry_with_stop_and_take_profit_and_their_events():
    async with Harness(sample()) as h:
        await h.advance(3)
        last = h.closed[-1].close
        oid = await h.adapter.place_order(market("t-entry"))
        sl = await h.adapter.place_algo_order(stop("t-sl", str((last * Decimal("0.97")).quantize(Decimal("0.1")))))
        tp = await h.adapter.place_algo_order(stop("t-tp", str((last * Decimal("1.05")).quantize(Decimal("0.1"))),
                                                   otype=OrderType.TAKE_PROFIT_MARKET, purpose=OrderPurpose.TAKE_PROFIT))
        assert oid > 0 and sl > 0 and tp > 0
        status = await h.control.status()
        await h.adapter.wait_user_events(status["userEventSeq"])
        fills = [e for e in h.user if isinstance(e, ExOrderUpdate) and e.fill is not None]
        assert len(fills) == 1 and fills[0].client_order_id == "t-entry" and fills[0].status is OrderStatus.FILLED
        algos = [e for e in h.user if isinstance(e, ExAlgoUpdate)]
        assert {(a.client_algo_id, a.status) for a in algos} >= {("t-sl", AlgoStatus.NEW), ("t-tp", AlgoStatus.NEW)}
        q = await h.rest.query_order("BTCUSDT", "t-entry")  # query by our client id
        assert q["status"] == "FILLED" and int(q["orderId"]) == oid and q["clientOrderId"] == "t-entry"
        qa = await h.rest.query_algo_order("t-sl")
        assert qa["algoStatus"] == "NEW" and int(qa["algoId"]) == sl and qa["orderType"] == "STOP_MARKET"
        positions = [p for p in await h.adapter.positions() if p.amount != 0]
        assert len(positions) == 1 and positions[0].amount == Decimal("0.010")
        open_algos = await h.adapter.open_algo_orders()
        assert {a["clientAlgoId"] for a in open_algos} == {"t-sl", "t-tp"}
        # cancel the take-profit; the stop stays
        await h.adapter.cancel_algo_order("BTCUSDT", "t-tp")
        assert {a["clientAlgoId"] for a in await h.adapter.open_algo_orders()} == {"t-sl"}
        with pytest.raises(ExchangeError) as err:
            await h.adapter.cancel_algo_order("BTCUSDT", "t-tp")
        assert err.value.code in (-2011, -2013)


async def test_stale_entry_orders_from_an_earlier_run_are_cancelled_before_trading():
    from engine.live import cancel_stale_entries
    from engine.orders.ids import client_id

    async with Harness(sample()) as h:
        await h.advance(3)
        below = (h.closed[-1].close * Decimal("0.97")).quantize(Decimal("0.1"))
        ours = client_id("earlier-run", "sig-1", "entry")
        for coid in (ours, "manual-by-hand"):
            await h.adapter.place_order(OrderRequest(coid, "BTCUSDT", Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                                                     OrderPurpose.ENTRY, price=below, time_in_force="GTC"))
        # a young entry is left alone; past the TTL it goes, and only ours
        assert await cancel_stale_entries(h.adapter, ttl_ms=10 ** 15) == []
        assert await cancel_stale_entries(h.adapter, ttl_ms=0) == [("BTCUSDT", ours)]
        assert [o["clientOrderId"] for o in await h.adapter.open_orders()] == ["manual-by-hand"]


async def test_reconnect_after_a_server_side_drop_loses_and_doubles_no_candle():
    async with Harness(sample(("BTCUSDT", "ETHUSDT"))) as h:
        await h.advance(10)
        h.server.faults.drop_streams()
        for _ in range(20):  # candles replayed while the client is (re)connecting
            r = await h.control.advance()
        await wait_for(lambda: len(h.closed) >= h.server.replay_position)
        keys = [(c.symbol, c.open_time_ms) for c in h.closed]
        assert len(keys) == len(set(keys)) == h.server.replay_position
        assert keys == [(c.symbol, c.open_time_ms) for c in h.candles[: len(keys)]] or sorted(keys) == sorted(
            (c.symbol, c.open_time_ms) for c in h.candles[: len(keys)])
        assert r["finished"] is False
        for sym in ("BTCUSDT", "ETHUSDT"):  # per symbol: strictly in time order
            times = [t for s, t in keys if s == sym]
            assert times == sorted(times)


async def test_429_retry_after_is_honoured_and_the_request_then_succeeds():
    async with Harness(sample()) as h:
        await h.advance(2)
        h.server.faults.rate_limit_next(1)
        oid = await h.adapter.place_order(market("t-429"))
        assert oid > 0
        assert len([f for f in h.sim.all_fills() if f["orderId"] == oid]) == 1


async def test_clock_skew_gives_1021_then_resync_and_one_retry_succeeds():
    async with Harness(sample()) as h:
        await h.advance(2)
        h.server.faults.clock_skew_ms = 30_000
        oid = await h.adapter.place_order(market("t-skew"))
        assert oid > 0 and len(h.sim.all_fills()) == 1


async def test_503_unknown_status_produces_exactly_one_order():
    async with Harness(sample()) as h:
        await h.advance(2)
        h.server.faults.unknown_next(path="/fapi/v1/order")
        oid = await h.adapter.place_order(market("t-503"))
        orders = [f for f in h.sim.all_fills() if f["orderId"] == oid]
        assert len(orders) == 1 and len(h.sim.all_fills()) == 1
        h.server.faults.unknown_next(path="/fapi/v1/algoOrder")
        last = h.closed[-1].close
        aid = await h.adapter.place_algo_order(stop("t-503-sl", str((last * Decimal("0.9")).quantize(Decimal("0.1")))))
        assert [a["algoId"] for a in await h.adapter.open_algo_orders()] == [aid]


def test_sim_over_the_wire_matches_the_in_process_run(tmp_path):
    files = sample(("BTCUSDT", "ETHUSDT", "SOLUSDT"), days=3)
    settings = Settings(state_dir=tmp_path, symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT"])
    local = build_sim_run(settings, run_id="local", files=files, funding={}, journal=Journal("local"))
    run_sync(local)
    expected = summarize(local)
    paths = RunPaths.for_run(tmp_path, settings.db_path, "wire")
    summary, run = asyncio.run(run_sim_over_wire(settings, run_id="wire", paths=paths, journal=Journal("wire"),
                                                 files=files, funding={}, install_signal_handlers=False))
    volatile = {"run_id", "database", "log_file", "heartbeat", "stopped_early"}
    assert expected["trades"] > 0
    assert {k: v for k, v in summary.items() if k not in volatile} == {
        k: v for k, v in expected.items() if k not in volatile}
    assert run.sim.wallet_balance() == local.sim.wallet_balance()
