"""WebSocket side: routes, subscriptions, fan-out of market and user-data messages.

Routes (§7.1/§8.1): ``/market``, ``/public``, ``/private`` each with ``/ws``, ``/ws/<s1>/<s2>``
and ``/stream?streams=s1/s2`` (combined wrapper ``{"stream","data"}``); the legacy bare ``/ws`` and
``/stream`` carry public-class streams only; ``/sim`` is the lockstep control socket.
A stream is delivered only on the route of its class: market data (kline, markPrice, …) on
``/market``, book data on ``/public`` and legacy, listenKeys on ``/private``. Anything else is
acknowledged and silently never delivered, as on Binance since 2026-04-23.

Each connection has an outgoing queue drained by one writer task, so pushes from synchronous
code keep their order, and :meth:`WsHub.flush` can wait until they have been handed to the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import parse_qsl

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

if TYPE_CHECKING:  # pragma: no cover
    from engine.exchange.sim.server.local import LocalExchange

log = logging.getLogger(__name__)


class _ClientGoneFilter(logging.Filter):
    """A client that goes away during the opening handshake (a process killed while connecting)
    is an everyday event for a local exchange, not an error with a traceback: one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        gone = exc is not None and isinstance(exc, (EOFError, ConnectionError))
        gone = gone or (exc is not None and isinstance(exc.__cause__, (EOFError, ConnectionError)))
        if record.getMessage() == "opening handshake failed" and gone:
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = f"client left during the opening handshake ({type(exc).__name__})", None
            record.exc_info, record.exc_text = None, None
        return True


_conn_log = logging.getLogger(__name__ + ".connections")
_conn_log.addFilter(_ClientGoneFilter())

MARKET, PUBLIC, PRIVATE, LEGACY, SIM = "market", "public", "private", "legacy", "sim"
ROUTES = (MARKET, PUBLIC, PRIVATE, LEGACY)

_STREAM_RE = re.compile(r"^(![A-Za-z]+(@[A-Za-z0-9_]+)*|[a-z0-9_]+(@[A-Za-z0-9_]+)+|tradingSession)$")
_KEY_RE = re.compile(r"^[A-Za-z0-9]{1,128}$")
_PUBLIC_MARKERS = ("@bookTicker", "!bookTicker", "@depth", "@rpiDepth")
_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")

_CLOSE_POLICY = 1008


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)


def is_listen_key_token(name: str) -> bool:
    return "@" not in name and not name.startswith("!") and bool(_KEY_RE.match(name)) and name != "tradingSession"


def stream_class(name: str) -> str:
    if is_listen_key_token(name):
        return PRIVATE
    if any(m in name for m in _PUBLIC_MARKERS):
        return PUBLIC
    return MARKET


def valid_token(name: Any) -> bool:
    return isinstance(name, str) and (bool(_STREAM_RE.match(name)) or is_listen_key_token(name))


@dataclass
class RouteSpec:
    kind: str
    combined: bool
    streams: list[str] = field(default_factory=list)
    keys: list[tuple[str, frozenset[str] | None]] = field(default_factory=list)


def parse_route(target: str) -> RouteSpec | None:
    """Parse a request target (path + query). None: not a route this server knows."""
    path, _, query = target.partition("?")
    segs = [s for s in path.split("/") if s]
    if segs == ["sim"]:
        return RouteSpec(SIM, False)
    if not segs:
        return None
    if segs[0] in (MARKET, PUBLIC, PRIVATE):
        kind, rest = segs[0], segs[1:]
    else:
        kind, rest = LEGACY, segs
    if not rest or rest[0] not in ("ws", "stream"):
        return None
    combined = rest[0] == "stream"
    tokens: list[str] = list(rest[1:]) if not combined else []
    if combined and len(rest) > 1:
        return None
    qs = parse_qsl(query, keep_blank_values=True)
    keys: list[list[Any]] = []
    pending: frozenset[str] | None = None
    for name, value in qs:
        if name == "streams":
            tokens.extend(t for t in value.split("/") if t)
        elif name == "listenKey":
            keys.append([value, pending])
            pending = None
        elif name == "events":
            ev = frozenset(e for e in value.split("/") if e)
            if keys and keys[-1][1] is None:
                keys[-1][1] = ev
            else:
                pending = ev
        elif name == "combined":
            combined = value.lower() == "true"
    spec = RouteSpec(kind, combined)
    for t in tokens:
        if kind == PRIVATE and is_listen_key_token(t):
            spec.keys.append((t, None))
        else:
            spec.streams.append(t)
    for k, ev in keys:
        if kind == PRIVATE:
            spec.keys.append((k, ev))
        else:
            spec.streams.append(k)
    return spec


class WsClient:
    def __init__(self, ws: ServerConnection, spec: RouteSpec) -> None:
        self.ws = ws
        self.kind = spec.kind
        self.combined = spec.combined
        self.subs: dict[str, None] = {}  # every subscribed name, in order (LIST_SUBSCRIPTIONS)
        self.keys: dict[str, frozenset[str] | None] = {}  # private: listenKey -> events allow-list
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False
        self.writer: asyncio.Task | None = None
        self.incoming: deque[float] = deque()

    def push(self, text: str) -> None:
        if not self.closed:
            self.queue.put_nowait(text)

    def subscribe(self, name: str, events: frozenset[str] | None = None) -> None:
        self.subs.setdefault(name, None)
        if self.kind == PRIVATE and is_listen_key_token(name):
            if name not in self.keys or events is not None:
                self.keys[name] = events

    def unsubscribe(self, name: str) -> None:
        self.subs.pop(name, None)
        self.keys.pop(name, None)

    async def run_writer(self) -> None:
        try:
            while True:
                text = await self.queue.get()
                try:
                    if text is None:
                        return
                    await self.ws.send(text)
                finally:
                    self.queue.task_done()
        except (ConnectionClosed, ConnectionError):
            pass
        finally:
            self.closed = True
            while not self.queue.empty():
                self.queue.get_nowait()
                self.queue.task_done()

    async def flushed(self) -> None:
        await self.queue.join()


class WsHub:
    def __init__(self, owner: "LocalExchange", host: str, port: int, ping_interval_s: float) -> None:
        self._owner = owner
        self._host = host
        self._port = port
        self._ping_interval = ping_interval_s
        self._server: Server | None = None
        self.clients: set[WsClient] = set()
        self._controls: set[ServerConnection] = set()
        self._bg: set[asyncio.Task] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return next(iter(self._server.sockets)).getsockname()[1]

    async def start(self) -> None:
        limits = self._owner.limits
        self._server = await serve(
            self._handler, self._host, self._port, process_request=self._process_request,
            ping_interval=self._ping_interval if self._ping_interval and self._ping_interval > 0 else None,
            ping_timeout=limits.ws_pong_timeout_s, max_size=1 << 20, close_timeout=2, logger=_conn_log,
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        for c in list(self.clients):
            c.closed = True
            with contextlib.suppress(Exception):
                c.ws.transport.abort()
        for ws in list(self._controls):
            with contextlib.suppress(Exception):
                ws.transport.abort()
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 3)
        self._server = None

    # -- handshake / connection ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        spec = parse_route(request.path)
        if spec is None:
            return connection.respond(404, '{"code":-1000,"msg":"Unknown WebSocket path."}\n')
        if len(spec.streams) + len(spec.keys) > self._owner.limits.ws_max_streams:
            return connection.respond(400, '{"code":-1000,"msg":"Too many streams; maximum is %d per connection."}\n'
                                      % self._owner.limits.ws_max_streams)
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        spec = parse_route(ws.request.path if ws.request is not None else "/")
        if spec is None:
            await ws.close(_CLOSE_POLICY, "Unknown path")
            return
        if spec.kind == SIM:
            self._controls.add(ws)
            try:
                await self._owner._serve_control(ws)
            finally:
                self._controls.discard(ws)
            return
        for k, _ in spec.keys:
            if not self._owner.listen_key_active(k):
                await ws.close(_CLOSE_POLICY, "Invalid listenKey")
                return
        client = WsClient(ws, spec)
        for s in spec.streams:
            client.subscribe(s)
        for k, ev in spec.keys:
            client.subscribe(k, ev)
        client.writer = asyncio.create_task(client.run_writer())
        self.clients.add(client)
        try:
            async for message in ws:
                if self._too_fast(client):
                    await ws.close(_CLOSE_POLICY, "Too many messages")
                    break
                if not await self._on_message(client, message):
                    break
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            client.closed = True
            with contextlib.suppress(Exception):
                client.queue.put_nowait(None)
            if client.writer is not None:
                client.writer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client.writer

    def _too_fast(self, client: WsClient) -> bool:
        now = time.monotonic()
        q = client.incoming
        q.append(now)
        while q and now - q[0] >= 1.0:
            q.popleft()
        return len(q) > self._owner.limits.ws_max_incoming_per_s

    # -- subscription protocol (§7.2) ---------------------------------------------------------------

    async def _on_message(self, client: WsClient, message: str | bytes) -> bool:
        """Handle one client frame; False when the connection was closed."""
        def error(code: int, msg: str, rid: Any = None) -> bool:
            client.push(dumps({"error": {"code": code, "msg": msg}, "id": rid}))
            return True

        try:
            req = json.loads(message)
        except (ValueError, UnicodeDecodeError) as e:
            line = getattr(e, "lineno", 1)
            col = getattr(e, "colno", 1)
            return error(3, f"Invalid JSON: expected value at line {line} column {col}")
        if not isinstance(req, dict):
            return error(2, "Invalid request: expected an object")
        rid = req.get("id")
        if isinstance(rid, bool) or not isinstance(rid, int) or rid < 0:
            return error(2, "Invalid request: request ID must be an unsigned integer")
        method = req.get("method")
        if method is None:
            return error(2, "Invalid request: missing field `method`", rid)
        if method not in _METHODS:
            return error(2, f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, "
                            "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`", rid)
        params = req.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not params:
                return error(2, "Invalid request: params must be a non-empty array of stream names", rid)
            if not all(valid_token(p) for p in params):
                return error(2, "Invalid request: invalid stream", rid)
            if method == "UNSUBSCRIBE":
                for p in params:
                    client.unsubscribe(p)
                client.push(dumps({"result": None, "id": rid}))
                return True
            new = [p for p in params if p not in client.subs]
            if len(client.subs) + len(set(new)) > self._owner.limits.ws_max_streams:
                return error(2, f"Invalid request: too many streams; maximum is "
                                f"{self._owner.limits.ws_max_streams} per connection", rid)
            if client.kind == PRIVATE:
                for p in params:
                    if is_listen_key_token(p) and not self._owner.listen_key_active(p):
                        await client.ws.close(_CLOSE_POLICY, "Invalid listenKey")
                        return False
            for p in params:
                client.subscribe(p)
            client.push(dumps({"result": None, "id": rid}))
            return True
        if method == "LIST_SUBSCRIPTIONS":
            client.push(dumps({"result": list(client.subs), "id": rid}))
            return True
        # SET_PROPERTY / GET_PROPERTY
        if not isinstance(params, list) or not params:
            return error(2, "Invalid request: property name must be a string", rid)
        name = params[0]
        if not isinstance(name, str):
            return error(2, "Invalid request: property name must be a string", rid)
        if name != "combined":
            return error(0, "Unknown property", rid)
        if method == "GET_PROPERTY":
            client.push(dumps({"result": client.combined, "id": rid}))
            return True
        if len(params) != 2 or not isinstance(params[1], bool):
            return error(1, "Invalid value type: expected Boolean", rid)
        client.combined = params[1]
        client.push(dumps({"result": None, "id": rid}))
        return True

    # -- fan-out ---------------------------------------------------------------------------------

    def publish_market(self, stream: str, payload: dict) -> list[WsClient]:
        return _fan_out([c for c in self.clients
                         if c.kind == MARKET and stream in c.subs and not c.closed], stream, payload)

    def publish_user(self, listen_key: str, event: dict) -> list[WsClient]:
        etype = event.get("e")
        targets = []
        for c in self.clients:
            if c.kind != PRIVATE or c.closed or listen_key not in c.keys:
                continue
            allow = c.keys[listen_key]
            if allow is None or etype in allow:
                targets.append(c)
        return _fan_out(targets, listen_key, event)

    async def flush(self, clients: Iterable[WsClient] | None = None, timeout: float = 5.0) -> None:
        """Wait (bounded) until the given clients' queued messages have been written to their sockets."""
        targets = [c for c in (self.clients if clients is None else clients) if not c.closed]
        if not targets:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(c.flushed() for c in targets)), timeout)

    def drop(self, route: str | None, code: int | None) -> int:
        want = route.strip("/") if route else None
        n = 0
        for c in list(self.clients):
            if want is not None and c.kind != want:
                continue
            n += 1
            c.closed = True
            if code is None:
                with contextlib.suppress(Exception):
                    c.ws.transport.abort()
            else:
                t = asyncio.get_running_loop().create_task(_close_quietly(c.ws, code))
                self._bg.add(t)
                t.add_done_callback(self._bg.discard)
        return n


async def _close_quietly(ws: ServerConnection, code: int) -> None:
    with contextlib.suppress(Exception):
        await ws.close(code, "Server closed the stream")


def _fan_out(clients: list[WsClient], stream: str, payload: dict) -> list[WsClient]:
    """Push ``payload`` to each client, raw or in the combined wrapper, serializing each form once."""
    raw: str | None = None
    wrapped: str | None = None
    for c in clients:
        if c.combined:
            if wrapped is None:
                wrapped = dumps({"stream": stream, "data": payload})
            c.push(wrapped)
        else:
            if raw is None:
                raw = dumps(payload)
            c.push(raw)
    return clients
