"""Streams: names and chunking, SUBSCRIBE pacing, backoff, closed-candle delivery and gap
filling, user-data counting — pure helpers first, then the loops over fake sockets."""

import asyncio
import contextlib
import json
from decimal import Decimal
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError

from engine.events import ExOrderUpdate, ExStreamExpired
from engine.exchange.binance.streams import (
    CandleGate,
    MarketStream,
    Pacer,
    UserStream,
    chunk_streams,
    closed_after,
    jittered_backoff,
    make_backoff,
    market_plan,
    market_stream_names,
    missing_window,
    subscribe_messages,
)
from engine.exchange.errors import ExchangeError
from engine.model import Candle

FIX = Path(__file__).parents[3] / "fixtures"
M = 60_000
T0 = 1_700_000_040_000  # a minute boundary
assert T0 % M == 0


def candle(sym, open_ms, closed=True, close="100"):
    return Candle(sym, open_ms, open_ms + M - 1, Decimal("1"), Decimal("2"), Decimal("0.5"), Decimal(close),
                  Decimal("10"), closed)


def kline_msg(sym, open_ms, closed=True, combined=True, close="100"):
    data = {"e": "kline", "E": open_ms + 1, "s": sym,
            "k": {"t": open_ms, "T": open_ms + M - 1, "s": sym, "i": "1m", "o": "1", "c": close, "h": "2",
                  "l": "0.5", "v": "10", "x": closed}}
    return json.dumps({"stream": f"{sym.lower()}@kline_1m", "data": data} if combined else data)


def mark_msg(sym, price="100.5"):
    data = {"e": "markPriceUpdate", "E": T0, "s": sym, "p": price, "r": "0.0001", "T": T0 + 8 * 3600_000}
    return json.dumps({"stream": f"{sym.lower()}@markPrice@1s", "data": data})


# -- names, chunks, plans --------------------------------------------------------------------------


def test_stream_names_are_lowercase_pairs_per_symbol():
    assert market_stream_names(["BTCUSDT", "ethusdt", "BTCUSDT"]) == [
        "btcusdt@kline_1m", "btcusdt@markPrice@1s", "ethusdt@kline_1m", "ethusdt@markPrice@1s"]


def test_chunks_hold_at_most_1024_streams_and_keep_pairs_together():
    names = market_stream_names([f"S{i}USDT" for i in range(700)])  # 1400 streams
    chunks = chunk_streams(names, 1024)
    assert [len(c) for c in chunks] == [1024, 376] and sum(chunks, []) == names
    assert all(c[0].endswith("@kline_1m") and c[-1].endswith("@markPrice@1s") for c in chunks)
    assert max(len(c) for c in chunk_streams(names, 5000)) == 1024  # never above Binance's cap
    odd = chunk_streams(names[:10], 3)
    assert all(len(c) == 2 for c in odd)  # an odd size would split a pair


def test_short_lists_go_in_the_url_and_long_ones_are_subscribed_in_batches():
    url, subs = market_plan("wss://fstream.binance.com/market", market_stream_names(["BTCUSDT", "ETHUSDT"]))
    assert url == ("wss://fstream.binance.com/market/stream?streams="
                   "btcusdt@kline_1m/btcusdt@markPrice@1s/ethusdt@kline_1m/ethusdt@markPrice@1s")
    assert subs == []
    names = market_stream_names([f"S{i}USDT" for i in range(300)])
    url, subs = market_plan("ws://127.0.0.1:9/market/", names, per_message=100)
    assert url == "ws://127.0.0.1:9/market/stream"
    assert [len(s["params"]) for s in subs] == [100] * 6
    assert [s["id"] for s in subs] == [1, 2, 3, 4, 5, 6] and all(s["method"] == "SUBSCRIBE" for s in subs)
    assert sum((s["params"] for s in subs), []) == names


def test_subscribe_messages_batches():
    msgs = subscribe_messages([f"s{i}" for i in range(25)], per_message=10, first_id=7)
    assert [m["params"][0] for m in msgs] == ["s0", "s10", "s20"] and [m["id"] for m in msgs] == [7, 8, 9]


async def test_pacer_never_exceeds_ten_messages_per_second():
    now = [0.0]
    slept = []

    async def sleep(s):
        slept.append(s)
        now[0] += s

    async def go():
        p = Pacer(max_per_s=50, monotonic=lambda: now[0], sleep=sleep)  # asks for 50: capped below 10
        times = []
        for _ in range(25):
            await p.wait()
            times.append(now[0])
        return times

    times = await go()
    for i in range(len(times)):
        window = [t for t in times if times[i] <= t < times[i] + 1.0]
        assert len(window) <= 10
    assert times[0] == 0.0 and slept  # the first goes at once, later ones wait


# -- backoff ---------------------------------------------------------------------------------------


def test_backoff_grows_by_about_1_6_and_is_capped():
    top = [jittered_backoff(n, base=0.5, factor=1.6, cap=60, rng=lambda: 0.0) for n in range(20)]
    assert top[0] == 0.5 and top[1] == pytest.approx(0.8) and top[2] == pytest.approx(1.28)
    assert max(top) == 60 and top[-1] == 60
    assert all(b >= a for a, b in zip(top, top[1:]))


def test_backoff_jitter_stays_within_bounds():
    import random

    rng = random.Random(7).random
    for n in range(30):
        d = jittered_backoff(n, cap=10, rng=rng)
        upper = min(10, 0.5 * 1.6**n)
        assert upper * 0.5 <= d <= upper
    assert jittered_backoff(3, cap=0) == 0.0
    b = make_backoff(2.0)
    assert all(0 < b(n) <= 2.0 for n in range(50))


# -- candle delivery -------------------------------------------------------------------------------


def test_gate_delivers_closed_candles_once_and_never_older():
    g = CandleGate()
    assert not g.offer(candle("BTCUSDT", T0, closed=False))
    assert g.offer(candle("BTCUSDT", T0))
    assert not g.offer(candle("BTCUSDT", T0))  # duplicate
    assert g.offer(candle("BTCUSDT", T0 + 2 * M))
    assert not g.offer(candle("BTCUSDT", T0 + M))  # older than the last delivered
    assert g.offer(candle("ETHUSDT", T0 + M))  # per symbol
    g.seed("BTCUSDT", T0 + 10 * M)
    assert not g.offer(candle("BTCUSDT", T0 + 5 * M))
    g.seed("BTCUSDT", T0)  # seeding never moves backwards
    assert g.last_open_ms["BTCUSDT"] == T0 + 10 * M


def test_missing_window_only_counts_candles_closed_per_the_exchange():
    assert missing_window(None, T0) is None
    assert missing_window(T0, T0 + 2 * M - 1) is None  # the next candle closes at T0+2M−1: not yet past
    assert missing_window(T0, T0 + 2 * M) == (T0 + M, T0 + M)
    assert missing_window(T0, T0 + 5 * M + 30_000) == (T0 + M, T0 + 4 * M)


def test_closed_after_filters_sorts_and_dedupes():
    rows = [candle("X", T0 + 3 * M), candle("X", T0 + M), candle("X", T0 + M), candle("X", T0),
            candle("X", T0 + 4 * M)]
    got = closed_after(rows, T0, T0 + 4 * M + 10)
    assert [c.open_time_ms for c in got] == [T0 + M, T0 + 3 * M]


def _market(fetch=None, **kw):
    out = {"candles": [], "marks": [], "status": []}

    async def no_fetch(sym, start):
        return []

    ms = MarketStream(url="ws://x/market", symbols=["BTCUSDT", "ETHUSDT"], on_candle=out["candles"].append,
                      on_mark=out["marks"].append, fetch_klines=fetch or no_fetch,
                      server_now_ms=kw.pop("now", lambda: T0 + 10 * M), wall_ms=lambda: 123,
                      backoff=kw.pop("backoff", lambda n: 0.0),
                      on_status=lambda s, st: out["status"].append((s, st)), **kw)
    return ms, out


def test_market_messages_closed_only_both_forms_and_marks():
    ms, out = _market()
    conn = ms.conns[0]
    for raw in (kline_msg("BTCUSDT", T0, closed=False), kline_msg("BTCUSDT", T0),
                kline_msg("BTCUSDT", T0, combined=False), kline_msg("ETHUSDT", T0 + M, combined=False),
                mark_msg("BTCUSDT"), json.dumps({"result": None, "id": 1})):
        ms.handle_message(conn, raw)
    assert [(c.symbol, c.open_time_ms) for c in out["candles"]] == [("BTCUSDT", T0), ("ETHUSDT", T0 + M)]
    assert out["marks"][0].mark_price == Decimal("100.5") and conn.health.last_message_ms == 123


def test_malformed_market_messages_are_skipped_not_raised(caplog):
    ms, out = _market()
    conn = ms.conns[0]
    for raw in ("{not json", json.dumps({"stream": "x", "data": {"e": "kline", "k": {"t": "oops"}}}),
                json.dumps({"no": "type"}), json.dumps([1, 2]), b"\xff\xfe"):
        ms.handle_message(conn, raw)
    ms.handle_message(conn, kline_msg("BTCUSDT", T0))
    assert ms.malformed == 6 and len(out["candles"]) == 1  # the array counts per element


def test_a_consumer_exception_does_not_stop_delivery(caplog):
    ms, out = _market()
    seen = []

    def boom(c):
        seen.append(c)
        raise RuntimeError("consumer bug")

    ms.on_candle = boom
    ms.handle_message(ms.conns[0], kline_msg("BTCUSDT", T0))
    ms.handle_message(ms.conns[0], kline_msg("BTCUSDT", T0 + M))
    assert len(seen) == 2


def test_holding_then_release_delivers_backfill_first_then_socket_candles_in_order():
    ms, out = _market()
    conn = ms.conns[0]
    ms.gate.seed("BTCUSDT", T0)
    conn.holding, conn.held = True, []
    ms.handle_message(conn, kline_msg("BTCUSDT", T0 + 4 * M))  # arrives during the backfill
    ms.handle_message(conn, kline_msg("BTCUSDT", T0 + 3 * M))
    assert out["candles"] == []
    n = ms.release(conn, [candle("BTCUSDT", T0 + M), candle("BTCUSDT", T0 + 2 * M), candle("BTCUSDT", T0 + 3 * M)])
    assert [c.open_time_ms for c in out["candles"]] == [T0 + M, T0 + 2 * M, T0 + 3 * M, T0 + 4 * M]
    assert n == 4 and conn.holding is False


async def test_collect_missing_pages_through_rest_and_stops_at_closed_candles():
    calls = []
    now = T0 + 3000 * M + 30_000  # 3000 minutes later, half-way through a candle

    async def fetch(sym, start):
        calls.append((sym, start))
        return [candle(sym, t) for t in range(start, min(start + 1500 * M, now + M), M)]

    ms, out = _market(fetch, now=lambda: now)
    ms.gate.seed("BTCUSDT", T0)
    got = await ms.collect_missing(["BTCUSDT", "ETHUSDT"])  # ETH never delivered: nothing to fill
    opens = [c.open_time_ms for c in got]
    assert opens[0] == T0 + M and opens[-1] == T0 + 2999 * M and len(opens) == 2999
    assert opens == sorted(set(opens)) and all(c.close_time_ms < now for c in got)
    assert [c[0] for c in calls] == ["BTCUSDT", "BTCUSDT"] and calls[1][1] == T0 + 1501 * M


# -- fake sockets ----------------------------------------------------------------------------------


class FakeWS:
    def __init__(self, frames=(), end="hang"):
        self.frames = list(frames)
        self.end = end
        self.sent = []
        self.closed = asyncio.Event()

    async def recv(self):
        await asyncio.sleep(0)
        if self.frames:
            f = self.frames.pop(0)
            if isinstance(f, BaseException):
                raise f
            if callable(f):
                f = await f()
            return f
        if self.end == "drop":
            raise ConnectionClosedError(None, None)
        await self.closed.wait()
        raise ConnectionClosedError(None, None)

    async def send(self, m):
        self.sent.append(json.loads(m))

    async def close(self):
        self.closed.set()


class FakeConnect:
    def __init__(self, sessions):
        self.sessions = list(sessions)
        self.urls = []

    def __call__(self, url):
        self.urls.append(url)
        ws = self.sessions.pop(0) if self.sessions else FakeWS()

        @contextlib.asynccontextmanager
        async def cm():
            if isinstance(ws, BaseException):
                raise ws
            yield ws

        return cm()


async def wait_until(pred, timeout=2.0):
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.001)


async def test_market_stream_reconnects_and_fills_the_gap_without_skips_or_repeats():
    now = [T0 + 2 * M + 1_000]
    fetched = []

    async def fetch(sym, start):
        fetched.append((sym, start))
        await asyncio.sleep(0.01)  # the socket delivers while we fetch
        return [candle(sym, t) for t in range(start, T0 + 7 * M, M)]  # incl. still-open candles

    async def after_backfill():
        await asyncio.sleep(0.03)
        return kline_msg("BTCUSDT", T0 + M)  # already delivered by the backfill: ignored

    async def time_passes():
        now[0] = T0 + 6 * M + 1_000  # we are cut off for four minutes
        return kline_msg("BTCUSDT", T0 + 2 * M, closed=False)

    s1 = FakeWS([after_backfill, time_passes], end="drop")
    s2 = FakeWS([kline_msg("BTCUSDT", T0 + 5 * M), mark_msg("BTCUSDT")])  # arrives during the backfill
    conn = FakeConnect([OSError("refused"), s1, s2])
    ms, out = _market(fetch, now=lambda: now[0], connect=conn)
    ms.gate.seed("BTCUSDT", T0)
    task = asyncio.create_task(ms.run())
    await wait_until(lambda: len(out["candles"]) >= 5 and out["marks"])
    await asyncio.sleep(0.02)
    ms.stop()
    await s2.close()
    await asyncio.wait_for(task, 1)
    assert [c.open_time_ms for c in out["candles"] if c.symbol == "BTCUSDT"] == [T0 + k * M for k in range(1, 6)]
    assert fetched == [("BTCUSDT", T0 + M), ("BTCUSDT", T0 + 2 * M)]  # from the seed, then from the last delivered
    assert ms.health().reconnects == 2 and ("market", "reconnecting") in out["status"]
    assert conn.urls[0].startswith("ws://x/market/stream?streams=btcusdt@kline_1m")


async def test_a_drop_during_the_backfill_discards_held_candles_and_refetches():
    now = T0 + 6 * M + 1_000
    fetched = []

    async def fetch(sym, start):
        fetched.append(start)
        await asyncio.sleep(0.01)
        return [candle(sym, t) for t in range(start, T0 + 7 * M, M)]

    s1 = FakeWS([kline_msg("BTCUSDT", T0 + 5 * M)], end="drop")  # dropped before the backfill ends
    s2 = FakeWS()
    ms, out = _market(fetch, now=lambda: now, connect=FakeConnect([s1, s2]))
    ms.gate.seed("BTCUSDT", T0)
    task = asyncio.create_task(ms.run())
    await wait_until(lambda: len(out["candles"]) >= 5)
    ms.stop()
    await s2.close()
    await asyncio.wait_for(task, 1)
    assert fetched == [T0 + M, T0 + M]
    assert [c.open_time_ms for c in out["candles"]] == [T0 + k * M for k in range(1, 6)]


async def test_market_stream_subscribes_in_paced_batches_when_the_url_would_be_too_long():
    ws = FakeWS()
    conn = FakeConnect([ws])
    clock, paced = [0.0], []

    async def pace_sleep(s):
        paced.append(s)
        clock[0] += s

    ms, out = _market(connect=conn, max_url_len=10, subscribe_per_message=1, max_msgs_per_s=20,
                      monotonic=lambda: clock[0], pace_sleep=pace_sleep)
    task = asyncio.create_task(ms.run())
    await wait_until(lambda: len(ws.sent) == 4)
    ms.stop()
    await ws.close()
    await asyncio.wait_for(task, 1)
    assert conn.urls == ["ws://x/market/stream"]
    assert len(paced) == 3 and all(s >= 0.1 for s in paced)  # spaced, below 10 messages per second
    assert [m["params"] for m in ws.sent] == [["btcusdt@kline_1m"], ["btcusdt@markPrice@1s"],
                                              ["ethusdt@kline_1m"], ["ethusdt@markPrice@1s"]]


async def test_market_stream_reconnects_proactively_before_the_24h_cut():
    clock = [0.0]
    s1 = FakeWS()
    s2 = FakeWS()

    async def tick():
        clock[0] += 100.0
        return kline_msg("BTCUSDT", T0)

    s1.frames = [tick, tick, tick]
    conn = FakeConnect([s1, s2])
    ms, out = _market(connect=conn, max_connection_age_s=250, monotonic=lambda: clock[0],
                      backoff=lambda n: 99.0)  # a proactive reconnect does not back off
    task = asyncio.create_task(ms.run())
    await wait_until(lambda: len(conn.urls) == 2)
    ms.stop()
    await s2.close()
    await asyncio.wait_for(task, 1)
    assert ms.health().reconnects == 1


async def test_stale_market_connection_is_replaced():
    s1 = FakeWS()  # silent
    s2 = FakeWS([mark_msg("BTCUSDT")])
    conn = FakeConnect([s1, s2])
    ms, out = _market(connect=conn, stale_after_s=0.02)
    task = asyncio.create_task(ms.run())
    await wait_until(lambda: out["marks"])
    ms.stop()
    await s2.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(task, 1)
    assert len(conn.urls) >= 2


# -- user data -------------------------------------------------------------------------------------


def _user(connect=None, keys=("key-one-0123456789", "key-two-0123456789", "key-three-012345678"), **kw):
    out = {"events": [], "status": [], "keepalives": 0}
    it = iter(keys)
    fail_keepalive = [kw.pop("keepalive_error", False)]

    async def new_key():
        return {"listenKey": next(it)}

    async def keepalive():
        out["keepalives"] += 1
        if fail_keepalive[0]:
            fail_keepalive[0] = False
            raise ExchangeError(-1125, "This listenKey does not exist.")
        return {}

    us = UserStream(url="ws://x/private", new_listen_key=new_key, keepalive_listen_key=keepalive,
                    on_user_event=out["events"].append, wall_ms=lambda: 5, backoff=lambda n: 0.0,
                    on_status=lambda s, st: out["status"].append((s, st)), connect=connect or FakeConnect([]), **kw)
    return us, out


def test_user_messages_count_every_event_including_ignored_and_malformed():
    us, out = _user()
    order = (FIX / "ws_order_update_new.json").read_text()
    assert us.handle_message(order) is False
    us.handle_message(json.dumps({"e": "TRADE_LITE", "E": 1}))  # ignored type
    us.handle_message("{broken")
    us.handle_message(json.dumps({"stream": "k", "data": {"e": "ORDER_TRADE_UPDATE", "o": {}}}))  # malformed
    us.handle_message(json.dumps({"result": None, "id": 3}))  # a reply, not an event
    assert us.received == 4 and us.malformed == 2
    assert len(out["events"]) == 1 and isinstance(out["events"][0], ExOrderUpdate)
    expired = json.dumps({"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "abc"})
    assert us.handle_message(expired) is True and isinstance(out["events"][-1], ExStreamExpired)
    assert us.received == 4  # about the stream, not the account: handed on, not counted


async def test_wait_received_returns_when_enough_events_arrived():
    us, _ = _user()

    async def feed():
        for _ in range(3):
            await asyncio.sleep(0.001)
            us.handle_message(json.dumps({"e": "TRADE_LITE"}))

    t = asyncio.create_task(feed())
    await us.wait_received(3, timeout_s=1)
    assert us.received == 3
    await t
    with pytest.raises(TimeoutError):
        await us.wait_received(4, timeout_s=0.01)


async def test_user_stream_reconnects_with_a_new_key_and_reports_the_gap():
    order = (FIX / "ws_order_update_new.json").read_text()
    expired = json.dumps({"e": "listenKeyExpired", "E": "1", "listenKey": "key-one-0123456789"})
    s1 = FakeWS([order], end="drop")
    s2 = FakeWS([expired])
    s3 = FakeWS([order])
    conn = FakeConnect([s1, s2, s3])
    us, out = _user(conn)
    task = asyncio.create_task(us.run())
    await wait_until(lambda: us.received == 2 and len(conn.urls) == 3)
    us.stop()
    await s3.close()
    await asyncio.wait_for(task, 1)
    assert conn.urls == ["ws://x/private/ws/key-one-0123456789", "ws://x/private/ws/key-two-0123456789",
                         "ws://x/private/ws/key-three-012345678"]
    statuses = [st for s, st in out["status"] if s == "user"]
    assert statuses[:2] == ["connected", "reconnecting"] and statuses.count("gap") == 2
    assert statuses.index("gap") > statuses.index("connected", 1)  # reported once the new socket is up
    assert us.health.reconnects == 2 and us.health.state == "down"


async def test_keepalive_runs_and_minus_1125_forces_a_new_key():
    s1, s2 = FakeWS(), FakeWS()
    conn = FakeConnect([s1, s2])
    us, out = _user(conn, keepalive_s=0.005, keepalive_error=True)
    task = asyncio.create_task(us.run())
    await wait_until(lambda: len(conn.urls) == 2)
    us.stop()
    await s2.close()
    await asyncio.wait_for(task, 1)
    assert out["keepalives"] >= 1 and conn.urls[1].endswith("key-two-0123456789")


def test_malformed_user_events_are_logged_without_the_listen_key(caplog):
    us, _ = _user()
    us.listen_key = "SECRETLISTENKEY0123456789"
    with caplog.at_level("WARNING"):
        us.handle_message(json.dumps({"stream": us.listen_key, "data": {"e": "ORDER_TRADE_UPDATE", "o": {}}}))
        us.handle_message(("{" + us.listen_key + " broken").encode())
    assert us.malformed == 2 and "SECRETLISTENKEY" not in caplog.text and "skipping malformed" in caplog.text
