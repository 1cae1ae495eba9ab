"""A restart over the wire: how many round trips a position without a stop waits before its stop
is sent. The local exchange delays every request, so the requests a start sends in series arrive
in separate waves; everything that does not depend on an answer must go in the same wave."""

from __future__ import annotations

import asyncio

from engine.config import Settings
from engine.exchange.binance.endpoints import Credentials
from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET
from engine.live import run_live_session
from engine.runtime import RunPaths
from engine.state.journal import Journal
from tests.engine.test_wire import Harness, market, sample, wait_for

DELAY_S = 0.3
"""Each request is held this long by the exchange before it is processed."""


def waves(arrivals: list[tuple[float, str, str]], gap_s: float) -> list[list[str]]:
    """Requests grouped by arrival: a new wave starts after a pause of at least ``gap_s``."""
    out: list[list[str]] = []
    last = None
    for t, method, path in sorted(arrivals):
        if last is None or t - last >= gap_s:
            out.append([])
        out[-1].append(f"{method} {path}")
        last = t
    return out


async def test_a_restart_sends_a_bare_positions_stop_in_the_third_round_trip(tmp_path):
    async with Harness(sample()) as h:
        await h.advance(2)
        await h.adapter.place_order(market("outside-1"))  # a position with no stop, opened elsewhere
        await h.adapter.stop()  # only the starting engine talks to the exchange from here
        settings = Settings(symbols=["BTCUSDT"], reconcile={"external_positions": "adopt"})
        runtimes: list = []
        h.server.faults.delay_rest_s = DELAY_S
        h.server.request_log.clear()
        session = asyncio.create_task(run_live_session(
            settings, run_id="r1", paths=RunPaths.for_run(tmp_path, tmp_path / "perpdeck.db", "r1"),
            journal=Journal("r1"), endpoints=h.endpoints,
            credentials=Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET),
            install_signal_handlers=False, on_runtime=runtimes.append, ctl_socket=False, replay=True))
        try:
            await wait_for(lambda: any(m == "POST" and p == "/fapi/v1/algoOrder"
                                       for _, m, p in h.server.request_log) or session.done(), timeout_s=30)
            assert not session.done(), session.exception()
            arrivals = list(h.server.request_log)
            await wait_for(lambda: runtimes or session.done(), timeout_s=30)
        finally:
            for rt in runtimes:
                rt.request_stop()
            await asyncio.wait_for(asyncio.gather(session, return_exceptions=True), 30)
        stop_at = next(t for t, m, p in arrivals if m == "POST" and p == "/fapi/v1/algoOrder")
        before = waves([a for a in arrivals if a[0] <= stop_at], gap_s=DELAY_S * 0.6)
        # 1: clock sync beside exchangeInfo; 2: every signed read at once; 3: the stop
        assert len(before) == 3, before
        assert "POST /fapi/v1/algoOrder" in before[-1], before
        assert {"GET /fapi/v1/time", "GET /fapi/v1/exchangeInfo"} <= set(before[0]), before
        assert {"GET /fapi/v3/positionRisk", "GET /fapi/v1/openOrders", "GET /fapi/v1/openAlgoOrders",
                "GET /fapi/v1/positionSide/dual", "GET /fapi/v3/account"} <= set(before[1]), before
        algos = h.sim.open_algo_orders({"symbol": "BTCUSDT"})
        assert [a["orderType"] for a in algos].count("STOP_MARKET") == 1, [(a["orderType"], a["clientAlgoId"]) for a in algos]
