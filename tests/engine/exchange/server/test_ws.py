"""WebSocket side of the local exchange over raw ``websockets`` clients: routes, subscription protocol,
user data, lockstep ordering, paced replay and stream faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from binance.um_futures import UMFutures
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from engine.exchange.sim.server import (
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    LocalExchange,
    RateLimits,
    SimControl,
    SimControlError,
)

from .conftest import CRASH_MIN, N_MIN, T0, call, make_sim, wait_for


async def recv_json(ws: Any, timeout: float = 2.0) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def request(ws: Any, method: str, params: Any = None, rid: int = 1) -> Any:
    msg: dict[str, Any] = {"method": method, "id": rid}
    if params is not None:
        msg["params"] = params
    await ws.send(json.dumps(msg))
    return await recv_json(ws)


async def quiet(ws: Any, rid: int = 999) -> None:
    """Prove nothing was queued for ``ws``: the next frame is the reply to a LIST_SUBSCRIPTIONS sent now
    (the server answers in order, after anything pushed before)."""
    await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": rid}))
    msg = await recv_json(ws)
    assert msg.get("id") == rid, f"unexpected frame before the reply: {msg}"


async def listen_key(ex: LocalExchange) -> str:
    c = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
    try:
        return (await call(c.new_listen_key))["listenKey"]
    finally:
        c.session.close()


async def test_subscription_protocol_replies(ex):
    ex.limits.ws_max_incoming_per_s = 100  # this test talks fast
    async with connect(ex.ws_url + "/market/ws") as ws:
        assert await request(ws, "SUBSCRIBE", ["btcusdt@kline_1m", "btcusdt@markPrice@1s"], 1) == \
            {"result": None, "id": 1}
        assert await request(ws, "LIST_SUBSCRIPTIONS", rid=3) == \
            {"result": ["btcusdt@kline_1m", "btcusdt@markPrice@1s"], "id": 3}
        assert await request(ws, "UNSUBSCRIBE", ["btcusdt@markPrice@1s"], 312) == {"result": None, "id": 312}
        assert await request(ws, "LIST_SUBSCRIPTIONS", rid=4) == {"result": ["btcusdt@kline_1m"], "id": 4}
        assert await request(ws, "GET_PROPERTY", ["combined"], 2) == {"result": False, "id": 2}
        assert await request(ws, "SET_PROPERTY", ["combined", True], 5) == {"result": None, "id": 5}
        assert await request(ws, "GET_PROPERTY", ["combined"], 6) == {"result": True, "id": 6}
        # error replies
        assert await request(ws, "SET_PROPERTY", ["combined", "yes"], 7) == \
            {"error": {"code": 1, "msg": "Invalid value type: expected Boolean"}, "id": 7}
        assert await request(ws, "GET_PROPERTY", ["speed"], 8) == \
            {"error": {"code": 0, "msg": "Unknown property"}, "id": 8}
        r = await request(ws, "SUBSCRIBE", ["btcusdt@kline_1m"], -1)
        assert r["error"]["code"] == 2 and "unsigned integer" in r["error"]["msg"]
        r = await request(ws, "PING", None, 9)
        assert r["error"]["code"] == 2 and r["id"] == 9
        r = await request(ws, "SUBSCRIBE", ["BTCUSDT@kline_1m"], 10)  # symbols are lowercase
        assert r == {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": 10}
        await ws.send("{not json")
        r = await recv_json(ws)
        assert r["error"]["code"] == 3 and r["id"] is None
    async with connect(ex.ws_url + "/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_1m") as ws:
        assert await request(ws, "GET_PROPERTY", ["combined"], 1) == {"result": True, "id": 1}
        assert await request(ws, "LIST_SUBSCRIPTIONS", rid=2) == \
            {"result": ["btcusdt@kline_1m", "ethusdt@kline_1m"], "id": 2}


async def test_market_streams_raw_and_combined_and_wrong_routes_never_deliver(ex):
    k = "btcusdt@kline_1m"
    async with connect(f"{ex.ws_url}/market/ws/{k}/btcusdt@markPrice") as raw_ws, \
            connect(f"{ex.ws_url}/market/stream?streams={k}") as comb, \
            connect(f"{ex.ws_url}/public/ws/{k}") as public, \
            connect(f"{ex.ws_url}/ws") as legacy, \
            connect(f"{ex.ws_url}/stream") as legacy_comb:
        assert await request(legacy, "SUBSCRIBE", [k, "btcusdt@markPrice"]) == {"result": None, "id": 1}
        assert await request(legacy_comb, "SUBSCRIBE", [k]) == {"result": None, "id": 1}
        async with SimControl(await _ctl(ex)) as ctl:
            r = await ctl.advance()
        assert r["symbol"] == "BTCUSDT" and r["openTime"] == T0 and r["remaining"] == 2 * N_MIN - 1
        opening = await recv_json(raw_ws)
        closing = await recv_json(raw_ws)
        mark = await recv_json(raw_ws)
        assert opening["e"] == "kline" and opening["k"]["x"] is False
        assert opening["k"]["o"] == opening["k"]["h"] == opening["k"]["l"] == opening["k"]["c"] == "100000"
        assert closing["k"]["x"] is True and closing["E"] == T0 + 59_999
        assert (closing["k"]["o"], closing["k"]["h"], closing["k"]["l"], closing["k"]["c"], closing["k"]["v"]) == \
            ("100000", "100020", "99980", "100010", "12.5")
        assert mark["e"] == "markPriceUpdate" and mark["p"] == "100010" and mark["r"] == "0.0001"
        assert mark["T"] == T0 + 8 * 3600 * 1000 and mark["E"] == T0 + 59_999
        w1, w2 = await recv_json(comb), await recv_json(comb)
        assert w1["stream"] == k and w1["data"]["k"]["x"] is False and w2["data"]["k"]["x"] is True
        for ws in (public, legacy, legacy_comb):  # acknowledged, never delivered
            await quiet(ws)


async def _ctl(ex: LocalExchange) -> Any:
    return (await SimControl.connect(ex.ws_url))._ws


async def test_lockstep_advance_pushes_user_events_then_market_then_replies(ex):
    client = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
    key = await listen_key(ex)
    seen: list[dict] = []
    ctl = await SimControl.connect(ex.ws_url)
    try:
        async with connect(f"{ex.ws_url}/private/ws/{key}") as priv, \
                connect(f"{ex.ws_url}/market/stream?streams=btcusdt@kline_1m") as market:
            for _ in range(2):  # BTCUSDT and ETHUSDT of the first minute
                await ctl.advance()
            await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            await call(client.sign_request, "POST", "/fapi/v1/algoOrder", {
                "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
                "triggerPrice": "98000", "closePosition": "true", "clientAlgoId": "stop-1"})
            status = await ctl.status()
            while len(seen) < status["userEventSeq"]:
                seen.append(await recv_json(priv))
            assert [e["e"] for e in seen] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE",
                                              "ALGO_UPDATE"]
            while (await recv_json(market))["data"]["k"]["t"] < T0:
                pass
            await quiet(priv, 100)
            # step up to (not including) the crash candle: nothing triggers
            while True:
                st = await ctl.status()
                nxt = ex.tape.peek()
                if nxt.symbol == "BTCUSDT" and nxt.open_time_ms == T0 + CRASH_MIN * 60_000:
                    break
                await ctl.advance()
            assert (await ctl.status())["userEventSeq"] == status["userEventSeq"]
            await quiet(priv, 101)
            # drain the market frames queued so far
            while True:
                m = await recv_json(market)
                if m["data"]["k"]["t"] == T0 + (CRASH_MIN - 1) * 60_000 and m["data"]["k"]["x"]:
                    break
            r = await ctl.advance()  # the stop triggers inside this candle
            assert r["symbol"] == "BTCUSDT" and r["openTime"] == T0 + CRASH_MIN * 60_000
            assert r["userEventSeq"] > st["userEventSeq"]
            # everything was written before the reply: already there, no waiting for more candles
            new = [await recv_json(priv, 1.0) for _ in range(r["userEventSeq"] - st["userEventSeq"])]
            algo = [(e["o"]["X"]) for e in new if e["e"] == "ALGO_UPDATE"]
            assert algo == ["TRIGGERING", "TRIGGERED", "FINISHED"]
            fills = [e["o"] for e in new if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["X"] == "FILLED"]
            assert len(fills) == 1 and fills[0]["S"] == "SELL" and fills[0]["z"] == "0.01"
            assert all(e["E"] <= T0 + CRASH_MIN * 60_000 + 59_999 for e in new)
            opening = await recv_json(market, 1.0)
            closing = await recv_json(market, 1.0)
            assert opening["data"]["k"]["x"] is False and closing["data"]["k"]["x"] is True
            assert closing["data"]["k"]["t"] == T0 + CRASH_MIN * 60_000 and closing["data"]["k"]["l"] == "97000"
            await quiet(priv, 102)
            assert ex.user_event_seq == r["userEventSeq"] == len(seen) + len(new)
    finally:
        await ctl.close()
        client.session.close()


async def test_advance_until_finished_and_status(ex):
    async with await SimControl.connect(ex.ws_url) as ctl:
        s = await ctl.status()
        assert s == {"userEventSeq": 0, "replayTimeMs": T0, "remaining": 2 * N_MIN, "finished": False}
        results = []
        while not (r := await ctl.advance())["finished"]:
            results.append(r)
        assert len(results) == 2 * N_MIN  # every candle seen, then finished
        assert results[-1]["remaining"] == 0 and results[-1]["symbol"] == "ETHUSDT"
        assert results[-1]["openTime"] == T0 + (N_MIN - 1) * 60_000
        assert r == {"finished": True, "symbol": None, "openTime": None, "userEventSeq": 0, "remaining": 0}
        again = await ctl.advance()
        assert again == {"finished": True, "symbol": None, "openTime": None, "userEventSeq": 0, "remaining": 0}
        assert ex.replay_finished and ex.replay_position == 2 * N_MIN
        assert (await ctl.status())["replayTimeMs"] == T0 + N_MIN * 60_000 - 1


async def test_private_routes_filters_and_subscribe(ex):
    key = await listen_key(ex)
    client = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
    try:
        async with await SimControl.connect(ex.ws_url) as ctl:
            await ctl.advance()
        async with connect(f"{ex.ws_url}/private/ws?listenKey={key}&events=ACCOUNT_UPDATE") as only_acc, \
                connect(f"{ex.ws_url}/private/stream?listenKey={key}") as comb, \
                connect(f"{ex.ws_url}/private/ws") as sub, \
                connect(f"{ex.ws_url}/market/ws") as wrong:
            assert await request(sub, "SUBSCRIBE", [key]) == {"result": None, "id": 1}
            assert await request(wrong, "SUBSCRIBE", [key]) == {"result": None, "id": 1}  # acknowledged only
            await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            acc = await recv_json(only_acc)
            assert acc["e"] == "ACCOUNT_UPDATE"
            await quiet(only_acc)
            got = [await recv_json(comb) for _ in range(3)]
            assert [g["stream"] for g in got] == [key] * 3
            assert [g["data"]["e"] for g in got] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
            assert [(await recv_json(sub))["e"] for _ in range(3)] == [g["data"]["e"] for g in got]
            await quiet(wrong)
    finally:
        client.session.close()


async def test_event_sequence_counts_stream_events_with_or_without_a_socket(ex):
    client = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
    try:
        async with await SimControl.connect(ex.ws_url) as ctl:
            await ctl.advance()
            await call(client.change_leverage, symbol="BTCUSDT", leverage=7)  # no user-data stream yet
            assert ex.user_event_total == 1 and (await ctl.status())["userEventSeq"] == 0
            key = await listen_key(ex)
            await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            assert (await ctl.status())["userEventSeq"] == 3  # counted although no socket is subscribed
            async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
                await wait_for(lambda: len(ex._hub.clients) == 1)
                await call(client.change_leverage, symbol="BTCUSDT", leverage=8)
                st = await ctl.status()
                assert st["userEventSeq"] == 4 and ex.user_event_total == 5
                assert (await recv_json(ws))["e"] == "ACCOUNT_CONFIG_UPDATE"
    finally:
        client.session.close()


async def test_unknown_listen_key_closes(ex):
    async with connect(f"{ex.ws_url}/private/ws/{'x' * 64}") as ws:
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(ws.recv(), 2)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1008
    async with connect(f"{ex.ws_url}/private/ws") as ws:
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["y" * 64], "id": 1}))
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 2)


async def test_listen_key_expired_injected_and_by_ttl(candles):
    async with LocalExchange(make_sim(candles), candles, listen_key_ttl_s=3600) as ex:
        key = await listen_key(ex)
        client = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
        async with connect(f"{ex.ws_url}/private/ws/{key}") as all_ev, \
                connect(f"{ex.ws_url}/private/ws?listenKey={key}&events=ORDER_TRADE_UPDATE") as filtered:
            await call(client.renew_listen_key, key)
            assert ex.faults.expire_listen_key() == key
            msg = await recv_json(all_ev)
            assert msg == {"e": "listenKeyExpired", "E": str(T0), "listenKey": key}
            await quiet(filtered)  # not in its allow-list
            async with await SimControl.connect(ex.ws_url) as ctl:
                await ctl.advance()
            await call(client.new_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010")
            # no stream exists any more: neither delivered nor counted on the stream's sequence
            assert ex.user_event_seq == 0 and ex.user_event_total == 3
            await quiet(all_ev)
            await quiet(filtered)
            with pytest.raises(Exception) as e:
                await call(client.renew_listen_key, key)
            assert getattr(e.value, "error_code", None) == -1125
            assert (await call(client.new_listen_key))["listenKey"] != key
        client.session.close()
    async with LocalExchange(make_sim(candles), candles, listen_key_ttl_s=0.2) as ex:
        key = await listen_key(ex)
        async with connect(f"{ex.ws_url}/private/ws/{key}") as ws:
            msg = await recv_json(ws, 5.0)  # bounded wait for the TTL to run out
            assert msg["e"] == "listenKeyExpired" and msg["listenKey"] == key and isinstance(msg["E"], str)
        assert ex.listen_key is None


async def test_drop_streams_closes_market_and_private_but_not_control(ex):
    key = await listen_key(ex)
    ctl = await SimControl.connect(ex.ws_url)
    try:
        m = await connect(f"{ex.ws_url}/market/ws/btcusdt@kline_1m")
        p = await connect(f"{ex.ws_url}/private/ws/{key}")
        await wait_for(lambda: len(ex._hub.clients) == 2)
        assert ex.faults.drop_streams() == 2
        for ws in (m, p):
            with pytest.raises(ConnectionClosed) as e:
                await asyncio.wait_for(ws.recv(), 2)
            assert e.value.rcvd is None  # abrupt: no close frame (1006)
        m = await connect(f"{ex.ws_url}/market/ws/btcusdt@kline_1m")  # clients reconnect
        p = await connect(f"{ex.ws_url}/private/ws/{key}")
        await wait_for(lambda: len(ex._hub.clients) == 2)
        assert ex.faults.drop_streams("/private", code=1011) == 1
        with pytest.raises(ConnectionClosed) as e:
            await asyncio.wait_for(p.recv(), 2)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1011
        assert (await ctl.advance())["symbol"] == "BTCUSDT"
        assert (await recv_json(m))["e"] == "kline"
        await m.close()
    finally:
        await ctl.close()


async def test_stream_count_and_message_rate_limits(candles):
    async with LocalExchange(make_sim(candles), candles) as ex:
        names = [f"s{i}usdt@kline_1m" for i in range(1025)]
        async with connect(f"{ex.ws_url}/market/ws") as ws:
            assert await request(ws, "SUBSCRIBE", names[:1000], 1) == {"result": None, "id": 1}
            assert await request(ws, "SUBSCRIBE", names[1000:1024], 2) == {"result": None, "id": 2}
            r = await request(ws, "SUBSCRIBE", names[1024:], 3)
            assert r["error"]["code"] == 2 and "1024" in r["error"]["msg"]
            assert len((await request(ws, "LIST_SUBSCRIPTIONS", rid=4))["result"]) == 1024
        async with connect(f"{ex.ws_url}/market/ws") as ws:
            for i in range(11):
                await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
            with pytest.raises(ConnectionClosed) as e:
                while True:
                    await asyncio.wait_for(ws.recv(), 2)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1008
    async with LocalExchange(make_sim(candles), candles, limits=RateLimits(ws_max_streams=2)) as ex:
        with pytest.raises(InvalidStatus) as e:
            await connect(f"{ex.ws_url}/market/stream?streams=a@kline_1m/b@kline_1m/c@kline_1m")
        assert e.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as e:
            await connect(f"{ex.ws_url}/nowhere")
        assert e.value.response.status_code == 404


async def test_paced_replay_advances_by_itself(candles):
    # 60,000x: one minute of data per millisecond, so the 20 minutes take >= 20 ms; bounded wait
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with LocalExchange(make_sim(candles), candles, speed=60_000) as ex:
        async with connect(f"{ex.ws_url}/market/ws/ethusdt@kline_1m", max_queue=None) as ws:
            await wait_for(lambda: ex.replay_finished, 10.0)
            assert loop.time() - t0 >= N_MIN * 0.001
            assert ex.replay_position == 2 * N_MIN
            frames = []
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 7}))
            while "id" not in (m := await recv_json(ws)):
                frames.append((m["k"]["t"], m["k"]["x"]))
            expected = [(T0 + i * 60_000, x) for i in range(N_MIN) for x in (False, True)]
            assert frames == expected[len(expected) - len(frames):]  # whatever came after we subscribed
            async with await SimControl.connect(ex.ws_url) as ctl:
                with pytest.raises(SimControlError):
                    await ctl.advance()
                assert (await ctl.status())["finished"] is True
        client = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
        rows = await call(client.klines, "ETHUSDT", "1m", limit=1000)
        assert len(rows) == N_MIN
        client.session.close()


async def test_server_pings(candles):
    async with LocalExchange(make_sim(candles), candles, ping_interval_s=0.05) as ex:
        async with connect(f"{ex.ws_url}/market/ws") as ws:
            srv = next(iter(ex._hub.clients)).ws
            await wait_for(lambda: srv.latency > 0, 5.0)  # a ping went out and our pong came back
            assert ws.state.name == "OPEN"


async def test_a_client_gone_during_the_handshake_is_one_info_line_not_a_traceback(ex, caplog):
    """An engine killed while its socket connects: the exchange notes it and serves on."""
    import logging
    from urllib.parse import urlsplit

    parts = urlsplit(ex.ws_url)
    caplog.set_level(logging.INFO, logger="engine.exchange.sim.server.ws")
    _, writer = await asyncio.open_connection(parts.hostname, parts.port)
    writer.write(b"GET /market/ws HTTP/1.1\r\nHost: x")  # cut off mid-request
    await writer.drain()
    writer.close()
    await wait_for(lambda: any("opening handshake" in r.getMessage() for r in caplog.records))
    records = [r for r in caplog.records if "opening handshake" in r.getMessage()]
    assert all(r.levelno == logging.INFO and not r.exc_info for r in records), \
        [(r.levelname, r.getMessage(), bool(r.exc_info)) for r in records]
    async with connect(ex.ws_url + "/market/ws/btcusdt@kline_1m"):
        pass  # still serving
