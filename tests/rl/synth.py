"""Deterministic synthetic candles for gate tests (a clean trend with a small zig-zag)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from engine.data import KlineFile
from engine.model import Candle

T0 = 1_746_057_600_000  # 2025-05-01 00:00 UTC


def trend_file(symbol: str = "BTCUSDT", n: int = 2880, start: float = 50_000.0, drift: float = 0.0002,
               zig: float = 0.0004) -> KlineFile:
    """``n`` 1m candles: close grows by ``drift`` per candle, alternating ±``zig`` around the trend."""
    out = []
    prev = start
    for i in range(n):
        base = start * (1 + drift) ** (i + 1)
        close = round(base * (1 + (zig if i % 2 else -zig)), 1)
        o = prev
        hi = round(max(o, close) * 1.0002, 1)
        lo = round(min(o, close) * 0.9998, 1)
        t = T0 + i * 60_000
        out.append(Candle(symbol, t, t + 59_999, Decimal(repr(o)), Decimal(repr(hi)), Decimal(repr(lo)),
                          Decimal(repr(close)), Decimal("10")))
        prev = close
    return KlineFile(symbol, Path(f"{symbol}-synthetic.csv"), tuple(out))
