"""Local Binance USDⓈ-M compatible exchange: REST + WebSocket on 127.0.0.1 over :class:`SimExchange`.

A standard Binance client works unchanged apart from its base URLs::

    async with LocalExchange(sim, candles) as ex:          # lockstep (speed 0)
        UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url)
        websockets.connect(ex.ws_url + "/market/stream?streams=btcusdt@kline_1m")
        ctl = await SimControl.connect(ex.ws_url); await ctl.advance()

REST (``rest_url``)
    The §4/§5 endpoints that :class:`SimExchange` implements, mapped 1:1 onto it, plus
    ``/fapi/v1/ping``, ``/fapi/v1/time``, ``/fapi/v1/klines``, ``/fapi/v1/symbolConfig``, the v2
    ``positionRisk``/``account``/``balance`` shapes and the ``listenKey`` endpoints. Parameters come
    from the query string for every method plus an optional form body (query wins). Auth per §2:
    ``X-MBX-APIKEY`` (-2014/-2015, HTTP 401), ``timestamp``/``recvWindow`` (-1021), signature over
    the raw query before ``&signature=`` + raw body: HMAC-SHA256 hex, RSA PKCS#1 v1.5 and Ed25519
    base64 (-1022). Rate limits per §3 with ``X-MBX-USED-WEIGHT-1M`` on every response and
    ``X-MBX-ORDER-COUNT-10S/-1M`` on order responses; 429 ``-1003`` + ``Retry-After``, then 418.
    Errors are always ``application/json`` ``{"code", "msg"}``.

WebSocket (``ws_url``)
    ``/market``, ``/public``, ``/private`` × ``/ws``, ``/ws/<s1>/<s2>``, ``/stream?streams=…``; legacy
    bare ``/ws``, ``/stream``; SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY /
    GET_PROPERTY (§7.2). Market streams ``<sym>@kline_1m``, ``<sym>@markPrice``,
    ``<sym>@markPrice@1s`` on ``/market`` only. User data on ``/private/ws/<listenKey>``,
    ``/private/ws?listenKey=&events=A/B``, ``/private/stream?listenKey=…`` or SUBSCRIBE
    ``[<listenKey>]``. ``/sim`` is the sim-only control socket (``ADVANCE``, ``STATUS``, ``FAULT``;
    see :class:`SimControl`).

Fault injection
    ``LocalExchange.faults`` (:class:`Faults`), or ``FAULT`` on ``/sim`` from another process: REST
    failures, stalls, unknown-status 503s, 429/418, clock skew, dropped streams, listenKey expiry,
    duplicated / delayed / reordered user-data events and fills split in two. All off by default.
    ``LocalExchange.add_user_event_tap`` sees every user-data event as produced;
    :class:`ProtectionMonitor` uses it to time positions without a resting stop.

Replay
    ``speed == 0`` (lockstep): each ``ADVANCE`` feeds exactly one candle (merged-by-time order) to
    ``sim.on_candle``, queues the resulting user-data events to the account's ``/private`` sockets,
    then that candle's market messages (a kline frame at the open with ``o=h=l=c=open``, ``x:false``,
    ``E`` = open time; the closing frame ``x:true``; a ``markPriceUpdate`` with ``p`` = close,
    ``r`` = the rate the sim charges at the next funding, ``T`` = next funding time), waits until
    those are written to the sockets, THEN replies. ``speed > 0``: a background task does the same
    for all candles of one open time, pacing one minute of data to ``60/speed`` s (a candle is
    released when its close time is reached on the paced clock); ``ADVANCE`` is refused.
    ``ADVANCE`` answers ``finished: true`` (``symbol``/``openTime`` None) only when it found no
    candle left; the call that processes the last candle answers ``finished: false, remaining: 0``.
    ``replay_finished`` / STATUS ``finished`` mean "no candle left".
    ``user_event_seq`` counts every user-data event the sim produced while the account had an
    active listenKey, whether or not a socket was subscribed, so a lockstep client can wait until
    it has seen them all. Events produced while no listenKey exists (e.g. ACCOUNT_CONFIG_UPDATE from
    setting the leverage before the user stream is opened) belong to no stream: they are not
    delivered and not counted (``user_event_total`` counts everything).

Deviations from Binance (deliberate)
    * Two clocks. Exchange times (event ``E``/``T``, order times, ``serverTime`` in exchangeInfo,
      the kline ``E``) are the replay clock ``sim.now_ms``. The ``timestamp``/``recvWindow`` check of
      signed requests and ``GET /fapi/v1/time`` use the *request clock* = wall clock +
      ``faults.clock_skew_ms``, so a client's server-time sync and Binance's -1021 rule work while
      the replay is in the past. Rate-limit windows and listenKey TTLs run on the wall clock.
    * Market data is one kline_1m open frame + one closing frame and one mark price per candle
      (not 250 ms / 1 s / 3 s updates); ``@markPrice`` and ``@markPrice@1s`` carry the same message.
      Other streams (aggTrade, depth, bookTicker, tickers, other kline intervals, ``!markPrice@arr``)
      are accepted (on their route) but never produce data. Stream names must be lowercase (an
      uppercase symbol is answered "Invalid request: invalid stream"). Kline ``f``/``L`` = -1,
      ``n`` = 0, ``q``/``V``/``Q`` = "0" (the data has only OHLCV); the same for the REST kline rows.
    * ``GET /fapi/v1/klines`` serves only candles the replay has already processed (closed by the
      replay clock); intervals above 1m are aggregated from them, the newest bucket possibly partial.
    * One account for all API keys and one active listenKey per account; ``listenKeyExpired``
      (``E`` a string, §8.5) goes to the key's sockets that allow it and is not counted in
      ``user_event_seq``. A socket opened or subscribed with an unknown/expired key is closed
      (1008). ``DELETE /fapi/v1/listenKey`` stops delivery without closing sockets.
    * An order is counted on the ORDERS limits once it passes authentication (rejections included).
      Order-count 429s (-1015) do not start the 418 back-off; weight 429s and injected ones do. A
      request arriving within ``limits.backoff_grace_ms`` (1 s) of the 429 was already in flight: it
      gets the 429 again; one after that earns the ban.
      ``Retry-After`` is whole seconds (≥ 1).
    * ``recvWindow`` above 60000 → -1131 (spot's rule; fapi's maximum is unverified).
    * Too many streams: a URL with > 1024 streams is refused at the handshake (HTTP 400); a SUBSCRIBE
      that would exceed it gets ``{"error":{"code":2,…}}`` and changes nothing. More than 10 incoming
      messages per second closes the connection (1008); the ``/sim`` socket is exempt.
    * No 24 h forced disconnect; pings every ``ping_interval_s``, dropped after
      ``limits.ws_pong_timeout_s`` without pong.
    * Unknown REST path → 404 ``{"code":-1000,…}``; known path, wrong method → 405.
"""

from importlib import import_module
from typing import Any

# Loaded on first use (PEP 562): the engine's own HTTP endpoint and the default sim keys need one
# small module each, and a restart must not pay for importing the whole exchange first.
_EXPORTS = {
    "ApiKey": "auth",
    "DEFAULT_API_KEY": "auth",
    "DEFAULT_API_SECRET": "auth",
    "Faults": "faults",
    "LocalExchange": "local",
    "MSG_UNKNOWN_STATUS": "faults",
    "ProtectionMonitor": "monitor",
    "RateLimits": "limits",
    "SimControl": "control",
    "SimControlError": "control",
    "Unprotected": "monitor",
    "add_arguments": "standalone",
    "load_replay": "standalone",
    "run_standalone": "standalone",
    "serve_forever_cli": "standalone",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
