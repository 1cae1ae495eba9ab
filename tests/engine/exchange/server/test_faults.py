"""The local exchange's newer fault hooks over real HTTP / WebSocket on 127.0.0.1: fills split in
two, duplicated / delayed / reordered user-data events, stalled requests (lost, or applied with the
answer lost), the ``FAULT`` method of ``/sim``, and the protection monitor."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import requests
from binance.error import ClientError
from websockets.asyncio.client import connect

from engine.exchange.sim.server import ProtectionMonitor, SimControl, SimControlError

from .conftest import call, wait_for
from .test_ws import listen_key, quiet, recv_json


async def advance(ex, n: int = 1) -> None:
    async with await SimControl.connect(ex.ws_url) as ctl:
        for _ in range(n):
            await ctl.advance()


async def market(client: Any, cid: str, qty: str = "0.010", side: str = "BUY", **kw: Any) -> dict:
    return await call(client.new_order, symbol="BTCUSDT", side=side, type="MARKET", quantity=qty,
                      newClientOrderId=cid, newOrderRespType="RESULT", **kw)


async def collect(ws: Any, n: int, timeout: float = 2.0) -> list[dict]:
    return [await recv_json(ws, timeout) for _ in range(n)]


def kinds(events: list[dict]) -> list[str]:
    """``ORDER_TRADE_UPDATE:<x>/<X>`` / ``ACCOUNT_UPDATE`` labels, for order assertions."""
    out = []
    for e in events:
        if e["e"] == "ORDER_TRADE_UPDATE":
            out.append(f"OTU:{e['o']['c']}:{e['o']['x']}/{e['o']['X']}")
        else:
            out.append(e["e"])
    return out


# -- off by default --------------------------------------------------------------------------------


async def test_every_fault_is_off_by_default(ex, client):
    assert ex.faults.pending == 0 and not ex.faults.fired and ex.faults.fired_counts == {}
    assert ex.sim.split_fills == 0 and ex.faults.delay_rest_s == 0 and ex.faults.clock_skew_ms == 0
    await advance(ex)
    key = await listen_key(ex)
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        await market(client, "plain-1")
        got = await collect(ws, 3)
        assert kinds(got) == ["OTU:plain-1:NEW/NEW", "OTU:plain-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
        await quiet(ws)
    assert len(await call(client.get_account_trades, symbol="BTCUSDT")) == 1
    assert ex.faults.fired_counts == {}


# -- partial fills ---------------------------------------------------------------------------------


async def test_split_next_fill_books_one_market_order_as_two_fills(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.split_next_fill()
    assert ex.faults.pending == 1
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        r = await market(client, "split-1", qty="0.011")
        assert r["status"] == "FILLED" and r["executedQty"] == "0.011"  # the answer is the whole order
        got = await collect(ws, 5)
        assert kinds(got) == ["OTU:split-1:NEW/NEW", "OTU:split-1:TRADE/PARTIALLY_FILLED", "ACCOUNT_UPDATE",
                              "OTU:split-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
        first, second = got[1]["o"], got[3]["o"]
        assert (first["l"], first["z"]) == ("0.005", "0.005")
        assert (second["l"], second["z"]) == ("0.006", "0.011")
        assert first["t"] != second["t"] and first["L"] == second["L"]
        assert got[2]["a"]["P"][0]["pa"] == "0.005" and got[4]["a"]["P"][0]["pa"] == "0.011"
        await quiet(ws)
        # used up: the next order fills at once
        await market(client, "whole-1")
        assert kinds(await collect(ws, 3)) == ["OTU:whole-1:NEW/NEW", "OTU:whole-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
    trades = await call(client.get_account_trades, symbol="BTCUSDT")
    assert [t["qty"] for t in trades] == ["0.005", "0.006", "0.01"]
    assert len({t["id"] for t in trades}) == 3
    assert sum(float(t["commission"]) for t in trades[:2]) == pytest.approx(float(r["cumQuote"]) * 0.0005)
    assert ex.faults.fired_counts == {"split_fill": 1} and ex.faults.pending == 0


async def test_split_fill_too_small_to_split_is_not_used_up_and_clear_disarms(ex, client):
    await advance(ex)
    ex.faults.split_next_fill(2)
    await market(client, "tiny-1", qty="0.001")  # the step: cannot be split
    assert len(await call(client.get_account_trades, symbol="BTCUSDT")) == 1
    assert ex.sim.split_fills == 2 and ex.faults.fired_counts == {}
    ex.faults.clear()
    assert ex.sim.split_fills == 0 and ex.faults.pending == 0
    await market(client, "big-1", qty="0.010")
    assert len(await call(client.get_account_trades, symbol="BTCUSDT")) == 2


async def test_split_applies_to_a_triggered_stop_and_its_algo_finishes_once(ex, client):
    """The fill of a closePosition stop's child, split: the position goes flat over two fills."""
    await advance(ex)
    await market(client, "long-1", qty="0.010")
    await call(client.sign_request, "POST", "/fapi/v1/algoOrder",
               {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                "triggerPrice": "99000", "closePosition": "true", "clientAlgoId": "stop-1"})
    key = await listen_key(ex)
    ex.faults.split_next_fill()
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        await advance(ex, 2 * 5 + 1)  # through the BTCUSDT candle that dips to 97000
        got = []
        while not any(e["e"] == "ALGO_UPDATE" and e["o"]["X"] == "FINISHED" for e in got):
            got.append(await recv_json(ws))
    trades = [e["o"] for e in got if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "TRADE"]
    assert [(t["X"], t["l"]) for t in trades] == [("PARTIALLY_FILLED", "0.005"), ("FILLED", "0.005")]
    assert [e["o"]["X"] for e in got if e["e"] == "ALGO_UPDATE"] == ["TRIGGERING", "TRIGGERED", "FINISHED"]
    assert await call(client.get_position_risk, symbol="BTCUSDT") == []  # flat, nothing open


# -- user-data events ------------------------------------------------------------------------------


async def test_duplicate_user_events(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.duplicate_user_events(2, events="ORDER_TRADE_UPDATE")
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        await market(client, "dup-1")
        got = await collect(ws, 5)
        assert kinds(got) == ["OTU:dup-1:NEW/NEW", "OTU:dup-1:NEW/NEW", "OTU:dup-1:TRADE/FILLED",
                              "OTU:dup-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
        assert got[0] == got[1] and got[2] == got[3]
        await quiet(ws)
        # a delayed copy: the original at once, the copy after later events
        ex.faults.duplicate_user_events(1, events="ORDER_TRADE_UPDATE", after_s=0.2)
        await market(client, "dup-2")
        got = await collect(ws, 4)
        assert kinds(got) == ["OTU:dup-2:NEW/NEW", "OTU:dup-2:TRADE/FILLED", "ACCOUNT_UPDATE", "OTU:dup-2:NEW/NEW"]
    assert ex.user_event_seq == 6  # counted once, when produced
    assert ex.faults.fired_counts == {"duplicate_event": 3} and ex.faults.pending == 0


async def test_delay_user_events_lets_later_events_overtake(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.delay_user_events(1, 0.3, events=["ORDER_TRADE_UPDATE"])
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        t0 = time.monotonic()
        await market(client, "late-1")
        got = await collect(ws, 2)
        assert kinds(got) == ["OTU:late-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
        late = await recv_json(ws)
        assert kinds([late]) == ["OTU:late-1:NEW/NEW"] and time.monotonic() - t0 >= 0.3
        await quiet(ws)
    assert ex.faults.fired_counts == {"delay_event": 1}


async def test_reorder_user_events(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.reorder_user_events(2, events="ORDER_TRADE_UPDATE")
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        await market(client, "ro-1")
        got = await collect(ws, 3)
        assert kinds(got) == ["OTU:ro-1:TRADE/FILLED", "OTU:ro-1:NEW/NEW", "ACCOUNT_UPDATE"]
        await quiet(ws)
        # not enough events to complete the set: released (reversed) when the hold runs out
        ex.faults.reorder_user_events(5, max_hold_s=0.2)
        await market(client, "ro-2")
        t0 = time.monotonic()
        got = await collect(ws, 3)
        assert kinds(got) == ["ACCOUNT_UPDATE", "OTU:ro-2:TRADE/FILLED", "OTU:ro-2:NEW/NEW"]
        assert time.monotonic() - t0 >= 0.1
    assert ex.faults.pending == 0 and ex.faults.fired_counts == {"reorder_event": 5}


async def test_clear_releases_held_events_in_order(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.reorder_user_events(10, max_hold_s=60)
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        await market(client, "held-1")
        assert ex.faults.pending == 1
        ex.faults.clear()
        assert kinds(await collect(ws, 3)) == ["OTU:held-1:NEW/NEW", "OTU:held-1:TRADE/FILLED", "ACCOUNT_UPDATE"]
        assert ex.faults.pending == 0


# -- stalled requests ------------------------------------------------------------------------------


async def test_stall_next_is_lost_before_the_engine(ex, client):
    await advance(ex)
    ex.faults.stall_next(0.3, path="/fapi/v1/order")
    t0 = time.monotonic()
    with pytest.raises(requests.exceptions.ConnectionError):
        await market(client, "lost-1")
    assert time.monotonic() - t0 >= 0.3
    with pytest.raises(ClientError) as e:
        await call(client.query_order, symbol="BTCUSDT", origClientOrderId="lost-1")
    assert e.value.error_code == -2013
    assert ex.faults.fired_counts == {"stall": 1}
    assert [h[1:] for h in ex.faults.history] == [("stall", "/fapi/v1/order")]


async def test_stall_next_longer_than_the_client_timeout(ex):
    from binance.um_futures import UMFutures

    from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    await advance(ex)
    impatient = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url, timeout=0.1)
    try:
        ex.faults.stall_next(0.5)
        with pytest.raises(requests.exceptions.Timeout):
            await call(impatient.time)
    finally:
        impatient.session.close()


async def test_stall_response_next_applies_and_loses_the_answer(ex, client):
    await advance(ex)
    key = await listen_key(ex)
    ex.faults.stall_response_next(0.3)
    async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
        t0 = time.monotonic()
        task = asyncio.ensure_future(market(client, "placed-1"))
        # applied at once: its events arrive while the answer is still held
        assert kinds(await collect(ws, 3)) == ["OTU:placed-1:NEW/NEW", "OTU:placed-1:TRADE/FILLED",
                                               "ACCOUNT_UPDATE"]
        assert not task.done()
        with pytest.raises(requests.exceptions.ConnectionError):
            await task
        assert time.monotonic() - t0 >= 0.3
    q = await call(client.query_order, symbol="BTCUSDT", origClientOrderId="placed-1")
    assert q["status"] == "FILLED"
    # respond=True: the answer comes, late
    ex.faults.stall_response_next(0.2, respond=True)
    r = await market(client, "placed-2")
    assert r["status"] == "FILLED"
    assert ex.faults.fired_counts == {"stall_response": 2}


# -- FAULT on /sim ----------------------------------------------------------------------------------


async def test_fault_method_on_the_control_socket(ex, client):
    async with await SimControl.connect(ex.ws_url) as ctl:
        await ctl.advance()
        r = await ctl.fault("fail_next", n=1, status=502, path="/fapi/v1/time")
        assert r == {"value": None, "pending": 1, "fired": {}}
        with pytest.raises(Exception) as e:
            await call(client.time)
        assert getattr(e.value, "status_code", None) == 502
        assert (await ctl.fault("set", clock_skew_ms=7000))["pending"] == 0
        assert ex.faults.clock_skew_ms == 7000
        await ctl.fault("set", clock_skew_ms=0)
        await ctl.fault("split_next_fill", n=1)
        await ctl.fault("duplicate_user_events", n=1, events=["ACCOUNT_UPDATE"])
        assert ex.sim.split_fills == 1 and ex.faults.pending == 2
        r = await ctl.fault("clear")
        assert r["pending"] == 0 and r["fired"] == {"fail": 1}
        assert await ctl.fault("expire_listen_key") == {"value": None, "pending": 0, "fired": {"fail": 1}}
        for bad in (("nope", {}), ("fail_next", {"bogus": 1}), ("set", {"speed": 2}), ("_queue", {})):
            with pytest.raises(SimControlError) as e:
                await ctl.fault(bad[0], **bad[1])
            assert e.value.code == 2
        # malformed params
        await ctl._ws.send(json.dumps({"method": "FAULT", "params": ["fail_next"], "id": 77}))
        reply = json.loads(await ctl._ws.recv())
        assert reply["id"] == 77 and reply["error"]["code"] == 2


# -- protection monitor ------------------------------------------------------------------------------


async def test_protection_monitor_times_a_bare_position(ex, client):
    now = [100.0]
    mon = ProtectionMonitor(ex, clock=lambda: now[0])
    await advance(ex)
    assert mon.intervals() == []
    await market(client, "pos-1")
    assert list(mon.open) == [("BTCUSDT", "BOTH")] and mon.open[("BTCUSDT", "BOTH")].amount == "0.01"
    now[0] = 103.5
    # a take-profit is not a stop
    await call(client.sign_request, "POST", "/fapi/v1/algoOrder",
               {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "TAKE_PROFIT_MARKET",
                "triggerPrice": "110000", "closePosition": "true", "clientAlgoId": "tp-1"})
    assert ("BTCUSDT", "BOTH") in mon.open
    # a stop on the wrong side does not count either
    await call(client.sign_request, "POST", "/fapi/v1/algoOrder",
               {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY", "type": "STOP_MARKET",
                "triggerPrice": "110000", "closePosition": "true", "clientAlgoId": "wrong-1"})
    assert ("BTCUSDT", "BOTH") in mon.open
    now[0] = 104.0
    await call(client.sign_request, "POST", "/fapi/v1/algoOrder",
               {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                "triggerPrice": "90000", "closePosition": "true", "clientAlgoId": "stop-1"})
    assert mon.open == {}
    [u] = mon.closed
    assert (u.symbol, u.position_side, u.ended_by) == ("BTCUSDT", "BOTH", "stop")
    assert u.duration_s() == pytest.approx(4.0)
    assert [x.symbol for x in mon.longer_than(3.0)] == ["BTCUSDT"] and mon.longer_than(5.0) == []
    # cancelling the stop bares it again; closing the position ends the stretch as "flat"
    await call(client.sign_request, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"})
    assert ("BTCUSDT", "BOTH") in mon.open
    now[0] = 110.0
    await market(client, "close-1", side="SELL", reduceOnly="true")
    assert mon.open == {} and mon.closed[-1].ended_by == "flat"
    assert mon.closed[-1].duration_s() == pytest.approx(6.0)
    # still bare when stopped: closed as "end"
    await market(client, "pos-2")
    now[0] = 111.0
    mon.stop()
    assert mon.closed[-1].ended_by == "end" and mon.closed[-1].duration_s() == pytest.approx(1.0)
    n = mon.checks
    await market(client, "pos-3")  # detached: no more checks
    assert mon.checks == n


async def test_protection_monitor_sees_positions_present_when_attached(ex, client):
    await advance(ex)
    await market(client, "pre-1")
    mon = ProtectionMonitor(ex)
    assert list(mon.open) == [("BTCUSDT", "BOTH")]
    await wait_for(lambda: mon.clock() - mon.open[("BTCUSDT", "BOTH")].start_s > 0.01)
    assert mon.longer_than(0.005)
    mon.stop()


async def test_requests_in_flight_and_held_events_are_visible(ex, client):
    """What a harness waits on before it compares state: stalled requests and held-back events."""
    await advance(ex)
    await listen_key(ex)
    assert ex.rest_in_flight == 0 and ex.held_user_events == 0
    ex.faults.stall_response_next(0.3, respond=True)
    ex.faults.delay_user_events(1, 0.5)
    task = asyncio.ensure_future(market(client, "busy-1"))
    await wait_for(lambda: ex.rest_in_flight == 1 and ex.held_user_events == 1)
    assert (await task)["status"] == "FILLED"
    assert ex.rest_in_flight == 0
    await wait_for(lambda: ex.held_user_events == 0)
    ex.faults.reorder_user_events(5, max_hold_s=60)
    await market(client, "busy-2")
    assert ex.held_user_events == 3  # NEW, TRADE, ACCOUNT_UPDATE collected, not yet released
    ex.faults.clear()
    assert ex.held_user_events == 0


async def test_a_hung_order_answer_is_resolved_by_client_id_long_before_the_general_timeout(ex, client):
    """The exchange applied the stop but holds its answer: after ``order_timeout_s`` (not the 10 s
    general timeout) the client asks by clientAlgoId and gets the placed order; nothing is sent twice."""
    from engine.exchange.binance.endpoints import Credentials, Endpoints
    from engine.exchange.binance.rest import BinanceRest
    from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET

    await advance(ex)
    await market(client, "long-1")
    rest = BinanceRest(Endpoints.local(ex.rest_url, ex.ws_url), Credentials(DEFAULT_API_KEY, secret=DEFAULT_API_SECRET),
                       order_timeout_s=0.3)
    try:
        await rest.sync_time()
        ex.faults.stall_response_next(5.0)
        t0 = time.monotonic()
        r = await rest.new_algo_order({"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
                                       "type": "STOP_MARKET", "triggerPrice": "90000", "closePosition": "true",
                                       "clientAlgoId": "stop-1"})
        assert time.monotonic() - t0 < 3.0 and r["clientAlgoId"] == "stop-1"
        stops = [a for a in ex.sim.open_algo_orders({}) if a["clientAlgoId"] == "stop-1"]
        assert len(stops) == 1
    finally:
        await rest.aclose()
