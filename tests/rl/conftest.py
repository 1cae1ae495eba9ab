"""Shared fixtures for the RL tests: the bundled sample candles (no ../shared needed)."""

from __future__ import annotations

import pytest

pytest.importorskip("numpy")

from rl.data import MarketData, sample_market_data  # noqa: E402

_CACHE: dict[str, MarketData] = {}


def sample(symbol: str) -> MarketData:
    if symbol not in _CACHE:
        _CACHE[symbol] = sample_market_data(symbol)
    return _CACHE[symbol]


@pytest.fixture(scope="session")
def btc() -> MarketData:
    return sample("BTCUSDT")
