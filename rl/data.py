"""Market data for the RL environment: one symbol's 1m klines as numpy arrays, plus its funding history.

Built from :mod:`engine.data` (the same validated loader the sim replays), so the environment and the
sim exchange see exactly the same candles. ``MarketData.candles`` keeps the original Decimal
:class:`~engine.model.Candle` records so a test can replay the very same candles through
:class:`~engine.exchange.sim.matching.SimExchange`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from engine.data import (
    KlineFile,
    load_funding,
    load_klines,
    sample_funding_files,
    sample_kline_files,
)
from engine.model import Candle

__all__ = ["MarketData", "from_kline_file", "load_market_data", "sample_market_data"]


@dataclass(frozen=True, eq=False)
class MarketData:
    """One symbol's closed 1m candles (contiguous, strictly increasing ``open_time``).

    Arrays are read-only numpy arrays of equal length: ``open_time``/``close_time`` (int64 epoch
    ms), ``open``/``high``/``low``/``close``/``volume`` (float64). ``funding`` maps a funding
    event time (ms) to its settled rate, exactly as :func:`engine.data.load_funding` returns it for
    the symbol (the sim matches it to a funding instant within ±60 s).
    """

    symbol: str
    open_time: np.ndarray
    close_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding: Mapping[int, Decimal] = field(default_factory=dict)
    candles: tuple[Candle, ...] | None = None

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def head(self, n: int) -> "MarketData":
        """The first ``n`` candles and only the funding rates published by the close of candle n-1.

        This is "the data up to now" at candle ``n-1``; the look-ahead test compares features
        computed on it with features computed on everything.
        """
        if not 1 <= n <= len(self):
            raise ValueError(f"head({n}) of {len(self)} candles")
        cut = int(self.close_time[n - 1])
        return MarketData(
            self.symbol,
            self.open_time[:n], self.close_time[:n], self.open[:n], self.high[:n], self.low[:n],
            self.close[:n], self.volume[:n],
            {t: r for t, r in self.funding.items() if t <= cut},
            None if self.candles is None else self.candles[:n],
        )


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def from_kline_file(kf: KlineFile, funding: Mapping[int, Decimal] | None = None, *,
                    keep_candles: bool = True) -> MarketData:
    """Arrays from a loaded (validated) :class:`~engine.data.KlineFile`."""
    cs = kf.candles
    n = len(cs)
    ot = np.fromiter((c.open_time_ms for c in cs), dtype=np.int64, count=n)
    ct = np.fromiter((c.close_time_ms for c in cs), dtype=np.int64, count=n)
    o = np.fromiter((float(c.open) for c in cs), dtype=np.float64, count=n)
    h = np.fromiter((float(c.high) for c in cs), dtype=np.float64, count=n)
    lo = np.fromiter((float(c.low) for c in cs), dtype=np.float64, count=n)
    cl = np.fromiter((float(c.close) for c in cs), dtype=np.float64, count=n)
    v = np.fromiter((float(c.volume) for c in cs), dtype=np.float64, count=n)
    return MarketData(kf.symbol, _ro(ot), _ro(ct), _ro(o), _ro(h), _ro(lo), _ro(cl), _ro(v),
                      dict(funding or {}), cs if keep_candles else None)


def load_market_data(kline_path: str | Path, funding_paths: Sequence[str | Path] = (), *,
                     symbol: str | None = None, keep_candles: bool = True) -> MarketData:
    """Load one Binance Vision 1m kline CSV (``.gz`` fine) and the symbol's funding history CSVs."""
    kf = load_klines(kline_path, symbol)
    rates: dict[int, Decimal] = {}
    for p in funding_paths:
        rates.update(load_funding(p).get(kf.symbol, {}))
    return from_kline_file(kf, rates, keep_candles=keep_candles)


def sample_market_data(symbol: str = "BTCUSDT") -> MarketData:
    """The bundled sample (14 days of real 1m klines + funding) for ``symbol`` (BTC/ETH/SOLUSDT)."""
    files = sample_kline_files([symbol])
    if not files:
        raise ValueError(f"no bundled sample klines for {symbol}")
    return load_market_data(files[0], sample_funding_files([symbol]), symbol=symbol.upper())


def slice_market_data(data: MarketData, start: int, stop: int) -> MarketData:
    """Candles ``start:stop`` (all funding history kept: the env picks rates by their instant)."""
    n = len(data)
    if not 0 <= start < stop <= n:
        raise ValueError(f"slice {start}:{stop} of {n} candles")
    return MarketData(
        data.symbol,
        data.open_time[start:stop], data.close_time[start:stop], data.open[start:stop], data.high[start:stop],
        data.low[start:stop], data.close[start:stop], data.volume[start:stop],
        data.funding, None if data.candles is None else data.candles[start:stop],
    )


@dataclass(frozen=True)
class TimeSplit:
    """Candle index bounds of a time-ordered train / validation / holdout split.

    ``train = [0, val_start)``, ``validation = [val_start, holdout_start)``, ``holdout =
    [holdout_start, n)``. Nothing is shuffled: the holdout is the most recent period.
    """

    n: int
    val_start: int
    holdout_start: int

    @classmethod
    def of(cls, n: int, train_fraction: float, validation_fraction: float) -> "TimeSplit":
        if not (0 < train_fraction < 1 and 0 < validation_fraction < 1 and train_fraction + validation_fraction < 1):
            raise ValueError("train_fraction and validation_fraction must be in (0, 1) with a sum below 1")
        v = int(n * train_fraction)
        h = int(n * (train_fraction + validation_fraction))
        if not 0 < v < h < n:
            raise ValueError(f"{n} candles are too few to split {train_fraction}/{validation_fraction}/rest")
        return cls(n, v, h)

    def train(self, data: MarketData) -> MarketData:
        return slice_market_data(data, 0, self.val_start)

    def validation(self, data: MarketData, context: int = 0) -> MarketData:
        """The validation candles, preceded by ``context`` earlier candles (feature warm-up only:
        features are causal, so earlier candles are past, not leakage)."""
        return slice_market_data(data, max(0, self.val_start - context), self.holdout_start)

    def holdout(self, data: MarketData, context: int = 0) -> MarketData:
        return slice_market_data(data, max(0, self.holdout_start - context), self.n)
