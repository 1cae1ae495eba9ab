"""Async REST client for Binance USDⓈ-M futures over the official connector.

``UMFutures`` (the deprecated-but-official ``binance-futures-connector``) does the HTTP; it is
blocking, so every request runs on a small thread pool with one connector — hence one
``requests.Session`` — per worker thread. On top of it this module adds what the connector
lacks (protocol notes §2, §3, §6.1):

* signing with HMAC, RSA **and Ed25519**, with ``timestamp`` = wall clock + server offset;
* ``-1021``/``-5028``: resync the clock once, re-sign, resend once;
* a rate-limit gate fed by ``X-MBX-USED-WEIGHT-1M`` / ``X-MBX-ORDER-COUNT-*`` and by 429/418,
  which never sends a request during a ban;
* typed errors (:mod:`engine.exchange.errors`) with no parameters or secrets in messages;
* order placement that survives "execution status unknown" answers without ever creating a
  second order (:meth:`BinanceRest.new_order`, :meth:`BinanceRest.new_algo_order`).

Tests inject ``transport`` (a function ``(method, path, params, security) -> (data, headers)``
that may raise connector exceptions) instead of the connector, and ``sleep``/``wall_ms``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping

from binance.um_futures import UMFutures

from engine.clock import WallClock
from engine.exchange.binance.endpoints import Endpoints
from engine.exchange.binance.errmap import map_exception, short_key
from engine.exchange.binance.fastsend import FAST_PATHS, OrderSender
from engine.exchange.binance.signing import Credentials, Signer, make_signer, sign_params
from engine.exchange.filters import fmt
from engine.exchange.weights import klines_weight
from engine.exchange.errors import (
    AuthError,
    Banned,
    ExchangeError,
    RateLimited,
    TransientError,
    UnknownStatusError,
)

log = logging.getLogger(__name__)

NONE, SIGNED, USER_STREAM, MARKET_DATA = "NONE", "SIGNED", "USER_STREAM", "MARKET_DATA"

#: ``(method, path, params, security) -> (json, response headers)``; may be sync or async.
Transport = Callable[[str, str, dict, str], Any]

ORDER_PATH = "/fapi/v1/order"
ALGO_PATH = "/fapi/v1/algoOrder"
NOT_FOUND_CODES = frozenset({-2013})
TIMESTAMP_CODES = frozenset({-1021, -5028})


def _wall_ms() -> int:
    return WallClock().now_ms()


def default_retry_backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based) of a certainly-not-applied failure: 0.2, 0.4, 0.8…"""
    return min(0.2 * (2**attempt), 5.0)


ORDER_TIMEOUT_S = 3.0
"""How long a new order (or conditional order) waits for its answer before its outcome counts as
unknown and is resolved by client id. Binance answers in well under a second; a stop whose POST
hangs must not leave a position bare for a whole general request timeout."""
QUICK_READ_TIMEOUT_S = 0.6
"""A read something urgent waits for (a bare position's stop at startup, the clock sync) is asked
again, beside the first, when it has not been answered after this long, twice: such reads are
answered in milliseconds, and a request lost on the way must not hold things up for a whole
timeout. The first one is not abandoned: on a merely slow link it still answers first."""


async def quick_read(call: Callable[[], Awaitable[Any]], what: str, timeout_s: float = QUICK_READ_TIMEOUT_S,
                     tries: int = 2) -> Any:
    """``call()`` (a read: safe to repeat) hedged: another copy is sent every ``timeout_s`` while
    none has answered, ``tries`` more at most; the first answer wins and the others are dropped.
    Raises once every copy sent has failed (the first failure)."""
    running: list[asyncio.Task] = [asyncio.ensure_future(call())]
    errors: list[BaseException] = []
    try:
        while True:
            hedge = len(running) <= tries
            done, _ = await asyncio.wait([t for t in running if not t.done()],
                                         timeout=timeout_s if hedge else None,
                                         return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t.exception() is None:
                    return t.result()
                errors.append(t.exception())
            if not done:  # no answer yet: one more copy beside the ones in flight
                log.warning("%s: no answer within %.1f s; asking again", what, timeout_s)
                running.append(asyncio.ensure_future(call()))
            elif all(t.done() for t in running):
                raise errors[0]
    finally:
        for t in running:
            if not t.done():
                t.cancel()
        for t in running:  # retrieve what the dropped copies ended with
            if t.done() and not t.cancelled():
                t.exception()


async def gather_or_cancel(*aws: Awaitable[Any]) -> list[Any]:
    """``asyncio.gather`` that, when one fails, cancels the others before raising the failure (so a
    retried startup step never leaves a request of the failed attempt running beside the new one)."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if pending:
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    errors = [t.exception() for t in tasks if not t.cancelled()]  # every one retrieved, the first raised
    first = next((e for e in errors if e is not None), None)
    if first is not None:
        raise first
    return [t.result() for t in tasks]


RESOLVE_TIMEOUT_S = 1.0
"""How long one query that resolves an unknown order may take before it is asked again: a read
by client id, cheap (weight 1) and safe to repeat."""


def default_resolve_backoff(attempt: int) -> float:
    """Seconds before query ``attempt`` (0-based) when resolving an unknown order status."""
    return min(0.5 * (2**attempt), 8.0)


def algo_resolve_backoff(attempt: int) -> float:
    """The same for conditional orders (stops, take-profits): 0.1, 0.2, 0.4… s. A stop whose
    placement is unknown leaves a position bare until it is resolved, and a resend cannot double
    it: a ``clientAlgoId`` that exists is refused as a duplicate and then looked up."""
    return min(0.1 * (2**attempt), 2.0)


# -- rate limits ---------------------------------------------------------------------------------


@dataclass
class RateLimitState:
    """What Binance told us about our usage, and the gate decision built on it.

    Counters are per window (server-time minute / 10 s); a counter seen in an earlier window
    counts as zero. ``banned_until_ms`` and ``retry_after_until_ms`` are wall-clock ms.
    """

    used_weight_1m: int = 0
    order_count_10s: int = 0
    order_count_1m: int = 0
    banned_until_ms: int = 0
    retry_after_until_ms: int = 0
    weight_limit_1m: int = 2400
    order_limit_10s: int = 300
    order_limit_1m: int = 1200
    threshold: float = 0.9
    offset_ms: int = 0  # server − wall, for window alignment
    _weight_win: int = -1
    _o10_win: int = -1
    _o1m_win: int = -1

    # windows
    def _win(self, now_ms: int, size_ms: int) -> int:
        return (now_ms + self.offset_ms) // size_ms

    def weight_now(self, now_ms: int) -> int:
        return self.used_weight_1m if self._weight_win == self._win(now_ms, 60_000) else 0

    def orders_10s_now(self, now_ms: int) -> int:
        return self.order_count_10s if self._o10_win == self._win(now_ms, 10_000) else 0

    def orders_1m_now(self, now_ms: int) -> int:
        return self.order_count_1m if self._o1m_win == self._win(now_ms, 60_000) else 0

    def _to_next(self, now_ms: int, size_ms: int) -> int:
        server = now_ms + self.offset_ms
        return size_ms - server % size_ms + 50  # a little past the boundary

    def apply_exchange_info(self, payload: Mapping[str, Any]) -> None:
        """Take the limits from exchangeInfo ``rateLimits`` (keeps defaults for missing ones)."""
        for rl in payload.get("rateLimits", []) or []:
            try:
                kind, interval, num, limit = rl["rateLimitType"], rl["interval"], int(rl["intervalNum"]), int(rl["limit"])
            except (KeyError, TypeError, ValueError):
                continue
            if kind == "REQUEST_WEIGHT" and interval == "MINUTE" and num == 1:
                self.weight_limit_1m = limit
            elif kind == "ORDERS" and interval == "MINUTE" and num == 1:
                self.order_limit_1m = limit
            elif kind == "ORDERS" and interval == "SECOND" and num == 10:
                self.order_limit_10s = limit

    def delay_ms(self, now_ms: int, weight: int, is_order: bool) -> int:
        """How long to wait before sending (0: go now). Raises :class:`Banned` during a ban."""
        if now_ms < self.banned_until_ms:
            raise Banned(-1003, "IP banned by Binance; no request sent", 418, until_ms=self.banned_until_ms,
                         retry_after_s=(self.banned_until_ms - now_ms) / 1000)
        waits = [0]
        if now_ms < self.retry_after_until_ms:
            waits.append(self.retry_after_until_ms - now_ms)
        if weight > 0 and self.weight_now(now_ms) + weight > self.threshold * self.weight_limit_1m:
            waits.append(self._to_next(now_ms, 60_000))
        if is_order:
            if self.orders_10s_now(now_ms) + 1 > self.threshold * self.order_limit_10s:
                waits.append(self._to_next(now_ms, 10_000))
            if self.orders_1m_now(now_ms) + 1 > self.threshold * self.order_limit_1m:
                waits.append(self._to_next(now_ms, 60_000))
        return max(waits)

    def reserve(self, now_ms: int, weight: int, is_order: bool) -> None:
        """Count a request we are about to send (headers correct the estimate afterwards)."""
        w = self._win(now_ms, 60_000)
        self.used_weight_1m = self.weight_now(now_ms) + weight
        self._weight_win = w
        if is_order:
            self.order_count_10s = self.orders_10s_now(now_ms) + 1
            self._o10_win = self._win(now_ms, 10_000)
            self.order_count_1m = self.orders_1m_now(now_ms) + 1
            self._o1m_win = w

    def observe_headers(self, headers: Any, now_ms: int) -> None:
        if not headers:
            return
        try:
            items = {str(k).lower(): v for k, v in headers.items()}
        except AttributeError:
            return
        for name, attr, win_attr, size in (
            ("x-mbx-used-weight-1m", "used_weight_1m", "_weight_win", 60_000),
            ("x-mbx-order-count-10s", "order_count_10s", "_o10_win", 10_000),
            ("x-mbx-order-count-1m", "order_count_1m", "_o1m_win", 60_000),
        ):
            v = items.get(name)
            if v is None:
                continue
            try:
                n = int(str(v).strip())
            except ValueError:
                continue
            setattr(self, attr, n)
            setattr(self, win_attr, self._win(now_ms, size))

    def observe_error(self, err: ExchangeError, now_ms: int) -> None:
        if isinstance(err, Banned):
            self.banned_until_ms = max(self.banned_until_ms, err.until_ms)
        elif isinstance(err, RateLimited):
            until = err.until_ms
            if not until:
                until = now_ms + (self._to_next(now_ms, 10_000) if err.code == -1015 else self._to_next(now_ms, 60_000))
            self.retry_after_until_ms = max(self.retry_after_until_ms, until)


# -- the connector -------------------------------------------------------------------------------


class _Connector(UMFutures):
    """``UMFutures`` that signs with our signer and clock and returns ``(data, headers)``."""

    def __init__(self, *, api_key: str | None, base_url: str, timeout_s: float, signer: Signer | None,
                 timestamp_ms: Callable[[], int]) -> None:
        super().__init__(key=api_key, secret=None, base_url=base_url, timeout=timeout_s, show_header=True)
        self._signer = signer
        self._timestamp_ms = timestamp_ms

    def _get_sign(self, payload: str) -> str:
        if self._signer is None:
            raise AuthError(0, "no API secret or private key configured for a signed request", 0,
                            hint="set the API secret (HMAC) or a private key (RSA/Ed25519)")
        return self._signer.sign(payload)

    def sign_request(self, http_method, url_path, payload=None, special=False):
        if self._signer is None:
            self._get_sign("")  # raises AuthError
        signed = sign_params(payload or {}, self._timestamp_ms(), self._signer)  # type: ignore[arg-type]
        return self.send_request(http_method, url_path, signed, special)

    def send_request(self, http_method, url_path, payload=None, special=False):
        # Like API.send_request, minus its DEBUG log of the raw body (which would carry listen keys).
        params = {"url": self.base_url + url_path, "params": self._prepare_params(payload or {}, special),
                  "timeout": self.timeout}
        if self.proxies:
            params["proxies"] = self.proxies
        response = self._dispatch_request(http_method)(**params)
        self._handle_exception(response)
        try:
            data = response.json()
        except ValueError:
            data = response.text
        return data, response.headers


# -- the client ----------------------------------------------------------------------------------


class BinanceRest:
    """Async, rate-limited, clock-synced Binance USDⓈ-M REST client."""

    def __init__(
        self,
        endpoints: Endpoints,
        credentials: Credentials | None,
        *,
        recv_window_ms: int = 5000,
        timeout_s: float = 10.0,
        order_timeout_s: float = ORDER_TIMEOUT_S,
        wall_ms: Callable[[], int] = _wall_ms,
        max_workers: int = 16,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        transport: Transport | None = None,
        retry_backoff: Callable[[int], float] = default_retry_backoff,
        max_retries: int = 4,
        resolve_backoff: Callable[[int], float] = default_resolve_backoff,
        algo_resolve_backoff: Callable[[int], float] = algo_resolve_backoff,
        resolve_attempts: int = 6,
        not_found_confirmations: int = 2,
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
        max_rate_wait_s: float = 65.0,
        max_rate_retries: int = 2,
        fast_orders: bool = True,
        limits_file: Path | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.wall_ms = wall_ms
        self.offset_ms = 0
        self.limits = RateLimitState()
        # A 429 back-off or 418 ban outlives the process: a restart inside one would otherwise send
        # at once, and Binance answers requests during a back-off with a longer ban.
        self.limits_file = limits_file
        self._load_blocks()
        self._sleep = sleep
        self._retry_backoff = retry_backoff
        self.max_retries = max_retries
        self._resolve_backoff = resolve_backoff
        self._algo_resolve_backoff = algo_resolve_backoff
        self.resolve_attempts = resolve_attempts
        self.not_found_confirmations = max(1, not_found_confirmations)
        # A query that resolves an unknown order is cheap and safe to repeat: one stalled answer
        # must not hold the symbol's next request (often its stop) for the full general timeout.
        self.resolve_timeout_s = resolve_timeout_s
        self.max_rate_wait_s = max_rate_wait_s
        self.max_rate_retries = max_rate_retries
        self._api_key = credentials.api_key if credentials else None
        self._signer = make_signer(credentials)
        self._local = threading.local()
        self._executor = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="binance-rest")
        self._transport: Transport = transport or self._connector_transport
        # new orders go out from the event loop (no thread hand-off); see fastsend.py
        self.order_sender = (OrderSender(endpoints.rest_url, self._api_key, self._signer, self.timestamp_ms,
                                         timeout_s=order_timeout_s)
                             if fast_orders and transport is None and self._signer is not None else None)
        self._closed = False

    def __repr__(self) -> str:
        return f"<BinanceRest {self.endpoints.name} {self.endpoints.rest_url} signer={self._signer!r}>"

    @property
    def signer_kind(self) -> str:
        return self._signer.kind if self._signer else "NONE"

    # -- time ------------------------------------------------------------------------------

    def server_now_ms(self) -> int:
        """Our best estimate of Binance's clock."""
        return self.wall_ms() + self.offset_ms

    def timestamp_ms(self) -> int:
        return self.server_now_ms()

    time_sync_timeout_s = QUICK_READ_TIMEOUT_S
    """A ``/fapi/v1/time`` left unanswered this long gets a copy sent beside it (twice; the first
    answer is used, with its own send time): a restart must not wait long for its clock."""

    async def sync_time(self) -> int:
        """Measure ``offset_ms = serverTime − local midpoint``; used for every signed timestamp."""
        async def ask() -> tuple[int, Any]:
            t0 = self.wall_ms()
            return t0, await self.call("GET", "/fapi/v1/time", security=NONE, weight=1)

        t0, r = await quick_read(ask, "GET /fapi/v1/time", self.time_sync_timeout_s)
        t1 = self.wall_ms()
        try:
            server = int(r["serverTime"])
        except (KeyError, TypeError, ValueError):
            raise ExchangeError(0, "malformed /fapi/v1/time response", 200) from None
        self.offset_ms = server - (t0 + t1) // 2
        self.limits.offset_ms = self.offset_ms
        if abs(self.offset_ms) > 1000:
            log.warning("local clock is %+d ms off Binance's; signing with the corrected time", -self.offset_ms)
        return self.offset_ms

    # -- transport -------------------------------------------------------------------------

    def _connector(self) -> _Connector:
        c = getattr(self._local, "connector", None)
        if c is None:
            c = _Connector(api_key=self._api_key, base_url=self.endpoints.rest_url, timeout_s=self.timeout_s,
                           signer=self._signer, timestamp_ms=self.timestamp_ms)
            self._local.connector = c
        return c

    def _connector_transport(self, method: str, path: str, params: dict, security: str) -> tuple[Any, Any]:
        c = self._connector()
        if security == SIGNED:
            return c.sign_request(method, path, params)
        return c.send_request(method, path, params)

    async def _send(self, method: str, path: str, params: dict, security: str) -> Any:
        try:
            if self.order_sender is not None and method == "POST" and path in FAST_PATHS:
                data, headers = await self.order_sender(method, path, params, security)
            elif _is_async(self._transport):
                data, headers = await self._transport(method, path, params, security)
            else:
                loop = asyncio.get_running_loop()
                data, headers = await loop.run_in_executor(
                    self._executor, functools.partial(self._transport, method, path, params, security))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a typed error
            now = self.wall_ms()
            self.limits.observe_headers(getattr(exc, "header", None), now)
            err = map_exception(exc, env=self.endpoints.name, now_ms=now)
            blocks = (self.limits.banned_until_ms, self.limits.retry_after_until_ms)
            self.limits.observe_error(err, now)
            if (self.limits.banned_until_ms, self.limits.retry_after_until_ms) != blocks:
                self._save_blocks()
            raise err from None
        self.limits.observe_headers(headers, self.wall_ms())
        return data

    def _load_blocks(self) -> None:
        """Take over a back-off or ban recorded by an earlier process for the same REST URL."""
        if self.limits_file is None:
            return
        try:
            saved = json.loads(self.limits_file.read_text())
            if saved.get("rest_url") != self.endpoints.rest_url:
                return
            banned, retry = int(saved.get("banned_until_ms", 0)), int(saved.get("retry_after_until_ms", 0))
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("rate-limit state %s unreadable (%s); starting without it", self.limits_file, exc)
            return
        now = self.wall_ms()
        if max(banned, retry) > now:
            self.limits.banned_until_ms = max(self.limits.banned_until_ms, banned)
            self.limits.retry_after_until_ms = max(self.limits.retry_after_until_ms, retry)
            log.warning("an earlier run was %s by Binance for another %.1f s: waiting it out before any request",
                        "banned" if banned > now else "rate limited", (max(banned, retry) - now) / 1000)

    def _save_blocks(self) -> None:
        if self.limits_file is None:
            return
        body = json.dumps({"rest_url": self.endpoints.rest_url, "banned_until_ms": self.limits.banned_until_ms,
                           "retry_after_until_ms": self.limits.retry_after_until_ms})
        tmp = self.limits_file.with_name(self.limits_file.name + ".tmp")
        try:
            self.limits_file.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(body)
            os.replace(tmp, self.limits_file)
        except OSError as exc:  # the gate still works in this process
            log.warning("could not record the rate-limit state in %s: %s", self.limits_file, exc)

    async def _gate(self, weight: int, is_order: bool) -> None:
        while True:
            now = self.wall_ms()
            try:
                wait = self.limits.delay_ms(now, weight, is_order)
            except Banned as ban:
                # A short ban is waited out here, like a Retry-After: the request goes the moment it
                # ends (a stop must not wait for a retry timer on the exchange's clock). A long one
                # is raised: nothing can be sent for a while and the caller must know.
                left_ms = self.limits.banned_until_ms - now
                if left_ms > self.max_rate_wait_s * 1000:
                    raise
                log.warning("banned by Binance for another %.1f s: waiting before the next request (%s)",
                            left_ms / 1000, ban.msg)
                await self._sleep(left_ms / 1000 + 0.01)
                continue
            if wait <= 0:
                self.limits.reserve(now, weight, is_order)
                return
            if wait > self.max_rate_wait_s * 1000:
                raise RateLimited(-1003, f"rate limited for another {wait / 1000:.0f} s; request not sent", 429,
                                  until_ms=now + wait, retry_after_s=wait / 1000)
            log.info("rate-limit gate: waiting %.2f s before the next request", wait / 1000)
            await self._sleep(wait / 1000)

    # -- the one entry point ---------------------------------------------------------------

    async def call(self, method: str, path: str, params: dict | None = None, *, security: str = SIGNED,
                   weight: int = 1, is_order: bool = False) -> Any:
        """One request with gate, clock resync and retries of certainly-not-applied failures.

        A 429 is retried once the ``Retry-After`` block has passed (the gate waits, up to
        ``max_rate_wait_s``); a 418 is raised at once and blocks every request until the ban
        ends. GETs are also retried after unknown-status failures (they change nothing).
        Anything else unknown is raised as :class:`UnknownStatusError` for the caller to resolve.
        """
        if self._closed:
            raise ExchangeError(0, "REST client is closed", 0)
        base = wire_params(params or {})
        if security == SIGNED and "recvWindow" not in base and self.recv_window_ms:
            base["recvWindow"] = self.recv_window_ms
        resynced = False
        attempt = 0
        rate_attempt = 0
        while True:
            await self._gate(weight, is_order)
            try:
                return await self._send(method, path, dict(base), security)
            except ExchangeError as err:
                if err.code in TIMESTAMP_CODES and security == SIGNED and not resynced:
                    resynced = True
                    log.warning("Binance %s on %s %s: resyncing the clock and resending once", err.code, method, path)
                    await self.sync_time()
                    continue
                if isinstance(err, RateLimited) and not isinstance(err, Banned) \
                        and rate_attempt < self.max_rate_retries:
                    rate_attempt += 1
                    log.warning("%s %s rate limited (%s); resending after the block", method, path, err.code)
                    continue  # the gate waits for Retry-After (or raises if that is too long)
                again = isinstance(err, TransientError) or (method == "GET" and isinstance(err, UnknownStatusError))
                if again and attempt < self.max_retries:
                    delay = self._retry_backoff(attempt)
                    attempt += 1
                    log.warning("%s %s failed (%s); retry %d in %.2f s", method, path, err, attempt, delay)
                    await self._sleep(delay)
                    continue
                raise

    # -- orders that must never be duplicated ----------------------------------------------

    async def _place_resolved(self, path: str, params: dict, client_id: str | None,
                              query: Callable[[], Awaitable[Any]], id_field: str,
                              backoff: Callable[[int], float] | None = None) -> Any:
        if not client_id:
            return await self.call("POST", path, params, weight=0, is_order=True)
        last: ExchangeError | None = None
        for sends in (1, 2):
            try:
                return await self.call("POST", path, params, weight=0, is_order=True)
            except ExchangeError as err:
                if _is_duplicate(err):
                    log.info("client id %s already exists: returning the existing order", client_id)
                    found = await self._resolve(query, id_field, client_id, backoff)
                    if found is not None:
                        return found
                    raise
                if not err.unknown_status:
                    raise
                log.warning("%s for %s: status unknown (%s); querying by client id", path, client_id, err)
                last = err
            found = await self._resolve(query, id_field, client_id, backoff)
            if found is not None:
                return found
            if sends == 1:
                log.warning("%s: Binance says %s does not exist; resending once with the same client id",
                            path, client_id)
        assert last is not None
        raise UnknownStatusError(last.code, f"order {client_id}: status still unknown after one resend; "
                                 "not resending again", last.http_status,
                                 hint="reconcile with the exchange before trading this symbol")

    async def _resolve(self, query: Callable[[], Awaitable[Any]], id_field: str, client_id: str,
                       backoff: Callable[[int], float] | None = None) -> Any | None:
        """The order if it exists; ``None`` once Binance has said "does not exist" enough times."""
        not_found = 0
        for attempt in range(self.resolve_attempts):
            await self._sleep((backoff or self._resolve_backoff)(attempt))
            try:
                r = await asyncio.wait_for(query(), self.resolve_timeout_s)
            except asyncio.TimeoutError:
                log.warning("query of %s got no answer within %.1f s; trying again", client_id, self.resolve_timeout_s)
                continue
            except (Banned, AuthError) as err:
                # we cannot look, so we do not know: the caller must treat the order as maybe-placed
                raise UnknownStatusError(err.code, f"order {client_id}: status unknown and it cannot be queried "
                                         f"now ({err.msg})", err.http_status,
                                         hint="reconcile with the exchange before trading this symbol") from None
            except ExchangeError as err:
                if _is_not_found(err):
                    not_found += 1
                    if not_found >= self.not_found_confirmations:
                        return None
                    continue
                log.warning("query of %s failed (%s); trying again", client_id, err)
                continue
            if isinstance(r, Mapping) and r.get(id_field) not in (None, "", 0):
                return r
            not_found += 1
            if not_found >= self.not_found_confirmations:
                return None
        raise UnknownStatusError(0, f"order {client_id}: could not learn whether it exists", 0,
                                 hint="reconcile with the exchange before trading this symbol")

    # -- convenience wrappers (raw Binance JSON) -------------------------------------------

    async def exchange_info(self) -> Any:
        return await self.call("GET", "/fapi/v1/exchangeInfo", security=NONE, weight=1)

    async def leverage_brackets(self, symbol: str | None = None) -> Any:
        return await self.call("GET", "/fapi/v1/leverageBracket", {"symbol": symbol}, weight=1)

    async def change_leverage(self, symbol: str, leverage: int) -> Any:
        return await self.call("POST", "/fapi/v1/leverage", {"symbol": symbol, "leverage": int(leverage)})

    async def change_margin_type(self, symbol: str, margin_type: str) -> Any:
        return await self.call("POST", "/fapi/v1/marginType", {"symbol": symbol, "marginType": margin_type})

    async def get_position_mode(self) -> Any:
        return await self.call("GET", "/fapi/v1/positionSide/dual", weight=30)

    async def change_position_mode(self, dual_side: bool) -> Any:
        return await self.call("POST", "/fapi/v1/positionSide/dual",
                               {"dualSidePosition": "true" if dual_side else "false"})

    async def new_order(self, params: Mapping[str, Any]) -> Any:
        """``POST /fapi/v1/order``; unknown outcomes are resolved by ``newClientOrderId`` (never duplicated)."""
        p = dict(params)
        cid = p.get("newClientOrderId")
        return await self._place_resolved(ORDER_PATH, p, cid, lambda: self.query_order(p["symbol"], cid), "orderId")

    async def query_order(self, symbol: str, orig_client_order_id: str) -> Any:
        return await self.call("GET", ORDER_PATH, {"symbol": symbol, "origClientOrderId": orig_client_order_id})

    async def query_order_by_id(self, symbol: str, order_id: int) -> Any:
        return await self.call("GET", ORDER_PATH, {"symbol": symbol, "orderId": int(order_id)})

    async def cancel_order(self, symbol: str, orig_client_order_id: str) -> Any:
        return await self.call("DELETE", ORDER_PATH, {"symbol": symbol, "origClientOrderId": orig_client_order_id})

    async def open_orders(self, symbol: str | None = None) -> Any:
        return await self.call("GET", "/fapi/v1/openOrders", {"symbol": symbol}, weight=1 if symbol else 40)

    async def new_algo_order(self, params: Mapping[str, Any]) -> Any:
        """``POST /fapi/v1/algoOrder``; unknown outcomes are resolved by ``clientAlgoId`` (never duplicated)."""
        p = dict(params)
        caid = p.get("clientAlgoId")
        return await self._place_resolved(ALGO_PATH, p, caid, lambda: self.query_algo_order(caid), "algoId",
                                          self._algo_resolve_backoff)

    async def query_algo_order(self, client_algo_id: str) -> Any:
        return await self.call("GET", ALGO_PATH, {"clientAlgoId": client_algo_id})

    async def cancel_algo_order(self, client_algo_id: str) -> Any:
        return await self.call("DELETE", ALGO_PATH, {"clientAlgoId": client_algo_id})

    async def open_algo_orders(self, symbol: str | None = None) -> Any:
        return await self.call("GET", "/fapi/v1/openAlgoOrders", {"symbol": symbol}, weight=1 if symbol else 40)

    async def position_risk(self) -> Any:
        return await self.call("GET", "/fapi/v3/positionRisk", weight=5)

    async def account(self) -> Any:
        return await self.call("GET", "/fapi/v3/account", weight=5)

    async def balance(self) -> Any:
        return await self.call("GET", "/fapi/v3/balance", weight=5)

    async def user_trades(self, symbol: str, start_ms: int | None = None, end_ms: int | None = None, *,
                          from_id: int | None = None, limit: int | None = None) -> Any:
        return await self.call("GET", "/fapi/v1/userTrades",
                               {"symbol": symbol, "startTime": start_ms, "endTime": end_ms, "fromId": from_id,
                                "limit": limit}, weight=5)

    async def klines(self, symbol: str, interval: str, start_ms: int | None = None, end_ms: int | None = None,
                     limit: int = 1500) -> Any:
        return await self.call("GET", "/fapi/v1/klines",
                               {"symbol": symbol, "interval": interval, "startTime": start_ms, "endTime": end_ms,
                                "limit": int(limit)}, security=NONE, weight=klines_weight(limit))

    async def premium_index(self, symbol: str | None = None) -> Any:
        return await self.call("GET", "/fapi/v1/premiumIndex", {"symbol": symbol}, security=NONE,
                               weight=1 if symbol else 10)

    async def new_listen_key(self) -> Any:
        r = await self.call("POST", "/fapi/v1/listenKey", security=USER_STREAM)
        if isinstance(r, Mapping):
            log.debug("listen key obtained (%s)", short_key(str(r.get("listenKey", ""))))
        return r

    async def keepalive_listen_key(self) -> Any:
        return await self.call("PUT", "/fapi/v1/listenKey", security=USER_STREAM)

    async def close_listen_key(self) -> Any:
        return await self.call("DELETE", "/fapi/v1/listenKey", security=USER_STREAM)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self.order_sender is not None:
            await self.order_sender.close()
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._executor.shutdown(wait=False, cancel_futures=True)


def wire_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as they may go on the wire: ``None`` dropped, Decimals in plain notation,
    booleans as ``true``/``false``; a float is refused (binary noise, ``1e-05`` notation)."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, float):
            raise TypeError(f"refusing float for parameter {k!r}: pass a Decimal or a formatted string")
        elif isinstance(v, Decimal):
            v = fmt(v)
        out[k] = v
    return out


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def _is_not_found(err: ExchangeError) -> bool:
    if err.code in NOT_FOUND_CODES:
        return True
    m = (err.msg or "").lower()
    return "does not exist" in m or "not exist" in m or "not found" in m


def _is_duplicate(err: ExchangeError) -> bool:
    return err.code == -4116 or "duplicate" in (err.msg or "").lower()
