"""The real Binance USDⓈ-M adapter: implements the async :class:`engine.exchange.port.Exchange`.

Domain requests become exactly the parameters the in-process sim port builds
(:func:`engine.exchange.sim.port.order_params` / :func:`algo_params`), responses and stream
payloads go through the one parser (:mod:`engine.exchange.binance.parse`), so the sim and the
real exchange exercise the same code. Streams: :mod:`engine.exchange.binance.streams`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Callable, Mapping, Sequence

from engine.exchange.binance.endpoints import Endpoints
from engine.exchange.binance.parse import ParseError, parse_account, parse_position_risk, parse_rest_kline
from engine.exchange.binance.rest import BinanceRest, gather_or_cancel, quick_read
from engine.exchange.binance.streams import Connect, MarketStream, UserStream, default_connect, make_backoff
from engine.exchange.errors import ExchangeConfigError, ExchangeError
from engine.exchange.filters import SymbolRules, parse_exchange_info, parse_leverage_brackets, with_brackets
from engine.exchange.sim.port import algo_params, order_params
from engine.model import Account, AlgoOrderRequest, Candle, MarginType, MarkPrice, OrderRequest, Position, PositionMode

log = logging.getLogger(__name__)


def _noop_status(stream: str, state: str) -> None:
    return None


class BinanceAdapter:
    """``Exchange`` over :class:`BinanceRest` plus the market and user-data streams."""

    def __init__(
        self,
        rest: BinanceRest,
        endpoints: Endpoints,
        *,
        symbols: Sequence[str],
        ws_max_backoff_s: float = 60,
        on_candle: Callable[[Candle], None],
        on_mark: Callable[[MarkPrice], None],
        on_user_event: Callable[[object], None],
        on_stream_status: Callable[[str, str], None] = _noop_status,
        backoff: Callable[[int], float] | None = None,
        listen_key_keepalive_s: float = 1800,
        max_connection_age_s: float = 23.5 * 3600,
        streams_per_connection: int = 1024,
        connect: Connect | None = None,
        time_sync_interval_s: float = 600,
        stale_after_s: float | None = None,
    ) -> None:
        self.rest = rest
        self.endpoints = endpoints
        self.symbols = [s.upper() for s in symbols]
        self.on_candle = on_candle
        self.on_mark = on_mark
        self.on_user_event = on_user_event
        self.on_stream_status = on_stream_status
        self.backoff = backoff or make_backoff(ws_max_backoff_s)
        self.listen_key_keepalive_s = listen_key_keepalive_s
        self.max_connection_age_s = max_connection_age_s
        self.streams_per_connection = streams_per_connection
        self.time_sync_interval_s = time_sync_interval_s
        # Binance pushes mark prices every second, so 90 s of silence means a dead subscription;
        # the local server only sends data per replayed candle, so there it is off by default.
        self.stale_after_s = stale_after_s if stale_after_s is not None else (None if endpoints.name == "sim" else 90.0)
        self._connect = connect or default_connect
        self._rules: dict[str, SymbolRules] = {}
        self._seed: dict[str, int] = {}
        self._tasks: list[asyncio.Task] = []
        self.market: MarketStream | None = None
        self.user: UserStream | None = None

    def __repr__(self) -> str:
        return f"<BinanceAdapter {self.endpoints.name} symbols={len(self.symbols)}>"

    # -- setup -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Sync the clock, load exchangeInfo and leverage brackets (cached as rules)."""
        clock = asyncio.ensure_future(self.sync_clock())
        await gather_or_cancel(clock, self.load_rules(clock))

    async def sync_clock(self) -> None:
        """``/fapi/v1/time``: every signed request waits for it (a restart's signed reads start once
        it is answered, without waiting for exchangeInfo)."""
        await self.rest.sync_time()

    async def load_rules(self, clock: asyncio.Future) -> None:
        """exchangeInfo (unsigned: sent at once) and the leverage brackets (signed: sent once
        ``clock`` is done), loaded as the symbols' rules. A restart with a bare position waits for
        the slower of the two chains only."""
        async def brackets() -> Any:
            await asyncio.shield(clock)  # the clock sync is not this chain's to cancel
            return await quick_read(self.rest.leverage_brackets, "leverage brackets")

        info, raw_brackets = await gather_or_cancel(quick_read(self.rest.exchange_info, "exchange info"), brackets())
        self.rest.limits.apply_exchange_info(info)
        if isinstance(info, Mapping) and info.get("serverTime"):
            self.info_time_ms = int(info["serverTime"])
        rules = parse_exchange_info(info)
        brackets_by_symbol = parse_leverage_brackets(raw_brackets)
        missing = [s for s in self.symbols if s not in rules]
        if missing:
            raise ExchangeConfigError(f"symbol(s) not listed on Binance {self.endpoints.name}: {', '.join(missing)}")
        out = {}
        for s in self.symbols:
            r = rules[s]
            if r.status != "TRADING":
                log.warning("%s is %s on Binance, not TRADING", s, r.status)
            out[s] = with_brackets(r, brackets_by_symbol.get(s, ()))
        self._rules = out
        if self.rest.order_sender is not None:
            try:  # the first order should not pay for TCP/TLS set-up
                await self.rest.order_sender.warm(8)
            except OSError as exc:
                log.warning("could not pre-open order connections: %s", type(exc).__name__)

    async def symbol_rules(self) -> dict[str, SymbolRules]:
        if not self._rules:
            await self.start()
        return dict(self._rules)

    async def configure(self, *, leverage: int, margin_type: str, position_mode: str) -> list[str]:
        """Set leverage and margin type per symbol and check the account's position mode.

        Returns human-readable notes; raises :class:`ExchangeConfigError` when the account
        cannot be brought to the configuration without a person acting.
        """
        notes = await self.configure_symbols(leverage=leverage, margin_type=margin_type)
        return notes + await self.configure_position_mode(position_mode)

    async def configure_symbols(self, *, leverage: int, margin_type: str) -> list[str]:
        """Leverage and margin type per symbol (a restart sets them once its positions are protected:
        they change nothing about a position's stop)."""
        mt = _margin_type(margin_type)
        notes: list[str] = []
        for s in self.symbols:
            try:
                r = await self.rest.change_leverage(s, leverage)
            except ExchangeError as e:
                if e.transient:
                    raise  # not an answer about the setting: the caller waits and asks again
                raise ExchangeConfigError(f"{s}: could not set leverage {leverage}x: {e.msg}", e.code, e.http_status,
                                          hint=e.hint) from None
            notes.append(f"{s}: leverage {r.get('leverage', leverage) if isinstance(r, Mapping) else leverage}x")
            try:
                await self.rest.change_margin_type(s, mt.value)
                notes.append(f"{s}: margin type set to {mt.value}")
            except ExchangeError as e:
                if e.transient:
                    raise
                if e.code == -4046:
                    notes.append(f"{s}: margin type already {mt.value}")
                elif e.code in (-4047, -4048):
                    what = "open orders" if e.code == -4047 else "an open position"
                    raise ExchangeConfigError(
                        f"{s}: cannot switch margin type to {mt.value} while the symbol has {what}; close "
                        f"them on Binance or set margin_type to the account's current one", e.code, e.http_status,
                        hint=e.hint) from None
                else:
                    raise ExchangeConfigError(f"{s}: could not set margin type {mt.value}: {e.msg}", e.code,
                                              e.http_status, hint=e.hint) from None
        return notes

    async def configure_position_mode(self, position_mode: str) -> list[str]:
        """Check (and, with nothing open, change) the account's position mode. It decides which
        position side every order names, so it comes before any order at startup."""
        want_hedge = _position_mode(position_mode) is PositionMode.HEDGE
        notes: list[str] = []
        r = await self.rest.get_position_mode()
        dual = r.get("dualSidePosition") if isinstance(r, Mapping) else None
        is_hedge = dual is True or str(dual).lower() == "true"
        have = "HEDGE" if is_hedge else "ONEWAY"
        want = "HEDGE" if want_hedge else "ONEWAY"
        if is_hedge == want_hedge:
            notes.append(f"position mode {have} (as configured)")
            return notes
        busy = await self._account_activity()
        if busy:
            raise ExchangeConfigError(
                f"the account is in {have} position mode but the config says {want}, and it cannot be "
                f"switched while {'; '.join(busy)}. Close those on Binance, or set position_mode={have}")
        try:
            await self.rest.change_position_mode(want_hedge)
            notes.append(f"position mode changed from {have} to {want}")
        except ExchangeError as e:
            if e.code == -4059:
                notes.append(f"position mode already {want}")
            else:
                raise ExchangeConfigError(f"could not change position mode to {want}: {e.msg}", e.code,
                                          e.http_status, hint=e.hint) from None
        return notes

    async def _account_activity(self) -> list[str]:
        busy = []
        pos = [p for p in await self.positions() if p.amount != 0]
        if pos:
            busy.append("positions are open on " + ", ".join(sorted({p.symbol for p in pos})))
        oo = await self.open_orders()
        if oo:
            busy.append(f"{len(oo)} order(s) are open")
        ao = await self.open_algo_orders()
        if ao:
            busy.append(f"{len(ao)} conditional order(s) are open")
        return busy

    # -- Exchange port ---------------------------------------------------------------------

    async def place_order(self, req: OrderRequest) -> int:
        r = await self.rest.new_order(order_params(req))
        return _id(r, "orderId")

    async def place_algo_order(self, req: AlgoOrderRequest) -> int:
        r = await self.rest.new_algo_order(algo_params(req))
        return _id(r, "algoId")

    async def cancel_order(self, symbol: str, client_order_id: str) -> None:
        await self.rest.cancel_order(symbol, client_order_id)

    async def cancel_algo_order(self, symbol: str, client_algo_id: str) -> None:
        await self.rest.cancel_algo_order(client_algo_id)

    async def positions(self) -> list[Position]:
        return _parsed(parse_position_risk, await self.rest.position_risk())

    USER_TRADES_PAGE = 1000
    """Rows per ``userTrades`` request (Binance's maximum)."""
    USER_TRADES_WINDOW_MS = 7 * 86_400_000 - 1
    """The longest time window one ``userTrades`` request may ask for."""

    info_time_ms: int = 0
    """``serverTime`` of the exchangeInfo loaded at start: exchange time (a local replay's clock)."""

    async def exchange_time_ms(self) -> int:
        """The exchange's clock now, from ``premiumIndex`` ``time`` (weight 1). Live it is the
        server's clock; a local replay answers with its replay clock, which ``/fapi/v1/time`` does
        not (that one serves request signing)."""
        r = await self.rest.premium_index(self.symbols[0])
        t = int(r.get("time") or 0) if isinstance(r, Mapping) else 0
        return max(t, self.info_time_ms)

    async def user_trades(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None) -> list[dict]:
        """``GET /fapi/v1/userTrades`` rows (fills) of ``symbol`` from ``start_ms`` (default: 7 days
        before ``end_ms``) to ``end_ms`` (default: the server's clock), all of them, oldest first.
        Binance answers a time window with its newest ``limit`` rows, so a full page is split in
        two halves until no page is full; windows are at most 7 days long."""
        now = end_ms if end_ms is not None else self.rest.server_now_ms()
        start = start_ms if start_ms is not None else now - self.USER_TRADES_WINDOW_MS
        rows: dict[int, dict] = {}
        while start <= now:
            end = min(start + self.USER_TRADES_WINDOW_MS, now)
            for r in await self._trades_window(symbol, start, end):
                rows[int(r["id"])] = r
            start = end + 1
        return [rows[k] for k in sorted(rows)]

    async def _trades_window(self, symbol: str, start: int, end: int) -> list[dict]:
        page = list(await self.rest.user_trades(symbol, start, end, limit=self.USER_TRADES_PAGE) or [])
        if len(page) < self.USER_TRADES_PAGE or end <= start:
            return page
        mid = (start + end) // 2
        return await self._trades_window(symbol, start, mid) + await self._trades_window(symbol, mid + 1, end)

    async def order_by_id(self, symbol: str, order_id: int) -> dict:
        return dict(await self.rest.query_order_by_id(symbol, order_id))

    async def query_order(self, symbol: str, client_order_id: str) -> dict:
        return dict(await self.rest.query_order(symbol, client_order_id))

    async def query_algo_order(self, client_algo_id: str) -> dict:
        return dict(await self.rest.query_algo_order(client_algo_id))

    async def account(self) -> Account:
        return _parsed(parse_account, await self.rest.account(), self.rest.server_now_ms())

    async def open_orders(self) -> list[dict]:
        return list(await self.rest.open_orders() or [])

    async def open_algo_orders(self) -> list[dict]:
        r = await self.rest.open_algo_orders()
        if isinstance(r, Mapping):  # tolerate a wrapped form
            r = r.get("orders", r.get("data", []))
        return list(r or [])

    # -- streams ---------------------------------------------------------------------------

    def seed_candles(self, last_open_ms: Mapping[str, int]) -> None:
        """Candles up to these open times were already processed (e.g. REST warm-up): the
        market stream fills the gap after them on (re)connect and never delivers them again."""
        for s, t in last_open_ms.items():
            self._seed[s.upper()] = int(t)
            if self.market is not None:
                self.market.gate.seed(s.upper(), int(t))

    async def _fetch_klines(self, symbol: str, start_ms: int) -> list[Candle]:
        rows = await self.rest.klines(symbol, "1m", start_ms=start_ms, limit=1500)
        return [parse_rest_kline(symbol, row) for row in rows or []]

    async def start_streams(self, wait_connected_s: float = 10.0) -> None:
        """Start the market and user-data streams and the periodic clock resync.

        Returns once both streams are connected (so no user-data event produced after this
        returns is missed), or after ``wait_connected_s`` with a warning — they keep retrying.
        """
        if self._tasks:
            return
        self.market = MarketStream(
            url=self.endpoints.ws_market_url,
            symbols=self.symbols,
            on_candle=self.on_candle,
            on_mark=self.on_mark,
            fetch_klines=self._fetch_klines,
            server_now_ms=self.rest.server_now_ms,
            wall_ms=self.rest.wall_ms,
            backoff=self.backoff,
            on_status=self.on_stream_status,
            connect=self._connect,
            streams_per_connection=self.streams_per_connection,
            max_connection_age_s=self.max_connection_age_s,
            stale_after_s=self.stale_after_s,
        )
        for s, t in self._seed.items():
            self.market.gate.seed(s, t)
        self.user = UserStream(
            url=self.endpoints.ws_private_url,
            new_listen_key=self.rest.new_listen_key,
            keepalive_listen_key=self.rest.keepalive_listen_key,
            on_user_event=self.on_user_event,
            wall_ms=self.rest.wall_ms,
            backoff=self.backoff,
            on_status=self.on_stream_status,
            connect=self._connect,
            keepalive_s=self.listen_key_keepalive_s,
            max_connection_age_s=self.max_connection_age_s,
        )
        self._tasks = [
            asyncio.create_task(self.market.run(), name="binance-market"),
            asyncio.create_task(self.user.run(), name="binance-user"),
            asyncio.create_task(self._resync_clock(), name="binance-time"),
        ]
        if wait_connected_s > 0:
            try:
                await self.wait_connected(wait_connected_s)
            except TimeoutError:
                log.warning("streams not connected after %.0f s: %s (still retrying)", wait_connected_s,
                            {k: v["state"] for k, v in self.stream_status().items()})

    async def wait_connected(self, timeout_s: float = 10.0) -> None:
        """Until both streams are connected (raises ``TimeoutError`` after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            while not (self.market and self.user
                       and (not self.market.conns or self.market.health().state == "connected")
                       and self.user.health.state == "connected"):
                if any(t.done() for t in self._tasks):
                    raise TimeoutError("a stream task ended")
                await asyncio.sleep(0.01)

    async def _resync_clock(self) -> None:
        while True:
            await asyncio.sleep(self.time_sync_interval_s)
            try:
                await self.rest.sync_time()
            except ExchangeError as e:
                log.warning("periodic clock resync failed: %s", e)

    async def stop(self) -> None:
        """Stop the streams and background tasks and close the listen key (best effort).

        The REST client stays open (its owner closes it with ``await rest.aclose()``).
        """
        if self.market:
            self.market.stop()
        if self.user:
            self.user.stop()
        tasks, self._tasks = self._tasks, []
        for t in tasks:
            t.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=5)
            for t in stuck:  # shutdown must never hang on a stream task
                log.warning("stream task %s did not stop within 5 s; abandoning it", t.get_name())
        if self.user is not None and self.user.listen_key:
            try:
                await asyncio.wait_for(self.rest.close_listen_key(), timeout=5)
            except (ExchangeError, asyncio.TimeoutError, TimeoutError) as e:
                log.info("closing the listen key failed: %s", e)
            self.user.listen_key = None
        if tasks:
            for stream in ("market", "user"):
                with contextlib.suppress(Exception):
                    self.on_stream_status(stream, "down")

    @property
    def user_events_received(self) -> int:
        return self.user.received if self.user is not None else 0

    async def wait_user_events(self, n: int, timeout_s: float = 10) -> None:
        """Until ``user_events_received >= n`` (raises ``TimeoutError`` after ``timeout_s``)."""
        if self.user is None:
            if n <= 0:
                return
            raise RuntimeError("user stream not started: call start_streams() first")
        await self.user.wait_received(n, timeout_s)

    def stream_status(self) -> dict:
        m = self.market.health().as_dict() if self.market else {"state": "down", "last_message_ms": 0, "reconnects": 0}
        u = self.user.health.as_dict() if self.user else {"state": "down", "last_message_ms": 0, "reconnects": 0}
        return {"market": m, "user": u}


def _id(r: Any, field: str) -> int:
    try:
        return int(r[field])
    except (KeyError, TypeError, ValueError):
        raise ExchangeError(0, f"response without {field}", 200) from None


def _parsed(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except ParseError as e:
        raise ExchangeError(0, f"unexpected response shape: {e}", 200) from None


def _margin_type(v: Any) -> MarginType:
    s = str(getattr(v, "value", v)).upper()
    if s in ("CROSS", "CROSSED"):
        return MarginType.CROSSED
    if s == "ISOLATED":
        return MarginType.ISOLATED
    raise ExchangeConfigError(f"margin_type must be ISOLATED or CROSSED, not {v!r}")


def _position_mode(v: Any) -> PositionMode:
    s = str(getattr(v, "value", v)).upper().replace("-", "").replace("_", "")
    if s in ("ONEWAY", "ONE", "BOTH"):
        return PositionMode.ONEWAY
    if s in ("HEDGE", "DUAL"):
        return PositionMode.HEDGE
    raise ExchangeConfigError(f"position_mode must be ONEWAY or HEDGE, not {v!r}")
