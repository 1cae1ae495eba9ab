"""``LocalExchange``: the Binance-compatible REST + WebSocket server over one :class:`SimExchange`.

See the package docstring (``engine.exchange.sim.server``) for the protocol, the clocks and the
deviations from Binance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import string
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from engine.clock import WallClock
from engine.exchange.sim.matching import SimApiError, SimExchange
from engine.exchange.sim.server.auth import DEFAULT_API_KEY, DEFAULT_API_SECRET, ApiKey, KeyStore
from engine.exchange.sim.server.faults import Faults, _EventFault
from engine.exchange.sim.server.http import HttpRequest, HttpResponse, HttpServer
from engine.exchange.sim.server.limits import RateLimiter, RateLimits
from engine.exchange.sim.server.replay import MarketTape, kline_event, mark_price_event
from engine.exchange.sim.server.rest import RestApi
from engine.exchange.sim.server.ws import WsClient, WsHub, dumps
from engine.model import Candle

_WALL = WallClock()  # the request clock; the exchange clock is the replay's
log = logging.getLogger(__name__)

_KEY_ALPHABET = string.ascii_letters + string.digits
_MIN = 60_000


@dataclass
class _ListenKey:
    key: str
    expires_at: float  # time.monotonic()
    active: bool = True


class LocalExchange:
    """Serve ``sim`` on 127.0.0.1 with Binance's REST and WebSocket protocols; replay ``candles``.

    ``speed == 0``: lockstep, the replay advances one candle per ``ADVANCE`` on ``/sim``.
    ``speed > 0``: a background task replays by itself, one minute of data per ``60/speed`` s.
    """

    def __init__(
        self,
        sim: SimExchange,
        candles: Sequence[Candle],
        *,
        keys: Sequence[ApiKey] = (ApiKey(DEFAULT_API_KEY, DEFAULT_API_SECRET),),
        speed: float = 0.0,
        host: str = "127.0.0.1",
        rest_port: int = 0,
        ws_port: int = 0,
        listen_key_ttl_s: float = 3600,
        ping_interval_s: float = 180,
        limits: RateLimits | None = None,
    ) -> None:
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = lockstep)")
        self.sim = sim
        self.tape = MarketTape(candles)
        self.keys = KeyStore(list(keys))
        self.speed = float(speed)
        self.host = host
        self.limits = limits if limits is not None else RateLimits()
        self.listen_key_ttl_s = float(listen_key_ttl_s)
        self.faults = Faults(self)
        #: (time.monotonic(), method, path) of the latest REST requests, as they arrive (before any
        #: fault or gate): which requests a client sent at once, and which waited for another
        self.request_log: deque[tuple[float, str, str]] = deque(maxlen=10_000)
        self._limiter = RateLimiter(self.limits)
        self._rest = RestApi(self)
        self._http = HttpServer(self._handle_http, host, rest_port)
        self._hub = WsHub(self, host, ws_port, ping_interval_s)
        self._listen: dict[str, _ListenKey] = {}
        self._active_key: str | None = None
        self._advance_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task] = []
        self._timers: set[asyncio.TimerHandle] = set()  # delayed / held user-data events
        self._delayed_events = 0  # events waiting in those timers
        self._user_taps: list[Callable[[list[dict]], None]] = []
        self._started = False
        # user-data events emitted on the account's stream (an active listenKey existed), delivered
        # to a socket or not; user_event_total also counts those emitted while no key existed
        self.user_event_seq = 0
        self.user_event_total = 0
        #: REST requests being handled right now (a stalled one included): harnesses wait for 0
        self.rest_in_flight = 0
        self.rest_url = ""
        self.ws_url = ""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await self._http.start()
        try:
            await self._hub.start()
        except BaseException:
            await self._http.stop()
            raise
        self._started = True
        self.rest_url = f"http://{self.host}:{self._http.port}"
        self.ws_url = f"ws://{self.host}:{self._hub.port}"
        self._tasks.append(asyncio.create_task(self._expiry_loop(), name="sim-listenkey-expiry"))
        if self.speed > 0:
            self._tasks.append(asyncio.create_task(self._pace(), name="sim-replay"))

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        for h in self._timers:
            h.cancel()
        self._timers.clear()
        self._delayed_events = 0
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        await self._hub.stop()
        await self._http.stop()

    async def __aenter__(self) -> "LocalExchange":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- clocks and state ------------------------------------------------------------------------

    @staticmethod
    def wall_ms() -> int:
        return _WALL.now_ms()

    def request_time_ms(self) -> int:
        """The request clock: wall clock + ``faults.clock_skew_ms`` (``/fapi/v1/time``, ``timestamp`` check)."""
        return self.wall_ms() + int(self.faults.clock_skew_ms)

    @property
    def replay_position(self) -> int:
        return self.tape.position

    @property
    def replay_finished(self) -> bool:
        return self.tape.finished

    @property
    def replay_time_ms(self) -> int:
        return self.sim.now_ms

    @property
    def listen_key(self) -> str | None:
        """The account's active listenKey, if any."""
        k = self._active_key
        return k if k is not None and self.listen_key_active(k) else None

    def add_key(self, key: ApiKey) -> None:
        self.keys.add(key)

    @property
    def held_user_events(self) -> int:
        """User-data events a fault is still holding back (delayed, duplicate copies, reordering)."""
        return self._delayed_events + sum(len(f.held) for f in self.faults._events)

    def add_user_event_tap(self, tap: Callable[[list[dict]], None]) -> None:
        """Call ``tap(events)`` with every batch of user-data events the sim produces, in order, as
        they are produced (after each REST request and each replayed candle), whether or not a
        listenKey exists and before any user-data fault acts on them. For test harnesses: a tap
        must be quick and must not raise (an exception is logged and the tap is kept)."""
        self._user_taps.append(tap)

    def remove_user_event_tap(self, tap: Callable[[list[dict]], None]) -> None:
        with contextlib.suppress(ValueError):
            self._user_taps.remove(tap)

    # -- replay ----------------------------------------------------------------------------------

    def _status(self) -> dict:
        return {"userEventSeq": self.user_event_seq, "replayTimeMs": self.sim.now_ms,
                "remaining": self.tape.remaining, "finished": self.tape.finished}

    def _process_candle(self) -> tuple[Any, list[WsClient]]:
        """Feed the next candle to the sim and queue its user events, then its market messages."""
        c = self.tape.take()
        self.sim.on_candle(c)
        touched = self._queue_user_events()
        sym = c.symbol.lower()
        kname = f"{sym}@kline_1m"
        touched += self._hub.publish_market(kname, kline_event(c, closed=False, event_ms=c.open_time_ms))
        touched += self._hub.publish_market(kname, kline_event(c, closed=True, event_ms=self.sim.now_ms))
        if c.symbol in self.sim.rules:
            mp = mark_price_event(self.sim.premium_index({"symbol": c.symbol}), self.sim.now_ms)
            touched += self._hub.publish_market(f"{sym}@markPrice", mp)
            touched += self._hub.publish_market(f"{sym}@markPrice@1s", mp)
        return c, touched

    async def advance(self) -> dict:
        """Process the next single candle (lockstep); the reply of ``ADVANCE`` on ``/sim``.

        ``finished`` is True when there was no candle left to process (``symbol``/``openTime`` are
        then None); the call that processes the last candle still answers ``finished: False`` with
        ``remaining: 0``, so ``while not (r := await advance())["finished"]: use(r)`` sees every
        candle.
        """
        async with self._advance_lock:
            if self.tape.finished:
                return {"finished": True, "symbol": None, "openTime": None,
                        "userEventSeq": self.user_event_seq, "remaining": 0}
            c, touched = self._process_candle()
            await self._hub.flush(set(touched))
            return {"finished": False, "symbol": c.symbol, "openTime": c.open_time_ms,
                    "userEventSeq": self.user_event_seq, "remaining": self.tape.remaining}

    async def _pace(self) -> None:
        loop = asyncio.get_running_loop()
        first = self.tape.peek()
        if first is None:
            return
        t0 = first.open_time_ms
        start = loop.time()
        while not self.tape.finished:
            nxt = self.tape.peek()
            assert nxt is not None
            t = nxt.open_time_ms
            due = start + (t - t0 + _MIN) / 1000.0 / self.speed
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            async with self._advance_lock:
                touched: list[WsClient] = []
                while (c := self.tape.peek()) is not None and c.open_time_ms == t:
                    touched += self._process_candle()[1]
                await self._hub.flush(set(touched))
            await asyncio.sleep(0)

    # -- user data -------------------------------------------------------------------------------

    def _queue_user_events(self) -> list[WsClient]:
        events = self.sim.drain_events()
        if not events:
            return []
        self.user_event_total += len(events)
        for tap in self._user_taps:
            try:
                tap(events)
            except Exception:  # noqa: BLE001 - a harness bug must not break the exchange
                log.exception("user-event tap %r failed", tap)
        key = self._active_key
        if key is None or not self.listen_key_active(key):
            return []  # no user-data stream exists: the events are on no stream and not counted
        self.user_event_seq += len(events)
        touched: list[WsClient] = []
        faults = self.faults
        for ev in events:
            if faults._events:
                touched += self._faulty_user_event(key, ev)
            else:
                touched += self._hub.publish_user(key, ev)
        return touched

    # user-data faults: duplicate / delay / reorder (see Faults)

    def _faulty_user_event(self, key: str, ev: dict) -> list[WsClient]:
        f = self.faults._event_fault(ev, key)
        if f is None:
            return self._hub.publish_user(key, ev)
        if f.kind == "duplicate":
            touched = self._hub.publish_user(key, ev)
            if f.seconds > 0:
                self._later(f.seconds, self._release_held, [(key, ev)], events=1)
            else:
                touched += self._hub.publish_user(key, ev)
            return touched
        if f.kind == "delay":
            self._later(f.seconds, self._release_held, [(key, ev)], events=1)
            return []
        # reorder: released reversed once complete, or by the hold timer
        if len(f.held) >= f.n:
            held, f.held = f.held, []
            return self._release_held(held[::-1])
        if len(f.held) == 1:
            self._later(f.seconds, self._reorder_timeout, f)
        return []

    def _later(self, delay_s: float, fn: Callable[..., Any], arg: Any, events: int = 0) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None
        self._delayed_events += events

        def fire() -> None:
            self._timers.discard(handle)  # type: ignore[arg-type]
            self._delayed_events -= events
            fn(arg)

        handle = loop.call_later(max(0.0, delay_s), fire)
        self._timers.add(handle)

    def _reorder_timeout(self, f: _EventFault) -> None:
        if self.faults._drop_reorder(f) and f.held:
            held, f.held = f.held, []
            self._release_held(held[::-1])

    def _release_held(self, items: list[tuple[str, dict]]) -> list[WsClient]:
        """Deliver held user-data events, in the given order, to their listenKey's sockets."""
        touched: list[WsClient] = []
        for key, ev in items:
            touched += self._hub.publish_user(key, ev)
        return touched

    async def _publish_user_events(self) -> None:
        touched = self._queue_user_events()
        if touched:
            await self._hub.flush(set(touched))

    def listen_key_active(self, key: str) -> bool:
        lk = self._listen.get(key)
        if lk is None or not lk.active:
            return False
        if time.monotonic() >= lk.expires_at:
            self._expire(lk)
            return False
        return True

    def _listen_key_post(self) -> dict:
        k = self._active_key
        if k is not None and self.listen_key_active(k):
            self._listen[k].expires_at = time.monotonic() + self.listen_key_ttl_s
            return {"listenKey": k}
        k = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(64))
        self._listen[k] = _ListenKey(k, time.monotonic() + self.listen_key_ttl_s)
        self._active_key = k
        return {"listenKey": k}

    def _listen_key_put(self) -> dict:
        k = self._active_key
        if k is None or not self.listen_key_active(k):
            raise SimApiError(400, -1125, "This listenKey does not exist. Please use POST /fapi/v1/listenKey "
                                          "to recreate listenKey")
        self._listen[k].expires_at = time.monotonic() + self.listen_key_ttl_s
        return {"listenKey": k}

    def _listen_key_delete(self) -> dict:
        k = self._active_key
        if k is not None:
            self._listen[k].active = False
            self._active_key = None
        return {}

    def _expire(self, lk: _ListenKey) -> None:
        if not lk.active:
            return
        lk.active = False
        if self._active_key == lk.key:
            self._active_key = None
        self._hub.publish_user(lk.key, {"e": "listenKeyExpired", "E": str(self.sim.now_ms), "listenKey": lk.key})

    def _expire_listen_key(self) -> str | None:
        k = self._active_key
        if k is None or k not in self._listen:
            return None
        self._expire(self._listen[k])
        return k

    async def _expiry_loop(self) -> None:
        period = max(0.02, min(1.0, self.listen_key_ttl_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for lk in list(self._listen.values()):
                if lk.active and now >= lk.expires_at:
                    self._expire(lk)

    # -- faults hooks ----------------------------------------------------------------------------

    def _drop_streams(self, route: str | None, code: int | None) -> int:
        return self._hub.drop(route, code)

    def _ban_all(self, seconds: float) -> None:
        self._limiter.ban_all(self.wall_ms(), seconds)

    # -- transports ------------------------------------------------------------------------------

    async def _handle_http(self, req: HttpRequest) -> HttpResponse:
        self.rest_in_flight += 1
        try:
            return await self._rest.handle(req)
        finally:
            self.rest_in_flight -= 1

    def _control_fault(self, params: Any, rid: Any) -> dict:
        """``FAULT`` on ``/sim``: ``params = {"name": <Faults method or "set">, "args": {...}}``."""
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            return {"error": {"code": 2, "msg": "Invalid request: FAULT params must be "
                                                '{"name": <fault>, "args": {...}}'}, "id": rid}
        args = params.get("args") or {}
        if not isinstance(args, dict):
            return {"error": {"code": 2, "msg": "Invalid request: FAULT args must be an object"}, "id": rid}
        try:
            value = self.faults.apply(params["name"], args)
        except (ValueError, TypeError) as e:
            return {"error": {"code": 2, "msg": f"Invalid request: {e}"}, "id": rid}
        return {"result": {"value": value, "pending": self.faults.pending,
                           "fired": self.faults.fired_counts}, "id": rid}

    async def _serve_control(self, ws: ServerConnection) -> None:
        """The ``/sim`` control socket: ``ADVANCE``, ``STATUS`` and ``FAULT`` requests, one reply each."""
        try:
            async for message in ws:
                try:
                    req = json.loads(message)
                    rid = req.get("id") if isinstance(req, dict) else None
                    method = req.get("method") if isinstance(req, dict) else None
                except ValueError:
                    await ws.send(dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
                    continue
                if method == "ADVANCE":
                    if self.speed > 0:
                        reply = {"error": {"code": -1, "msg": "ADVANCE is only available in lockstep mode (speed 0); "
                                                              f"this replay is paced at speed {self.speed}."},
                                 "id": rid}
                    else:
                        reply = {"result": await self.advance(), "id": rid}
                elif method == "STATUS":
                    reply = {"result": self._status(), "id": rid}
                elif method == "FAULT":
                    reply = self._control_fault(req.get("params"), rid)
                else:
                    reply = {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}; "
                                                         "expected ADVANCE, STATUS or FAULT"}, "id": rid}
                await ws.send(dumps(reply))
        except ConnectionClosed:
            pass
