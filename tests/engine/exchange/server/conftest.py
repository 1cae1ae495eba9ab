"""Fixtures: a LocalExchange over a small synthetic replay, a UMFutures client, raw signing helpers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import urlencode

import pytest
import requests
from binance.um_futures import UMFutures

from engine.exchange.sim.matching import SimExchange, load_default_rules
from engine.exchange.sim.server import DEFAULT_API_KEY, DEFAULT_API_SECRET, LocalExchange
from engine.model import Candle

D = Decimal
MIN = 60_000
T0 = 1747008000000  # 2025-05-12 00:00 UTC (a funding instant)
N_MIN = 20
CRASH_MIN = 5  # BTCUSDT candle that dips to 97000
RULES = load_default_rules()


def _c(sym: str, i: int, o: str, h: str, lo: str, cl: str) -> Candle:
    t = T0 + i * MIN
    return Candle(sym, t, t + MIN - 1, D(o), D(h), D(lo), D(cl), D("12.5"))


def make_candles(n: int = N_MIN) -> list[Candle]:
    out = []
    for i in range(n):
        if i == CRASH_MIN:
            out.append(_c("BTCUSDT", i, "100000", "100010", "97000", "97500"))
        else:
            base = 100000 + (i % 3) * 10
            out.append(_c("BTCUSDT", i, str(base), str(base + 20), str(base - 20), str(base + 10)))
        out.append(_c("ETHUSDT", i, "2000", "2001", "1999", "2000.5"))
    return out


def make_sim(candles: list[Candle]) -> SimExchange:
    return SimExchange(RULES, start_time_ms=candles[0].open_time_ms)


@pytest.fixture
def candles() -> list[Candle]:
    return make_candles()


@pytest.fixture
async def ex(candles):
    server = LocalExchange(make_sim(candles), candles, listen_key_ttl_s=3600)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
def client(ex) -> Any:
    c = UMFutures(DEFAULT_API_KEY, DEFAULT_API_SECRET, base_url=ex.rest_url, timeout=10)
    yield c
    c.session.close()


async def call(fn: Callable, *args: Any, **kw: Any) -> Any:
    """Run a blocking client call off the loop that serves it."""
    return await asyncio.to_thread(fn, *args, **kw)


def now_ms() -> int:
    return int(time.time() * 1000)


def hmac_query(params: dict[str, Any], secret: str = DEFAULT_API_SECRET) -> str:
    q = urlencode(params)
    return q + "&signature=" + hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()


async def raw(method: str, url: str, *, headers: dict[str, str] | None = None, data: Any = None) -> requests.Response:
    """A plain HTTP request (run off the loop that serves it)."""
    return await asyncio.to_thread(requests.request, method, url, headers=headers or {}, data=data, timeout=10)


async def wait_for(cond: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Bounded wait for a condition the server will make true (not a sleep for time to pass)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


async def away_from_window_edge(window_s: int, margin_s: float = 1.5) -> None:
    """Rate-limit windows are fixed wall-clock windows: don't start a burst right before one ends."""
    left = window_s - (time.time() % window_s)
    if left < margin_s:
        await asyncio.sleep(left + 0.05)
