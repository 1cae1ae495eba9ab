"""Binance USDⓈ-M WebSocket streams: market data (klines, mark price) and user data.

The decisions are pure and tested without sockets — stream names and chunking
(:func:`market_stream_names`, :func:`chunk_streams`, :func:`market_plan`), SUBSCRIBE pacing
(:class:`Pacer`), reconnect delays (:func:`jittered_backoff`), and candle delivery
(:class:`CandleGate`: closed only, each (symbol, open time) once, never older than the last one
delivered, gaps filled from REST first). :class:`MarketStream` and :class:`UserStream` are thin
loops around them; the socket factory, the backoff and the clocks are injectable.

Protocol notes §7 and §8: routes ``/market`` and ``/private``; ≤ 1024 streams and ≤ 10
incoming messages per second per connection; connections end after 24 h; the server pings
every 3 min and websockets answers (kept on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable, Mapping, Sequence

from engine.exchange.binance.errmap import redact, short_key, truncate
from engine.exchange.binance.parse import (
    ParseError,
    parse_kline_event,
    parse_mark_price_event,
    parse_user_event,
    unwrap,
)
from engine.exchange.errors import ExchangeError
from engine.model import Candle, MarkPrice

log = logging.getLogger(__name__)

#: websockets logs handshakes and frames at DEBUG (the private URL carries the listen key):
#: its connections log here, kept at INFO so those lines never reach a DEBUG log file.
WS_PROTOCOL_LOG = logging.getLogger("engine.exchange.binance.wsproto")
WS_PROTOCOL_LOG.setLevel(logging.INFO)

INTERVAL_MS = 60_000
KLINE_PAGE = 1500
MAX_STREAMS_PER_CONNECTION = 1024
MAX_MSGS_PER_S = 10  # Binance's limit on incoming messages per connection (pings and pongs count)
PACER_CEILING_PER_S = 8  # what we allow ourselves, leaving room for control frames


# -- pure helpers -----------------------------------------------------------------------------


def market_stream_names(symbols: Iterable[str]) -> list[str]:
    """``<sym>@kline_1m`` and ``<sym>@markPrice@1s`` for each symbol (lowercase, de-duplicated)."""
    out: list[str] = []
    seen: set[str] = set()
    for s in symbols:
        low = s.lower()
        if low in seen:
            continue
        seen.add(low)
        out += [f"{low}@kline_1m", f"{low}@markPrice@1s"]
    return out


def chunk_streams(names: Sequence[str], per_connection: int = MAX_STREAMS_PER_CONNECTION) -> list[list[str]]:
    """Split stream names over connections of at most ``per_connection`` (≤ 1024) streams each.

    A symbol's kline and mark-price streams stay on the same connection when the size allows.
    """
    per = max(1, min(int(per_connection), MAX_STREAMS_PER_CONNECTION))
    if per >= 2 and per % 2:
        per -= 1  # keep the (kline, markPrice) pairs together
    return [list(names[i:i + per]) for i in range(0, len(names), per)]


def subscribe_messages(names: Sequence[str], per_message: int = 100, first_id: int = 1) -> list[dict]:
    """``SUBSCRIBE`` requests carrying at most ``per_message`` streams each."""
    per = max(1, per_message)
    return [
        {"method": "SUBSCRIBE", "params": list(names[i:i + per]), "id": first_id + n}
        for n, i in enumerate(range(0, len(names), per))
    ]


def market_plan(base_url: str, names: Sequence[str], *, max_url_len: int = 2000,
                per_message: int = 100) -> tuple[str, list[dict]]:
    """The URL to open and the SUBSCRIBE messages to send for one connection.

    Short lists go in the URL (``/stream?streams=a/b``, subscribed atomically on connect);
    long ones connect to ``/stream`` and SUBSCRIBE in batches.
    """
    base = base_url.rstrip("/") + "/stream"
    url = base + "?streams=" + "/".join(names)
    if names and len(url) <= max_url_len:
        return url, []
    return base, subscribe_messages(names, per_message)


def jittered_backoff(attempt: int, *, base: float = 0.5, factor: float = 1.6, cap: float = 60.0,
                     jitter: float = 0.5, rng: Callable[[], float] = random.random) -> float:
    """Delay before reconnect ``attempt`` (0-based): ``base·factor^attempt`` capped at ``cap``,
    then scaled by a random factor in ``[1 − jitter, 1]`` so clients do not reconnect in step."""
    if cap <= 0:
        return 0.0
    raw = base * (factor ** min(attempt, 64))
    d = min(cap, raw)
    return d * (1.0 - jitter * rng())


def make_backoff(cap_s: float, *, base: float = 0.5, factor: float = 1.6) -> Callable[[int], float]:
    return lambda attempt: jittered_backoff(attempt, base=base, factor=factor, cap=cap_s)


class Pacer:
    """Spaces outgoing messages: at most ``max_per_s`` (never more than 8) per second; Binance
    disconnects above 10, counting pings and pongs too."""

    def __init__(self, max_per_s: float = 5.0, *, monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        self.interval = 1.0 / max(min(max_per_s, PACER_CEILING_PER_S), 0.1)
        self._monotonic = monotonic
        self._sleep = sleep
        self._next = float("-inf")

    def delay(self, now: float) -> float:
        """Pure: seconds to wait at ``now`` before the next message may go."""
        return max(0.0, self._next - now)

    def sent(self, now: float) -> None:
        self._next = max(now, self._next) + self.interval

    async def wait(self) -> None:
        d = self.delay(self._monotonic())
        if d > 0:
            await self._sleep(d)
        self.sent(self._monotonic())


def missing_window(last_open_ms: int | None, server_now_ms: int,
                   interval_ms: int = INTERVAL_MS) -> tuple[int, int] | None:
    """Open times ``[first, last]`` of the candles closed since ``last_open_ms`` (None: none)."""
    if last_open_ms is None:
        return None
    first = last_open_ms + interval_ms
    # a candle opening at t closes at t + interval − 1: closed once that is before now
    last = ((server_now_ms - interval_ms) // interval_ms) * interval_ms
    if last < first:
        return None
    return first, last


def closed_after(candles: Iterable[Candle], after_open_ms: int | None, server_now_ms: int) -> list[Candle]:
    """REST candles that are closed per the exchange clock and newer than ``after_open_ms``, in order."""
    out = [c for c in candles
           if c.close_time_ms < server_now_ms and (after_open_ms is None or c.open_time_ms > after_open_ms)]
    out.sort(key=lambda c: c.open_time_ms)
    dedup: list[Candle] = []
    for c in out:
        if not dedup or dedup[-1].open_time_ms != c.open_time_ms:
            dedup.append(c)
    return dedup


class CandleGate:
    """Only closed candles; each (symbol, open time) once; never older than the last delivered."""

    def __init__(self) -> None:
        self.last_open_ms: dict[str, int] = {}

    def seed(self, symbol: str, open_time_ms: int) -> None:
        """Mark ``open_time_ms`` as delivered (e.g. the last candle of a REST warm-up)."""
        cur = self.last_open_ms.get(symbol)
        if cur is None or open_time_ms > cur:
            self.last_open_ms[symbol] = open_time_ms

    def offer(self, c: Candle) -> bool:
        """True when ``c`` should be delivered now (and records it as delivered)."""
        if not c.closed:
            return False
        last = self.last_open_ms.get(c.symbol)
        if last is not None and c.open_time_ms <= last:
            return False
        self.last_open_ms[c.symbol] = c.open_time_ms
        return True

    def window(self, symbol: str, server_now_ms: int) -> tuple[int, int] | None:
        return missing_window(self.last_open_ms.get(symbol), server_now_ms)


def _is_reply(msg: Any) -> bool:
    return isinstance(msg, Mapping) and "id" in msg and ("result" in msg or "code" in msg or "error" in msg)


def _log_malformed(what: str, exc: BaseException | str, raw: Any, secrets: Iterable[str] = ()) -> None:
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    log.warning("skipping malformed %s message (%s): %s", what, redact(str(exc), secrets),
                truncate(redact(text, secrets), 200))


# -- connection plumbing ----------------------------------------------------------------------

#: ``connect(url)`` → async context manager yielding an object with ``recv()``, ``send()``, ``close()``.
Connect = Callable[[str], Any]


def default_connect(url: str) -> Any:
    from websockets.asyncio.client import connect

    return connect(url, ping_interval=20, ping_timeout=20, open_timeout=10, close_timeout=5,
                   max_size=2**22, max_queue=256, logger=WS_PROTOCOL_LOG)


@dataclass
class StreamHealth:
    state: str = "down"  # connected | reconnecting | down
    last_message_ms: int = 0
    reconnects: int = 0

    def as_dict(self) -> dict:
        return {"state": self.state, "last_message_ms": self.last_message_ms, "reconnects": self.reconnects}


class _ProactiveReconnect(Exception):
    """The connection is close to Binance's 24 h cut (or a listen key expired): reconnect now."""


class _Stale(Exception):
    """No message for too long: the connection is presumed dead."""


async def _cancel_and_wait(task: asyncio.Task) -> None:
    """Cancel a helper task and wait for it, without swallowing our own cancellation."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        cur = asyncio.current_task()
        if cur is not None and cur.cancelling():
            raise
    except Exception:  # noqa: BLE001 - the helper's failure was already logged
        pass


def _safe_call(fn: Callable[..., Any], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - a consumer bug must not kill the stream
        log.exception("stream consumer %s raised; continuing", getattr(fn, "__name__", fn))


# -- market streams ---------------------------------------------------------------------------


@dataclass
class _MarketConn:
    index: int
    names: list[str]
    kline_symbols: list[str]
    url: str
    subscribe: list[dict]
    health: StreamHealth
    holding: bool = False
    held: list[Candle] | None = None
    got_message: bool = False


class MarketStream:
    """Closed 1m klines and 1 s mark prices for ``symbols`` over ≥ 1 combined connections."""

    def __init__(
        self,
        *,
        url: str,
        symbols: Sequence[str],
        on_candle: Callable[[Candle], None],
        on_mark: Callable[[MarkPrice], None],
        fetch_klines: Callable[[str, int], Awaitable[list[Candle]]],
        server_now_ms: Callable[[], int],
        wall_ms: Callable[[], int],
        backoff: Callable[[int], float],
        on_status: Callable[[str, str], None] = lambda s, st: None,
        connect: Connect = default_connect,
        streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
        max_connection_age_s: float = 23.5 * 3600,
        stale_after_s: float | None = 90.0,
        max_msgs_per_s: float = 5.0,
        subscribe_per_message: int = 100,
        max_url_len: int = 2000,
        monotonic: Callable[[], float] = time.monotonic,
        backfill_tries: int = 3,
        pace_sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.symbols = [s.upper() for s in symbols]
        self.on_candle = on_candle
        self.on_mark = on_mark
        self._fetch_klines = fetch_klines
        self._server_now_ms = server_now_ms
        self._wall_ms = wall_ms
        self._backoff = backoff
        self._on_status = on_status
        self._connect = connect
        self.max_connection_age_s = max_connection_age_s
        self.stale_after_s = stale_after_s
        self.max_msgs_per_s = max_msgs_per_s
        self._monotonic = monotonic
        self.backfill_tries = backfill_tries
        self._pace_sleep = pace_sleep
        self.gate = CandleGate()
        self.delivered = 0  # closed candles handed to on_candle
        self.malformed = 0
        self._stopping = False
        self.conns: list[_MarketConn] = []
        names = market_stream_names(self.symbols)
        for i, chunk in enumerate(chunk_streams(names, streams_per_connection)):
            conn_url, subs = market_plan(url, chunk, max_url_len=max_url_len, per_message=subscribe_per_message)
            ksyms = [n.split("@", 1)[0].upper() for n in chunk if n.endswith("@kline_1m")]
            self.conns.append(_MarketConn(i, chunk, ksyms, conn_url, subs, StreamHealth()))

    # status

    def health(self) -> StreamHealth:
        hs = [c.health for c in self.conns]
        if not hs:
            return StreamHealth()
        if all(h.state == "connected" for h in hs):
            state = "connected"
        elif all(h.state == "down" for h in hs):
            state = "down"
        else:
            state = "reconnecting"
        return StreamHealth(state, max(h.last_message_ms for h in hs), sum(h.reconnects for h in hs))

    def _report(self) -> None:
        _safe_call(self._on_status, "market", self.health().state)

    # delivery

    def deliver(self, c: Candle) -> bool:
        if self.gate.offer(c):
            self.delivered += 1
            _safe_call(self.on_candle, c)
            return True
        return False

    def handle_message(self, conn: _MarketConn, raw: str | bytes) -> None:
        """One text frame from a market connection (never raises)."""
        conn.health.last_message_ms = self._wall_ms()
        conn.got_message = True
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError) as exc:
            self.malformed += 1
            _log_malformed("market", type(exc).__name__, raw)
            return
        if _is_reply(msg):
            if msg.get("result") is not None or "code" in msg or "error" in msg:
                log.warning("market stream reply: %s", truncate(str(msg), 200))
            return
        data = unwrap(msg)
        for d in data if isinstance(data, list) else [data]:
            try:
                et = d.get("e") if isinstance(d, Mapping) else None
                if et == "kline":
                    c = parse_kline_event(d)
                    if not c.closed:
                        continue
                    if conn.holding:
                        assert conn.held is not None
                        conn.held.append(c)
                    else:
                        self.deliver(c)
                elif et == "markPriceUpdate":
                    _safe_call(self.on_mark, parse_mark_price_event(d))
                elif et is None:
                    raise ParseError("missing field 'e'")
            except ParseError as exc:
                self.malformed += 1
                _log_malformed("market", exc, d)

    async def collect_missing(self, symbols: Iterable[str]) -> list[Candle]:
        """Closed candles after the last delivered one, for each symbol, from REST (in order)."""
        now = self._server_now_ms()
        out: list[Candle] = []
        for s in symbols:
            w = self.gate.window(s, now)
            if w is None:
                continue
            start, last_open = w
            after = self.gate.last_open_ms.get(s)
            while start <= last_open:
                rows = await self._fetch_klines(s, start)
                got = [c for c in closed_after(rows, after, now) if c.open_time_ms <= last_open]
                out.extend(got)
                if len(rows) < KLINE_PAGE or not got:
                    break
                after = got[-1].open_time_ms
                start = after + INTERVAL_MS
        return out

    def release(self, conn: _MarketConn, backfilled: list[Candle]) -> int:
        """Deliver the REST backfill, then what the socket sent meanwhile (synchronously)."""
        n = 0
        for c in backfilled:
            n += self.deliver(c)
        held = sorted(conn.held or [], key=lambda c: (c.symbol, c.open_time_ms))
        conn.held = []
        conn.holding = False
        for c in held:
            n += self.deliver(c)
        return n

    async def _backfill(self, ws: Any, conn: _MarketConn) -> None:
        for attempt in range(self.backfill_tries):
            try:
                batch = await self.collect_missing(conn.kline_symbols)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001
                log.warning("kline backfill failed (%s); try %d/%d", exc, attempt + 1, self.backfill_tries)
                await asyncio.sleep(self._backoff(attempt))
                continue
            if batch:
                log.info("backfilled %d closed candle(s) missed while disconnected", len(batch))
            self.release(conn, batch)
            return
        log.error("could not backfill missed candles: reconnecting to try again")
        with contextlib.suppress(Exception):
            await ws.close()

    # loop

    async def run(self) -> None:
        self._stopping = False
        await asyncio.gather(*(self._run_conn(c) for c in self.conns))

    def stop(self) -> None:
        self._stopping = True

    async def _run_conn(self, conn: _MarketConn) -> None:
        attempt = 0
        pacer = Pacer(self.max_msgs_per_s, monotonic=self._monotonic, sleep=self._pace_sleep)
        try:
            while not self._stopping:
                proactive = False
                try:
                    async with self._connect(conn.url) as ws:
                        conn.health.state = "connected"
                        conn.got_message = False
                        conn.holding, conn.held = True, []
                        self._report()
                        for m in conn.subscribe:
                            await pacer.wait()
                            await ws.send(json.dumps(m))
                        bf = asyncio.create_task(self._backfill(ws, conn))
                        try:
                            await self._read(ws, conn)
                        finally:
                            await _cancel_and_wait(bf)
                            conn.holding, conn.held = False, []
                except asyncio.CancelledError:
                    raise
                except _ProactiveReconnect:
                    proactive = True
                    log.info("market connection %d: reconnecting before the 24 h cut", conn.index)
                except Exception as exc:  # noqa: BLE001 - any failure: reconnect
                    log.warning("market connection %d dropped: %s", conn.index,
                                truncate(redact(f"{type(exc).__name__}: {exc}"), 200))
                if conn.got_message:
                    attempt = 0
                if self._stopping:
                    break
                conn.health.state = "reconnecting"
                conn.health.reconnects += 1
                self._report()
                if not proactive:
                    await asyncio.sleep(max(0.0, self._backoff(attempt)))
                    attempt += 1
        finally:
            conn.health.state = "down"

    async def _read(self, ws: Any, conn: _MarketConn) -> None:
        opened = self._monotonic()
        while True:
            age_left = self.max_connection_age_s - (self._monotonic() - opened)
            if age_left <= 0:
                raise _ProactiveReconnect()
            stale = self.stale_after_s
            try:
                async with asyncio.timeout(min(stale, age_left) if stale else age_left):  # see UserStream._read
                    raw = await ws.recv()
            except (asyncio.TimeoutError, TimeoutError):
                if self.max_connection_age_s - (self._monotonic() - opened) <= 0:
                    raise _ProactiveReconnect() from None
                raise _Stale(f"no market data for {stale:.0f} s") from None
            before = self.delivered
            self.handle_message(conn, raw)
            if self.delivered != before:
                # a closed candle went to the engine: let its orders go out before the next frame
                # of a burst (recv() on a buffered frame never yields to the event loop)
                await asyncio.sleep(0)


# -- user data stream -------------------------------------------------------------------------


class UserStream:
    """The account's user-data stream: listen key, keepalive, reconnects, parsed facts.

    Every frame that is an account event (parsed, ignored type, or malformed) counts in
    ``received`` after it has been handed on; ``listenKeyExpired`` is about the stream, not the
    account, and is handed on but not counted (as the local server's ``userEventSeq`` does).
    After any reconnect ``on_status("user", "gap")`` tells the runtime events may have been missed.
    """

    def __init__(
        self,
        *,
        url: str,
        new_listen_key: Callable[[], Awaitable[Any]],
        keepalive_listen_key: Callable[[], Awaitable[Any]],
        on_user_event: Callable[[object], None],
        wall_ms: Callable[[], int],
        backoff: Callable[[int], float],
        on_status: Callable[[str, str], None] = lambda s, st: None,
        connect: Connect = default_connect,
        keepalive_s: float = 1800.0,
        max_connection_age_s: float = 23.5 * 3600,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url.rstrip("/")
        self._new_key = new_listen_key
        self._keepalive_key = keepalive_listen_key
        self.on_user_event = on_user_event
        self._wall_ms = wall_ms
        self._backoff = backoff
        self._on_status = on_status
        self._connect = connect
        self.keepalive_s = keepalive_s
        self.max_connection_age_s = max_connection_age_s
        self._monotonic = monotonic
        self.health = StreamHealth()
        self.received = 0
        self.malformed = 0
        self.changed = asyncio.Event()
        self._stopping = False
        self.listen_key: str | None = None

    def _status(self, state: str) -> None:
        _safe_call(self._on_status, "user", state)

    def handle_message(self, raw: str | bytes) -> bool:
        """One frame; returns True when the listen key expired. Never raises."""
        self.health.last_message_ms = self._wall_ms()
        expired = False
        try:
            msg = json.loads(raw)
        except (ValueError, TypeError) as exc:
            self.malformed += 1
            _log_malformed("user-data", type(exc).__name__, raw, self._secrets())
            self._count()
            return False
        if _is_reply(msg):
            return False
        try:
            fact = parse_user_event(msg)
        except ParseError as exc:
            self.malformed += 1
            _log_malformed("user-data", exc, msg, self._secrets())
            fact = None
        data = unwrap(msg)
        if isinstance(data, Mapping) and data.get("e") == "listenKeyExpired":
            expired = True
        if fact is not None:
            _safe_call(self.on_user_event, fact)
        if not expired:
            self._count()
        return expired

    def _secrets(self) -> list[str]:
        return [self.listen_key] if self.listen_key else []

    def _count(self) -> None:
        self.received += 1
        self.changed.set()

    async def wait_received(self, n: int, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while self.received < n:
                self.changed.clear()
                if self.received >= n:
                    break
                await self.changed.wait()

    def stop(self) -> None:
        self._stopping = True

    async def run(self) -> None:
        self._stopping = False
        attempt = 0
        connected_before = False
        try:
            while not self._stopping:
                immediate = False
                try:
                    r = await self._new_key()
                    key = str(r["listenKey"]) if isinstance(r, Mapping) and r.get("listenKey") else None
                    if not key:
                        raise ExchangeError(0, "listenKey missing from POST /fapi/v1/listenKey", 200)
                    self.listen_key = key
                    async with self._connect(f"{self.url}/ws/{key}") as ws:
                        self.health.state = "connected"
                        attempt = 0
                        log.info("user-data stream connected (key %s)", short_key(key))
                        self._status("connected")
                        if connected_before:
                            self._status("gap")
                        connected_before = True
                        ka = asyncio.create_task(self._keepalive(ws))
                        try:
                            await self._read(ws)
                        finally:
                            await _cancel_and_wait(ka)
                except asyncio.CancelledError:
                    raise
                except _ProactiveReconnect as why:
                    immediate = True
                    log.info("user-data stream: reconnecting (%s)", why)
                except Exception as exc:  # noqa: BLE001
                    log.warning("user-data stream dropped: %s", truncate(redact(f"{type(exc).__name__}: {exc}",
                                                                              [self.listen_key or ""]), 200))
                if self._stopping:
                    break
                self.health.state = "reconnecting"
                self.health.reconnects += 1
                self._status("reconnecting")
                if not immediate:
                    await asyncio.sleep(max(0.0, self._backoff(attempt)))
                    attempt += 1
        finally:
            self.health.state = "down"

    async def _read(self, ws: Any) -> None:
        opened = self._monotonic()
        while True:
            age_left = self.max_connection_age_s - (self._monotonic() - opened)
            if age_left <= 0:
                raise _ProactiveReconnect("24 h connection limit")
            try:
                # asyncio.timeout, not wait_for: no extra task per message, and a cancellation
                # reaches recv() directly (3.11's wait_for can lose it and hang shutdown)
                async with asyncio.timeout(age_left):
                    raw = await ws.recv()
            except (asyncio.TimeoutError, TimeoutError):
                raise _ProactiveReconnect("24 h connection limit") from None
            if self.handle_message(raw):
                raise _ProactiveReconnect("listen key expired")

    async def _keepalive(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self._keepalive_key()
            except asyncio.CancelledError:
                raise
            except ExchangeError as exc:
                if exc.code == -1125:
                    log.warning("listen key no longer valid (-1125): getting a new one")
                    with contextlib.suppress(Exception):
                        await ws.close()
                    return
                log.warning("listen key keepalive failed: %s", exc)
            except Exception as exc:  # noqa: BLE001
                log.warning("listen key keepalive failed: %s", type(exc).__name__)
