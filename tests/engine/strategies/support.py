"""Candle builders for the strategy tests."""

from __future__ import annotations

import random
from decimal import Decimal

from engine.model import Candle

MIN = 60_000
T0 = 1_746_403_200_000  # 2025-05-05 00:00 UTC


def d(x: float) -> Decimal:
    return Decimal(str(round(x, 8)))


def candle(i: int, close: float, *, open_: float | None = None, high: float | None = None,
           low: float | None = None, volume: float = 1.0, symbol: str = "BTCUSDT", closed: bool = True,
           t0: int = T0) -> Candle:
    """Candle ``i`` (one minute each from ``t0``); high/low default to the body ± 0.1."""
    o = close if open_ is None else open_
    h = max(o, close) + 0.1 if high is None else high
    lo = min(o, close) - 0.1 if low is None else low
    return Candle(symbol, t0 + i * MIN, t0 + i * MIN + MIN - 1, d(o), d(h), d(lo), d(close), d(volume), closed)


def series(closes, *, symbol: str = "BTCUSDT", start: int = 0, wick: float = 0.1, volume: float = 1.0):
    """Candles whose open is the previous close and whose wicks reach ``wick`` beyond the body."""
    out = []
    prev = closes[0]
    for k, c in enumerate(closes):
        out.append(candle(start + k, c, open_=prev, high=max(prev, c) + wick, low=min(prev, c) - wick,
                          volume=volume, symbol=symbol))
        prev = c
    return out


def zigzag(n: int, level: float = 100.0, amp: float = 0.3) -> list[float]:
    """``n`` closes alternating level ± amp (a range with no trend)."""
    return [level + (amp if k % 2 else -amp) for k in range(n)]


def noise(n: int, level: float = 100.0, amp: float = 0.3, seed: int = 1) -> list[float]:
    """``n`` closes uniformly within level ± amp (seeded): a range with no trend."""
    rng = random.Random(seed)
    return [level + rng.uniform(-amp, amp) for _ in range(n)]


def ramp(n: int, start: float, step: float) -> list[float]:
    """``n`` closes from ``start + step`` moving ``step`` each candle."""
    return [start + step * (k + 1) for k in range(n)]


def feed(strategy, candles):
    """[(index, signal)] for every candle that produced a signal."""
    return [(k, s) for k, c in enumerate(candles) if (s := strategy.on_candle(c)) is not None]


class Stub:
    """A member strategy for composite tests: signals ``direction`` on the candles ``at`` picks."""

    def __init__(self, name: str, direction=None, at=None) -> None:
        from engine.model import Direction

        self.name = name
        self.direction = direction or Direction.LONG
        self.at = at  # None = every candle; else a set of candle indices (per symbol)
        self.seen: dict[str, int] = {}

    def on_candle(self, c: Candle):
        from engine.model import Signal

        k = self.seen.get(c.symbol, 0)
        self.seen[c.symbol] = k + 1
        if self.at is not None and k not in self.at:
            return None
        return Signal(self.name, c.symbol, self.direction, 0.5, f"{self.name} says so", c.open_time_ms, c.close,
                      c.close_time_ms)
